# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_volume reimport: the new image is staged in a temporary volume and verified
before the old volume is replaced; failures at every step and reruns from every leftover.

The plan is pure code. Steps that need no upload (replacing from, or restoring from, a
temporary volume; refusing a volume in use) run on libvirt's test:///default driver,
which has no stream upload; uploads run on a transient dir pool of the real libvirtd
(skipped when it is not reachable), with failures injected into the real stream.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils import _storage
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._storage import fetch as F
from ansible_collections.virtkit.guests.plugins.module_utils._storage import volume as V

from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._storage.conftest import module_params

GIB = 1024 ** 3
OLD = 'sha256:' + 'a' * 64
NEW = 'sha256:' + 'b' * 64
NEW_T = ('sha256', 'b' * 64)
TEMP = 'disk.qcow2.virtkit-reimport'


def spec(**options):
    options.setdefault('name', 'disk.qcow2')
    options.setdefault('pool', 'images')
    options.setdefault('import_from', 'http://h/new.qcow2')
    options.setdefault('checksum', NEW)
    return V.validate(module_params(V.ARGUMENT_SPEC, **options))


def ops(plan):
    return [a.op for a in plan.actions]


def record(checksum, path, capacity=GIB, physical=200000, **extra):
    return dict({'source': 'http://h/x.qcow2', 'checksum': checksum, 'path': path, 'capacity': capacity,
                 'physical': physical}, **extra)


def temp(checksum=NEW, verified=True, physical=300000):
    path = '/srv/images/' + TEMP
    rec = record(checksum, path, physical=physical, verified=True) if verified else None
    return V.Current(True, 'qcow2', GIB, physical, path, None, rec)


def volume(checksum=OLD, leftover=None):
    path = '/srv/images/disk.qcow2'
    return V.Current(True, 'qcow2', GIB, 200000, path, None, record(checksum, path), temp=leftover)


# ------------------------------------------------------------------ plans (pure)

def test_reimport_stages_the_image_in_a_temporary_volume():
    plan = V.build_plan(spec(reimport=True), volume(), {'checksum': NEW_T})
    assert ops(plan) == ['import_temp', 'replace']
    assert TEMP in plan.actions[0].summary and 'the volume is left alone until then' in plan.actions[0].summary
    assert 'delete it (it was imported from http://h/x.qcow2 with %s)' % OLD in plan.actions[1].summary
    grown = V.build_plan(spec(reimport=True, capacity=2), volume(), {'checksum': NEW_T})
    assert ops(grown) == ['import_temp', 'replace', 'grow_to']
    # Without reimport: a warning, nothing else.
    kept = V.build_plan(spec(), volume(), {'checksum': NEW_T})
    assert ops(kept) == [] and 'set reimport: true' in kept.warnings[0]


def test_a_verified_leftover_with_the_wanted_checksum_is_reused():
    plan = V.build_plan(spec(reimport=True), volume(leftover=temp()), {'checksum': NEW_T})
    assert ops(plan) == ['replace'] and 'reusing the verified image in %s' % TEMP in plan.actions[0].summary


@pytest.mark.parametrize('leftover', [
    temp(checksum='sha256:' + 'c' * 64),          # another image
    V.Current(True, 'raw', GIB, 4096, '/srv/images/' + TEMP, None,   # an upload that was cut off
              {'state': V.IMPORTING, 'path': '/srv/images/' + TEMP, 'capacities': [GIB]}),
    V.Current(True, 'raw', GIB, 999, '/srv/images/' + TEMP, None,
              record(NEW, '/srv/images/' + TEMP, physical=300000, verified=True)),  # changed since
    V.Current(True, 'raw', GIB, 300000, '/srv/images/' + TEMP, None,
              record(NEW, '/srv/images/' + TEMP, physical=300000)),                  # never verified
])
def test_any_other_leftover_is_deleted_and_the_import_starts_over(leftover):
    plan = V.build_plan(spec(reimport=True), volume(leftover=leftover), {'checksum': NEW_T})
    assert ops(plan) == ['drop_temp', 'import_temp', 'replace']
    assert 'left by an interrupted reimport (it does not hold %s)' % NEW in plan.actions[0].summary


