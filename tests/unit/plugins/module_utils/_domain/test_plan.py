# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""build_plan(): lifecycle, live operations on real libvirt XML, restart policy, storage."""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._domain.plan import (
    LIVE_NS, LIVE_PREFIX, Current, LiveRequests, build_plan, disk_sources, live_device_present,
    storage_to_remove)
from ansible_collections.virtkit.guests.plugins.module_utils._xml import etree, parse, to_string
from ansible_collections.virtkit.guests.tests.unit.helpers import RICH, fixture, spec_of, validate_domain_xml

NAME = 'virtkit-unit-fixture'  # the guest in fixtures/running-*.xml
MACHINE = 'pc-i440fx-7.2'


def current(state):
    """The fixture guest in ``state`` ('absent' = does not exist)."""
    if state == 'absent':
        return Current(NAME)
    live = fixture('running-live.xml') if state in ('running', 'paused') else None
    return Current(NAME, True, state, fixture('running-inactive.xml'), live)


def plan_for(state, cur='running', **options):
    spec = spec_of(MACHINE, name=NAME, state=state, **options)
    return build_plan(spec, current(cur) if isinstance(cur, str) else cur, virt_type='qemu')


def ops(plan):
    return [action.op for action in plan.actions]


# ------------------------------------------------------------------ lifecycle

LIFECYCLE = {
    # current state: {target state: (actions, state after)}
    'absent': {
        'present': (['define'], 'shutoff'),
        'running': (['define', 'start'], 'running'),
        'paused': (['define', 'start'], 'paused'),
        'shutdown': (['define'], 'shutoff'),
        'destroyed': (['define'], 'shutoff'),
        'absent': ([], 'absent'),
    },
    'shutoff': {
        'present': ([], 'shutoff'),
        'running': (['start'], 'running'),
        'paused': (['start'], 'paused'),
        'shutdown': ([], 'shutoff'),
        'destroyed': ([], 'shutoff'),
        'absent': (['undefine'], 'absent'),
    },
    'running': {
        'present': ([], 'running'),
        'running': ([], 'running'),
        'paused': (['suspend'], 'paused'),
        'shutdown': (['shutdown'], 'shutoff'),
        'destroyed': (['destroy'], 'shutoff'),
        'absent': (['destroy', 'undefine'], 'absent'),
    },
    'paused': {
        'present': ([], 'paused'),
        'running': (['resume'], 'running'),
        'paused': ([], 'paused'),
        'shutdown': (['shutdown'], 'shutoff'),
        'destroyed': (['destroy'], 'shutoff'),
        'absent': (['destroy', 'undefine'], 'absent'),
    },
    'crashed': {
        'present': ([], 'crashed'),
        'running': (['start'], 'running'),
        'paused': (['start'], 'paused'),
        'shutdown': ([], 'shutoff'),
        'destroyed': ([], 'shutoff'),
        'absent': (['undefine'], 'absent'),
    },
}
CASES = [(cur, target, acts, after) for cur, row in LIFECYCLE.items() for target, (acts, after) in row.items()]


@pytest.mark.parametrize('cur, target, expected, after', CASES,
                         ids=['%s->%s' % (c, t) for c, t, _a, _s in CASES])
def test_lifecycle_transitions(cur, target, expected, after):
    plan = plan_for(target, cur)
    assert ops(plan) == expected
    assert plan.changed == bool(expected)
    assert plan.before['state'] == cur
    assert plan.after['state'] == after
    assert plan.pending_restart == []


def test_start_paused_and_shutdown_details():
    start = plan_for('paused', 'shutoff').actions[0]
    assert (start.op, start.params, start.summary) == ('start', {'paused': True}, 'start %s paused' % NAME)
    assert plan_for('running', 'shutoff').actions[0].params == {'paused': False}
    shutdown = plan_for('shutdown', 'running', shutdown_timeout=30, force=True).actions[0]
    assert shutdown.summary == 'shut %s down (ACPI, up to 30s, then force off)' % NAME
    assert plan_for('shutdown', 'running').actions[0].summary == 'shut %s down (ACPI, up to 120s)' % NAME


def test_absent_of_a_transient_guest_only_powers_it_off():
    transient = Current(NAME, True, 'running', fixture('running-inactive.xml'), fixture('running-live.xml'),
                        persistent=False)
    assert ops(plan_for('absent', transient)) == ['destroy']


