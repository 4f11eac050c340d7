# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""FleetEngine against libvirt's embedded test driver (test:///default).

KVM guests run through the real VolumeManager and DomainManager on the test driver
(it has the pool ``default-pool`` and the network ``default``; it has no DHCP leases and
no volume streams, so seeds, imports and address waits of KVM guests are covered by the
integration target ``guest_fleet``). Containers use a small in-memory stand-in for
ContainerManager: the engine's part (threads, the one wait, results) is what is tested
here; ContainerManager itself has its own tests.
"""

from __future__ import annotations

import itertools
import threading

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._wait import WaitTimeout, poll
from ansible_collections.virtkit.guests.plugins.module_utils._fleet import spec
from ansible_collections.virtkit.guests.plugins.module_utils._fleet.engine import FleetEngine

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'
POOL = 'default-pool'
_counter = itertools.count()


class FakeContainers:
    """In-memory containers: ``ip_after`` = address polls before a started one has an address."""

    def __init__(self, ip_after=0):
        self.containers = {}
        self.ip_after = ip_after
        self.never_ip = set()
        self.lock = threading.Lock()
        self.started = []

    def __call__(self):
        return FakeContainerManager(self)


class FakeContainerManager:
    def __init__(self, world):
        self.w = world
        self.spec = None

    def exists(self, name):
        return name in self.w.containers

    def read(self, name):
        return self.w.containers.get(name)

    def run(self, params, check_mode=False):
        name, state = params['name'], params['state']
        cur = self.w.containers.get(name)
        actions = []
        if state == 'absent':
            if cur:
                actions.append('destroy')
        else:
            if cur is None:
                actions.append('create')
            if state == 'started' and (cur is None or cur['state'] != 'running'):
                actions.append('start')
        if not check_mode:
            self.spec = params
            with self.w.lock:
                for action in actions:
                    if action == 'create':
                        self.w.containers[name] = {'state': 'stopped', 'pid': None, 'polls': 0}
                    elif action == 'start':
                        self.w.containers[name].update(state='running', pid=1000 + len(self.w.started))
                        self.w.started.append(name)
                    else:
                        del self.w.containers[name]
        return {'changed': bool(actions), 'actions': [{'action': a, 'summary': '%s %s' % (a, name)} for a in actions],
                'pending_restart': False, 'pending_restart_fields': [],
                'diff': {'before': 'state: %s\n' % (cur or {}).get('state', 'absent'), 'after': 'state: %s\n' % state},
                'container': self.facts(name, self.w.containers.get(name) if not check_mode else cur)}

    def has_ip(self, name):
        c = self.w.containers[name]
        c['polls'] += 1
        return name not in self.w.never_ip and c['polls'] > self.w.ip_after

    def wait_for_ip(self, name, pid, interfaces, timeout):
        try:
            poll(lambda: self.has_ip(name), timeout, interval=0.01, max_interval=0.02)
        except WaitTimeout:
            raise VirtkitError('%s: wait_for_ip: no address within %ss (seen: none)' % (name, int(timeout)))

    def facts(self, name, current, spec=None):
        if not current:
            return {}
        ips = ['10.0.3.%d' % (current['pid'] % 250)] if current['state'] == 'running' and current['polls'] > \
            self.w.ip_after and name not in self.w.never_ip else []
        return {'name': name, 'state': current['state'], 'pid': current['pid'], 'ips': ips, 'ipv4': ips, 'ipv6': []}


@pytest.fixture
def keeper():
    """An open connection keeps the test driver's state between engine runs; cleans up."""
    conn = Connection(URI)
    pool = conn.conn.storagePoolLookupByName(POOL)
    tag = 'vkf%d-' % next(_counter)
    base = pool.createXML("<volume><name>%sbase.qcow2</name><capacity>1048576</capacity>"
                          "<target><format type='qcow2'/></target></volume>" % tag, 0)
    conn.tag = tag
    yield conn
    for dom in conn.conn.listAllDomains(0):
        if dom.name().startswith(tag):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    for vol in pool.listAllVolumes(0):
        if vol.name().startswith(tag):
            vol.delete(0)
    del base
    conn.close()


class Connections:
    """Counts the connections the engine opens (it must open exactly one per run)."""

    def __init__(self):
        self.opened = 0

    def __call__(self, uri):
        self.opened += 1
        return Connection(uri)