def test_no_volume_but_a_verified_leftover_restores_from_it():
    plan = V.build_plan(spec(), V.Current(temp=temp()), {'checksum': NEW_T})
    assert ops(plan) == ['restore'] and plan.after['exists'] is True
    assert 'restore the volume from the verified temporary volume %s' % TEMP in plan.actions[0].summary
    assert ops(V.build_plan(spec(capacity=2), V.Current(temp=temp()), {'checksum': NEW_T})) == ['restore', 'grow_to']
    other = V.build_plan(spec(), V.Current(temp=temp(checksum=OLD)), {'checksum': NEW_T})
    assert ops(other) == ['drop_temp', 'import_image']
    # An unverified import restores only a leftover made from the same source.
    unverified = dict(checksum=None, allow_unverified=True, import_from='http://h/x.qcow2')
    assert ops(V.build_plan(spec(**unverified), V.Current(temp=temp(checksum=None)), {})) == ['restore']
    other_source = dict(unverified)
    other_source['import_from'] = 'http://h/y.qcow2'
    assert ops(V.build_plan(spec(**other_source), V.Current(temp=temp(checksum=None)), {})) == ['drop_temp', 'import_image']


def test_a_leftover_beside_a_volume_that_is_already_right_is_deleted():
    plan = V.build_plan(spec(reimport=True), volume(checksum=NEW, leftover=temp()), {'checksum': NEW_T})
    assert ops(plan) == ['drop_temp'] and 'the volume already holds %s' % NEW in plan.actions[0].summary
    warned = V.build_plan(spec(), volume(leftover=temp()), {'checksum': NEW_T})
    assert ops(warned) == [] and 'the temporary volume %s of an interrupted reimport is left too' % TEMP \
        in warned.warnings[0]


NOT_OURS = [
    temp(verified=False),                                                        # no record at all
    V.Current(True, 'raw', GIB, 300000, '/srv/images/' + TEMP, None,
              record(NEW, '/srv/other/' + TEMP, verified=True)),                 # another path
    V.Current(True, 'raw', 2 * GIB, 4096, '/srv/images/' + TEMP, None,          # another capacity
              {'state': V.IMPORTING, 'path': '/srv/images/' + TEMP, 'capacities': [GIB]}),
    V.Current(True, 'raw', GIB, 4096, '/srv/images/' + TEMP, None,              # a path never confirmed
              {'state': V.IMPORTING, 'path': None, 'capacities': [GIB]}),
]


@pytest.mark.parametrize('leftover', NOT_OURS)
def test_a_temporary_volume_not_proven_ours_is_never_deleted(leftover):
    assert not V.temp_ours(leftover)
    warning = ('images/disk.qcow2: a volume named %s exists but no import record of this module matches it; left '
               'alone (delete it yourself if it is not needed)' % TEMP)
    absent = V.build_plan(spec(state='absent'), volume(leftover=leftover), {})
    assert ops(absent) == ['delete'] and absent.warnings == [warning]
    missing = V.build_plan(spec(), V.Current(temp=leftover), {'checksum': NEW_T})
    assert ops(missing) == ['import_image'] and missing.warnings == [warning]
    right = V.build_plan(spec(reimport=True), volume(checksum=NEW, leftover=leftover), {'checksum': NEW_T})
    assert ops(right) == [] and right.warnings == [warning]
    with pytest.raises(VirtkitError) as err:  # the reimport needs the name: refused before anything changes
        V.build_plan(spec(reimport=True), volume(leftover=leftover), {'checksum': NEW_T})
    assert str(err.value) == ('images/disk.qcow2: refusing to reimport: a volume named %s exists but no import '
                              'record of this module matches it; delete it first (nothing was changed)' % TEMP)


def test_absent_deletes_the_leftover_too():
    assert ops(V.build_plan(spec(state='absent'), volume(leftover=temp()), {})) == ['delete', 'drop_temp']
    assert ops(V.build_plan(spec(state='absent'), V.Current(temp=temp()), {})) == ['drop_temp']