def test_a_new_guest_defines_with_the_host_defaults():
    plan = build_plan(spec_of(name='fresh', memory=64), Current('fresh'), virt_type='kvm', arch='aarch64')
    define = plan.actions[0]
    assert define.op == 'define' and define.params['new'] is True
    assert define.summary == 'define fresh'
    root = parse(define.params['xml'])
    assert root.get('type') == 'kvm' and root.find('os/type').get('arch') == 'aarch64'
    assert plan.merged_xml == define.params['xml']
    assert plan.before == {'state': 'absent', 'xml': None}
    assert plan.after['state'] == 'shutoff' and '<name>fresh</name>' in plan.after['xml']
    # The spec's virt_type and arch win over the host defaults.
    root = parse(build_plan(spec_of(name='fresh', virt_type='qemu', arch='x86_64'), Current('fresh'),
                            virt_type='kvm', arch='aarch64').merged_xml)
    assert root.get('type') == 'qemu' and root.find('os/type').get('arch') == 'x86_64'


def test_the_define_of_a_new_rich_guest_validates_against_libvirts_schema():
    plan = build_plan(spec_of(state='running', **RICH), Current('rich'), virt_type='kvm')
    assert [a.op for a in plan.actions] == ['define', 'start']
    assert plan.actions[0].params['xml'] == plan.merged_xml
    validate_domain_xml(plan.merged_xml)


def test_autostart():
    assert ops(plan_for('present', 'shutoff', autostart=True)) == ['autostart']
    assert plan_for('present', 'shutoff', autostart=True).actions[0].params == {'value': True}
    assert ops(plan_for('present', 'shutoff', autostart=False)) == []
    on = Current(NAME, True, 'shutoff', fixture('running-inactive.xml'), autostart=True)
    assert ops(plan_for('present', on, autostart=True)) == []
    plan = plan_for('present', on, autostart=False)
    assert ops(plan) == ['autostart']
    assert (plan.before['autostart'], plan.after['autostart']) == (True, False)
    assert ops(plan_for('running', 'absent', autostart=True)) == ['define', 'autostart', 'start']


def test_wait_for_ip_is_a_step_that_changes_nothing():
    plan = plan_for('running', 'running', wait_for_ip=True, wait_for_ip_timeout=30)
    assert ops(plan) == ['wait_for_ip']
    assert not plan.changed
    assert plan.describe() == []
    assert ops(plan_for('running', 'shutoff', wait_for_ip=True)) == ['start', 'wait_for_ip']
    assert ops(plan_for('present', 'shutoff', wait_for_ip=True)) == []  # stays off: nothing to wait for


# ------------------------------------------------------------------ real libvirt XML: live changes

def test_noop_spec_gives_no_changes_on_libvirts_xml():
    # Everything the fixture guest has, in the user's words (memory left out: the guest runs
    # SeaBIOS without a balloon driver, so the live balloon never reaches the config's 64 MiB).
    noop = dict(virt_type='qemu', machine='pc', max_memory='128MiB', vcpus=1, max_vcpus=2,
                title='virtkit unit-test fixture', interfaces=[{'network': 'default'}], serial={'type': 'pty'},
                graphics={'type': 'vnc', 'listen': '127.0.0.1', 'port': -1}, guest_agent=True, rng=True,
                cpu={'model': 'qemu64'}, boot={'devices': ['hd']})
    for state, cur in (('present', 'shutoff'), ('running', 'running'), ('present', 'running'),
                       ('paused', 'paused')):
        plan = plan_for(state, cur, **noop)
        assert plan.actions == [], (state, cur, ops(plan))
        assert plan.pending_restart == []
        assert not plan.changed
        assert 'xml' not in plan.after
    # memory: 64 is what the persistent config says: no define on a shut-off guest.
    assert plan_for('present', 'shutoff', memory=64, **noop).actions == []


def test_memory_decrease_and_vcpu_increase_within_max_are_live():
    plan = plan_for('running', 'running', memory=48, vcpus=2)
    assert ops(plan) == ['define', 'set_memory', 'set_vcpus']
    assert plan.pending_restart == []
    define, memory, vcpus = plan.actions
    assert define.summary == 'update the persistent config of %s: memory, vcpus' % NAME
    assert memory.params == {'kib': 48 * 1024}
    assert memory.summary == 'set the memory of the running guest to 48 MiB'
    assert vcpus.params == {'count': 2}
    root = parse(define.params['xml'])
    assert root.findtext('currentMemory') == str(48 * 1024)
    assert root.find('vcpu').get('current') is None
    assert '<currentMemory unit="KiB">49152</currentMemory>' in plan.after['xml']


