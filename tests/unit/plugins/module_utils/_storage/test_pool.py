# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_pool: validation, XML (checked by virt-xml-validate), merge, plans, manager."""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._storage import pool as P
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse, to_string

from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._storage.conftest import module_params

EXISTING = """<pool type='dir'>
  <name>images</name>
  <uuid>0f0e2d5c-4a7b-4f8e-9a51-7d6c8f0b1a2c</uuid>
  <capacity unit='bytes'>1000</capacity>
  <allocation unit='bytes'>10</allocation>
  <available unit='bytes'>990</available>
  <source>
  </source>
  <target>
    <path>/srv/images</path>
    <permissions>
      <mode>0755</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
</pool>"""


def spec(**options):
    options.setdefault('name', 'images')
    return P.validate(module_params(P.ARGUMENT_SPEC, **options))


def current(active=True, autostart=False, xml=EXISTING, live=None, volumes=None):
    return P.Current('images', exists=True, active=active, autostart=autostart, inactive_xml=xml,
                     live_xml=(live or xml) if active else None, volumes=volumes)


def ops(plan):
    return [a.op for a in plan.actions]


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize('options, message', [
    (dict(mode=755), "mode: quote it as an octal string such as '0755' (YAML reads 0755 as the integer 755)"),
    (dict(mode='rwx'), "mode: expected an octal string such as '0755', got 'rwx'"),
    (dict(path='relative/dir'), "path: must be absolute, got 'relative/dir'"),
    (dict(type='dir', source_host='nas'), 'source_host: only applies to type=netfs pools, not type=dir'),
    (dict(type='netfs', source_devices=['/dev/sdb']), 'source_devices: only applies to type=logical pools'),
    (dict(owner='no-such-user-vk'), "owner: no user named 'no-such-user-vk' on the host running the module "
                                    "(names resolve there, not on the libvirt host); use a numeric id"),
    (dict(group='no-such-group-vk'), "group: no group named 'no-such-group-vk' on the host running the module"),
    (dict(name='a/b'), 'name: a pool name must be non-empty and must not contain "/"'),
])
def test_bad_input_is_one_line(options, message):
    with pytest.raises(VirtkitError) as err:
        spec(**options)
    assert message in str(err.value)
    assert '\n' not in str(err.value)


def test_ids_and_modes_are_normalised():
    s = spec(mode='755', owner=107, group='0', path='/srv/x')
    assert (s.mode, s.owner, s.group) == ('0755', '107', '0')
    assert spec(owner='root').owner == '0'
    # Numeric ids are taken as they are: they need not exist on the module's host.
    assert (spec(owner=64123, group='64124').owner, spec(owner=64123, group='64124').group) == ('64123', '64124')


@pytest.mark.parametrize('options, message', [
    (dict(), 'images: a new dir pool needs path'),
    (dict(type='netfs', path='/mnt/x'), 'images: a new netfs pool needs source_host, source_dir'),
    (dict(type='logical'), 'images: a new logical pool needs source_devices or source_name'),
])
def test_new_pool_needs_its_options(options, message):
    with pytest.raises(VirtkitError) as err:
        P.build_plan(spec(**options), P.Current('images'))
    assert str(err.value) == message


# ------------------------------------------------------------------ XML

def test_dir_pool_xml_is_valid(validate_xml):
    root = P.skeleton(spec(path='/srv/images', mode='0711', owner='107', group='107'))
    validate_xml(to_string(root), 'storagepool')
    assert root.findtext('target/path') == '/srv/images'
    assert [e.tag for e in root.find('target/permissions')] == ['mode', 'owner', 'group']
    assert root.find('source') is None


def test_logical_pool_xml_is_valid(validate_xml):
    root = P.skeleton(spec(type='logical', source_devices=['/dev/sdb', '/dev/sdc'], source_name='vg0'))
    validate_xml(to_string(root), 'storagepool')
    assert [d.get('path') for d in root.findall('source/device')] == ['/dev/sdb', '/dev/sdc']
    assert root.findtext('source/name') == 'vg0'
    assert root.findtext('target/path') == '/dev/vg0'
    assert [e.tag for e in root.find('source')] == ['device', 'device', 'name']


