# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkManager against libvirt's embedded test driver (test:///default).

The test driver supports network define/start/stop/update, but its XMLDesc ignores
VIR_NETWORK_XML_INACTIVE (it refuses the flag), so a running network's pending persistent
config is not visible there; that path is covered by the integration target on libvirtd.
"""

from __future__ import annotations

import itertools

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils import _network as nw
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'
PREFIX = 'vk-unit-'
_counter = itertools.count()


@pytest.fixture
def conn():
    connection = Connection(URI)
    yield connection
    for net in connection.conn.listAllNetworks(0):
        if net.name().startswith(PREFIX):
            if net.isActive():
                net.destroy()
            if net.isPersistent():
                net.undefine()
    connection.close()


@pytest.fixture
def name():
    return '%s%d' % (PREFIX, next(_counter))


def run(conn, check=False, **options):
    options.setdefault('uri', URI)
    result = ArgumentSpecValidator(nw.ARGUMENT_SPEC).validate(options)
    assert not result.error_messages, result.error_messages
    return nw.NetworkManager(conn).run(result.validated_parameters, check_mode=check)


def base(name, **extra):
    options = dict(name=name, state='running', forward_mode='nat', bridge='vkub%s' % name[-3:].strip('-'),
                   domain='unit.test',
                   ipv4={'address': '10.231.0.1/24',
                         'dhcp_ranges': [{'start': '10.231.0.100', 'end': '10.231.0.200'}],
                         'dhcp_hosts': [{'mac': '52:54:00:23:00:10', 'ip': '10.231.0.10', 'name': 'a'}]})
    options.update(extra)
    return options


def test_create_check_apply_rerun(conn, name):
    checked = run(conn, check=True, **base(name))
    assert checked['changed'] and [a['action'] for a in checked['actions']] == ['define', 'start']
    assert conn.network(name) is None, 'check mode must not define anything'
    applied = run(conn, **base(name))
    assert applied['changed'] and applied['actions'] == checked['actions']
    net = applied['network']
    assert net['state'] == 'running' and net['forward_mode'] == 'nat' and net['domain'] == 'unit.test'
    assert net['ipv4']['dhcp_hosts'] == [{'mac': '52:54:00:23:00:10', 'name': 'a', 'ip': '10.231.0.10'}]
    uuid = net['uuid']
    again = run(conn, **base(name))
    assert not again['changed'] and again['actions'] == [] and not again['pending_restart']
    assert not run(conn, check=True, **base(name))['changed']
    assert again['network']['uuid'] == uuid


def test_live_dhcp_and_dns_hosts(conn, name):
    run(conn, **base(name))
    extra = base(name, ipv4={'address': '10.231.0.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:23:00:11', 'ip': '10.231.0.11', 'name': 'b'},
        {'mac': '52:54:00:23:00:10', 'ip': '10.231.0.12'}]},
        dns_hosts=[{'ip': '10.231.0.5', 'hostnames': ['repo']}])
    checked = run(conn, check=True, **extra)
    assert [a['action'] for a in checked['actions']][:3] == ['update', 'update', 'update']
    result = run(conn, **extra)
    assert result['changed'] and not result['pending_restart']
    assert conn.network(name).isActive()
    hosts = {h['mac']: h['ip'] for h in result['network']['ipv4']['dhcp_hosts']}
    assert hosts == {'52:54:00:23:00:10': '10.231.0.12', '52:54:00:23:00:11': '10.231.0.11'}
    assert result['network']['dns_hosts'] == [{'ip': '10.231.0.5', 'hostnames': ['repo']}]
    assert not run(conn, **extra)['changed']
    removed = run(conn, name=name, hosts_exclusive=True, ipv4={'address': '10.231.0.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:23:00:11', 'ip': '10.231.0.11', 'name': 'b'}]}, dns_hosts=[])
    assert removed['changed']
    assert [h['mac'] for h in removed['network']['ipv4']['dhcp_hosts']] == ['52:54:00:23:00:11']
    assert removed['network']['dns_hosts'] == []


def test_edit_stopped_network_keeps_identity(conn, name):
    run(conn, **base(name, state='stopped'))
    before = nw.NetworkManager(conn).describe(name)[0]
    result = run(conn, name=name, mtu=1400, forward_mode='route', autostart=True)
    assert result['changed'] and not result['pending_restart']
    after = result['network']
    assert after['uuid'] == before['uuid'] and after['bridge'] == before['bridge']
    assert after['mtu'] == 1400 and after['forward_mode'] == 'route' and after['autostart'] is True
    assert after['state'] == 'stopped'
    assert not run(conn, name=name, mtu=1400, forward_mode='route', autostart=True)['changed']


def test_states_and_absent(conn, name):
    run(conn, **base(name, state='present'))
    assert not conn.network(name).isActive()
    assert run(conn, name=name, state='running')['network']['active']
    assert not run(conn, name=name, state='stopped')['network']['active']
    result = run(conn, name=name, state='absent')
    assert result['changed'] and result['network'] == {}
    assert conn.network(name) is None
    assert not run(conn, name=name, state='absent')['changed']


def test_isolated_ipv6(conn, name):
    options = dict(name=name, state='running', forward_mode='isolated', bridge='vkub6',
                   ipv6={'address': 'fd00:231::1/64', 'dhcp_ranges': [{'start': 'fd00:231::100', 'end': 'fd00:231::1ff'}],
                         'dhcp_hosts': [{'name': 'six', 'ip': 'fd00:231::10'}]})
    result = run(conn, **options)
    assert result['network']['forward_mode'] == 'isolated'
    assert result['network']['ipv6']['dhcp_hosts'] == [{'name': 'six', 'ip': 'fd00:231::10'}]
    assert not run(conn, **options)['changed']


@pytest.mark.parametrize('options, message', [
    ({'bridge': 'virbr0'}, 'bridge virbr0 is already used by libvirt network default'),
    ({'bridge': 'lo'}, 'bridge lo clashes with an existing host interface'),
    ({'ipv4': {'address': '192.168.122.50/24'}}, 'subnet 192.168.122.0/24 overlaps 192.168.122.0/24 of libvirt '
                                                 'network default'),
    ({'forward_mode': 'bridge', 'bridge': 'vk-no-such-br'}, 'host bridge vk-no-such-br does not exist'),
])
def test_preflight_errors_change_nothing(conn, name, options, message):
    with pytest.raises(VirtkitError) as err:
        run(conn, name=name, state='running', **options)
    assert message in str(err.value) and str(err.value).startswith(name + ': ')
    assert conn.network(name) is None


def test_info_describe(conn, name):
    run(conn, **base(name))
    manager = nw.NetworkManager(conn)
    names = [n['name'] for n in manager.describe()]
    assert name in names and 'default' in names
    facts = manager.describe(name, leases=True)[0]
    assert facts['leases'] == [] and facts['active'] and facts['persistent']
    assert manager.describe('vk-unit-missing') == []


def test_persistent_edit_on_running_network_is_pending(conn, name):
    # (The test driver loses a running network's new persistent config when it stops, so
    # the restart itself is covered by the libvirt_network integration target.)
    run(conn, **base(name))
    pending = run(conn, name=name, mtu=1400)
    assert pending['changed'] and [a['action'] for a in pending['actions']] == ['define']
    assert pending['pending_restart'] and pending['pending_restart_fields'] == ['mtu']
    assert pending['network']['mtu'] is None, 'the running network keeps its MTU until restarted'
    assert pending['network']['state'] == 'running'


# ------------------------------------------------------------------ DHCP reservations (guest_fleet)

MAC = '52:54:00:23:00:20'


def test_reserve_check_apply_rerun_and_remove(conn, name):
    run(conn, **base(name))
    manager = nw.NetworkManager(conn)
    checked = manager.reserve(name, MAC.upper(), '10.231.0.20', 24, 'web1', check_mode=True)
    assert checked['changed']
    # live, no restart (the test driver cannot read the inactive XML of a running network,
    # so the persistent config is written by a define; libvirtd takes one LIVE|CONFIG update)
    assert [a['summary'] for a in checked['actions']] == [
        'add a DHCP host of running network %s (live)' % name,
        'update the persistent config of network %s: dhcp_hosts' % name]
    hosts = nw.NetworkManager(conn).describe(name)[0]['ipv4']['dhcp_hosts']
    assert MAC not in [h['mac'] for h in hosts], 'check mode must not add the host'
    applied = nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.20', 24, 'web1')
    assert applied['changed'] and applied['actions'] == checked['actions'] and not applied['pending_restart']
    assert conn.network(name).isActive()
    assert {'mac': MAC, 'name': 'web1', 'ip': '10.231.0.20'} in applied['network']['ipv4']['dhcp_hosts']
    assert not nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.20', 24, 'web1')['changed']
    assert not nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.20', None, 'web1', check_mode=True)['changed']
    # a new address for the same MAC is a modification, still live
    moved = nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.21', None, 'web1')
    assert [a['summary'] for a in moved['actions']][0] == 'modify a DHCP host of running network %s (live)' % name
    assert [a['action'] for a in moved['actions']] == ['update', 'define']
    gone = nw.NetworkManager(conn).reserve(name, MAC, None, state='absent')
    assert gone['changed'] and MAC not in [h['mac'] for h in gone['network']['ipv4']['dhcp_hosts']]
    assert [h['mac'] for h in gone['network']['ipv4']['dhcp_hosts']] == ['52:54:00:23:00:10']
    assert not nw.NetworkManager(conn).reserve(name, MAC, None, state='absent')['changed']


def test_reserve_on_a_missing_network(conn, name):
    with pytest.raises(VirtkitError) as exc:
        nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.20')
    assert str(exc.value).startswith('network %s does not exist' % name)
    assert not nw.NetworkManager(conn).reserve(name, MAC, None, state='absent')['changed']


@pytest.mark.parametrize('ip, prefix, hostname, message', [
    ('10.231.0.10', None, None, '10.231.0.10 is already reserved for 52:54:00:23:00:10 on network {name}'),
    ('10.231.0.30', None, 'a', 'the host name a is already reserved for 52:54:00:23:00:10 (10.231.0.10) '
                               'on network {name}'),
    ('10.232.0.30', None, None, '10.232.0.30 is outside the subnet 10.231.0.0/24 of network {name} '
                                '(reservations go into its first IPv4 subnet)'),
    ('10.231.0.30', 16, None, '10.231.0.30/16 does not match the subnet 10.231.0.0/24 of network {name}'),
    ('10.231.0.1', None, None, "10.231.0.1 is the host's own address on network {name}"),
    ('10.231.0.255', None, None, '10.231.0.255 is the network or broadcast address of 10.231.0.0/24 '
                                 '(network {name})'),
])
def test_reserve_refusals_change_nothing(conn, name, ip, prefix, hostname, message):
    run(conn, **base(name))
    before = conn.network(name).XMLDesc(0)
    with pytest.raises(VirtkitError) as exc:
        nw.NetworkManager(conn).reserve(name, MAC, ip, prefix, hostname)
    assert str(exc.value) == message.format(name=name)
    assert conn.network(name).XMLDesc(0) == before


def test_reserve_needs_a_dhcp_range(conn, name):
    run(conn, **base(name, ipv4={'address': '10.231.0.1/24'}))
    with pytest.raises(VirtkitError) as exc:
        nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.20')
    assert str(exc.value) == ('network %s has no DHCP range in 10.231.0.0/24, so no DHCP server hands out the '
                              'reservation (add ipv4.dhcp_ranges with libvirt_network, or use a network-config '
                              'address)' % name)


def test_reserve_refuses_an_address_leased_to_another_mac(conn, name, monkeypatch):
    run(conn, **base(name))
    manager = nw.NetworkManager(conn)
    monkeypatch.setattr(manager, 'leases', lambda network: [
        {'mac': '52:54:00:99:99:99', 'ip': '10.231.0.150'}, {'mac': MAC, 'ip': '10.231.0.151'}])
    with pytest.raises(VirtkitError) as exc:
        manager.reserve(name, MAC, '10.231.0.150')
    assert str(exc.value) == ('10.231.0.150 is leased to 52:54:00:99:99:99 on network %s; choose another address '
                              'or reserve it once that lease has ended' % name)
    # the guest's own lease is no conflict
    assert manager.reserve(name, MAC, '10.231.0.151', check_mode=True)['changed']


def test_reserve_on_a_stopped_network_goes_into_its_config(conn, name):
    run(conn, **base(name, state='stopped'))
    result = nw.NetworkManager(conn).reserve(name, MAC, '10.231.0.20')
    assert [a['action'] for a in result['actions']] == ['define']
    assert not conn.network(name).isActive()
    assert {'mac': MAC, 'ip': '10.231.0.20'} in result['network']['ipv4']['dhcp_hosts']