def params_of(guests, **options):
    options.setdefault('uri', URI)
    options.setdefault('pool', POOL)
    options.setdefault('wait_timeout', 5)
    result = ArgumentSpecValidator(spec.ARGUMENT_SPEC).validate(dict(options, guests=guests))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run(params, check_mode=False, containers=None, connect=None):
    plans, bases = spec.validate_fleet(params, layout=lambda: None)
    engine = FleetEngine(params, check_mode=check_mode, connect=connect or Connections(),
                         container_manager=containers or FakeContainers())
    return engine.run(plans, bases)


def fleet_of(tag, **extra):
    kvm = {'image': {'name': tag + 'base.qcow2'}, 'memory': 128, 'wait_for_ip': False}
    return params_of([
        {'name': tag + 'k1', 'kind': 'kvm', 'groups': ['web'], 'host_vars': {'tier': 1}},
        {'name': tag + 'k2', 'kind': 'kvm', 'disk_size': '2MiB', 'disks': [{'name': 'data', 'size': '1MiB'}]},
        {'name': tag + 'c1', 'kind': 'lxc', 'host_vars': {'ansible_user': 'root'}},
        {'name': tag + 'c2', 'kind': 'lxc', 'groups': ['cache']},
    ], defaults={'kvm': kvm}, **extra)


def test_check_apply_rerun_and_check_rerun(keeper):
    tag = keeper.tag
    params = fleet_of(tag, lxc_path='/srv/lxc')
    world = FakeContainers(ip_after=2)
    connections = Connections()

    check = run(params, check_mode=True, containers=world, connect=connections)
    assert check['changed'] is True
    assert check['summary'] == {'created': 4, 'changed': 0, 'unchanged': 0, 'removed': 0, 'failed': 0}
    assert keeper.domain(tag + 'k1') is None and world.containers == {}  # nothing done
    assert [g['state'] for g in check['guests']] == ['absent'] * 4

    applied = run(params, containers=world, connect=connections)
    assert connections.opened == 2  # one connection per run
    assert applied['failed_guests'] == [] and applied['errors'] == []
    assert applied['summary'] == {'created': 4, 'changed': 0, 'unchanged': 0, 'removed': 0, 'failed': 0}
    # check mode reported exactly what the real run did
    assert [g['actions'] for g in check['guests']] == [g['actions'] for g in applied['guests']]
    k1, k2, c1, c2 = applied['guests']
    assert k1['actions'] == ['overlay %sk1.qcow2: create a qcow2 overlay on /default-pool/%sbase.qcow2' % (tag, tag),
                             'domain: define %sk1' % tag, 'domain: start %sk1' % tag]
    assert k2['actions'][1] == 'disk %sk2-data.qcow2: create a 1 MiB qcow2 volume' % tag
    assert [g['name'] for g in applied['guests']] == [tag + n for n in ('k1', 'k2', 'c1', 'c2')]
    assert [g['state'] for g in applied['guests']] == ['running'] * 4
    assert [d['target'] for d in k2['domain']['disks']] == ['vda', 'vdb']
    assert k1['groups'] == ['web'] and k1['ip'] is None
    assert k1['host_vars'] == {'ansible_connection': 'ssh', 'tier': 1}
    # the containers got their addresses in the wait phase
    assert c1['ip'] and c1['addresses'] == [c1['ip']]
    assert c1['host_vars'] == {'ansible_host': c1['ip'], 'ansible_connection': 'virtkit.guests.lxc',
                               'ansible_lxc_name': tag + 'c1', 'ansible_lxc_path': '/srv/lxc',
                               'ansible_user': 'root'}
    assert c2['groups'] == ['cache'] and c2['container']['state'] == 'running'
    # only the guests that were waited for have an address time
    assert sorted(applied['timings']['addresses']) == [tag + 'c1', tag + 'c2']
    assert '[%sk1] domain' % tag in applied['diff']['after']
    assert applied['images'] == [{'name': tag + 'base.qcow2', 'pool': POOL, 'changed': False, 'actions': [],
                                  'guests': [tag + 'k1', tag + 'k2']}]

    rerun = run(params, containers=world)
    assert rerun['changed'] is False
    assert rerun['summary'] == {'created': 0, 'changed': 0, 'unchanged': 4, 'removed': 0, 'failed': 0}
    assert all(g['actions'] == [] for g in rerun['guests'])
    assert rerun['diff']['before'] == rerun['diff']['after'] == ''
    assert run(params, check_mode=True, containers=world)['changed'] is False


