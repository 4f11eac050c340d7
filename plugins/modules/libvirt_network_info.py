#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_network_info
short_description: Read libvirt virtual networks
version_added: 0.1.0
description:
  - Returns one network or all of them as structured facts (forward mode, bridge, addresses,
    DHCP ranges and hosts, DNS hosts, state, autostart), and optionally their DHCP leases.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.libvirt
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  action_group:
    support: full
    membership:
      - virtkit.guests.libvirt
  check_mode:
    support: full
  diff_mode:
    support: N/A
  platform:
    platforms: posix
options:
  name:
    description: The network to read; omitted, all networks. A missing network gives an empty list.
    type: str
  leases:
    description: Also return the DHCP leases of running networks.
    type: bool
    default: false
seealso:
  - module: virtkit.guests.libvirt_network
'''

EXAMPLES = r'''
- name: Read the lab network with its leases
  virtkit.guests.libvirt_network_info:
    name: lab
    leases: true
  register: lab

- name: Show the addresses handed out
  ansible.builtin.debug:
    msg: "{{ lab.networks[0].leases | map(attribute='ip') }}"
'''

RETURN = r'''
networks:
  description: The networks (one or none when O(name) is given), from the live XML of running ones.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The network's name.
      type: str
    uuid:
      description: The network's UUID.
      type: str
    state:
      description: V(running) or V(stopped).
      type: str
    active:
      description: Whether it runs.
      type: bool
    persistent:
      description: Whether it has a persistent config.
      type: bool
    autostart:
      description: Whether libvirtd starts it at boot.
      type: bool
    forward_mode:
      description: V(nat), V(route), V(open), V(isolated), V(bridge) and so on.
      type: str
    forward_dev:
      description: The forwarding device, if any.
      type: str
    bridge:
      description: The bridge name.
      type: str
    mac:
      description: The bridge's MAC address.
      type: str
    domain:
      description: The DNS domain.
      type: str
    mtu:
      description: The MTU, if set.
      type: int
    ipv4:
      description: C(address) (with prefix), C(dhcp_ranges) and C(dhcp_hosts), or null.
      type: dict
    ipv6:
      description: Same as RV(networks[].ipv4) for IPv6.
      type: dict
    dns_hosts:
      description: The DNS host entries, each with C(ip) and C(hostnames).
      type: list
      elements: dict
    leases:
      description: With O(leases=true), each lease's C(mac), C(ip), C(prefix), C(hostname) and C(expiry).
      type: list
      elements: dict
      returned: when O(leases=true)
  sample:
    - name: lab
      state: running
      forward_mode: nat
      bridge: virbr-lab
      ipv4: {address: 192.168.250.1/24, dhcp_ranges: [{start: 192.168.250.100, end: 192.168.250.199}],
             dhcp_hosts: [{mac: "52:54:00:25:00:10", ip: 192.168.250.10, name: web1}]}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, Connection, run_module
from ansible_collections.virtkit.guests.plugins.module_utils._network import NetworkManager


def main():
    module = AnsibleModule(
        argument_spec=dict(LIBVIRT_ARGS, name={'type': 'str'}, leases={'type': 'bool', 'default': False}),
        supports_check_mode=True,
    )

    def body():
        with Connection(module.params['uri'], readonly=not module.params['leases']) as conn:
            networks = NetworkManager(conn).describe(module.params['name'], leases=module.params['leases'])
        return {'changed': False, 'networks': networks}

    run_module(module, body)


if __name__ == '__main__':
    main()