def test_netfs_pool_xml_is_valid(validate_xml):
    root = P.skeleton(spec(type='netfs', path='/mnt/nas', source_host='nas.example.com',
                           source_dir='/export/images', source_format='nfs'))
    validate_xml(to_string(root), 'storagepool')
    assert [e.tag for e in root.find('source')] == ['host', 'dir', 'format']
    assert root.find('source/format').get('type') == 'nfs'
    # A new netfs pool defaults to format auto.
    auto = P.skeleton(spec(type='netfs', path='/mnt/nas', source_host='nas', source_dir='/e'))
    assert auto.find('source/format').get('type') == 'auto'
    validate_xml(to_string(auto), 'storagepool')


def test_merge_owns_only_what_is_set(validate_xml):
    root = parse(EXISTING)
    ed = P.merge(root, spec(mode='0700'))
    assert ed.fields() == ['mode']
    assert root.findtext('uuid') == '0f0e2d5c-4a7b-4f8e-9a51-7d6c8f0b1a2c'
    assert root.findtext('target/permissions/owner') == '0'
    assert root.findtext('target/path') == '/srv/images'
    validate_xml(to_string(root), 'storagepool')
    assert P.merge(parse(EXISTING), spec()).fields() == []


def test_merge_replaces_logical_devices_in_schema_order(validate_xml):
    root = P.skeleton(spec(type='logical', source_devices=['/dev/sdb'], source_name='vg0'))
    ed = P.merge(root, spec(type='logical', source_devices=['/dev/sdc', '/dev/sdb']))
    assert ed.fields() == ['source_devices']
    assert [e.tag for e in root.find('source')] == ['device', 'device', 'name']
    validate_xml(to_string(root), 'storagepool')
    assert P.merge(root, spec(type='logical', source_devices=['/dev/sdb', '/dev/sdc'])).fields() == []


# ------------------------------------------------------------------ plans

def test_new_pool_plan():
    plan = P.build_plan(spec(path='/srv/images', autostart=True), P.Current('images'))
    assert ops(plan) == ['define', 'build', 'autostart', 'start']
    assert plan.after['state'] == 'running'
    present = P.build_plan(spec(path='/srv/images', state='present', build=False), P.Current('images'))
    assert ops(present) == ['define']


def test_noop_plan_is_not_changed():
    plan = P.build_plan(spec(path='/srv/images', mode='0755'), current())
    assert not plan.changed and ops(plan) == []
    refresh = P.build_plan(spec(refresh=True), current())
    assert ops(refresh) == ['refresh'] and not refresh.changed


def test_edit_running_pool_is_pending_restart():
    plan = P.build_plan(spec(mode='0700', autostart=True), current())
    assert ops(plan) == ['define', 'autostart']
    assert plan.pending_restart == ['mode']
    assert 'mode' in plan.diff()['after'] and '0700' in plan.diff()['after']
    # A rerun: the config already has it, the running pool does not: still pending, no change.
    edited = to_string(P.skeleton(spec(path='/srv/images', mode='0700', owner='0', group='0')))
    rerun = P.build_plan(spec(mode='0700'), current(xml=edited, live=EXISTING))
    assert ops(rerun) == [] and rerun.pending_restart == ['mode']


def test_edit_with_restart_policy_restarts_and_rebuilds():
    plan = P.build_plan(spec(mode='0700', restart_policy='if_needed'), current())
    assert ops(plan) == ['define', 'destroy', 'build', 'start']
    assert plan.pending_restart == []


def test_edit_stopped_pool_rebuilds_without_restart():
    plan = P.build_plan(spec(mode='0700', state='present'), current(active=False))
    assert ops(plan) == ['define', 'build']
    no_build = P.build_plan(spec(mode='0700', state='present', build=False), current(active=False))
    assert ops(no_build) == ['define']


def test_autostart_alone_is_live():
    plan = P.build_plan(spec(autostart=True), current())
    assert ops(plan) == ['autostart'] and plan.pending_restart == []


def test_type_cannot_change():
    with pytest.raises(VirtkitError) as err:
        P.build_plan(spec(type='netfs'), current())
    assert str(err.value) == 'images: type cannot change from dir to netfs; remove the pool first'


def test_source_options_must_fit_the_existing_pool():
    with pytest.raises(VirtkitError) as err:
        P.build_plan(spec(source_host='nas'), current())
    assert str(err.value) == 'images: source_host does not apply to this dir pool'


