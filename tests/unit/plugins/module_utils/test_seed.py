# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cloud-init seed ISOs: rendering, the ISO layout (pycdlib and isoinfo), determinism,
plans, the file and pool stores, and that contents never reach results or diffs."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils import _seed
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

pytestmark = pytest.mark.skipif(_seed.pycdlib is None or _seed.yaml is None,
                                reason='pycdlib or PyYAML is not installed')

SECRET = 'S3cr3t-Pa55-do-not-leak'
USER_DATA = {
    'users': [{'name': 'ops', 'plain_text_passwd': SECRET, 'lock_passwd': False,
               'ssh_authorized_keys': ['ssh-ed25519 AAAAC3Nza-test ops@example']}],
    'packages': ['curl'],
    'chpasswd': {'expire': False},
}
NETWORK = {'version': 2, 'ethernets': {'eth0': {'dhcp4': True}}}
IMAGES = '/var/lib/libvirt/images'


def params(**options):
    spec = dict(_seed.ARGUMENT_SPEC)
    spec['uri'] = {'type': 'str', 'default': 'qemu:///system'}
    result = ArgumentSpecValidator(spec, mutually_exclusive=_seed.MUTUALLY_EXCLUSIVE,
                                   required_one_of=_seed.REQUIRED_ONE_OF,
                                   required_together=_seed.REQUIRED_TOGETHER).validate(dict(options))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def open_iso(data):
    iso = _seed.pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    return iso


def iso_file(iso, **path):
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


# ------------------------------------------------------------------ rendering

def test_dict_user_data_is_cloud_config_yaml_with_sorted_keys():
    text = _seed.render_user_data({'b': 1, 'a': [3, 1], 'runcmd': [['echo', 'x']]}).decode()
    assert text.startswith('#cloud-config\n')
    assert _seed.yaml.safe_load(text) == {'a': [3, 1], 'b': 1, 'runcmd': [['echo', 'x']]}
    assert text.index('a:') < text.index('b:') < text.index('runcmd:')


def test_text_user_data_is_kept_verbatim():
    assert _seed.render_user_data('#!/bin/sh\necho hi\n') == b'#!/bin/sh\necho hi\n'
    assert _seed.render_user_data('Content-Type: multipart/mixed; boundary=x\n').startswith(b'Content-Type')


def test_text_user_data_without_header_is_refused():
    with pytest.raises(VirtkitError, match='user_data: text must start with a header'):
        _seed.render_user_data('packages: [curl]\n')
    with pytest.raises(VirtkitError, match='vendor_data: must be a dict'):
        _seed.render_user_data(['x'], 'vendor_data')


def test_meta_data_defaults_and_merges():
    text, iid = _seed.render_meta_data(params(path='/srv/web1-seed.iso', user_data={}, hostname='web1'))
    assert iid == 'iid-web1-seed'
    assert _seed.yaml.safe_load(text) == {'instance-id': 'iid-web1-seed', 'local-hostname': 'web1'}
    text, iid = _seed.render_meta_data(params(pool='p', name='v1.iso', user_data={},
                                              meta_data={'instance-id': 'x', 'public-keys': ['k']}))
    assert iid == 'x' and _seed.yaml.safe_load(text)['public-keys'] == ['k']
    text, iid = _seed.render_meta_data(params(path='/a.iso', user_data={}, instance_id='i-2',
                                              meta_data={'instance-id': 'x'}))
    assert iid == 'i-2'


def test_meta_data_text_needs_instance_id_and_no_merges():
    assert _seed.render_meta_data(params(path='/a.iso', meta_data='instance-id: abc\n'))[1] == 'abc'
    with pytest.raises(VirtkitError, match='meta_data: text must be a YAML mapping with an instance-id'):
        _seed.render_meta_data(params(path='/a.iso', meta_data='local-hostname: x\n'))
    with pytest.raises(VirtkitError, match='meta_data: not valid YAML'):
        _seed.render_meta_data(params(path='/a.iso', meta_data='a: [\n'))
    with pytest.raises(VirtkitError, match='can only be merged into a dict meta_data'):
        _seed.render_meta_data(params(path='/a.iso', meta_data='instance-id: a\n', hostname='h'))


def test_network_config_needs_a_version():
    assert _seed.yaml.safe_load(_seed.render_network_config(NETWORK)) == NETWORK
    with pytest.raises(VirtkitError, match='network_config: needs a "version" key'):
        _seed.render_network_config({'ethernets': {}})


@pytest.mark.parametrize('options, message', [
    (dict(path='relative.iso', user_data={}), 'path: relative.iso is not an absolute path'),
    (dict(path='/a.iso'), 'user_data is required with state=present'),
    (dict(path='/a.iso', user_data={}, mode='rw'), "mode: 'rw' is not an octal file mode"),
    (dict(path='/a.iso', user_data={}, mode='99999'), 'is not an octal file mode'),
])
def test_bad_input_is_one_line(options, message):
    with pytest.raises(VirtkitError) as err:
        _seed.validate(params(**options))
    assert message in str(err.value) and '\n' not in str(err.value)


