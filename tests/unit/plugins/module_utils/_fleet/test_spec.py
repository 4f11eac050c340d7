# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_fleet's validation and translation (pure: nothing touches a host)."""

from __future__ import annotations

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._fleet import spec
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._fleet.spec import (
    FleetValidationError, merge_defaults, stable_mac, validate_fleet)

IMAGE = {'url': 'https://example.org/images/debian-12.qcow2', 'checksum': 'sha256:' + 'a' * 64}


def fleet(guests, **options):
    """The module's params for ``guests`` as AnsibleModule would pass them."""
    args = dict(options, guests=guests)
    result = ArgumentSpecValidator(spec.ARGUMENT_SPEC).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def layout():
    """A pure cgroup v2 layout (the real one is read from /proc/self/mounts)."""
    return cgroup.CgroupLayout(v2=('memory', 'cpu', 'cpuset', 'pids'), v2_mount='/sys/fs/cgroup')


def path_kind(path):
    """The host's paths as these tests see them: /srv/share a directory, /etc/app.conf a file."""
    return {'/srv/share': 'dir', '/etc/app.conf': 'file'}.get(path)


def plans_of(guests, **options):
    return validate_fleet(fleet(guests, **options), layout=layout, path_kind=path_kind)


def guest_plans(guests, **options):
    return plans_of(guests, **options)[0]


def errors_of(guests, **options):
    with pytest.raises(FleetValidationError) as exc:
        plans_of(guests, **options)
    return exc.value.lines


# ------------------------------------------------------------------ defaults

def test_defaults_merge_under_the_guest_one_level_deep_and_replace_lists():
    defaults = {'memory': '1GiB', 'cloud_init': {'packages': ['vim'], 'hostname': 'x'},
                'networks': [{'network': 'default'}], 'groups': ['all']}
    entry = {'name': 'a', 'cloud_init': {'packages': ['git']}, 'networks': [{'bridge': 'br0'}]}
    merged = merge_defaults(defaults, entry)
    assert merged == {'name': 'a', 'memory': '1GiB', 'cloud_init': {'packages': ['git'], 'hostname': 'x'},
                      'networks': [{'bridge': 'br0'}], 'groups': ['all']}
    assert defaults['cloud_init'] == {'packages': ['vim'], 'hostname': 'x'}  # not modified


def test_a_guest_false_wins_over_a_default_dict():
    assert merge_defaults({'cloud_init': {'packages': ['vim']}}, {'cloud_init': False})['cloud_init'] is False


# ------------------------------------------------------------------ KVM translation

def test_kvm_guest_becomes_base_overlay_seed_and_domain_params():
    plans, bases = plans_of([{'name': 'web1', 'kind': 'kvm', 'image': IMAGE, 'disk_size': '10GiB',
                              'cloud_init': {'users': [{'name': 'admin'}], 'ssh_authorized_keys': ['ssh-ed25519 K']},
                              'groups': ['web']}], pool='images')
    plan = plans[0]
    assert list(bases) == ['debian-12.qcow2']
    base = bases['debian-12.qcow2']
    assert base.guests == [plan] and plan.base is base
    assert base.params['import_from'] == IMAGE['url'] and base.params['checksum'] == IMAGE['checksum']
    assert base.params['pool'] == 'images'
    # libvirt_volume's defaults are filled as AnsibleModule would fill them
    assert base.params['cache_dir'] == '/var/cache/virtkit/images' and base.params['timeout'] == 600
    assert plan.overlay['name'] == 'web1.qcow2'
    assert plan.overlay['backing_volume'] == 'debian-12.qcow2'
    assert plan.overlay['capacity'] == '10GiB' and plan.overlay['format'] == 'qcow2'
    assert plan.seed['name'] == 'web1-seed.iso' and plan.seed['pool'] == 'images'
    assert plan.seed['hostname'] == 'web1'
    assert plan.seed['user_data'] == {
        'users': ['default', {'name': 'admin', 'ssh_authorized_keys': ['ssh-ed25519 K']}],
        'ssh_authorized_keys': ['ssh-ed25519 K']}
    assert plan.seed['network_config'] is None and plan.seed['mode'] == '0600'  # cloud_init_seed's defaults
    dom = plan.domain
    assert dom['state'] == 'running' and dom['wait_for_ip'] is False
    assert dom['memory'] == '512MiB' and dom['vcpus'] == 1
    assert dom['disks'][0]['volume'] == 'web1.qcow2' and dom['disks'][0]['pool'] == 'images'
    assert dom['disks'][1]['device'] == 'cdrom' and dom['disks'][1]['volume'] == 'web1-seed.iso'
    assert dom['interfaces'][0]['network'] == 'default' and dom['interfaces'][0]['mac'] is None
    # libvirt_domain's defaults are filled too
    assert dom['shutdown_timeout'] == 120 and dom['ip_sources'] == ['lease', 'agent']
    assert plan.wait_for_ip is True
    assert plan.ansible_user == 'admin'
    assert plan.groups == ['web']