def test_a_volume_in_use_is_not_reimported():
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(reimport=True), volume(), {'checksum': NEW_T, 'users': ['web1']})
    assert str(err.value) == ('images/disk.qcow2: refusing to reimport: the running guest web1 uses the volume; '
                              'shut it down first (nothing was changed)')
    with pytest.raises(VirtkitError) as err:
        V.build_plan(spec(reimport=True), volume(), {'checksum': NEW_T, 'users': ['a', 'b']})
    assert 'the running guests a, b use the volume; shut them down first' in str(err.value)
    # Users only matter when the volume would be replaced.
    assert ops(V.build_plan(spec(reimport=True), volume(checksum=NEW), {'checksum': NEW_T, 'users': ['a']})) == []


def test_the_temporary_name_is_reserved():
    with pytest.raises(VirtkitError) as err:
        spec(name='x.virtkit-reimport')
    assert 'names ending in .virtkit-reimport are reserved' in str(err.value)


# ------------------------------------------------------------------ test:///default (no upload needed)

def run(conn, pool, check=False, **options):
    options.setdefault('pool', pool)
    return V.VolumeManager(conn).run(module_params(V.ARGUMENT_SPEC, **options), check_mode=check)


@pytest.fixture
def test_pool(test_conn, tmp_path):
    """(connection, pool object, helpers) on test:///default; volumes made here are removed."""
    name = 'vk-unit-%s.img' % uuid.uuid4().hex[:8]
    pool = test_conn.pool('default-pool')
    yield test_conn, pool, name
    for vname in (name, V.temp_name(name)):
        vol = test_conn.volume(pool, vname)
        if vol is not None:
            vol.delete(0)


def _make(conn, pool, name, cache, checksum, size=1024 ** 2, **extra):
    """A raw volume with an import record, as an earlier run would have left it."""
    vol = pool.createXML(_storage.volume_xml_text(name, size, 'raw'), 0)
    f = V.volume_facts(conn, vol, name)
    F.write_record(cache, pool.UUIDString(), name, dict({
        'source': '/srv/img/new.img' if checksum == NEW else '/srv/img/old.img', 'checksum': checksum,
        'path': f['path'], 'capacity': f['capacity'], 'physical': f['physical']}, **extra))
    return vol


def _args(name, cache, **more):
    args = {'name': name, 'import_from': '/srv/img/new.img', 'checksum': NEW, 'reimport': True,
            'uri': 'test:///default', 'cache_dir': cache}
    args.update(more)
    return args


def _names(conn, pool):
    return set(conn.call('p', 'list', pool.listVolumes))


def test_rerun_after_a_kill_between_staging_and_replacing_reuses_the_temporary_volume(
        test_pool, tmp_path, monkeypatch):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, name, cache, OLD, size=2 * 1024 ** 2)
    _make(conn, pool, V.temp_name(name), cache, NEW, verified=True)
    # Nothing may be uploaded: the verified temporary volume is what the rerun uses.
    monkeypatch.setattr(_storage, 'stream_send', lambda *a, **k: pytest.fail('uploaded again'))
    checked = run(conn, 'default-pool', check=True, **_args(name, cache))
    assert [a['action'] for a in checked['actions']] == ['replace'] and checked['changed']
    assert V.temp_name(name) in _names(conn, pool)
    done = run(conn, 'default-pool', **_args(name, cache))
    assert [a['action'] for a in done['actions']] == ['replace']
    assert done['volume']['source_checksum'] == NEW and done['volume']['capacity'] == 1024 ** 2
    assert V.temp_name(name) not in _names(conn, pool)
    assert F.read_record(cache, pool.UUIDString(), V.temp_name(name)) is None
    again = run(conn, 'default-pool', **_args(name, cache))
    assert not again['changed'] and again['actions'] == []
    assert not run(conn, 'default-pool', check=True, **_args(name, cache))['changed']


def test_rerun_finding_only_the_temporary_volume_restores_from_it(test_pool, tmp_path):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, V.temp_name(name), cache, NEW, verified=True)
    for reimport in (False, True):  # the volume is missing: it is restored either way
        checked = run(conn, 'default-pool', check=True, **_args(name, cache, reimport=reimport))
        assert [a['action'] for a in checked['actions']] == ['restore']
    done = run(conn, 'default-pool', **_args(name, cache, reimport=False))
    assert done['changed'] and done['volume']['source_checksum'] == NEW
    assert done['volume']['source'] == '/srv/img/new.img'
    assert _names(conn, pool) >= {name} and V.temp_name(name) not in _names(conn, pool)
    assert not run(conn, 'default-pool', **_args(name, cache))['changed']