def test_content_options_are_no_log():
    for option in ('user_data', 'network_config', 'vendor_data'):
        assert _seed.ARGUMENT_SPEC[option].get('no_log') is True


# ------------------------------------------------------------------ the ISO

def full_seed():
    return _seed.validate(params(path='/srv/web1.iso', user_data=USER_DATA, hostname='web1',
                                 network_config=NETWORK, vendor_data='#cloud-config\nruncmd: [true]\n'))


def test_iso_layout_read_back_with_pycdlib():
    seed = full_seed()
    iso = open_iso(_seed.build_iso(seed.files))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == 'cidata'
        assert iso.joliet_vd.volume_identifier.decode('utf-16_be').strip() == 'cidata'
        assert iso.has_rock_ridge() and iso.has_joliet()
        names = sorted(child.rock_ridge.name().decode() for child in iso.list_children(rr_path='/')
                       if child.rock_ridge is not None and not child.is_dot() and not child.is_dotdot())
        assert names == ['meta-data', 'network-config', 'user-data', 'vendor-data']
        jnames = sorted(child.file_identifier().decode('utf-16_be') for child in iso.list_children(joliet_path='/')
                        if not child.is_dot() and not child.is_dotdot())
        assert jnames == names
        for name in names:
            assert iso_file(iso, rr_path='/' + name) == seed.files[name]
            assert iso_file(iso, joliet_path='/' + name) == seed.files[name]
        user = iso_file(iso, rr_path='/user-data').decode()
        assert user.startswith('#cloud-config\n')
        assert _seed.yaml.safe_load(user) == USER_DATA
    finally:
        iso.close()


