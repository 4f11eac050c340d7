# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_volume: validation, XML (checked by virt-xml-validate), plans and manager."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _storage
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._storage import volume as V

from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._storage.conftest import module_params

GIB = 1024 ** 3
SUM = 'sha256:' + 'a' * 64


def spec(**options):
    options.setdefault('name', 'disk.qcow2')
    options.setdefault('pool', 'images')
    return V.validate(module_params(V.ARGUMENT_SPEC, **options))


def ops(plan):
    return [a.op for a in plan.actions]


def existing(fmt='qcow2', capacity=GIB, backing=None, record=None, physical=200000):
    return V.Current(True, fmt, capacity, physical, '/srv/images/disk.qcow2', backing, record)


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize('options, message', [
    (dict(backing_volume='b', clone_from='c'), 'images/disk.qcow2: backing_volume and clone_from are mutually exclusive'),
    (dict(capacity='lots'), "capacity: cannot read 'lots' as a size"),
    (dict(capacity=0), 'capacity: must be positive, got 0'),
    (dict(import_from='http://h/x.img'), 'images/disk.qcow2: checksum is required to import http://h/x.img'),
    (dict(import_from='x.img', allow_unverified=True), "import_from: expected a URL (http, https, ftp, file) or an absolute path"),
    (dict(checksum=SUM), 'checksum: only applies with import_from'),
    (dict(import_from='http://h/x', checksum='sha1:abc'), "checksum: algorithm must be sha256 or sha512, got 'sha1'"),
    (dict(backing_file='/b.qcow2', format='raw'), 'an overlay on a backing store must be format qcow2, not raw'),
    (dict(backing_pool='other'), 'backing_pool: only applies with backing_volume'),
    (dict(name='a/b'), 'name: a volume name must be non-empty'),
])
def test_bad_input_is_one_line(options, message):
    with pytest.raises(VirtkitError) as err:
        spec(**options)
    assert message in str(err.value)
    assert '\n' not in str(err.value)


def test_capacity_integers_are_gib():
    assert spec(capacity=20).capacity == 20 * GIB
    assert spec(capacity='512MiB').capacity == 512 * 1024 ** 2


# ------------------------------------------------------------------ XML

def test_volume_xml_is_valid(validate_xml):
    plain = _storage.volume_xml_text('a.qcow2', GIB, 'qcow2')
    validate_xml(plain, 'storagevol')
    overlay = _storage.volume_xml_text('b.qcow2', GIB, 'qcow2', backing='/srv/base.qcow2', backing_format='qcow2')
    validate_xml(overlay, 'storagevol')
    assert "<path>/srv/base.qcow2</path>" in overlay and '<format type="qcow2"/>' in overlay
    validate_xml(_storage.volume_xml_text('c.raw', 512, 'raw', allocation=0), 'storagevol')


# ------------------------------------------------------------------ plans

def test_create_plans(validate_xml):
    plan = V.build_plan(spec(capacity=1), V.Current(), {})
    assert ops(plan) == ['create'] and plan.after['format'] == 'qcow2'
    validate_xml(plan.actions[0].params['xml'], 'storagevol')
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(), V.Current(), {})
    assert 'a new volume needs capacity' in str(err.value)
    raw = V.build_plan(spec(capacity='1000B', format='raw'), V.Current(), {})
    assert raw.after['capacity'] == 1000
    assert V.build_plan(spec(capacity='1000B'), V.Current(), {}).after['capacity'] == 1024