def test_a_failed_copy_keeps_the_verified_temporary_volume_and_says_so(test_pool, tmp_path, monkeypatch):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, name, cache, OLD)
    _make(conn, pool, V.temp_name(name), cache, NEW, verified=True)
    lv = _libvirt.libvirt
    real = lv.virStoragePool.createXMLFrom

    def no_space(self, xml, clonevol, flags=0):
        raise lv.libvirtError('cannot allocate: No space left on device')

    monkeypatch.setattr(lv.virStoragePool, 'createXMLFrom', no_space)
    with pytest.raises(VirtkitError) as err:
        run(conn, 'default-pool', **_args(name, cache))
    message = str(err.value)
    assert message.startswith('default-pool/%s: copy %s into place failed' % (name, V.temp_name(name)))
    assert message.endswith('No space left on device; the old volume was deleted and the verified new image is '
                            'kept in the temporary volume %s: rerun the task to restore the volume from it'
                            % V.temp_name(name))
    assert _names(conn, pool) & {name, V.temp_name(name)} == {V.temp_name(name)}
    monkeypatch.setattr(lv.virStoragePool, 'createXMLFrom', real)
    checked = run(conn, 'default-pool', check=True, **_args(name, cache))
    assert [a['action'] for a in checked['actions']] == ['restore']
    done = run(conn, 'default-pool', **_args(name, cache))
    assert done['changed'] and done['volume']['source_checksum'] == NEW
    assert V.temp_name(name) not in _names(conn, pool)
    assert not run(conn, 'default-pool', **_args(name, cache))['changed']


def test_a_failed_delete_of_the_old_volume_keeps_it_and_removes_the_temporary_volume(
        test_pool, tmp_path, monkeypatch):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, name, cache, OLD)
    _make(conn, pool, V.temp_name(name), cache, NEW, verified=True)
    lv = _libvirt.libvirt
    real = lv.virStorageVol.delete

    def busy(self, flags=0):
        if self.name() == name:
            raise lv.libvirtError('Device or resource busy')
        return real(self, flags)

    monkeypatch.setattr(lv.virStorageVol, 'delete', busy)
    with pytest.raises(VirtkitError) as err:
        run(conn, 'default-pool', **_args(name, cache))
    assert str(err.value) == ('default-pool/%s: delete the old volume failed: Device or resource busy; the volume is '
                              'unchanged; the temporary volume %s was removed' % (name, V.temp_name(name)))
    assert name in _names(conn, pool) and V.temp_name(name) not in _names(conn, pool)
    kept = run(conn, 'default-pool', check=True, **_args(name, cache, checksum=OLD, reimport=False))
    assert not kept['changed'] and kept['volume']['source_checksum'] == OLD


def test_a_pool_too_full_for_the_copy_keeps_the_old_volume(test_pool, tmp_path, monkeypatch):
    """The copy needs the temporary volume's allocation: checked before the old volume goes."""
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, name, cache, OLD, size=1024 ** 2)
    _make(conn, pool, V.temp_name(name), cache, NEW, size=3 * 1024 ** 2, verified=True)
    lv = _libvirt.libvirt
    monkeypatch.setattr(lv.virStoragePool, 'info', lambda self: [2, 10 * 1024 ** 2, 9 * 1024 ** 2, 1024 ** 2])
    with pytest.raises(VirtkitError) as err:
        run(conn, 'default-pool', **_args(name, cache))
    assert str(err.value) == (
        'default-pool/%s: not enough space in the pool default-pool to copy the new image into place (needs 3.0 MiB, '
        '2.0 MiB free once the old volume is deleted); the volume is unchanged; the temporary volume %s was removed'
        % (name, V.temp_name(name)))
    assert _names(conn, pool) & {name, V.temp_name(name)} == {name}
    # Enough space (3 MiB free plus the 1 MiB freed): replaced.
    monkeypatch.setattr(lv.virStoragePool, 'info', lambda self: [2, 10 * 1024 ** 2, 7 * 1024 ** 2, 3 * 1024 ** 2])
    _make(conn, pool, V.temp_name(name), cache, NEW, size=3 * 1024 ** 2, verified=True)
    done = run(conn, 'default-pool', **_args(name, cache))
    assert done['volume']['source_checksum'] == NEW and done['volume']['capacity'] == 3 * 1024 ** 2