def test_a_settings_change_is_applied_and_reported_per_guest(keeper):
    tag = keeper.tag
    params = fleet_of(tag)
    world = FakeContainers()
    run(params, containers=world)
    params['guests'][0]['memory'] = 100
    params['guests'][0]['description'] = 'changed'
    check = run(params, check_mode=True, containers=world)
    assert check['summary']['changed'] == 1 and check['summary']['unchanged'] == 3
    result = run(params, containers=world)
    assert result['guests'][0]['changed'] is True
    assert result['guests'][0]['domain']['memory_mib'] == 100
    assert [g['changed'] for g in result['guests'][1:]] == [False] * 3
    assert run(params, containers=world)['changed'] is False


def test_check_mode_reports_a_guest_on_volumes_it_would_create_first(keeper):
    """The single module refuses a disk on a missing volume; the fleet plans it first."""
    tag = keeper.tag
    image = {'url': 'https://example.org/%snew.qcow2' % tag, 'checksum': 'sha256:' + 'a' * 64}
    params = params_of([{'name': tag + 'n1', 'kind': 'kvm', 'image': image, 'wait_for_ip': False,
                         'disks': [{'name': 'data', 'size': 1}]}])
    result = run(params, check_mode=True)
    assert result['failed_guests'] == []
    assert result['images'][0]['actions'] == ['import %s (sha256:%s) into the volume' % (image['url'], 'a' * 64)]
    assert result['guests'][0]['actions'] == [
        'overlay %sn1.qcow2: create a qcow2 overlay on default-pool/%snew.qcow2 (after its import)' % (tag, tag),
        'disk %sn1-data.qcow2: create a 1 GiB qcow2 volume' % tag,
        'domain: define %sn1' % tag, 'domain: start %sn1' % tag]
    assert keeper.domain(tag + 'n1') is None


def test_one_failing_guest_does_not_stop_the_others(keeper):
    tag = keeper.tag
    params = params_of([
        {'name': tag + 'bad', 'kind': 'kvm', 'networks': [{'network': 'nonet'}]},
        {'name': tag + 'good', 'kind': 'kvm', 'wait_for_ip': False},
        {'name': tag + 'quiet', 'kind': 'lxc'},
        {'name': tag + 'fine', 'kind': 'lxc'},
    ], wait_timeout=1)
    world = FakeContainers()
    world.never_ip.add(tag + 'quiet')
    result = run(params, containers=world)
    assert result['failed_guests'] == [tag + 'bad', tag + 'quiet']
    assert result['errors'][0] == ('guests[0] (%sbad): network nonet does not exist (define it first, for example '
                                   'with virtkit.guests.libvirt_network)' % tag)
    assert result['errors'][1].startswith('guests[2] (%squiet): wait_for_ip: no address within' % tag)
    assert len(result['errors']) == 2
    assert result['summary'] == {'created': 2, 'changed': 0, 'unchanged': 0, 'removed': 0, 'failed': 2}
    bad, good, quiet, fine = result['guests']
    assert bad['failed'] and bad['error'].startswith('network nonet does not exist')
    assert good['state'] == 'running' and not good['failed'] and 'error' not in good
    assert quiet['state'] == 'running' and quiet['ip'] is None
    assert fine['ip']


def test_a_missing_base_volume_fails_its_guests_only(keeper):
    tag = keeper.tag
    params = params_of([{'name': tag + 'a', 'kind': 'kvm', 'image': {'name': tag + 'nope.qcow2'}},
                        {'name': tag + 'b', 'kind': 'lxc'}])
    result = run(params)
    assert result['errors'] == ['guests[0] (%sa): image %snope.qcow2: the base volume %snope.qcow2 does not exist in '
                                'pool default-pool (give image.url or image.path to import it)' % (tag, tag, tag)]
    assert result['guests'][1]['state'] == 'running'