def test_users_with_keys_of_their_own_keep_them_and_user_data_wins():
    plans = guest_plans([
        {'name': 'a', 'kind': 'kvm', 'cloud_init': {'users': ['default', {'name': 'u1', 'ssh_authorized_keys': ['own']},
                                                              {'name': 'u2'}], 'ssh_authorized_keys': ['shared']}},
        {'name': 'b', 'kind': 'kvm', 'cloud_init': {'user_data': '#cloud-config\n{}\n', 'packages': ['vim']}},
    ])
    users = plans[0].seed['user_data']['users']
    assert users == ['default', {'name': 'u1', 'ssh_authorized_keys': ['own']},
                     {'name': 'u2', 'ssh_authorized_keys': ['shared']}]
    assert plans[1].seed['user_data'] == '#cloud-config\n{}\n'


def test_static_ip_writes_network_config_with_stable_macs():
    plans = guest_plans([{'name': 'db1', 'kind': 'kvm', 'networks': [
        {'network': 'default', 'ip': '192.168.122.50/24', 'gateway': '192.168.122.1', 'dns': ['192.168.122.1']},
        {'bridge': 'br0', 'mac': '52:54:00:aa:bb:cc'},
    ]}])
    plan = plans[0]
    mac = stable_mac('db1', 0)
    assert mac.startswith('52:54:00:') and mac == stable_mac('db1', 0) != stable_mac('db1', 1)
    assert plan.domain['interfaces'][0]['mac'] == mac
    assert plan.domain['interfaces'][1]['mac'] == '52:54:00:aa:bb:cc'
    assert plan.seed['network_config'] == {'version': 2, 'ethernets': {
        'nic0': {'match': {'macaddress': mac}, 'addresses': ['192.168.122.50/24'],
                 'gateway4': '192.168.122.1',
                 'nameservers': {'addresses': ['192.168.122.1']}},
        'nic1': {'match': {'macaddress': '52:54:00:aa:bb:cc'}, 'dhcp4': True}}}
    # a static guest answers on its configured address: no lease to wait for by default
    assert plan.static_ips == ['192.168.122.50'] and plan.wait_for_ip is False


def test_an_ipv6_gateway_is_gateway6():
    plan = guest_plans([{'name': 'v6', 'kind': 'kvm', 'networks': [
        {'network': 'default', 'ip': 'fd00:150::20/64', 'gateway': 'fd00:150::1'}]}])[0]
    eth = plan.seed['network_config']['ethernets']['nic0']
    assert eth['addresses'] == ['fd00:150::20/64'] and eth['gateway6'] == 'fd00:150::1' and 'gateway4' not in eth


def test_dhcp_reservation_needs_no_cloud_init_and_waits_for_the_lease():
    plans = guest_plans([{'name': 'tiny1', 'kind': 'kvm', 'cloud_init': False, 'networks': [
        {'network': 'lab', 'ip': '192.168.150.30', 'address_mode': 'dhcp_reservation'},
        {'network': 'lab2', 'mac': '52:54:00:AA:BB:CC', 'ip': '10.9.0.7/24', 'address_mode': 'dhcp_reservation'},
    ]}])
    plan = plans[0]
    assert plan.seed is None and plan.static_ips == []
    assert [(r.where, r.network, r.mac, r.ip, r.prefix, r.hostname) for r in plan.reservations] == [
        ('networks[0]', 'lab', stable_mac('tiny1', 0), '192.168.150.30', None, 'tiny1'),
        ('networks[1]', 'lab2', '52:54:00:aa:bb:cc', '10.9.0.7', 24, 'tiny1')]
    # the domain's NIC carries the MAC the reservation is for
    nic = plan.domain['interfaces'][0]
    assert (nic['network'], nic['mac']) == ('lab', stable_mac('tiny1', 0))
    # the address comes from a DHCP lease: waited for by default, like any DHCP guest
    assert plan.wait_for_ip is True