def test_overlay_plan_defaults_to_backing_capacity(validate_xml):
    back = {'path': '/srv/base.qcow2', 'format': 'qcow2', 'capacity': 2 * GIB}
    plan = V.build_plan(spec(backing_volume='base.qcow2'), V.Current(), {'backing': back})
    assert ops(plan) == ['create'] and plan.after['capacity'] == 2 * GIB
    validate_xml(plan.actions[0].params['xml'], 'storagevol')
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(backing_volume='base.qcow2', capacity=1), V.Current(), {'backing': back})
    assert 'capacity 1 GiB is smaller than the backing store /srv/base.qcow2 (2 GiB)' in str(err.value)
    same = V.build_plan(spec(backing_volume='base.qcow2'), existing(backing='/srv/base.qcow2'), {'backing': back})
    assert ops(same) == [] and not same.changed
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(backing_volume='base.qcow2'), existing(backing='/srv/other.qcow2'), {'backing': back})
    assert "backing store is /srv/other.qcow2, not /srv/base.qcow2; it cannot change in place" in str(err.value)


def test_clone_plan():
    plan = V.build_plan(spec(clone_from='src.raw'), V.Current(), {'clone': {'format': 'raw', 'capacity': GIB}})
    assert ops(plan) == ['clone'] and plan.actions[0].params['source'] == 'src.raw'
    assert '<format type="raw"/>' in plan.actions[0].params['xml']
    assert ops(V.build_plan(spec(clone_from='src.raw'), existing(), {})) == []


def test_resize_plans():
    grow = V.build_plan(spec(capacity=2), existing(), {})
    assert ops(grow) == ['resize'] and grow.actions[0].params == {'capacity': 2 * GIB, 'shrink': False}
    assert ops(V.build_plan(spec(capacity=1), existing(), {})) == []
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(capacity='512MiB'), existing(), {})
    assert str(err.value) == ('images/disk.qcow2: refusing to shrink the volume from 1 GiB to 512 MiB (data beyond '
                              'the new end is lost); set allow_shrink: true to force it')
    shrink = V.build_plan(spec(capacity='512MiB', allow_shrink=True), existing(), {})
    assert shrink.actions[0].params['shrink'] is True
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(format='raw', capacity=1), existing(), {})
    assert 'its format cannot change to raw' in str(err.value)


def test_absent_plans():
    assert ops(V.build_plan(spec(state='absent'), existing(), {})) == ['delete']
    assert ops(V.build_plan(spec(state='absent'), V.Current(), {})) == []


def test_import_plans_follow_the_record():
    want = ('sha256', 'a' * 64)
    args = dict(import_from='http://h/base.qcow2', checksum=SUM)
    new = V.build_plan(spec(**args), V.Current(), {'checksum': want})
    assert ops(new) == ['import_image'] and new.actions[0].params == {'checksum': want}
    record = {'source': 'http://h/base.qcow2', 'checksum': SUM, 'path': '/srv/images/disk.qcow2',
              'capacity': GIB, 'physical': 200000}
    same = V.build_plan(spec(**args), existing(record=record), {'checksum': want})
    assert ops(same) == [] and not same.warnings
    changed = V.build_plan(spec(**args), existing(record=dict(record, checksum='sha256:' + 'b' * 64)),
                           {'checksum': want})
    assert ops(changed) == [] and 'set reimport: true to replace it' in changed.warnings[0]
    forced = V.build_plan(spec(reimport=True, **args), existing(record=dict(record, checksum='sha256:' + 'b' * 64)),
                          {'checksum': want})
    assert ops(forced) == ['import_temp', 'replace']
    # A record that no longer matches the volume (written to, replaced) proves nothing.
    stale = V.build_plan(spec(**args), existing(record=record, physical=999), {'checksum': want})
    assert ops(stale) == [] and 'no import record matches it' in stale.warnings[0]
    grown = V.build_plan(spec(capacity=10, **args), V.Current(), {'checksum': want})
    assert ops(grown) == ['import_image', 'grow_to']


# ------------------------------------------------------------------ manager

def run(conn, pool, check=False, **options):
    options.setdefault('pool', pool)
    return V.VolumeManager(conn).run(module_params(V.ARGUMENT_SPEC, **options), check_mode=check)