def test_absent_with_remove_storage_keeps_the_base(keeper):
    tag = keeper.tag
    params = fleet_of(tag)
    world = FakeContainers()
    run(params, containers=world)
    pool = keeper.conn.storagePoolLookupByName(POOL)

    def volumes():
        return sorted(v for v in pool.listVolumes() if v.startswith(tag))

    assert volumes() == [tag + n for n in ('base.qcow2', 'k1.qcow2', 'k2-data.qcow2', 'k2.qcow2')]
    for guest in params['guests']:
        guest['state'] = 'absent'
    params['guests'][1]['remove_storage'] = True
    check = run(params, check_mode=True, containers=world)
    assert check['summary']['removed'] == 4
    assert volumes() == [tag + n for n in ('base.qcow2', 'k1.qcow2', 'k2-data.qcow2', 'k2.qcow2')]
    result = run(params, containers=world)
    assert result['summary'] == {'created': 0, 'changed': 0, 'unchanged': 0, 'removed': 4, 'failed': 0}
    assert result['guests'][1]['actions'][-2:] == [
        'volume %sk2.qcow2: delete the volume /default-pool/%sk2.qcow2' % (tag, tag),
        'volume %sk2-data.qcow2: delete the volume /default-pool/%sk2-data.qcow2' % (tag, tag)]
    # k1 keeps its overlay (no remove_storage); k2's are gone; the base stays
    assert volumes() == [tag + 'base.qcow2', tag + 'k1.qcow2']
    assert [g['state'] for g in result['guests']] == ['absent'] * 4
    assert world.containers == {}
    again = run(params, containers=world)
    assert again['changed'] is False and again['summary']['unchanged'] == 4


def test_only_touches_the_named_guests(keeper):
    tag = keeper.tag
    params = fleet_of(tag, only=[tag + 'k2', tag + 'c1'])
    world = FakeContainers()
    result = run(params, containers=world)
    assert [g['name'] for g in result['guests']] == [tag + 'k2', tag + 'c1']
    assert keeper.domain(tag + 'k1') is None and keeper.domain(tag + 'k2') is not None
    assert sorted(world.containers) == [tag + 'c1']


def test_parallel_one_still_converges_everything(keeper):
    tag = keeper.tag
    result = run(fleet_of(tag, parallel=1))
    assert result['summary']['created'] == 4


def test_a_fleet_of_containers_only_opens_no_libvirt_connection():
    def refuse(uri):
        raise AssertionError('no libvirt connection is needed for containers')

    params = params_of([{'name': 'only-lxc', 'kind': 'lxc'}], uri='qemu:///nowhere')
    result = run(params, connect=refuse)
    assert result['guests'][0]['state'] == 'running'


def test_an_unreachable_libvirt_is_one_error_for_the_whole_run():
    def broken(uri):
        raise VirtkitError('%s: connect failed: libvirtd is not running' % uri)

    params = params_of([{'name': 'x', 'kind': 'kvm'}], uri='qemu:///nowhere')
    with pytest.raises(VirtkitError, match='connect failed'):
        run(params, connect=broken)


@pytest.fixture
def lab(keeper):
    """A running network of our own with a DHCP range, for reservations; removed afterwards."""
    from ansible_collections.virtkit.guests.plugins.module_utils import _network as nw
    name = keeper.tag + 'lab'
    params = ArgumentSpecValidator(nw.ARGUMENT_SPEC).validate({
        'uri': URI, 'name': name, 'state': 'running', 'forward_mode': 'isolated',
        'ipv4': {'address': '10.233.0.1/24', 'dhcp_ranges': [{'start': '10.233.0.100', 'end': '10.233.0.200'}]},
    }).validated_parameters
    nw.NetworkManager(keeper).run(params)
    yield name
    net = keeper.conn.networkLookupByName(name)
    net.destroy()
    net.undefine()


def lab_hosts(keeper, name):
    from ansible_collections.virtkit.guests.plugins.module_utils import _network as nw
    return nw.xml_facts(keeper.conn.networkLookupByName(name).XMLDesc(0))['ipv4']['dhcp_hosts']


def test_a_dhcp_reservation_is_planned_added_before_the_guest_and_removed_with_it(keeper, lab):
    tag = keeper.tag
    guest = {'name': tag + 'r1', 'kind': 'kvm', 'wait_for_ip': False, 'cloud_init': False,
             'networks': [{'network': lab, 'ip': '10.233.0.30', 'address_mode': 'dhcp_reservation'}]}
    params = params_of([guest])
    mac = spec.stable_mac(tag + 'r1', 0)
    check = run(params, check_mode=True)
    assert check['guests'][0]['actions'][0] == 'network %s: add a DHCP host of running network %s (live)' % (lab, lab)
    assert lab_hosts(keeper, lab) == []
    applied = run(params)
    assert applied['failed_guests'] == []
    assert [g['actions'] for g in check['guests']] == [g['actions'] for g in applied['guests']]
    # the reservation is in place before the domain is defined
    actions = applied['guests'][0]['actions']
    assert actions[0].startswith('network %s: ' % lab)
    assert actions[-2:] == ['domain: define %sr1' % tag, 'domain: start %sr1' % tag]
    assert lab_hosts(keeper, lab) == [{'mac': mac, 'name': tag + 'r1', 'ip': '10.233.0.30'}]
    assert applied['guests'][0]['domain']['interfaces'][0]['mac'] == mac
    assert run(params)['changed'] is False
    assert run(params, check_mode=True)['changed'] is False

    # another guest asking for the same address is refused before anything of it exists
    clash = params_of([dict(guest, name=tag + 'r2')])
    refused = run(clash)
    assert refused['errors'] == ['guests[0] (%sr2): networks[0]: 10.233.0.30 is already reserved for %s on network %s'
                                 % (tag, mac, lab)]
    assert keeper.domain(tag + 'r2') is None

    gone = params_of([dict(guest, state='absent')])
    check = run(gone, check_mode=True)
    assert 'network %s: delete a DHCP host of running network %s (live)' % (lab, lab) in check['guests'][0]['actions']
    assert lab_hosts(keeper, lab) != []
    removed = run(gone)
    assert removed['summary']['removed'] == 1
    assert lab_hosts(keeper, lab) == []
    assert run(gone)['changed'] is False


