# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""networks -> lxc.net.N.* keys, and how they land in a real template's config."""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.plan import apply_desired, changed_keys
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import validate

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
HYBRID = cgroup.CgroupLayout(v1={'memory', 'cpu', 'cpuset', 'pids'}, v2_mount='/sys/fs/cgroup/unified')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


DEBIAN = fixture('debian.config')


def net_keys(*networks):
    spec = validate({'name': 'vk-a', 'networks': list(networks)}, HYBRID)
    return spec, {k: v for k, v in spec.keys.items() if k.startswith('lxc.net.')}


def net_lines(text):
    """The lxc.net.* entries of a config text, in file order."""
    return [(k, v) for k, v in LxcConfig.parse(text).entries() if k.startswith('lxc.net.')]


@pytest.mark.parametrize('network,expected', [
    ({'type': 'macvlan', 'link': 'eth0', 'macvlan_mode': 'bridge'},
     {'lxc.net.0.type': ['macvlan'], 'lxc.net.0.link': ['eth0'], 'lxc.net.0.flags': ['up'],
      'lxc.net.0.macvlan.mode': ['bridge']}),
    ({'type': 'macvlan', 'link': 'eth0'},
     {'lxc.net.0.type': ['macvlan'], 'lxc.net.0.link': ['eth0'], 'lxc.net.0.flags': ['up']}),
    ({'type': 'phys', 'link': 'dummy0', 'name': 'eth1'},
     {'lxc.net.0.type': ['phys'], 'lxc.net.0.link': ['dummy0'], 'lxc.net.0.flags': ['up'],
      'lxc.net.0.name': ['eth1']}),
    ({'type': 'none'}, {'lxc.net.0.type': ['none']}),
    ({'type': 'empty'}, {'lxc.net.0.type': ['empty']}),
    ({'link': 'lxcbr0', 'ipv6': ['FD00::0010/64', 'fd00:0:0:1::5/64'], 'ipv6_gateway': 'FD00::1'},
     {'lxc.net.0.type': ['veth'], 'lxc.net.0.link': ['lxcbr0'], 'lxc.net.0.flags': ['up'],
      'lxc.net.0.ipv6.address': ['fd00::10/64', 'fd00:0:0:1::5/64'], 'lxc.net.0.ipv6.gateway': ['fd00::1']}),
    ({'link': 'lxcbr0', 'ipv4': ['10.0.3.5/24'], 'ipv4_gateway': 'auto', 'ipv6_gateway': 'dev'},
     {'lxc.net.0.type': ['veth'], 'lxc.net.0.link': ['lxcbr0'], 'lxc.net.0.flags': ['up'],
      'lxc.net.0.ipv4.address': ['10.0.3.5/24 10.0.3.255'], 'lxc.net.0.ipv4.gateway': ['auto'],
      'lxc.net.0.ipv6.gateway': ['dev']}),
    ({'type': 'veth', 'link': 'br1', 'mtu': 1400, 'hwaddr': '00:16:3E:01:02:AB'},
     {'lxc.net.0.type': ['veth'], 'lxc.net.0.link': ['br1'], 'lxc.net.0.flags': ['up'],
      'lxc.net.0.mtu': ['1400'], 'lxc.net.0.hwaddr': ['00:16:3e:01:02:ab']}),
    ({'type': 'veth', 'hwaddr': '00:16:3e:xx:xx:xx'},
     {'lxc.net.0.type': ['veth'], 'lxc.net.0.flags': ['up'], 'lxc.net.0.hwaddr': ['00:16:3e:xx:xx:xx']}),
])
def test_one_network_renders_exactly_these_keys(network, expected):
    _spec, keys = net_keys(network)
    assert keys == expected
    # the type is the first key of the device (LXC wants it before the others)
    assert list(keys)[0] == 'lxc.net.0.type'


def test_several_networks_are_indexed_in_order():
    _spec, keys = net_keys({'link': 'lxcbr0', 'ipv4': ['10.0.3.5/24']},
                           {'type': 'macvlan', 'link': 'eth0', 'macvlan_mode': 'private', 'name': 'mv0'},
                           {'type': 'phys', 'link': 'dummy0'})
    assert keys['lxc.net.0.link'] == ['lxcbr0'] and keys['lxc.net.0.ipv4.address'] == ['10.0.3.5/24 10.0.3.255']
    assert keys['lxc.net.1.type'] == ['macvlan'] and keys['lxc.net.1.macvlan.mode'] == ['private']
    assert keys['lxc.net.1.name'] == ['mv0']
    assert keys['lxc.net.2.type'] == ['phys'] and keys['lxc.net.2.link'] == ['dummy0']
    assert not any(k.startswith('lxc.net.3') for k in keys)