def test_manager_create_and_delete_on_test_driver(test_conn, tmp_path):
    args = dict(name='vk-unit.img', format='raw', capacity='1MiB', uri='test:///default', cache_dir=str(tmp_path))
    check = run(test_conn, 'default-pool', check=True, **args)
    assert check['changed'] and check['volume'] == {}
    first = run(test_conn, 'default-pool', **args)
    assert first['changed'] and first['volume']['capacity'] == 1024 ** 2 and first['volume']['format'] == 'raw'
    assert not run(test_conn, 'default-pool', **args)['changed']
    assert not run(test_conn, 'default-pool', check=True, **args)['changed']
    gone = run(test_conn, 'default-pool', state='absent', **args)
    assert gone['changed'] and gone['volume'] == {}
    assert not run(test_conn, 'default-pool', state='absent', **args)['changed']
    with pytest.raises(VirtkitError) as err:
        run(test_conn, 'no-such-pool', **args)
    assert str(err.value) == 'no-such-pool/vk-unit.img: the storage pool no-such-pool does not exist'


def test_manager_overlay_resize_import_on_real_libvirtd(system_pool, tmp_path):
    conn, pool, path = system_pool
    cache = str(tmp_path / 'cache')
    image = tmp_path / 'base.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(image), '64M'], check=True)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    imp = dict(name='base.qcow2', import_from='file://%s' % image, checksum='sha256:' + digest, cache_dir=cache)
    first = run(conn, pool, **imp)
    assert first['changed'] and first['volume']['format'] == 'qcow2'
    assert first['volume']['capacity'] == 64 * 1024 ** 2
    assert first['volume']['source_checksum'] == 'sha256:' + digest
    again = run(conn, pool, **imp)
    assert not again['changed'] and 'warnings' not in again
    ov = dict(name='web.qcow2', backing_volume='base.qcow2', capacity='128MiB', cache_dir=cache)
    made = run(conn, pool, **ov)
    assert made['volume']['backing_store'] == {'path': os.path.join(path, 'base.qcow2'), 'format': 'qcow2'}
    assert not run(conn, pool, **ov)['changed']
    ov['capacity'] = '256MiB'
    grown = run(conn, pool, **ov)
    assert grown['changed'] and grown['volume']['capacity'] == 256 * 1024 ** 2
    with pytest.raises(VirtkitError) as err:
        run(conn, pool, name='web.qcow2', capacity='128MiB', cache_dir=cache)
    assert 'refusing to shrink the volume from 256 MiB to 128 MiB' in str(err.value)
    other = dict(imp)
    other['checksum'] = 'sha256:' + '0' * 64
    changed = run(conn, pool, **other)
    assert not changed['changed'] and 'set reimport: true' in changed['warnings'][0]


def test_absent_in_a_missing_pool_is_not_an_error(test_conn, tmp_path):
    r = run(test_conn, 'no-such-pool', name='x.img', state='absent', uri='test:///default', cache_dir=str(tmp_path))
    assert not r['changed'] and r['volume'] == {}


def test_backing_file_outside_libvirt(test_conn, tmp_path):
    args = dict(name='ov.qcow2', backing_file='/nowhere/base.qcow2', uri='test:///default', cache_dir=str(tmp_path))
    with pytest.raises(VirtkitError) as err:
        run(test_conn, 'default-pool', check=True, **args)
    assert 'is neither a libvirt volume nor a file on this host; set backing_format and capacity' in str(err.value)
    planned = run(test_conn, 'default-pool', check=True, backing_format='qcow2', capacity=1, **args)
    assert [a['action'] for a in planned['actions']] == ['create']


def test_forced_shrink_on_real_libvirtd(system_pool, tmp_path):
    conn, pool, _path = system_pool
    args = dict(name='s.qcow2', capacity='64MiB', cache_dir=str(tmp_path))
    run(conn, pool, **args)
    args['capacity'] = '32MiB'
    with pytest.raises(VirtkitError):
        run(conn, pool, **args)
    shrunk = run(conn, pool, allow_shrink=True, **args)
    assert shrunk['changed'] and shrunk['volume']['capacity'] == 32 * 1024 ** 2
    assert not run(conn, pool, **args)['changed']