def test_an_address_added_to_an_existing_guest_does_not_add_a_nic(keeper, lab):
    """A guest made without a static address has libvirt's MAC; adding ip would derive another
    one and add a second NIC: refused in one line before anything changes, naming the MAC."""
    tag = keeper.tag
    guest = {'name': tag + 'm1', 'kind': 'kvm', 'wait_for_ip': False, 'cloud_init': False,
             'networks': [{'network': lab}]}
    assert run(params_of([guest]))['failed_guests'] == []
    theirs = run(params_of([guest]))['guests'][0]['domain']['interfaces'][0]['mac']
    derived = spec.stable_mac(tag + 'm1', 0)
    assert theirs != derived
    with_ip = dict(guest, networks=[{'network': lab, 'ip': '10.233.0.40', 'address_mode': 'dhcp_reservation'}])
    message = ("guests[0] (%sm1): networks[0]: the guest's NIC has MAC %s, not the derived %s (the guest was made "
               "without it); set networks[0].mac: %s" % (tag, theirs, derived, theirs))
    for check_mode in (True, False):
        refused = run(params_of([with_ip]), check_mode=check_mode)
        assert refused['errors'] == [message] and refused['guests'][0]['actions'] == []
    assert lab_hosts(keeper, lab) == []
    assert len(keeper.domain(tag + 'm1').XMLDesc(0).split('<interface ')) == 2  # still one NIC
    # With the MAC the guest has, the reservation is for its NIC, and no NIC is added.
    fixed = dict(with_ip, networks=[dict(with_ip['networks'][0], mac=theirs)])
    applied = run(params_of([fixed]))
    assert applied['failed_guests'] == []
    assert [nic['mac'] for nic in applied['guests'][0]['domain']['interfaces']] == [theirs]
    assert lab_hosts(keeper, lab) == [{'mac': theirs, 'name': tag + 'm1', 'ip': '10.233.0.40'}]
    # A second NIC added beside the address is really new: its derived MAC is taken.
    # (stopped: the test driver cannot attach a NIC live)
    more = dict(fixed, state='stopped', networks=fixed['networks'] + [{'network': lab}])
    grown = run(params_of([more]))
    assert grown['failed_guests'] == [], grown['errors']
    assert [nic['mac'] for nic in grown['guests'][0]['domain']['interfaces']] == [theirs, spec.stable_mac(tag + 'm1', 1)]


def test_a_reservation_the_entry_no_longer_declares_is_named_in_a_warning(keeper, lab):
    tag = keeper.tag
    guest = {'name': tag + 'u1', 'kind': 'kvm', 'wait_for_ip': False, 'cloud_init': False,
             'networks': [{'network': lab, 'ip': '10.233.0.50', 'address_mode': 'dhcp_reservation'}]}
    mac = spec.stable_mac(tag + 'u1', 0)
    applied = run(params_of([guest]))
    assert applied['failed_guests'] == [] and applied['warnings'] == []
    plain = dict(guest, networks=[{'network': lab}])
    warning = ('%su1: network %s still reserves 10.233.0.50 for the NIC %s of this guest, which the entry no longer '
               'declares, so the guest keeps getting that address; the reservation is left alone (remove it with '
               'libvirt_network, or declare it again with address_mode: dhcp_reservation)' % (tag, lab, mac))
    for check_mode in (True, False):
        result = run(params_of([plain]), check_mode=check_mode)
        assert result['changed'] is False and result['warnings'] == [warning]
    assert lab_hosts(keeper, lab) == [{'mac': mac, 'name': tag + 'u1', 'ip': '10.233.0.50'}]
    # an entry for another name (not one this module adds for the guest) is not named
    net = keeper.conn.networkLookupByName(lab)
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
               "<host mac='%s' ip='10.233.0.50'/>" % mac, libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
               "<host mac='%s' name='other' ip='10.233.0.50'/>" % mac, libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
    assert run(params_of([plain]))['warnings'] == []