def test_a_stray_temporary_volume_is_deleted_when_the_volume_is_already_right(test_pool, tmp_path):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, name, cache, NEW)
    _make(conn, pool, V.temp_name(name), cache, NEW, verified=True)
    done = run(conn, 'default-pool', **_args(name, cache))
    assert [a['action'] for a in done['actions']] == ['drop_temp']
    assert V.temp_name(name) not in _names(conn, pool) and name in _names(conn, pool)
    assert not run(conn, 'default-pool', **_args(name, cache))['changed']
    # state=absent removes a leftover along with the volume.
    _make(conn, pool, V.temp_name(name), cache, NEW, verified=True)
    gone = run(conn, 'default-pool', **_args(name, cache, state='absent'))
    assert [a['action'] for a in gone['actions']] == ['delete', 'drop_temp']
    assert _names(conn, pool) & {name, V.temp_name(name)} == set()


@pytest.mark.parametrize('disk', [
    "<disk type='file' device='disk'><source file='{path}'/><target dev='vda'/></disk>",
    "<disk type='volume' device='disk'><source pool='default-pool' volume='{name}'/><target dev='vda'/></disk>",
    # An overlay whose backing store is the volume: the guest reads it too.
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/elsewhere/ov.qcow2'/>"
    "<backingStore type='file'><format type='raw'/><source file='{path}'/></backingStore><target dev='vda'/></disk>",
])
def test_a_volume_a_running_guest_uses_is_refused_before_anything_changes(test_pool, tmp_path, disk):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    vol = _make(conn, pool, name, cache, OLD)
    guest = 'vk-unit-%s' % uuid.uuid4().hex[:8]
    xml = ("<domain type='test'><name>%s</name><memory>1024</memory><os><type>hvm</type></os><devices>%s"
           "</devices></domain>" % (guest, disk.format(path=vol.path(), name=name)))
    dom = conn.conn.createXML(xml, 0)
    try:
        expected = ('default-pool/%s: refusing to reimport: the running guest %s uses the volume; shut it down '
                    'first (nothing was changed)' % (name, guest))
        for check in (True, False):
            with pytest.raises(VirtkitError) as err:
                run(conn, 'default-pool', check=check, **_args(name, cache))
            assert str(err.value) == expected
        assert _names(conn, pool) & {name, V.temp_name(name)} == {name}
        assert F.read_record(cache, pool.UUIDString(), name)['checksum'] == OLD
        assert _libvirt.disk_users(conn, '/nowhere/else.img') == []
    finally:
        dom.destroy()


class _Lookups:
    """Counts the volume lookups (storageVolLookupByName) libvirt is asked for, by name."""

    def __init__(self, monkeypatch):
        self.names = []
        lv = _libvirt.libvirt
        real = lv.virStoragePool.storageVolLookupByName

        def counted(pool, name):
            self.names.append(name)
            return real(pool, name)

        monkeypatch.setattr(lv.virStoragePool, 'storageVolLookupByName', counted)