# ------------------------------------------------------------------ reimport safety, sources

def _qcow2(path, size='16M'):
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), size], check=True)
    return 'sha256:' + hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(call, message):
    with pytest.raises(VirtkitError) as err:
        call()
    assert message in str(err.value)
    assert '\n' not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize('source_kind', ['path', 'file-url'])
def test_failed_reimport_keeps_the_old_volume(system_pool, tmp_path, source_kind):
    """reimport deletes the old volume only after the new image is fetched and verified."""
    conn, pool, path = system_pool
    cache = str(tmp_path / 'cache')
    old = tmp_path / 'old.qcow2'
    new = tmp_path / 'new.qcow2'
    old_sum = _qcow2(old, '16M')
    new_sum = _qcow2(new, '32M')

    def src(p):
        return 'file://%s' % p if source_kind == 'file-url' else str(p)

    base = dict(name='base.qcow2', cache_dir=cache)
    first = run(conn, pool, import_from=src(old), checksum=old_sum, **base)
    assert first['changed'] and first['volume']['source_checksum'] == old_sum
    target = os.path.join(path, 'base.qcow2')
    before = os.stat(target)

    def intact():
        again = run(conn, pool, check=True, import_from=src(old), checksum=old_sum, **base)
        assert not again['changed'] and 'warnings' not in again, 'the old volume or its import record was lost'
        assert again['volume']['source'] == src(old) and again['volume']['source_checksum'] == old_sum
        assert again['volume']['capacity'] == 16 * 1024 ** 2
        assert os.stat(target).st_ino == before.st_ino

    missing = src(tmp_path / 'missing.qcow2')
    _one_line_error(lambda: run(conn, pool, import_from=missing, checksum=new_sum, reimport=True, **base),
                    '%s: the image file does not exist on the host running the module' % missing)
    intact()
    bad = 'sha256:' + '0' * 64
    _one_line_error(lambda: run(conn, pool, import_from=src(new), checksum=bad, reimport=True, **base),
                    'sha256 checksum mismatch: expected %s, got %s' % ('0' * 64, new_sum.split(':', 1)[1]))
    intact()
    _one_line_error(lambda: run(conn, pool, import_from=src(new), checksum=new_sum, reimport=True, format='raw', **base),
                    '%s/base.qcow2: %s is a qcow2 image, not raw' % (pool, src(new)))
    intact()
    # The same request with a good source replaces the volume, in the planned order.
    done = run(conn, pool, import_from=src(new), checksum=new_sum, reimport=True, **base)
    assert [a['action'] for a in done['actions']] == ['import_temp', 'replace']
    assert done['volume']['capacity'] == 32 * 1024 ** 2 and done['volume']['source_checksum'] == new_sum
    assert sorted(os.listdir(path)) == ['base.qcow2'], 'no temporary volume is left behind'


def test_empty_source_is_refused_before_a_reimport(system_pool, tmp_path):
    conn, pool, _path = system_pool
    cache = str(tmp_path / 'cache')
    old = tmp_path / 'old.qcow2'
    old_sum = _qcow2(old)
    empty = tmp_path / 'empty.img'
    empty.write_bytes(b'')
    run(conn, pool, name='v.qcow2', import_from=str(old), checksum=old_sum, cache_dir=cache)
    _one_line_error(lambda: run(conn, pool, name='v.qcow2', import_from=str(empty), allow_unverified=True,
                                reimport=True, cache_dir=cache),
                    '%s/v.qcow2: %s is empty' % (pool, empty))
    kept = run(conn, pool, check=True, name='v.qcow2', import_from=str(old), checksum=old_sum, cache_dir=cache)
    assert not kept['changed'] and kept['volume']['source_checksum'] == old_sum