def test_a_reservation_nic_beside_a_network_config_one_runs_dhcp():
    plans = guest_plans([{'name': 'web_1', 'kind': 'kvm', 'networks': [
        {'network': 'default', 'ip': '192.168.122.50/24'},
        {'network': 'lab', 'ip': '192.168.150.31', 'address_mode': 'dhcp_reservation'},
    ]}])
    plan = plans[0]
    assert plan.seed['network_config']['ethernets']['nic1'] == {
        'match': {'macaddress': stable_mac('web_1', 1)}, 'dhcp4': True}
    assert plan.static_ips == ['192.168.122.50'] and plan.wait_for_ip is False
    # web_1 is no valid host name: the reservation carries none
    assert plan.reservations[0].hostname is None


def test_a_seed_beside_reservations_runs_dhcp_on_every_reserved_nic():
    """cloud-init's fallback (no network-config) runs DHCP on the first NIC only: the seed of a
    guest with reservations names every NIC by MAC, so the second one asks for its address too."""
    plan = guest_plans([{'name': 'two', 'kind': 'kvm', 'cloud_init': {'users': [{'name': 'ops'}]}, 'networks': [
        {'network': 'lab', 'ip': '192.168.150.32', 'address_mode': 'dhcp_reservation'},
        {'network': 'lab2', 'ip': '10.9.0.8', 'address_mode': 'dhcp_reservation'},
        {'network': 'default'},
    ]}])[0]
    assert plan.seed['network_config'] == {'version': 2, 'ethernets': {
        'nic%d' % i: {'match': {'macaddress': stable_mac('two', i)}, 'dhcp4': True} for i in range(3)}}
    assert [nic['mac'] for nic in plan.domain['interfaces']] == [stable_mac('two', i) for i in range(3)]
    # without cloud_init there is no seed, and nothing to write
    assert guest_plans([{'name': 'two', 'kind': 'kvm', 'networks': [
        {'network': 'lab', 'ip': '192.168.150.32', 'address_mode': 'dhcp_reservation'}]}])[0].seed is None


def test_absent_removes_the_reservations_the_entry_names():
    plan = guest_plans([{'name': 'tiny1', 'kind': 'kvm', 'state': 'absent', 'networks': [
        {'network': 'default'},
        {'network': 'lab', 'ip': 'not checked', 'address_mode': 'dhcp_reservation'},
        {'network': 'lab', 'mac': '52:54:00:AA:BB:CC', 'ip': '10.9.0.7', 'address_mode': 'dhcp_reservation'},
    ]}])[0]
    assert [(r.network, r.mac) for r in plan.reservations] == [
        ('lab', stable_mac('tiny1', 1)), ('lab', '52:54:00:aa:bb:cc')]


def test_two_guests_cannot_reserve_one_address_or_host_name_of_a_network():
    def guest(name, ip, network='default'):
        return {'name': name, 'kind': 'kvm', 'cloud_init': False,
                'networks': [{'network': network, 'ip': ip, 'address_mode': 'dhcp_reservation'}]}
    lines = errors_of([guest('a', '192.168.122.50'), guest('b', '192.168.122.50/24'), guest('c', '192.168.122.51'),
                       guest('d', '192.168.122.50')])
    assert lines == [
        'guests[1] (b): networks[0]: 192.168.122.50 is also reserved by guests[0] (a) networks[0] on network default',
        'guests[3] (d): networks[0]: 192.168.122.50 is also reserved by guests[0] (a) networks[0] on network default']
    # DNS names are case-blind: Web and web would be one dnsmasq host name
    assert errors_of([guest('web', '192.168.122.60'), guest('Web', '192.168.122.61')]) == [
        'guests[1] (Web): networks[0]: the host name Web is also reserved by guests[0] (web) networks[0] on network '
        'default (a DHCP host name names one MAC)']
    # one address on two networks, an absent guest's old entry: no clash
    guest_plans([guest('a', '192.168.122.50'), guest('b', '192.168.122.50', 'lab'),
                 dict(guest('c', '192.168.122.50'), state='absent')])