def _isoinfo(*args):
    tool = shutil.which('isoinfo')
    if tool is None:
        pytest.skip('isoinfo (genisoimage) is not installed')
    proc = subprocess.run([tool] + list(args), capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_iso_layout_read_back_with_isoinfo(tmp_path):
    seed = full_seed()
    path = tmp_path / 'seed.iso'
    path.write_bytes(_seed.build_iso(seed.files))
    header = _isoinfo('-d', '-i', str(path)).decode()
    assert 'Volume id: cidata' in header
    assert 'Rock Ridge signatures' in header
    assert 'Joliet' in header
    listing = _isoinfo('-R', '-l', '-i', str(path)).decode()
    for name in ('meta-data', 'network-config', 'user-data', 'vendor-data'):
        assert ' %s' % name in listing
        assert _isoinfo('-R', '-x', '/' + name, '-i', str(path)) == seed.files[name]
        assert _isoinfo('-J', '-x', '/' + name, '-i', str(path)) == seed.files[name]
    assert '-r--r--r--' in listing
    assert 'Jan  1 2000' in listing


def test_iso_is_deterministic_across_time_and_timezone(monkeypatch):
    seed = full_seed()
    first = _seed.build_iso(seed.files)
    time.sleep(1.1)
    monkeypatch.setenv('TZ', 'Pacific/Kiritimati')
    time.tzset()
    try:
        second = _seed.build_iso(_seed.validate(params(path='/srv/web1.iso', user_data=dict(reversed(list(USER_DATA.items()))),
                                                       hostname='web1', network_config=NETWORK,
                                                       vendor_data='#cloud-config\nruncmd: [true]\n')).files)
    finally:
        monkeypatch.delenv('TZ')
        time.tzset()
    assert first == second
    # pycdlib's clock is given back afterwards
    assert _seed.pycdlib.pycdlib.time is time


def test_changed_input_changes_the_iso():
    base = _seed.build_iso(full_seed().files)
    other = _seed.validate(params(path='/srv/web1.iso', user_data=dict(USER_DATA, packages=['git']),
                                  hostname='web1', network_config=NETWORK,
                                  vendor_data='#cloud-config\nruncmd: [true]\n'))
    assert _seed.build_iso(other.files) != base


def test_optional_files_are_left_out():
    seed = _seed.validate(params(path='/a.iso', user_data={}))
    iso = open_iso(_seed.build_iso(seed.files))
    try:
        names = sorted(c.rock_ridge.name().decode() for c in iso.list_children(rr_path='/')
                       if c.rock_ridge is not None and not c.is_dot() and not c.is_dotdot())
    finally:
        iso.close()
    assert names == ['meta-data', 'user-data']
    assert seed.files['user-data'] == b'#cloud-config\n{}\n'


# ------------------------------------------------------------------ plan and the file store

def run(check=False, **options):
    return _seed.SeedManager().run(params(**options), check_mode=check)


def test_file_lifecycle_check_apply_rerun_change_absent(tmp_path):
    path = str(tmp_path / 'web1-seed.iso')
    opts = dict(path=path, user_data=USER_DATA, hostname='web1', network_config=NETWORK)
    r = run(check=True, **opts)
    assert r['changed'] and [a['action'] for a in r['actions']] == ['write_file']
    assert not os.path.exists(path)
    r = run(**opts)
    assert r['changed'] and os.path.isfile(path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    with open(path, 'rb') as handle:
        assert _seed.sha256(handle.read()) == r['sha256']
    assert r['size'] == os.path.getsize(path) and r['instance_id'] == 'iid-web1-seed' and r['path'] == path
    assert sorted(r['files']) == ['meta-data', 'network-config', 'user-data']
    assert not run(**opts)['changed']
    assert not run(check=True, **opts)['changed']
    # only the mode differs
    r = run(mode='0644', **opts)
    assert [a['action'] for a in r['actions']] == ['chmod']
    assert os.stat(path).st_mode & 0o777 == 0o644
    # a changed input rewrites
    changed = dict(opts)
    changed.update(user_data=dict(USER_DATA, packages=['git']), mode='0644')
    r = run(check=True, **changed)
    assert r['changed'] and r['diff']['before'] != r['diff']['after']
    assert run(**changed)['changed']
    assert not run(**changed)['changed']
    r = run(check=True, path=path, state='absent')
    assert r['changed'] and os.path.exists(path)
    assert run(path=path, state='absent')['changed'] and not os.path.exists(path)
    assert not run(path=path, state='absent')['changed']


def test_secrets_never_in_result_or_diff(tmp_path):
    path = str(tmp_path / 's.iso')
    for check in (True, False):
        text = json.dumps(run(check=check, path=path, user_data=USER_DATA, network_config=NETWORK))
        assert SECRET not in text and 'ssh-ed25519' not in text and 'dhcp4' not in text
        assert 'sha256' in text


def test_diff_shows_digests():
    seed = full_seed()
    iso = _seed.build_iso(seed.files)
    plan = _seed.build_plan(seed, _seed.Current(True, 'old', 0o600, 10, '/srv/web1.iso'), iso)
    diff = plan.diff()
    assert 'sha256: old' in diff['before']
    assert 'sha256: %s' % _seed.sha256(iso) in diff['after']
    assert 'user_data_sha256: %s' % _seed.sha256(seed.files['user-data']) in diff['after']
    assert SECRET not in diff['after']


def test_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(VirtkitError, match='directory .* does not exist'):
        run(path=str(tmp_path / 'nope' / 's.iso'), user_data={})


def test_not_a_regular_file(tmp_path):
    with pytest.raises(VirtkitError, match='is not a regular file'):
        run(path=str(tmp_path), user_data={})


# ------------------------------------------------------------------ the pool store (real libvirtd)

@pytest.fixture
def system_pool():
    if _libvirt.libvirt is None:
        pytest.skip('libvirt-python is not installed')
    try:
        conn = _libvirt.Connection('qemu:///system')
    except VirtkitError as err:
        pytest.skip('qemu:///system is not reachable: %s' % err)
    if not os.path.isdir(IMAGES) or not os.access(IMAGES, os.W_OK):
        conn.close()
        pytest.skip('%s is not writable' % IMAGES)
    path = tempfile.mkdtemp(prefix='vk-test-unit-seed-', dir=IMAGES)
    name = 'vk-test-unit-seed-%s' % uuid.uuid4().hex[:8]
    pool = conn.conn.storagePoolCreateXML(
        "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (name, path), 0)
    try:
        yield name, path
    finally:
        for vol in pool.listAllVolumes(0):
            vol.delete(0)
        pool.destroy()
        conn.close()
        shutil.rmtree(path, ignore_errors=True)


def pool_run(check=False, **options):
    manager = _seed.SeedManager(lambda: _libvirt.Connection('qemu:///system'))
    try:
        return manager.run(params(**options), check_mode=check)
    finally:
        manager.close()


def test_pool_lifecycle(system_pool):
    pool, directory = system_pool
    opts = dict(pool=pool, name='web1-seed.iso', user_data=USER_DATA)
    r = pool_run(check=True, **opts)
    assert [a['action'] for a in r['actions']] == ['upload_volume'] and r['path'] is None
    r = pool_run(**opts)
    target = os.path.join(directory, 'web1-seed.iso')
    assert r['changed'] and r['path'] == target and r['instance_id'] == 'iid-web1-seed.iso'
    with open(target, 'rb') as handle:
        assert _seed.sha256(handle.read()) == r['sha256']
    assert not pool_run(**opts)['changed']
    assert not pool_run(check=True, **opts)['changed']
    changed = dict(opts)
    changed['user_data'] = dict(USER_DATA, packages=['git'])
    assert pool_run(**changed)['changed']
    assert not pool_run(**changed)['changed']
    assert pool_run(pool=pool, name='web1-seed.iso', state='absent')['changed']
    assert not os.path.exists(target)
    assert not pool_run(pool=pool, name='web1-seed.iso', state='absent')['changed']


def test_missing_pool_is_one_line(system_pool):
    with pytest.raises(VirtkitError, match='the storage pool vk-test-no-such-pool does not exist'):
        pool_run(pool='vk-test-no-such-pool', name='x.iso', user_data={})
    assert not pool_run(pool='vk-test-no-such-pool', name='x.iso', state='absent')['changed']