@pytest.mark.parametrize('source', ['/nowhere/vk-missing.qcow2', 'file:///nowhere/vk-missing.qcow2'])
def test_check_mode_fails_like_the_real_run_on_a_missing_local_source(test_conn, tmp_path, source):
    args = dict(name='imp.qcow2', import_from=source, allow_unverified=True, uri='test:///default',
                cache_dir=str(tmp_path))
    message = '%s: the image file does not exist on the host running the module' % source
    checked = _one_line_error(lambda: run(test_conn, 'default-pool', check=True, **args), message)
    real = _one_line_error(lambda: run(test_conn, 'default-pool', **args), message)
    assert checked == real
    assert test_conn.volume(test_conn.pool('default-pool'), 'imp.qcow2') is None


def test_check_mode_trusts_the_action_plugin_for_controller_files(test_conn, tmp_path):
    """A controller path is not on the module's host: the action plugin has checked it."""
    r = run(test_conn, 'default-pool', check=True, name='imp.qcow2', import_from='/controller/only/x.qcow2',
            _original_source='/controller/only/x.qcow2', allow_unverified=True, uri='test:///default',
            cache_dir=str(tmp_path))
    assert r['changed'] and [a['action'] for a in r['actions']] == ['import_image']
    assert 'import /controller/only/x.qcow2 (unverified)' in r['actions'][0]['summary']


def test_controller_import_records_the_controller_path(system_pool, tmp_path):
    conn, pool, _path = system_pool
    cache = str(tmp_path / 'cache')
    copy = tmp_path / 'ansible-tmp' / 'base.qcow2'
    copy.parent.mkdir()
    digest = _qcow2(copy)
    args = dict(name='ctl.qcow2', checksum=digest, cache_dir=cache, _original_source='/home/me/images/base.qcow2')
    made = run(conn, pool, import_from=str(copy), **args)
    assert made['changed'] and made['volume']['source'] == '/home/me/images/base.qcow2'
    assert 'source: /home/me/images/base.qcow2' in made['diff']['after']
    assert '/home/me/images/base.qcow2' in made['actions'][0]['summary'] and str(copy) not in made['actions'][0]['summary']
    listed = V.list_volumes(conn, pool, 'ctl.qcow2', cache_dir=cache)
    assert listed[0]['source'] == '/home/me/images/base.qcow2'
    # The rerun plans against the controller path, which is not on this host: not changed.
    again = run(conn, pool, import_from='/home/me/images/base.qcow2', **args)
    assert not again['changed'] and again['volume']['source'] == '/home/me/images/base.qcow2'
    # A checksum mismatch names the controller file, not its temporary copy.
    copy.write_bytes(b'changed')
    bad = dict(args)
    bad.update(import_from=str(copy), reimport=True, checksum='sha256:' + '1' * 64)
    _one_line_error(lambda: run(conn, pool, **bad), '/home/me/images/base.qcow2: sha256 checksum mismatch')
    assert V.list_volumes(conn, pool, 'ctl.qcow2', cache_dir=cache)[0]['source_checksum'] == digest


def test_download_error_before_a_reimport_keeps_the_volume(system_pool, tmp_path):
    """A network error (connection refused on loopback) fails before the old volume is deleted."""
    import socket
    conn, pool, _path = system_pool
    cache = str(tmp_path / 'cache')
    old = tmp_path / 'old.qcow2'
    old_sum = _qcow2(old)
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    run(conn, pool, name='n.qcow2', import_from=str(old), checksum=old_sum, cache_dir=cache)
    url = 'http://127.0.0.1:%d/new.qcow2' % port
    _one_line_error(lambda: run(conn, pool, name='n.qcow2', import_from=url, checksum='sha256:' + 'c' * 64,
                                reimport=True, timeout=5, cache_dir=cache),
                    '%s: download failed' % url)
    kept = run(conn, pool, check=True, name='n.qcow2', import_from=str(old), checksum=old_sum, cache_dir=cache)
    assert not kept['changed'] and kept['volume']['source_checksum'] == old_sum