def test_no_op_and_absent_runs_do_not_look_for_a_temporary_volume_without_a_record(test_pool, tmp_path, monkeypatch):
    conn, pool, name = test_pool
    cache = str(tmp_path)
    _make(conn, pool, name, cache, NEW)
    lookups = _Lookups(monkeypatch)
    for check in (False, True):
        assert not run(conn, 'default-pool', check=check, **_args(name, cache))['changed']
    assert lookups.names == [name] * 4, 'one lookup to read the volume, one to report it'
    conn.volume(pool, name).delete(0)
    del lookups.names[:]
    assert not run(conn, 'default-pool', **_args(name, cache, state='absent'))['changed']
    assert lookups.names == [name]
    # With a record, the temporary volume is looked up; a record without its volume is discarded.
    F.write_record(cache, pool.UUIDString(), V.temp_name(name), {'state': V.IMPORTING, 'path': '/x', 'capacities': [1]})
    del lookups.names[:]
    assert not run(conn, 'default-pool', check=True, **_args(name, cache, state='absent'))['changed']
    assert lookups.names == [name, V.temp_name(name)]
    assert F.read_record(cache, pool.UUIDString(), V.temp_name(name)) is not None, 'check mode changes nothing'
    assert not run(conn, 'default-pool', **_args(name, cache, state='absent'))['changed']
    assert F.read_record(cache, pool.UUIDString(), V.temp_name(name)) is None


@pytest.fixture
def new_image(tmp_path):
    image = tmp_path / 'new.img'
    return str(image), _raw_image(image, 1, b'new')


def test_a_temporary_volume_someone_else_made_is_left_alone(test_pool, tmp_path, new_image):
    """No record: the reimport is not told about it; the create fails and the volume stays."""
    conn, pool, name = test_pool
    cache = str(tmp_path / 'cache')
    image, checksum = new_image
    _make(conn, pool, name, cache, OLD)
    pool.createXML(_storage.volume_xml_text(V.temp_name(name), 4096, 'raw'), 0)  # not ours: no record
    with pytest.raises(VirtkitError) as err:
        run(conn, 'default-pool', **_args(name, cache, import_from=image, checksum=checksum))
    assert str(err.value).endswith('; the volume is unchanged; a volume named %s exists that this module cannot '
                                   'prove it made: it is left alone, delete it to reimport' % V.temp_name(name))
    assert 'create volume failed' in str(err.value)
    assert {name, V.temp_name(name)} <= _names(conn, pool), 'never deleted'
    assert F.read_record(cache, pool.UUIDString(), V.temp_name(name)) is None
    assert F.read_record(cache, pool.UUIDString(), name)['checksum'] == OLD


def test_the_temporary_volume_is_ours_from_before_it_is_created(test_pool, tmp_path, new_image, monkeypatch):
    """Interrupted while libvirt creates the temporary volume: its "importing" record proves it ours."""
    conn, pool, name = test_pool
    cache = str(tmp_path / 'cache')
    image, checksum = new_image
    _make(conn, pool, name, cache, OLD)
    _interrupt_after_create(monkeypatch)
    args = _args(name, cache, import_from=image, checksum=checksum)
    with pytest.raises(KeyboardInterrupt):
        run(conn, 'default-pool', **args)
    monkeypatch.undo()
    rec = F.read_record(cache, pool.UUIDString(), V.temp_name(name))
    assert rec['state'] == V.IMPORTING and rec['path'] == conn.volume(pool, V.temp_name(name)).path()
    assert rec['capacities'] == [1024 ** 2]
    checked = run(conn, 'default-pool', check=True, **args)
    assert [a['action'] for a in checked['actions']] == ['drop_temp', 'import_temp', 'replace']
    gone = run(conn, 'default-pool', **_args(name, cache, state='absent'))
    assert [a['action'] for a in gone['actions']] == ['delete', 'drop_temp']
    assert _names(conn, pool) & {name, V.temp_name(name)} == set()


# ------------------------------------------------------------------ real libvirtd: uploads

