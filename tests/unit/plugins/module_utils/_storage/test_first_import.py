# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_volume first import: an "importing" record written before the volume is created
makes a half-done import provably the module's own, so a failed run removes it and a rerun
after a kill deletes and imports it again; a volume without such a record is never touched.

Plans are pure code; uploads run on a transient dir pool of the real libvirtd (skipped when
it is not reachable) with failures injected into the real stream (helpers of test_reimport).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils import _storage
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._storage import fetch as F
from ansible_collections.virtkit.guests.plugins.module_utils._storage import volume as V

from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._storage.test_reimport import (
    GIB, NEW, NEW_T, _Lookups, _cut_upload_after, _interrupt_after_create, _make, _names, _raw_image, ops, record,
    run, spec, temp,
)

PATH = '/srv/images/disk.qcow2'


def importing(path=PATH, capacities=(300000, GIB), **extra):
    return dict({'state': V.IMPORTING, 'source': 'http://h/new.qcow2', 'checksum': NEW, 'path': path,
                 'capacities': list(capacities)}, **extra)


def partial(rec, capacity=GIB, path=PATH, leftover=None):
    return V.Current(True, 'qcow2', capacity, 4096, path, None, rec, temp=leftover)


# ------------------------------------------------------------------ plans (pure)

@pytest.mark.parametrize('reimport', [False, True])
def test_an_interrupted_import_is_deleted_and_imported_again(reimport):
    plan = V.build_plan(spec(reimport=reimport), partial(importing()), {'checksum': NEW_T})
    assert ops(plan) == ['drop_incomplete', 'import_image'] and not plan.warnings
    assert plan.actions[0].summary == ('delete the volume %s: an import into it by an earlier run was interrupted '
                                       '(its import record says so)' % PATH)
    assert plan.before['import'] == 'interrupted' and 'source' not in plan.before
    assert plan.after == {'exists': True, 'source': 'http://h/new.qcow2'}
    # Either capacity the record names (the raw size, or a probed qcow2 header's virtual size).
    assert ops(V.build_plan(spec(), partial(importing(), capacity=300000), {'checksum': NEW_T}))[0] == 'drop_incomplete'
    grown = V.build_plan(spec(reimport=reimport, capacity=2), partial(importing()), {'checksum': NEW_T})
    assert ops(grown) == ['drop_incomplete', 'import_image', 'grow_to']
    # Another image is wanted now: the half-done volume is still ours to replace.
    other = V.build_plan(spec(checksum='sha256:' + 'c' * 64), partial(importing()), {'checksum': ('sha256', 'c' * 64)})
    assert ops(other) == ['drop_incomplete', 'import_image']


@pytest.mark.parametrize('reimport', [False, True])
def test_an_interrupted_import_a_running_guest_uses_is_not_deleted(reimport):
    with pytest.raises(VirtkitError, match='refusing to delete the volume of an interrupted import: the running '
                                           'guest web1 uses it'):
        V.build_plan(spec(reimport=reimport), partial(importing()), {'checksum': NEW_T, 'users': ['web1']})
    with pytest.raises(VirtkitError, match='the running guests a, b use it'):
        V.build_plan(spec(reimport=reimport), partial(importing()), {'checksum': NEW_T, 'users': ['a', 'b']})


def test_an_interrupted_copy_beside_a_verified_temporary_volume_is_restored():
    plan = V.build_plan(spec(), partial(importing(capacities=[GIB]), leftover=temp()), {'checksum': NEW_T})
    assert ops(plan) == ['drop_incomplete', 'restore']


@pytest.mark.parametrize('rec', [
    importing(path='/srv/images/other.qcow2'),    # another volume's path: replaced since
    importing(capacities=[2 * GIB]),              # another capacity: replaced since
    importing(path=None),                          # a path never confirmed
    None,                                          # no record at all: a user's volume
    record(NEW, '/srv/other/disk.qcow2'),          # a complete record of another volume
])
def test_a_volume_not_proven_ours_is_only_warned_about(rec):
    for reimport in (False, True):
        plan = V.build_plan(spec(reimport=reimport), partial(rec), {'checksum': NEW_T})
        if reimport:
            assert ops(plan) == ['import_temp', 'replace'], 'reimport: true replaces it the safe way, as before'
        else:
            assert ops(plan) == [] and 'no import record matches it' in plan.warnings[0]
            assert 'set reimport: true to replace it' in plan.warnings[0]
        assert 'import' not in plan.before


def test_an_importing_record_is_never_a_complete_one():
    rec = dict(record(NEW, PATH, capacity=GIB, physical=4096), state=V.IMPORTING)
    assert not V.record_matches(rec, partial(rec))
    assert V.record_matches(record(NEW, PATH, capacity=GIB, physical=4096), partial(None))
    assert V.incomplete(importing(), partial(importing()))
    assert not V.incomplete(importing(), V.Current())
    assert V.stale_importing(importing(), V.Current()) and not V.stale_importing(None, V.Current())