def test_memory_above_the_live_maximum_waits_for_a_restart():
    plan = plan_for('running', 'running', memory=256)
    assert ops(plan) == ['define']
    assert plan.pending_restart == ['max_memory', 'memory']


def test_vcpus_above_the_live_maximum_wait_for_a_restart():
    plan = plan_for('running', 'running', vcpus=4)
    assert ops(plan) == ['define']
    assert plan.pending_restart == ['max_vcpus', 'vcpus']


def test_machine_change_is_pending_restart():
    plan = plan_for('running', 'running', machine='q35')
    assert ops(plan) == ['define']
    assert plan.pending_restart == ['machine']
    assert plan.changed
    # Rerun after the define: nothing to write, still honest about the restart.
    applied = Current(NAME, True, 'running', plan.merged_xml, fixture('running-live.xml'))
    again = plan_for('running', applied, machine='q35')
    assert again.actions == [] and not again.changed
    assert again.pending_restart == ['machine']


def test_machine_change_on_a_shut_off_guest_is_just_a_define():
    plan = plan_for('present', 'shutoff', machine='q35')
    assert ops(plan) == ['define'] and plan.pending_restart == []


def test_adding_a_nic_is_attached_live():
    plan = plan_for('running', 'running', interfaces=[{'network': 'default'}, {'network': 'default'}])
    assert ops(plan) == ['define', 'attach_device']
    attach = plan.actions[1]
    assert attach.params == {'kind': 'interfaces', 'key': 1, 'field': 'interfaces:default#1'}
    assert attach.summary == 'attach interface default#1 to the running guest'
    assert plan.pending_restart == []


def test_adding_a_disk_and_changing_cdrom_media_are_live():
    plan = plan_for('running', 'running', disks=[{'device': 'cdrom', 'path': '/iso/a.iso'},
                                                 {'path': '/img/b.qcow2', 'format': 'qcow2'}])
    assert ops(plan) == ['define', 'attach_device', 'attach_device']
    assert [a.params for a in plan.actions[1:]] == [{'kind': 'disks', 'key': 'hda', 'field': 'disks:hda'},
                                                    {'kind': 'disks', 'key': 'vda', 'field': 'disks:vda'}]
    # Now the cdrom exists everywhere; a new ISO is a media change.
    inactive, live = plan.merged_xml, _live_with(plan.merged_xml)
    cur = Current(NAME, True, 'running', inactive, live)
    plan = plan_for('running', cur, disks=[{'device': 'cdrom', 'path': '/iso/b.iso'}])
    assert ops(plan) == ['define', 'update_media']
    media = parse(plan.actions[1].params['xml'])
    assert media.find('source').get('file') == '/iso/b.iso' and media.find('target').get('dev') == 'hda'


def _live_with(inactive_xml):
    """The fixture's live XML with the devices of ``inactive_xml`` (as after a live attach)."""
    live = parse(fixture('running-live.xml'))
    devices = live.find('devices')
    for el in parse(inactive_xml).findall('devices/disk'):
        devices.insert(0, el)
    from ansible_collections.virtkit.guests.plugins.module_utils._xml import to_string
    return to_string(live)


def test_removing_a_nic_with_devices_exclusive_detaches_it():
    plan = plan_for('running', 'running', interfaces=[], devices_exclusive=True)
    assert ops(plan) == ['define', 'detach_device']
    detach = parse(plan.actions[1].params['xml'])
    assert detach.find('mac').get('address') == '52:54:00:80:81:38'


# ------------------------------------------------------------------ live changes the guest must complete

def _live(requests=None, memory_kib=None, balloon_model=None):
    """The fixture's live XML with recorded requests (as libvirt shows them), memory, balloon."""
    live = parse(fixture('running-live.xml'))
    if requests is not None:
        # virDomainSetMetadata puts the element and its children in the namespace.
        el = parse(to_string(requests.element()).replace(
            '<live>', '<%s:live xmlns:%s="%s">' % (LIVE_PREFIX, LIVE_PREFIX, LIVE_NS)).replace(
            '</live>', '</%s:live>' % LIVE_PREFIX).replace('<balloon', '<%s:balloon' % LIVE_PREFIX).replace(
            '<detach', '<%s:detach' % LIVE_PREFIX))
        container = etree.SubElement(live, 'metadata')
        container.append(el)
    if memory_kib is not None:
        live.find('currentMemory').text = str(memory_kib)
    if balloon_model is not None:
        live.find('devices/memballoon').set('model', balloon_model)
    return to_string(live)