def test_a_mac_used_twice_in_a_fleet_is_refused_also_when_derived():
    # The KVM derivation hashes name and index without a separator (kept: existing guests keep
    # their MACs): web1's NIC 0 and web's NIC 10 derive one MAC.
    assert stable_mac('web1', 0) == stable_mac('web', 10)
    nets = [{'network': 'default'} for _i in range(10)] + [{'network': 'default', 'ip': '192.168.122.70/24'}]
    lines = errors_of([{'name': 'web1', 'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '192.168.122.71/24'}]},
                       {'name': 'web', 'kind': 'kvm', 'networks': nets},
                       {'name': 'x', 'kind': 'kvm', 'networks': [{'network': 'default', 'mac': stable_mac('web1', 0)}]}])
    mac = stable_mac('web1', 0)
    assert lines == [
        'guests[1] (web): networks[10]: MAC %s is also used by guests[0] (web1) networks[0]; set networks[].mac '
        'to tell them apart' % mac,
        'guests[2] (x): networks[0]: MAC %s is also used by guests[0] (web1) networks[0]; set networks[].mac '
        'to tell them apart' % mac]


def test_raw_network_config_wins_over_the_derived_one():
    plans = guest_plans([{'name': 'a', 'kind': 'kvm', 'cloud_init': {'network_config': 'version: 2\n'},
                          'networks': [{'network': 'default', 'ip': '10.0.0.5/24'}]}])
    assert plans[0].seed['network_config'] == 'version: 2\n'


def test_no_cloud_init_means_no_seed_and_dhcp_nics_keep_libvirts_mac():
    plans = guest_plans([{'name': 'a', 'kind': 'kvm', 'networks': [{'network': 'default'}]}])
    assert plans[0].seed is None
    assert plans[0].domain['disks'] == []
    assert plans[0].domain['interfaces'][0]['mac'] is None


def test_extra_disks_and_the_domain_escape_hatch():
    plans = guest_plans([{'name': 'a', 'kind': 'kvm', 'image': {'name': 'base.qcow2'},
                          'disks': [{'name': 'data', 'size': '20GiB'},
                                    {'name': 'log', 'size': 1, 'format': 'raw', 'bus': 'sata'}],
                          'domain': {'guest_agent': True, 'disks': [{'path': '/srv/x.img'}],
                                     'xml_overrides': [{'xpath': '/domain/on_crash', 'value': 'restart'}]}}])
    plan = plans[0]
    assert plan.base.params is None  # an existing volume: nothing to import
    assert [d['name'] for d in plan.disks] == ['a-data.qcow2', 'a-log.raw']
    assert plan.disks[1]['format'] == 'raw' and plan.disks[1]['capacity'] == 1
    vols = [d.get('volume') or d.get('path') for d in plan.domain['disks']]
    assert vols == ['a.qcow2', 'a-data.qcow2', 'a-log.raw', '/srv/x.img']
    assert plan.domain['disks'][2]['bus'] == 'sata'
    assert plan.domain['guest_agent'] is True
    assert plan.volume_names() == ['a.qcow2', 'a-data.qcow2', 'a-log.raw']


def test_absent_needs_none_of_the_settings():
    plans, bases = plans_of([{'name': 'a', 'kind': 'kvm', 'state': 'absent', 'remove_storage': True,
                              'image': dict(IMAGE, checksum='sha256:not-hex'), 'memory': 'lots',
                              'disks': [{'name': 'd', 'size': 1}]}])
    plan = plans[0]
    assert plan.domain['state'] == 'absent' and plan.domain['disks'] is None
    assert plan.remove_storage is True
    assert plan.volume_names() == ['a.qcow2', 'a-d.qcow2']
    assert bases == {}  # nothing is imported for a guest that goes away


def test_states_map_to_the_managers_states():
    plans = guest_plans([{'name': 'k%s' % s, 'kind': 'kvm', 'state': s} for s in spec.STATES]
                        + [{'name': 'c%s' % s, 'kind': 'lxc', 'state': s} for s in spec.STATES])
    assert [p.domain['state'] for p in plans[:4]] == ['running', 'shutdown', 'present', 'absent']
    assert [p.container['state'] for p in plans[4:]] == ['started', 'stopped', 'present', 'absent']
    assert [p.wait_for_ip for p in plans] == [True, False, False, False] * 2


def test_base_images_are_shared_by_name():
    plans, bases = plans_of([{'name': 'a', 'kind': 'kvm', 'image': IMAGE},
                             {'name': 'b', 'kind': 'kvm', 'image': IMAGE},
                             {'name': 'c', 'kind': 'kvm', 'image': dict(IMAGE, name='other.qcow2')}])
    assert sorted(bases) == ['debian-12.qcow2', 'other.qcow2']
    assert [p.name for p in bases['debian-12.qcow2'].guests] == ['a', 'b']
    assert plans[0].base is plans[1].base


def test_image_from_a_local_path_and_defaults_per_kind():
    plans, bases = plans_of([{'name': 'a', 'kind': 'kvm'}, {'name': 'c', 'kind': 'lxc'}],
                            defaults={'kvm': {'image': {'path': '/srv/img/tiny.qcow2', 'checksum': 'sha256:' + 'b' * 64},
                                              'memory': 256},
                                      'lxc': {'limits': {'cpus': 1}}})
    assert bases['tiny.qcow2'].params['import_from'] == '/srv/img/tiny.qcow2'
    assert plans[0].domain['memory'] == 256
    assert plans[1].container['limits']['cpus'] == 1.0 or plans[1].container['limits']['cpus'] == 1


# ------------------------------------------------------------------ LXC translation

def test_lxc_guest_becomes_lxc_container_params():
    plans = guest_plans([{'name': 'c1', 'kind': 'lxc', 'autostart': True, 'config': {'lxc.tty.max': 2},
                          'container': {'start_timeout': 60}, 'host_vars': {'role': 'cache'}}],
                        lxc_path='/srv/lxc', restart_policy='if_needed')
    c = plans[0].container
    assert c['name'] == 'c1' and c['state'] == 'started' and c['lxc_path'] == '/srv/lxc'
    assert c['template'] == 'busybox' and c['backing_store'] == 'dir'  # lxc_container's defaults
    assert c['autostart'] is True and c['config'] == {'lxc.tty.max': 2}
    assert c['start_timeout'] == 60 and c['restart_policy'] == 'if_needed' and c['wait_for_ip'] is False
    assert plans[0].host_vars == {'role': 'cache'}
    assert plans[0].wait_for_ip is True


def test_lxc_mounts_pass_through_with_create_as_written():
    mounts = [{'source': '/srv/share', 'target': '/mnt/share'},
              {'source': '/etc/app.conf', 'target': '/etc/app.conf', 'readonly': True, 'create': False},
              {'source': '/srv/share', 'target': '/mnt/d', 'create': 'dir'}]
    plans = guest_plans([{'name': 'c1', 'kind': 'lxc', 'mounts': mounts}])
    assert [m.get('create') for m in plans[0].container['mounts']] == [None, False, 'dir']
    assert plans[0].container['mounts'][1]['readonly'] is True


def test_lxc_mount_errors_are_the_guests_one_line():
    lines = errors_of([{'name': 'c1', 'kind': 'lxc', 'mounts': [{'source': '/srv/missing', 'target': '/mnt/x'}]},
                       {'name': 'c2', 'kind': 'lxc', 'mounts': [{'source': '/srv/share', 'target': '/x',
                                                                 'create': 'folder'}]}])
    assert lines[0].startswith('guests[0] (c1): mounts[0].source: /srv/missing does not exist on the LXC host')
    assert lines[1].startswith("guests[1] (c2): mounts[0].create: 'folder' must be dir, file, true")


def test_groups_are_stored_on_the_guest_where_guest_inventory_reads_them():
    plans = guest_plans([
        {'name': 'v1', 'kind': 'kvm', 'image': {'name': 'base.qcow2'}, 'groups': ['web', 'eu'],
         'metadata': {'owner': 'ops'}},
        {'name': 'v2', 'kind': 'kvm', 'image': {'name': 'base.qcow2'}, 'groups': ['web'],
         'metadata': {'groups': ['mine']}},
        {'name': 'v3', 'kind': 'kvm', 'image': {'name': 'base.qcow2'}},
        {'name': 'c1', 'kind': 'lxc', 'groups': ['cache']},
        {'name': 'c2', 'kind': 'lxc'},
    ])
    by = {p.name: p for p in plans}
    assert by['v1'].domain['metadata'] == {'groups': ['web', 'eu'], 'owner': 'ops'}
    assert by['v2'].domain['metadata'] == {'groups': ['mine']}  # the user's own metadata wins
    assert by['v3'].domain.get('metadata') is None  # nothing set: the guest's metadata is left alone
    assert by['c1'].container['groups'] == ['cache']
    assert by['c2'].container.get('groups') is None


# ------------------------------------------------------------------ errors

def test_every_bad_guest_gets_one_line_and_good_ones_none():
    lines = errors_of([
        {'name': 'ok1', 'kind': 'kvm'},
        {'name': 'web1', 'kind': 'kvm', 'memory': 'lots'},
        {'name': 'c1', 'kind': 'lxc', 'colour': 'red'},
        {'name': 'ip', 'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.1.2.300/24'}]},
        {'name': 'web1', 'kind': 'lxc'},
        {'name': 'vm', 'kind': 'vm'},
        {'name': 'd', 'kind': 'kvm', 'disks': [{'name': 'x', 'size': 'big'}]},
        {'name': 'ok2', 'kind': 'lxc'},
    ])
    assert lines == [
        "guests[1] (web1): memory: cannot read 'lots' as a size; use an integer (MiB) or a string such as "
        "512MiB or 2GiB",
        'guests[2] (c1): unknown key colour (valid: autostart, backing_store, clone_from, config, container, '
        'groups, host_vars, kind, limits, mounts, name, networks, remove_storage, state, template, '
        'template_options, unprivileged, wait_for_ip)',
        "guests[3] (ip): networks[0].ip: '10.1.2.300/24' is not an address with prefix such as 192.168.122.50/24",
        'guests[4] (web1): name: web1 is already used by guests[1]',
        "guests[5] (vm): kind: must be kvm or lxc, got 'vm'",
        "guests[6] (d): disks[0].size: cannot read 'big' as a size; use an integer (GiB) or a string such as "
        "512MiB or 2GiB",
    ]