def test_an_interrupted_import_without_import_from_is_left_alone():
    plan = V.build_plan(spec(import_from=None, checksum=None), partial(importing()), {})
    assert ops(plan) == [] and plan.warnings == [
        'images/disk.qcow2: holds an interrupted import of http://h/new.qcow2; left alone: set import_from to import '
        'it again, or state: absent to delete it']
    assert ops(V.build_plan(spec(state='absent'), partial(importing()), {})) == ['delete']


# ------------------------------------------------------------------ real libvirtd: uploads

@pytest.fixture(params=['raw', 'qcow2'])
def first_import(request, system_pool, tmp_path):
    """A real pool, an image (raw, or a qcow2 with data) and the arguments to import it as ``vol.img``."""
    conn, pool, path = system_pool
    image = tmp_path / ('new.' + request.param)
    if request.param == 'raw':
        checksum = _raw_image(image, 3, b'first')
    else:
        raw = tmp_path / 'data.raw'
        _raw_image(raw, 3, b'first')
        subprocess.run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', str(raw), str(image)], check=True)
        subprocess.run(['qemu-img', 'resize', '-q', '-f', 'qcow2', str(image), '64M'], check=True)
        checksum = 'sha256:' + F.file_digest(str(image), 'sha256')
    assert image.stat().st_size > 2 * 1024 * 1024, 'the image must span several upload chunks'

    class Case:
        pass

    case = Case()
    case.__dict__.update(conn=conn, pool=pool, path=path, image=image, cache=str(tmp_path / 'cache'),
                         target=os.path.join(path, 'vol.img'), uuid=conn.pool(pool).UUIDString())
    case.args = dict(name='vol.img', import_from=str(image), checksum=checksum, cache_dir=case.cache)
    case.checksum = checksum

    def record_now():
        return F.read_record(case.cache, case.uuid, 'vol.img')

    def converged(result):
        assert result['changed'] and result['volume']['source_checksum'] == checksum
        assert sorted(os.listdir(path)) == ['vol.img']
        with open(case.target, 'rb') as handle:
            assert handle.read() == image.read_bytes()
        assert record_now().get('state') is None, 'the record is complete'
        # The no-op rerun makes no extra libvirt round trip (no pool XML, no volume path, no
        # lookup of a temporary volume that has no record).
        lv = _libvirt.libvirt
        with pytest.MonkeyPatch.context() as mp:
            lookups = _Lookups(mp)
            mp.setattr(lv.virStoragePool, 'XMLDesc', lambda *a: pytest.fail('pool XML read on a no-op rerun'))
            mp.setattr(lv.virStorageVol, 'path', lambda *a: pytest.fail('volume path read on a no-op rerun'))
            mp.setattr(_storage, 'stream_send', lambda *a, **k: pytest.fail('uploaded on a no-op rerun'))
            again = run(conn, pool, **case.args)
            assert not again['changed'] and again['actions'] == [] and 'warnings' not in again
            assert not run(conn, pool, check=True, **case.args)['changed']
            assert lookups.names == ['vol.img'] * 4, 'one lookup to read the volume, one to report it'

    case.record = record_now
    case.converged = converged
    return case


def test_an_upload_failure_removes_the_partial_volume_and_its_record(first_import, monkeypatch):
    case = first_import
    _cut_upload_after(monkeypatch, 1024 * 1024, _libvirt.libvirt.libvirtError('Connection reset by peer'))
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value) == ('%s/vol.img: upload failed: Connection reset by peer; the partial volume vol.img was '
                              'removed' % case.pool)
    assert os.listdir(case.path) == [] and case.record() is None
    monkeypatch.undo()
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['import_image']
    case.converged(done)


def test_an_interrupted_upload_leaves_nothing(first_import, monkeypatch):
    case = first_import
    _cut_upload_after(monkeypatch, 1024 * 1024, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(case.conn, case.pool, **case.args)
    assert os.listdir(case.path) == [] and case.record() is None


def test_a_verification_mismatch_removes_the_volume(first_import, monkeypatch):
    case = first_import
    monkeypatch.setattr(_storage, 'stream_digest', lambda *a, **k: '0' * 64)
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value) == ('%s/vol.img: verification failed: the uploaded content differs from %s; the partial '
                              'volume vol.img was removed' % (case.pool, case.image))
    assert os.listdir(case.path) == [] and case.record() is None