def _raw_image(path, mib=3, seed=b'old'):
    """A raw image of ``mib`` MiB that spans several upload chunks; returns its checksum option."""
    block = hashlib.sha256(seed).digest() * (1024 * 1024 // 32)
    path.write_bytes(block * mib)
    return 'sha256:' + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def reimport_case(system_pool, tmp_path):
    """A real pool holding ``vol.img`` imported from an old image, and a new image to reimport."""
    conn, pool, path = system_pool
    cache = str(tmp_path / 'cache')
    old, new = tmp_path / 'old.img', tmp_path / 'new.img'
    old_sum, new_sum = _raw_image(old, 2, b'old'), _raw_image(new, 3, b'new')
    run(conn, pool, name='vol.img', import_from=str(old), checksum=old_sum, cache_dir=cache)
    target = os.path.join(path, 'vol.img')

    class Case:
        pass

    case = Case()
    case.__dict__.update(conn=conn, pool=pool, path=path, cache=cache, target=target, old=old, new=new,
                         old_sum=old_sum, new_sum=new_sum, old_bytes=old.read_bytes(), old_ino=os.stat(target).st_ino)
    case.args = dict(name='vol.img', import_from=str(new), checksum=new_sum, reimport=True, cache_dir=cache)

    def intact():
        assert sorted(os.listdir(path)) == ['vol.img'], 'the temporary volume was left behind'
        assert os.stat(target).st_ino == case.old_ino
        with open(target, 'rb') as handle:
            assert handle.read() == case.old_bytes
        kept = run(conn, pool, check=True, name='vol.img', import_from=str(old), checksum=old_sum, cache_dir=cache)
        assert not kept['changed'] and kept['volume']['source_checksum'] == old_sum

    case.intact = intact
    return case


def _interrupt_after_create(monkeypatch):
    """Make the next volume creation a kill right after libvirt created the volume."""
    real = _libvirt.libvirt.virStoragePool.createXML

    def created_then_interrupted(self, xml, flags=0):
        real(self, xml, flags)
        raise KeyboardInterrupt()

    monkeypatch.setattr(_libvirt.libvirt.virStoragePool, 'createXML', created_then_interrupted)


def _cut_upload_after(monkeypatch, nbytes, exc):
    """Make the real stream upload fail after ``nbytes``: the source read raises ``exc``."""
    real = _storage.stream_send

    def cut(conn, vol, chunks, length, subject):
        def limited():
            sent = 0
            for chunk in chunks:
                if sent >= nbytes:
                    raise exc
                sent += len(chunk)
                yield chunk
        return real(conn, vol, limited(), length, subject)

    monkeypatch.setattr(_storage, 'stream_send', cut)


def test_upload_failure_midway_keeps_the_old_volume(reimport_case, monkeypatch):
    case = reimport_case
    lv = _libvirt.libvirt
    _cut_upload_after(monkeypatch, 1024 * 1024, lv.libvirtError('Connection reset by peer'))
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value) == ('%s/vol.img.virtkit-reimport: upload failed: Connection reset by peer; the volume is '
                              'unchanged; the temporary volume vol.img.virtkit-reimport was removed' % case.pool)
    case.intact()
    monkeypatch.undo()
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['import_temp', 'replace']
    assert done['volume']['source_checksum'] == case.new_sum and sorted(os.listdir(case.path)) == ['vol.img']
    with open(case.target, 'rb') as handle:
        assert handle.read() == case.new.read_bytes()
    assert not run(case.conn, case.pool, **case.args)['changed']


def test_an_interrupted_upload_removes_the_temporary_volume(reimport_case, monkeypatch):
    case = reimport_case
    _cut_upload_after(monkeypatch, 1024 * 1024, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(case.conn, case.pool, **case.args)
    case.intact()


def test_a_verification_mismatch_keeps_the_old_volume(reimport_case, monkeypatch):
    case = reimport_case
    monkeypatch.setattr(_storage, 'stream_digest', lambda *a, **k: '0' * 64)
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value) == ('%s/vol.img.virtkit-reimport: verification failed: the uploaded content differs from %s; '
                              'the volume is unchanged; the temporary volume vol.img.virtkit-reimport was removed'
                              % (case.pool, case.new))
    case.intact()