def test_live_requests_round_trip_through_the_metadata_element():
    requests = LiveRequests((49152, 131072), ['disks:vdb', 'interfaces:52:54:00:80:81:38'])
    el = requests.element()
    assert to_string(el) == ('<live><balloon target="49152" at="131072"/>'
                             '<detach field="disks:vdb"/><detach field="interfaces:52:54:00:80:81:38"/></live>')
    again = LiveRequests.read(parse(_live(requests)))
    assert again.balloon == (49152, 131072) and again.detach == requests.detach
    assert LiveRequests().element() is None
    empty = LiveRequests.read(parse(fixture('running-live.xml')))
    assert empty.balloon is None and empty.detach == set()


def test_a_balloon_target_already_asked_for_is_not_asked_again():
    first = plan_for('running', 'running', memory=48)
    assert ops(first) == ['define', 'set_memory'] and first.warnings == []
    # The guest (no balloon driver) stayed at 128 MiB; the earlier run recorded that.
    stuck = Current(NAME, True, 'running', first.merged_xml, _live(LiveRequests((48 * 1024, 128 * 1024))))
    plan = plan_for('running', stuck, memory=48)
    assert plan.actions == [] and not plan.changed and plan.pending_restart == []
    assert plan.warnings == ['%s: memory: the guest is at 128 MiB, not at the 48 MiB asked for when the module '
                             'started it or by an earlier run (no balloon driver in the guest, or still on its '
                             'way?); not asking again, the persistent config has it' % NAME]
    # On its way from where it was to the target (a balloon inflates in steps): QEMU keeps
    # the target, asking again changes nothing.
    on_its_way = Current(NAME, True, 'running', first.merged_xml,
                         _live(LiveRequests((48 * 1024, 128 * 1024)), memory_kib=100 * 1024))
    plan = plan_for('running', on_its_way, memory=48)
    assert plan.actions == [] and len(plan.warnings) == 1 and 'is at 100 MiB' in plan.warnings[0]
    # Moved away from both (someone else ballooned it below the target): ask again.
    moved = Current(NAME, True, 'running', first.merged_xml,
                    _live(LiveRequests((48 * 1024, 128 * 1024)), memory_kib=32 * 1024))
    assert ops(plan_for('running', moved, memory=48)) == ['set_memory']
    # A request to deflate (target above where the guest was) spans the same range upwards.
    up = LiveRequests((120 * 1024, 64 * 1024))
    assert up.balloon_asked(120 * 1024, 64 * 1024) and up.balloon_asked(120 * 1024, 100 * 1024)
    assert not up.balloon_asked(120 * 1024, 32 * 1024) and not up.balloon_asked(100 * 1024, 64 * 1024)
    assert not LiveRequests().balloon_asked(48 * 1024, 128 * 1024)
    # Another target than the recorded one: ask for it.
    assert ops(plan_for('running', stuck, memory=64)) == ['define', 'set_memory']


def test_memory_without_a_balloon_device_waits_for_a_restart():
    cur = Current(NAME, True, 'running', fixture('running-inactive.xml'), _live(balloon_model='none'))
    plan = plan_for('running', cur, memory=48)
    assert ops(plan) == ['define']
    assert plan.pending_restart == ['memory']


def test_a_detach_the_guest_ignored_is_pending_not_asked_again():
    first = plan_for('running', 'running', interfaces=[], devices_exclusive=True)
    assert ops(first) == ['define', 'detach_device']
    field = 'interfaces:52:54:00:80:81:38'
    assert first.actions[1].params['field'] == field
    ignored = Current(NAME, True, 'running', first.merged_xml, _live(LiveRequests(None, [field])))
    plan = plan_for('running', ignored, interfaces=[], devices_exclusive=True)
    assert plan.actions == [] and not plan.changed
    assert plan.pending_restart == [field]
    assert plan.warnings == ['%s: %s: an earlier run asked the guest to release this device and it still holds it '
                             '(the guest ignores hot-unplug, or is not running?); not asking again, it goes at the '
                             'next restart' % (NAME, field)]
    # With restart_policy if_needed the restart removes it.
    plan = plan_for('running', ignored, interfaces=[], devices_exclusive=True, restart_policy='if_needed')
    assert ops(plan) == ['restart']