def test_an_interrupted_create_keeps_the_record_that_proves_the_volume_ours(first_import, monkeypatch):
    """Interrupted while libvirt creates the volume: it may exist, and the record says it is ours."""
    case = first_import
    _interrupt_after_create(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(case.conn, case.pool, **case.args)
    monkeypatch.undo()
    assert os.listdir(case.path) == ['vol.img'] and case.record()['path'] == case.target
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['drop_incomplete', 'import_image']
    case.converged(done)


def test_a_create_that_libvirt_refuses_leaves_no_record(first_import, monkeypatch):
    case = first_import
    lv = _libvirt.libvirt

    def refused(self, xml, flags=0):
        raise lv.libvirtError("storage volume 'vol.img' exists already")

    monkeypatch.setattr(lv.virStoragePool, 'createXML', refused)
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value) == "%s/vol.img: create volume failed: storage volume 'vol.img' exists already" % case.pool
    assert case.record() is None, 'a volume someone else made in the meantime must not look like ours'


def _killed_midway(case, monkeypatch):
    """Leave what a SIGKILL mid-upload leaves: no cleanup runs, so the partial volume and
    its "importing" record stay (the cleanup is what is switched off here)."""
    monkeypatch.setattr(V.VolumeManager, '_discard_import', lambda self, name, vol: None)
    _cut_upload_after(monkeypatch, 1024 * 1024, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(case.conn, case.pool, **case.args)
    monkeypatch.undo()
    assert os.listdir(case.path) == ['vol.img']
    rec = case.record()
    assert rec['state'] == V.IMPORTING and rec['path'] == case.target
    with open(case.target, 'rb') as handle:
        assert handle.read() != case.image.read_bytes()


@pytest.mark.parametrize('reimport', [False, True])
def test_a_rerun_after_a_kill_midway_deletes_and_imports_again(first_import, monkeypatch, reimport):
    case = first_import
    _killed_midway(case, monkeypatch)
    args = dict(case.args, reimport=reimport)
    checked = run(case.conn, case.pool, check=True, **args)
    assert checked['changed'] and [a['action'] for a in checked['actions']] == ['drop_incomplete', 'import_image']
    assert checked['volume']['source'] is None and 'warnings' not in checked
    assert os.listdir(case.path) == ['vol.img'] and case.record()['state'] == V.IMPORTING, 'check mode changed nothing'
    done = run(case.conn, case.pool, **args)
    assert [a['action'] for a in done['actions']] == ['drop_incomplete', 'import_image']
    case.converged(done)


def test_a_volume_that_cannot_be_removed_is_named_and_removed_by_the_rerun(first_import, monkeypatch):
    case = first_import
    lv = _libvirt.libvirt
    _cut_upload_after(monkeypatch, 1024 * 1024, lv.libvirtError('Connection reset by peer'))

    def busy(self, flags=0):
        raise lv.libvirtError('Device or resource busy')

    monkeypatch.setattr(lv.virStorageVol, 'delete', busy)
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value) == (
        '{p}/vol.img: upload failed: Connection reset by peer; the partial volume vol.img could not be removed '
        '({p}/vol.img: delete volume failed: Device or resource busy); a rerun removes it'.format(p=case.pool))
    monkeypatch.undo()
    assert case.record()['state'] == V.IMPORTING
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['drop_incomplete', 'import_image']
    case.converged(done)


def test_a_volume_replaced_by_the_user_after_a_kill_is_not_touched(first_import, monkeypatch):
    case = first_import
    _killed_midway(case, monkeypatch)
    pool = case.conn.pool(case.pool)
    case.conn.volume(pool, 'vol.img').delete(0)
    pool.createXML(_storage.volume_xml_text('vol.img', 5 * 1024 ** 2, 'raw'), 0)  # the user's own volume
    with open(case.target, 'r+b') as handle:
        handle.write(b'user data')
    for reimport_args in ({}, {'capacity': '5MiB'}):
        checked = run(case.conn, case.pool, check=True, **dict(case.args, **reimport_args))
        assert not checked['changed'] and 'no import record matches it' in checked['warnings'][0]
    assert case.record()['state'] == V.IMPORTING, 'check mode changes nothing, not even the cache'
    kept = run(case.conn, case.pool, **case.args)
    assert not kept['changed'] and 'set reimport: true to replace it' in kept['warnings'][0]
    assert case.record() is None, 'the stale record is discarded'
    with open(case.target, 'rb') as handle:
        assert handle.read(9) == b'user data'


def test_a_record_that_outlived_its_volume_is_discarded(first_import, monkeypatch):
    """The user deleted the half-imported volume by hand: any run on that name drops the record."""
    case = first_import
    _killed_midway(case, monkeypatch)
    pool = case.conn.pool(case.pool)
    case.conn.volume(pool, 'vol.img').delete(0)
    absent = dict(name='vol.img', state='absent', cache_dir=case.cache)
    assert not run(case.conn, case.pool, check=True, **absent)['changed']
    assert case.record()['state'] == V.IMPORTING, 'check mode changes nothing'
    assert not run(case.conn, case.pool, **absent)['changed']
    assert case.record() is None