def test_macvlan_on_debian_config_replaces_the_template_veth():
    spec, _keys = net_keys({'type': 'macvlan', 'link': 'eth0', 'macvlan_mode': 'bridge'})
    out = apply_desired(DEBIAN, spec)
    # the generated MAC (identity) stays; the veth link goes; everything else is untouched
    assert net_lines(out) == [('lxc.net.0.type', 'macvlan'), ('lxc.net.0.hwaddr', '00:16:3e:fc:49:b4'),
                              ('lxc.net.0.link', 'eth0'), ('lxc.net.0.flags', 'up'),
                              ('lxc.net.0.macvlan.mode', 'bridge')]
    assert changed_keys(DEBIAN, out) == ['lxc.net.0.link', 'lxc.net.0.macvlan.mode', 'lxc.net.0.type']
    assert apply_desired(out, spec) == out


def test_user_hwaddr_replaces_the_generated_one_in_place():
    spec, _keys = net_keys({'link': 'lxcbr0', 'hwaddr': '00:16:3E:00:00:01', 'mtu': 9000})
    out = apply_desired(DEBIAN, spec)
    assert ('lxc.net.0.hwaddr', '00:16:3e:00:00:01') in net_lines(out)
    assert out.count('lxc.net.0.hwaddr') == 1
    # in place: the line sits where the template's was
    assert out.index('lxc.net.0.hwaddr') < out.index('lxc.net.0.link')
    assert changed_keys(DEBIAN, out) == ['lxc.net.0.hwaddr', 'lxc.net.0.mtu']


@pytest.mark.parametrize('ntype', ['none', 'empty'])
def test_none_and_empty_drop_every_other_net_key(ntype):
    spec, _keys = net_keys({'type': ntype})
    out = apply_desired(DEBIAN, spec)
    assert net_lines(out) == [('lxc.net.0.type', ntype)]
    assert apply_desired(out, spec) == out


def test_ipv6_address_and_gateway_on_debian_config():
    spec, _keys = net_keys({'link': 'lxcbr0', 'ipv4': ['10.0.3.5/24'], 'ipv4_gateway': '10.0.3.1',
                            'ipv6': ['fd00::10/64'], 'ipv6_gateway': 'fd00::1'})
    out = apply_desired(DEBIAN, spec)
    conf = LxcConfig.parse(out)
    assert conf.get('lxc.net.0.ipv6.address') == ['fd00::10/64']
    assert conf.get('lxc.net.0.ipv6.gateway') == ['fd00::1']
    assert conf.get('lxc.net.0.ipv4.gateway') == ['10.0.3.1']
    assert conf.get('lxc.net.0.hwaddr') == ['00:16:3e:fc:49:b4']
    assert apply_desired(out, spec) == out
    # dropping the IPv6 part removes exactly its keys
    v4 = apply_desired(out, net_keys({'link': 'lxcbr0', 'ipv4': ['10.0.3.5/24'], 'ipv4_gateway': '10.0.3.1'})[0])
    assert changed_keys(out, v4) == ['lxc.net.0.ipv6.address', 'lxc.net.0.ipv6.gateway']


def test_fewer_networks_remove_the_surplus_devices():
    two = apply_desired(DEBIAN, net_keys({'link': 'lxcbr0'}, {'type': 'macvlan', 'link': 'eth0'})[0])
    assert LxcConfig.parse(two).get('lxc.net.1.type') == ['macvlan']
    one = apply_desired(two, net_keys({'link': 'lxcbr0'})[0])
    assert not any(k.startswith('lxc.net.1.') for k, _v in net_lines(one))
    assert one == apply_desired(DEBIAN, net_keys({'link': 'lxcbr0'})[0])


@pytest.mark.parametrize('address,rendered', [
    ('10.0.3.5/24', '10.0.3.5/24 10.0.3.255'),
    ('192.168.7.9/20', '192.168.7.9/20 192.168.15.255'),
    ('10.0.3.5/30', '10.0.3.5/30 10.0.3.7'),
    ('10.0.3.5/31', '10.0.3.5/31'),
    ('10.0.3.5/32', '10.0.3.5/32'),
])
def test_ipv4_addresses_carry_their_broadcast(address, rendered):
    # LXC 5.0 gives an address without one the broadcast 0.0.0.255 (for a /24)
    _spec, keys = net_keys({'link': 'lxcbr0', 'ipv4': [address]})
    assert keys['lxc.net.0.ipv4.address'] == [rendered]