def test_a_killed_upload_leaves_a_partial_temporary_volume_that_the_rerun_replaces(reimport_case, monkeypatch):
    """A SIGKILL mid-upload runs no cleanup: the partial temporary volume keeps its "importing" record."""
    case = reimport_case
    monkeypatch.setattr(V.VolumeManager, '_discard_import', lambda self, name, vol: None)
    _cut_upload_after(monkeypatch, 1024 * 1024, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(case.conn, case.pool, **case.args)
    monkeypatch.undo()
    assert sorted(os.listdir(case.path)) == ['vol.img', 'vol.img.virtkit-reimport']
    rec = F.read_record(case.cache, case.conn.pool(case.pool).UUIDString(), 'vol.img.virtkit-reimport')
    assert rec['state'] == V.IMPORTING and rec['path'] == os.path.join(case.path, 'vol.img.virtkit-reimport')
    checked = run(case.conn, case.pool, check=True, **case.args)
    assert [a['action'] for a in checked['actions']] == ['drop_temp', 'import_temp', 'replace']
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['drop_temp', 'import_temp', 'replace']
    assert sorted(os.listdir(case.path)) == ['vol.img'] and done['volume']['source_checksum'] == case.new_sum


def test_a_kill_after_staging_is_finished_by_the_rerun_without_uploading(reimport_case, monkeypatch):
    case = reimport_case

    def killed(self, checksum):
        raise SystemExit(137)

    monkeypatch.setattr(V.VolumeManager, '_op_replace', killed)
    with pytest.raises(SystemExit):
        run(case.conn, case.pool, **case.args)
    assert sorted(os.listdir(case.path)) == ['vol.img', 'vol.img.virtkit-reimport']
    with open(case.target, 'rb') as handle:
        assert handle.read() == case.old_bytes
    monkeypatch.undo()
    monkeypatch.setattr(_storage, 'stream_send', lambda *a, **k: pytest.fail('uploaded again'))
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['replace']
    assert done['volume']['source_checksum'] == case.new_sum and sorted(os.listdir(case.path)) == ['vol.img']
    with open(case.target, 'rb') as handle:
        assert handle.read() == case.new.read_bytes()


def test_reimport_of_qcow2_grows_and_records_the_final_volume(system_pool, tmp_path):
    conn, pool, path = system_pool
    cache = str(tmp_path / 'cache')
    old, new = tmp_path / 'old.qcow2', tmp_path / 'new.qcow2'
    for image, size in ((old, '16M'), (new, '32M')):
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(image), size], check=True)
    new_sum = 'sha256:' + hashlib.sha256(new.read_bytes()).hexdigest()
    run(conn, pool, name='q.qcow2', import_from=str(old), allow_unverified=True, cache_dir=cache)
    args = dict(name='q.qcow2', import_from=str(new), checksum=new_sum, reimport=True, capacity='48MiB',
                cache_dir=cache)
    done = run(conn, pool, **args)
    assert [a['action'] for a in done['actions']] == ['import_temp', 'replace', 'grow_to']
    assert done['volume']['format'] == 'qcow2' and done['volume']['capacity'] == 48 * 1024 ** 2
    assert done['volume']['source_checksum'] == new_sum and sorted(os.listdir(path)) == ['q.qcow2']
    listed = V.list_volumes(conn, pool, cache_dir=cache)
    assert [(v['name'], v['source_checksum']) for v in listed] == [('q.qcow2', new_sum)]
    assert not run(conn, pool, **args)['changed']


def test_a_temporary_volume_that_cannot_be_removed_is_named_and_removed_by_the_rerun(reimport_case, monkeypatch):
    case = reimport_case
    lv = _libvirt.libvirt
    real_delete = lv.virStorageVol.delete

    def stuck(self, flags=0):
        if self.name().endswith('.virtkit-reimport'):
            raise lv.libvirtError('Device or resource busy')
        return real_delete(self, flags)

    _cut_upload_after(monkeypatch, 1024 * 1024, lv.libvirtError('Connection reset by peer'))
    monkeypatch.setattr(lv.virStorageVol, 'delete', stuck)
    with pytest.raises(VirtkitError) as err:
        run(case.conn, case.pool, **case.args)
    assert str(err.value).endswith(
        'upload failed: Connection reset by peer; the volume is unchanged; the temporary volume '
        'vol.img.virtkit-reimport could not be removed (%s/vol.img.virtkit-reimport: delete volume failed: Device or '
        'resource busy); a rerun removes it' % case.pool)
    monkeypatch.undo()
    with open(case.target, 'rb') as handle:
        assert handle.read() == case.old_bytes
    done = run(case.conn, case.pool, **case.args)
    assert [a['action'] for a in done['actions']] == ['drop_temp', 'import_temp', 'replace']
    assert sorted(os.listdir(case.path)) == ['vol.img'] and done['volume']['source_checksum'] == case.new_sum