@pytest.mark.parametrize('guest, message', [
    ({'kind': 'kvm', 'vcpus': 0}, 'vcpus: must be at least 1, got 0'),
    ({'kind': 'kvm', 'vcpus': 'two'}, "argument 'vcpus' is of type"),
    ({'kind': 'kvm', 'disk_size': '1GiB'}, 'disk_size: needs image'),
    ({'kind': 'kvm', 'image': {'url': 'https://x/y.qcow2'}}, 'image: default/y.qcow2: checksum is required'),
    ({'kind': 'kvm', 'image': {'url': 'https://x/y.qcow2', 'path': '/y.qcow2'}}, 'mutually exclusive'),
    ({'kind': 'kvm', 'image': {'name': 'b'}, 'disk_size': 'huge'}, "disk_size: cannot read 'huge' as a size"),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.5'}]}, 'needs a prefix length'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.5/24', 'gateway': 'gw'}]},
     "networks[0].gateway: 'gw' is not an IP address"),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'dns': ['1.1.1.1']}]}, 'gateway and dns need ip'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.5/24'}], 'cloud_init': False},
     'networks[].ip needs cloud_init'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'bridge': 'br0'}]}, 'mutually exclusive'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'address_mode': 'dhcp_reservation'}]},
     'networks[0]: address_mode dhcp_reservation needs ip'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.5', 'address_mode': 'static'}]},
     'value of address_mode must be one of: cloud_init, dhcp_reservation'),
    ({'kind': 'kvm', 'networks': [{'bridge': 'br0', 'ip': '10.0.0.5', 'address_mode': 'dhcp_reservation'}]},
     'networks[0]: address_mode dhcp_reservation needs network (a libvirt network whose DHCP server hands out '
     'the address), not bridge'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.5', 'gateway': '10.0.0.1',
                                   'address_mode': 'dhcp_reservation'}]},
     "networks[0]: gateway cannot be set with address_mode dhcp_reservation (the network's DHCP server gives "
     "the gateway and DNS)"),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': 'fd00::5/64', 'address_mode': 'dhcp_reservation'}]},
     'networks[0].ip: fd00::5/64: address_mode dhcp_reservation takes IPv4 addresses'),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.300', 'address_mode': 'dhcp_reservation'}]},
     "networks[0].ip: '10.0.0.300' is not an IPv4 address such as 192.168.122.50"),
    ({'kind': 'kvm', 'networks': [{'network': 'default', 'ip': '10.0.0.5', 'address_mode': 'dhcp_reservation'},
                                  {'network': 'default', 'ip': '10.0.0.5', 'address_mode': 'dhcp_reservation'}]},
     'networks[1]: 10.0.0.5 is also reserved by networks[0]'),
    ({'kind': 'kvm', 'cloud_init': {'colour': 1}}, 'cloud_init: unknown key colour'),
    ({'kind': 'kvm', 'cloud_init': 'yes please'}, 'cloud_init: must be false or a dict'),
    ({'kind': 'kvm', 'cloud_init': {'user_data': 'no header'}}, 'cloud_init: user_data: text must start'),
    ({'kind': 'kvm', 'disks': [{'name': 'a', 'size': 1}, {'name': 'a', 'size': 1}]}, 'two disks are named a'),
    ({'kind': 'kvm', 'disks': [{'name': 'a/b', 'size': 1}]}, "disks[0].name: 'a/b' must use"),
    ({'kind': 'kvm', 'domain': {'state': 'paused'}}, 'domain: state cannot be set in the escape hatch'),
    ({'kind': 'kvm', 'domain': {'cpu': {'mode': 'bogus'}}}, 'value of mode must be one of: host-passthrough'),
    ({'kind': 'kvm', 'boot': {'cmdline': 'quiet'}}, 'boot.cmdline needs boot.kernel'),
    ({'kind': 'lxc', 'limits': {'cpu_shares': 1}}, 'limits.cpu_shares: must be between 2 and 262144'),
    ({'kind': 'lxc', 'container': {'lxc_path': '/x'}}, 'container: lxc_path cannot be set'),
    ({'kind': 'lxc', 'template': 'a b'}, "template: 'a b' is not a template name"),
])
def test_bad_keys_are_refused_with_the_single_modules_message(guest, message):
    lines = errors_of([dict(guest, name='g')])
    assert len(lines) == 1
    assert lines[0].startswith('guests[0] (g): ')
    assert message in lines[0], lines[0]