def test_live_device_present_matches_by_identity():
    live = parse(fixture('running-live.xml'))
    nic = live.find('devices/interface')
    assert live_device_present(live, nic)
    other = parse(to_string(nic))
    other.find('mac').set('address', '52:54:00:00:00:01')
    assert not live_device_present(live, other)
    disk = parse('<disk type="file" device="disk"><target dev="vdz" bus="virtio"/></disk>')
    assert not live_device_present(live, disk)
    rng = live.find('devices/rng')
    assert live_device_present(live, rng)
    rng_other = parse(to_string(rng))
    rng_other.find('alias').set('name', 'rng9')
    assert not live_device_present(live, rng_other)
    gone = parse(to_string(live))
    devices = gone.find('devices')
    devices.remove(devices.find('interface'))
    assert not live_device_present(gone, nic)


def test_nic_model_change_is_pending_restart():
    plan = plan_for('running', 'running', interfaces=[{'network': 'default', 'model': 'e1000'}])
    assert ops(plan) == ['define']
    assert plan.pending_restart == ['interfaces:52:54:00:80:81:38']


def test_title_and_metadata_are_set_live():
    plan = plan_for('running', 'running', title='new', metadata={'a': 1})
    assert ops(plan) == ['define', 'set_metadata', 'set_metadata']
    assert [a.params for a in plan.actions[1:]] == [{'field': 'title'}, {'field': 'metadata'}]
    assert plan.pending_restart == []


def test_restart_if_needed_replaces_the_live_ops():
    options = dict(machine='q35', memory=48, vcpus=2, interfaces=[{'network': 'default'}, {'network': 'default'}])
    never = plan_for('running', 'running', **options)
    assert ops(never) == ['define', 'set_memory', 'set_vcpus', 'attach_device']
    assert never.pending_restart == ['machine']
    plan = plan_for('running', 'running', restart_policy='if_needed', **options)
    assert ops(plan) == ['define', 'restart']
    assert plan.actions[1].summary == 'restart %s to apply machine' % NAME
    assert plan.pending_restart == ['machine']
    assert plan.after['state'] == 'running'
    # Nothing pending: the policy does nothing.
    assert ops(plan_for('running', 'running', restart_policy='if_needed', memory=48)) == ['define', 'set_memory']


def test_restart_then_lifecycle_starts_from_the_restarted_state():
    paused = current('paused')
    plan = plan_for('running', paused, machine='q35', restart_policy='if_needed')
    assert ops(plan) == ['define', 'restart']  # the restart starts it running: no resume after it
    assert plan.after['state'] == 'running'
    plan = plan_for('paused', 'running', machine='q35', restart_policy='if_needed')
    assert ops(plan) == ['define', 'restart']  # the restart starts it paused: no suspend after it
    assert plan.after['state'] == 'paused'
    plan = plan_for('present', paused, machine='q35', restart_policy='if_needed')
    assert ops(plan) == ['define', 'restart', 'suspend']  # present keeps a paused guest paused
    assert plan.after['state'] == 'paused'


def test_stopping_a_guest_plans_no_live_changes():
    plan = plan_for('shutdown', 'running', memory=48, machine='q35', restart_policy='if_needed')
    assert ops(plan) == ['define', 'shutdown']
    assert plan.pending_restart == []


# ------------------------------------------------------------------ diff

def test_diff_is_readable_and_masks_passwords():
    plan = plan_for('present', 'running', graphics={'type': 'vnc', 'password': 'hunter2'})
    diff = plan.diff()
    assert diff['before_header'] == '%s (before)' % NAME
    assert diff['after_header'] == '%s (after)' % NAME
    assert 'hunter2' not in diff['after'] and 'hunter2' not in diff['before']
    assert "passwd='********'" in diff['after']
    assert diff['before'].startswith('state: running\nxml:\n  <domain type="qemu">')
    assert diff['after'].splitlines()[0] == 'state: running'
    # The before XML is canonical: libvirt's attribute order does not show up as a change.
    changed = [line for line in diff['after'].splitlines() if line not in diff['before'].splitlines()]
    assert changed == ['      <graphics autoport="yes" listen="127.0.0.1" passwd=\'********\' port="-1" type="vnc">']


def test_diff_of_absent():
    plan = plan_for('absent', 'running')
    assert plan.diff()['before'] == 'state: running\n'
    assert plan.diff()['after'] == 'state: absent\n'


# ------------------------------------------------------------------ remove_storage

RICH_XML = fixture('rich-defined-inactive.xml')