def test_a_guest_holding_another_address_than_its_reservation_is_warned_about(keeper, lab):
    from ansible_collections.virtkit.guests.plugins.module_utils._fleet.engine import GuestRun
    plan = spec.validate_fleet(params_of([{'name': keeper.tag + 'w', 'kind': 'kvm', 'networks': [
        {'network': lab, 'ip': '10.233.0.31', 'address_mode': 'dhcp_reservation'}]}]), layout=lambda: None)[0][0]
    engine = FleetEngine(params_of([]), connect=Connections())
    guest = GuestRun(plan)
    mac = plan.reservations[0].mac
    guest.facts = {'state': 'running', 'interfaces': [{'mac': mac, 'addresses': ['10.233.0.150', 'fe80::1']}]}
    assert engine.reservation_warnings(guest) == [
        'networks[0]: the guest has 10.233.0.150 on network %s, not its reserved 10.233.0.31; it takes the '
        'reserved address at its next DHCP renewal or restart' % lab]
    guest.facts['interfaces'][0]['addresses'] = ['10.233.0.31']
    assert engine.reservation_warnings(guest) == []
    guest.facts['interfaces'][0]['addresses'] = []  # not known yet: nothing to say
    assert engine.reservation_warnings(guest) == []


def test_guests_without_reservations_are_not_looked_at():
    """Container facts hold ``interfaces`` as {name: {...}}: only KVM reservations are checked."""
    from ansible_collections.virtkit.guests.plugins.module_utils._fleet.engine import GuestRun
    plan = spec.validate_fleet(params_of([{'name': 'c1', 'kind': 'lxc'}]), layout=lambda: None)[0][0]
    guest = GuestRun(plan)
    guest.facts = {'state': 'running', 'interfaces': {'eth0': {'ipv4': ['10.0.3.5'], 'ipv6': []}}}
    assert FleetEngine(params_of([]), connect=Connections()).reservation_warnings(guest) == []


def test_container_static_addresses_reach_lxc_container_and_its_warning_the_fleet(tmp_path):
    # The real ContainerManager on the fake LXC tools: the fleet passes networks through, the
    # busybox rootfs gets its udhcpc line turned off, and a warning comes back per container.
    import os
    from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
    from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import Runner
    from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import FakeLxc
    from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.test_manager import (
        HYBRID, read_file_with_proc)
    fake = FakeLxc(str(tmp_path))

    def manager():
        m = ContainerManager(runner=Runner(str(tmp_path), run=fake), read_file=read_file_with_proc, layout=HYBRID)
        m.sleep = lambda s: None
        return m
    net = [{'link': 'lxcbr0', 'ipv4': ['10.0.3.157/24'], 'ipv4_gateway': '10.0.3.1'}]
    params = params_of([{'name': 'vk-good', 'kind': 'lxc', 'networks': net},
                        {'name': 'vk-other', 'kind': 'lxc', 'networks': [dict(net[0], ipv4=['10.0.3.158/24'])]}],
                       uri='qemu:///nowhere')
    result = run(params, containers=manager, connect=lambda uri: None)
    rcs = open(os.path.join(str(tmp_path), 'vk-good', 'rootfs', 'etc', 'init.d', 'rcS')).read()
    assert '# virtkit.guests: eth0 has a static ipv4 address (lxc.net.0); was: /bin/udhcpc' in rcs
    good, other = result['guests']
    assert good['ip'] == '10.0.3.157' and good['container']['ipv4'] == ['10.0.3.157']
    # the fake guest has 10.0.3.157 whatever is declared: the fleet says so once, for that container
    assert [w for w in result['warnings'] if '10.0.3.158' in w] == [
        'vk-other: eth0 (networks[0]) has 10.0.3.157 instead of the declared 10.0.3.158; the guest\'s own '
        'network setup is not made to keep the address here: configure it inside the guest (or declare no static '
        'address and use DHCP)']
    assert not any('vk-good' in w for w in result['warnings'])