def test_absent_keeps_volumes_unless_asked():
    plan = P.build_plan(spec(state='absent'), current(volumes=['a.qcow2']))
    assert ops(plan) == ['destroy', 'undefine']
    wipe = P.build_plan(spec(state='absent', delete_volumes=True), current(volumes=['a.qcow2']))
    assert ops(wipe) == ['delete_volumes', 'destroy', 'delete', 'undefine']
    stopped = P.build_plan(spec(state='absent', delete_volumes=True), current(active=False))
    assert ops(stopped) == ['start', 'delete_volumes', 'destroy', 'delete', 'undefine']
    gone = P.build_plan(spec(state='absent'), P.Current('images'))
    assert ops(gone) == [] and not gone.changed


def test_stopped_state():
    assert ops(P.build_plan(spec(state='stopped'), current())) == ['destroy']
    assert ops(P.build_plan(spec(state='stopped'), current(active=False))) == []


# ------------------------------------------------------------------ manager (test driver)

def run(conn, check=False, **options):
    options.setdefault('name', 'vk-unit')
    options.setdefault('uri', 'test:///default')
    return P.PoolManager(conn).run(module_params(P.ARGUMENT_SPEC, **options), check_mode=check)


def test_manager_lifecycle_on_test_driver(test_conn):
    args = dict(path='/vk-unit', autostart=True, build=False)
    check = run(test_conn, check=True, **args)
    assert check['changed'] and test_conn.pool('vk-unit') is None and check['pool'] == {}
    first = run(test_conn, **args)
    assert first['changed'] and [a['action'] for a in first['actions']] == ['define', 'autostart', 'start']
    assert first['pool']['state'] == 'running' and first['pool']['autostart'] is True
    assert first['pool']['path'] == '/vk-unit'
    assert not run(test_conn, **args)['changed']
    assert not run(test_conn, check=True, **args)['changed']
    for check in (True, False):
        refreshed = run(test_conn, check=check, refresh=True)
        assert not refreshed['changed'] and [a['action'] for a in refreshed['actions']] == ['refresh']
    auto = run(test_conn, autostart=False)
    assert [a['action'] for a in auto['actions']] == ['autostart'] and auto['pool']['autostart'] is False
    stopped = run(test_conn, state='stopped')
    assert [a['action'] for a in stopped['actions']] == ['destroy'] and stopped['pool']['state'] == 'stopped'
    gone = run(test_conn, state='absent')
    assert gone['changed'] and test_conn.pool('vk-unit') is None
    assert not run(test_conn, state='absent')['changed']


def test_manager_edit_on_real_libvirtd(system_conn, tmp_path):
    """Edits of a running dir pool: pending restart, then restart + build apply the mode."""
    import os
    import shutil
    import tempfile
    import uuid
    images = '/var/lib/libvirt/images'
    if not os.access(images, os.W_OK):
        pytest.skip('%s is not writable' % images)
    path = tempfile.mkdtemp(prefix='vk-test-unit-', dir=images)
    name = 'vk-test-unit-%s' % uuid.uuid4().hex[:8]
    args = dict(name=name, uri='qemu:///system', path=path, mode='0711')
    try:
        first = run(system_conn, **args)
        assert first['changed'] and oct(os.stat(path).st_mode & 0o777) == '0o711'
        assert not run(system_conn, **args)['changed']
        args['mode'] = '0750'
        edit = run(system_conn, **args)
        assert edit['changed'] and edit['pending_restart_fields'] == ['mode']
        assert oct(os.stat(path).st_mode & 0o777) == '0o711'
        again = run(system_conn, **args)
        assert not again['changed'] and again['pending_restart_fields'] == ['mode']
        check = run(system_conn, check=True, restart_policy='if_needed', **args)
        assert [a['action'] for a in check['actions']] == ['destroy', 'build', 'start']
        done = run(system_conn, restart_policy='if_needed', **args)
        assert [a['action'] for a in done['actions']] == ['destroy', 'build', 'start']
        assert oct(os.stat(path).st_mode & 0o777) == '0o750' and done['pool']['mode'] == '0750'
        assert not run(system_conn, **args)['pending_restart']
        with open(os.path.join(path, 'keep.raw'), 'wb') as handle:
            handle.write(b'x')
        gone = run(system_conn, name=name, uri='qemu:///system', state='absent')
        assert gone['changed'] and os.path.exists(os.path.join(path, 'keep.raw'))
    finally:
        pool = system_conn.pool(name)
        if pool is not None:
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        shutil.rmtree(path, ignore_errors=True)