def test_a_new_empty_volume_discards_an_older_record(first_import, monkeypatch):
    """A stale "importing" record must not make a later volume of the same name look like ours."""
    case = first_import
    _killed_midway(case, monkeypatch)
    rec = case.record()
    run(case.conn, case.pool, name='vol.img', state='absent', cache_dir=case.cache)
    assert case.record() is None
    F.write_record(case.cache, case.uuid, 'vol.img', rec)  # as if it had outlived its volume
    run(case.conn, case.pool, name='vol.img', format='raw', capacity='%dB' % rec['capacities'][0],
        cache_dir=case.cache)
    assert case.record() is None
    kept = run(case.conn, case.pool, check=True, **case.args)
    assert not kept['changed'] and 'no import record matches it' in kept['warnings'][0]


# ------------------------------------------------------------------ test:///default: the reimport's copy

def test_a_kill_during_the_copy_of_a_reimport_is_redone_by_the_rerun(test_conn, tmp_path, monkeypatch):
    """The copy into the volume's name carries an "importing" record too."""
    from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._storage.test_reimport import _args
    conn, pool = test_conn, test_conn.pool('default-pool')
    name = 'vk-unit-copy.img'
    cache = str(tmp_path)
    try:
        _make(conn, pool, name, cache, 'sha256:' + 'a' * 64)
        _make(conn, pool, V.temp_name(name), cache, NEW, size=2 * 1024 ** 2, verified=True)
        lv = _libvirt.libvirt
        real = lv.virStoragePool.createXMLFrom

        def copy_then_killed(self, xml, clonevol, flags=0):
            real(self, xml, clonevol, flags)
            raise KeyboardInterrupt()

        monkeypatch.setattr(lv.virStoragePool, 'createXMLFrom', copy_then_killed)
        with pytest.raises(KeyboardInterrupt):
            run(conn, 'default-pool', **_args(name, cache))
        monkeypatch.undo()
        assert F.read_record(cache, pool.UUIDString(), name)['state'] == V.IMPORTING
        assert {name, V.temp_name(name)} <= _names(conn, pool)
        for reimport in (False, True):
            checked = run(conn, 'default-pool', check=True, **_args(name, cache, reimport=reimport))
            assert [a['action'] for a in checked['actions']] == ['drop_incomplete', 'restore']
        done = run(conn, 'default-pool', **_args(name, cache, reimport=False))
        assert [a['action'] for a in done['actions']] == ['drop_incomplete', 'restore']
        assert done['volume']['source_checksum'] == NEW and done['volume']['capacity'] == 2 * 1024 ** 2
        assert V.temp_name(name) not in _names(conn, pool)
        assert not run(conn, 'default-pool', **_args(name, cache))['changed']
    finally:
        for vname in (name, V.temp_name(name)):
            vol = conn.volume(pool, vname)
            if vol is not None:
                vol.delete(0)


def test_an_interrupted_import_a_running_guest_uses_is_refused_before_anything_changes(test_conn, tmp_path):
    """The guest may have been given the half-imported volume since: it is not deleted under it."""
    import uuid
    from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._storage.test_reimport import _args
    conn, pool = test_conn, test_conn.pool('default-pool')
    name = 'vk-unit-used-%s.img' % uuid.uuid4().hex[:8]
    cache = str(tmp_path)
    vol = pool.createXML(_storage.volume_xml_text(name, 1024 ** 2, 'raw'), 0)
    F.write_record(cache, pool.UUIDString(), name, importing(path=vol.path(), capacities=[1024 ** 2]))
    guest = 'vk-unit-%s' % uuid.uuid4().hex[:8]
    dom = conn.conn.createXML(
        "<domain type='test'><name>%s</name><memory>1024</memory><os><type>hvm</type></os><devices><disk "
        "type='file' device='disk'><source file='%s'/><target dev='vda'/></disk></devices></domain>"
        % (guest, vol.path()), 0)
    try:
        for reimport in (False, True):
            for check in (True, False):
                with pytest.raises(VirtkitError) as err:
                    run(conn, 'default-pool', check=check, **_args(name, cache, reimport=reimport))
                assert str(err.value) == ('default-pool/%s: refusing to delete the volume of an interrupted import: '
                                          'the running guest %s uses it (nothing was changed)' % (name, guest))
        assert name in _names(conn, pool)
        assert F.read_record(cache, pool.UUIDString(), name)['state'] == V.IMPORTING
    finally:
        dom.destroy()
        vol.delete(0)