def test_disk_sources():
    assert disk_sources(parse(RICH_XML)) == [
        ('vda', 'disk', {'file': '/var/lib/libvirt/images/rich.qcow2'}),
        ('vdb', 'disk', {'pool': 'default', 'volume': 'rich-data.raw'}),
        ('sda', 'cdrom', {'file': '/var/lib/libvirt/images/seed.iso'}),
    ]  # the empty cdrom sdb has no storage


def test_remove_storage_targets_and_all():
    root = parse(RICH_XML)
    assert storage_to_remove(root, [], 'rich') == []
    assert storage_to_remove(root, ['vdb'], 'rich') == [('vdb', {'pool': 'default', 'volume': 'rich-data.raw'})]
    assert storage_to_remove(root, ['sda', 'vda'], 'rich') == [
        ('sda', {'file': '/var/lib/libvirt/images/seed.iso'}), ('vda', {'file': '/var/lib/libvirt/images/rich.qcow2'})]
    # 'all' is every disk, never install media.
    assert storage_to_remove(root, ['all'], 'rich') == [
        ('vda', {'file': '/var/lib/libvirt/images/rich.qcow2'}), ('vdb', {'pool': 'default', 'volume': 'rich-data.raw'})]


def test_remove_storage_unknown_target_is_one_clear_line():
    with pytest.raises(VirtkitError) as err:
        storage_to_remove(parse(RICH_XML), ['vdz'], 'rich')
    assert str(err.value) == ('rich: remove_storage names vdz, but the guest has no disk with that target '
                              '(it has sda, vda, vdb)')
    with pytest.raises(VirtkitError, match=r'\(it has none\)$'):
        storage_to_remove(parse(fixture('running-inactive.xml')), ['vda'], NAME)


def test_absent_plan_deletes_the_resolved_storage_after_undefine():
    cur = Current('rich', True, 'shutoff', RICH_XML)
    plan = build_plan(spec_of(name='rich', state='absent', remove_storage=['all']), cur)
    assert ops(plan) == ['undefine', 'delete_storage', 'delete_storage']
    assert [a.params for a in plan.actions[1:]] == [
        {'target': 'vda', 'source': {'file': '/var/lib/libvirt/images/rich.qcow2'}},
        {'target': 'vdb', 'source': {'pool': 'default', 'volume': 'rich-data.raw'}}]
    with pytest.raises(VirtkitError, match='remove_storage names vdq'):
        build_plan(spec_of(name='rich', state='absent', remove_storage=['vdq']), cur)
    # A guest that is gone: nothing to resolve, nothing to do.
    assert build_plan(spec_of(name='rich', state='absent', remove_storage=['vdq']), Current('rich')).actions == []


# ------------------------------------------------------------------ check mode == real run

@pytest.mark.parametrize('state, cur, options', [
    ('running', 'absent', RICH),
    ('running', 'running', dict(memory=48, vcpus=2, machine='q35', interfaces=[{'network': 'default'}, {'network': 'default'}])),
    ('running', 'running', dict(machine='q35', restart_policy='if_needed')),
    ('absent', 'paused', {}),
])
def test_the_plan_is_deterministic(state, cur, options):
    options = dict(options, name=NAME)
    first = build_plan(spec_of(MACHINE, state=state, **options), current(cur), virt_type='qemu')
    second = build_plan(spec_of(MACHINE, state=state, **options), current(cur), virt_type='qemu')
    assert [(a.op, a.summary, a.params, a.changes) for a in first.actions] == \
        [(a.op, a.summary, a.params, a.changes) for a in second.actions]
    assert first.diff() == second.diff()
    assert first.describe() == [{'action': a.op, 'summary': a.summary} for a in first.actions if a.changes]


def test_a_running_uefi_guest_with_a_tpm_is_not_pending_a_restart():
    # The live XML of a started UEFI guest has no <os firmware='efi'> (libvirt 9.0).
    options = dict(name='virtkit-unit-fixture', state='running', firmware='uefi', secure_boot=False,
                   tpm={'model': 'tpm-crb', 'version': '2.0'})
    cur = Current('virtkit-unit-fixture', True, 'running', fixture('uefi-tpm-inactive.xml'),
                  fixture('uefi-tpm-live.xml'))
    plan = build_plan(spec_of(**options), cur)
    assert plan.actions == []
    assert plan.pending_restart == []
    options['tpm'] = {'model': 'tpm-tis', 'version': '2.0'}
    plan = build_plan(spec_of(**options), cur)
    assert [a.op for a in plan.actions] == ['define']
    assert plan.pending_restart == ['tpm']