def test_bad_lxc_name_and_kvm_name():
    lines = errors_of([{'name': '-bad', 'kind': 'lxc'}, {'name': 'a b', 'kind': 'kvm'}])
    assert 'is not a valid container name' in lines[0]
    assert 'is not a valid guest name' in lines[1]


def test_one_base_name_with_two_sources_is_refused():
    lines = errors_of([{'name': 'a', 'kind': 'kvm', 'image': IMAGE},
                       {'name': 'b', 'kind': 'kvm', 'image': dict(IMAGE, checksum='sha256:' + 'c' * 64)}])
    assert lines == ['guests[1] (b): image: the base volume debian-12.qcow2 is also used by guests[0] with another '
                     'source or checksum; give this image another name']


def test_only_limits_the_run_and_names_must_exist():
    plans, bases = plans_of([{'name': 'a', 'kind': 'kvm', 'image': IMAGE}, {'name': 'b', 'kind': 'lxc'}],
                            only=['b'])
    assert [p.name for p in plans] == ['b'] and bases == {}
    assert errors_of([{'name': 'a', 'kind': 'lxc'}], only=['a', 'zz']) == ['only: zz is not in guests']


def test_fleet_options_are_checked():
    assert errors_of([{'name': 'a', 'kind': 'lxc'}], parallel=0) == ['parallel: must be at least 1, got 0']


def test_limits_read_the_cgroup_layout_only_when_needed():
    calls = []

    def fake_layout():
        calls.append(1)
        raise VirtkitError('no cgroups here')

    with pytest.raises(FleetValidationError) as exc:
        validate_fleet(fleet([{'name': 'a', 'kind': 'lxc'}, {'name': 'b', 'kind': 'lxc', 'limits': {'pids': 10}}]),
                       layout=fake_layout)
    assert exc.value.lines == ['guests[1] (b): no cgroups here']
    assert calls == [1]


def test_the_validation_error_is_one_line_per_guest():
    err = FleetValidationError(['a', 'b'])
    assert err.message == 'a\nb' and err.lines == ['a', 'b']
