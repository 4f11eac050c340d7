#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_network
short_description: Define, edit and run libvirt virtual networks
version_added: 0.1.0
description:
  - Defines a libvirt network from structured options (NAT, routed, open, isolated, or an
    existing host bridge; IPv4 and IPv6 with DHCP ranges; static DHCP hosts; DNS hosts;
    domain name; MTU) and keeps it in the wanted state.
  - The options are merged onto the network's current persistent XML with lxml, so libvirt's
    UUID, generated bridge name and MAC address survive every edit. Only what you set is
    owned; an omitted option leaves the current value alone.
  - On a running network, DHCP host and DNS host entries are added, changed and removed live
    and persistently through libvirt's network update API, without restarting the network.
    Every other edit is written to the persistent config and reported in
    RV(pending_restart_fields) until the network is restarted.
  - Restarting a network detaches the NICs of the running guests that use it (libvirt deletes
    the bridge, and their tap devices stay unplugged until each NIC is re-plugged or the guest
    restarts). This module restarts a network only when O(restart_policy) allows it. With
    O(restart_policy=if_needed) it carries running guests' NICs over the restart, each moved
    (live only) onto a transient isolated holding network with no addresses, and moved back
    once the network runs again, so the guests keep their addresses and regain connectivity
    after a short interruption; their persistent config is not touched.
  - Check mode runs the same planning code as a real run and reports exactly its actions.
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
    support: full
    details: The diff shows the network's state, autostart and canonical persistent XML before and after.
  platform:
    platforms: posix
options:
  name:
    description: The network's name; its identity.
    type: str
    required: true
  state:
    description:
      - V(present) defines or updates the network and leaves it running or stopped as it is
        (a new network is defined, not started).
      - V(running) also starts it; V(stopped) also stops it.
      - V(absent) stops and undefines it. A network that does not exist is not an error.
    type: str
    choices: [present, running, stopped, absent]
    default: present
  forward_mode:
    description:
      - V(nat) (masquerade to the host's uplink), V(route) (routed, no NAT), V(open) (no
        firewall rules at all), V(isolated) (no forwarding; guests reach only each other and
        the host), or V(bridge) (guests are plugged into the existing host bridge O(bridge);
        no addresses, DHCP or DNS from libvirt).
      - Omitted on a new network, libvirt's default is isolated.
    type: str
    choices: [nat, route, open, isolated, bridge]
  forward_dev:
    description: The host interface that forwarded traffic leaves through (V(nat) and V(route) only).
    type: str
  bridge:
    description:
      - The name of the bridge libvirt creates for the network; omitted, libvirt picks a free
        V(virbrN) and keeps it.
      - With O(forward_mode=bridge), the existing host bridge to use.
      - A name already used by another host interface or libvirt network is refused.
    type: str
  domain:
    description: The DNS domain of the network's dnsmasq (guests' names resolve as V(name.domain)).
    type: str
  mtu:
    description: The MTU of the bridge.
    type: int
  ipv4:
    description: The network's IPv4 address and DHCP service.
    type: dict
    suboptions:
      address:
        description: The host's address on the network with its prefix, for example V(192.168.250.1/24).
        type: str
        required: true
      dhcp_ranges:
        description:
          - The DHCP ranges (inside the subnet, not containing O(ipv4.address)). Given, the list
            replaces the current ranges; omitted, they are left alone.
        type: list
        elements: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
      dhcp_hosts:
        description:
          - Static DHCP entries, matched by O(ipv4.dhcp_hosts[].mac). Listed entries are added or
            updated; entries with O(ipv4.dhcp_hosts[].state=absent) are removed; unlisted ones
            are kept unless O(hosts_exclusive=true). Applied live on a running network.
        type: list
        elements: dict
        suboptions:
          mac:
            description: The guest NIC's MAC address (ipv4 only).
            type: str
          id:
            description: The DHCPv6 client id (DUID) (ipv6 only).
            type: str
          name:
            description: The host name handed out (and the identity of an ipv6 entry without O(ipv4.dhcp_hosts[].id)).
            type: str
          ip:
            description: The fixed address; required unless the entry is V(absent).
            type: str
          state:
            description: Whether the entry exists.
            type: str
            choices: [present, absent]
            default: present
  ipv6:
    description: The network's IPv6 address and DHCPv6 service; same suboptions as O(ipv4).
    type: dict
    suboptions:
      address:
        description: The host's address with its prefix, for example V(fd00:250::1/64).
        type: str
        required: true
      dhcp_ranges:
        description: The DHCPv6 ranges; see O(ipv4.dhcp_ranges).
        type: list
        elements: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
      dhcp_hosts:
        description: Static DHCPv6 entries matched by O(ipv6.dhcp_hosts[].id), else O(ipv6.dhcp_hosts[].name).
        type: list
        elements: dict
        suboptions:
          mac:
            description: Not used for ipv6 (refused).
            type: str
          id:
            description: The DHCPv6 client id (DUID).
            type: str
          name:
            description: The host name.
            type: str
          ip:
            description: The fixed address.
            type: str
          state:
            description: Whether the entry exists.
            type: str
            choices: [present, absent]
            default: present
  dns_hosts:
    description:
      - DNS host entries served by the network's dnsmasq, matched by O(dns_hosts[].ip). Applied
        live on a running network. Unlisted entries are kept unless O(hosts_exclusive=true).
    type: list
    elements: dict
    suboptions:
      ip:
        description: The address the names resolve to.
        type: str
        required: true
      hostnames:
        description: The names (the entry's complete list).
        type: list
        elements: str
      state:
        description: Whether the entry exists.
        type: str
        choices: [present, absent]
        default: present
  hosts_exclusive:
    description: Remove DHCP host and DNS host entries of the given lists' sections that are not listed.
    type: bool
    default: false
  autostart:
    description: Whether libvirtd starts the network at boot; omitted, left alone.
    type: bool
  restart_policy:
    description:
      - V(never) only reports edits that wait for a restart (RV(pending_restart)).
      - V(if_unused) restarts the running network to apply them, but only when no running
        guest has a NIC on it; otherwise the guests are named in RV(restart_blocked_by).
      - V(if_needed) restarts it in any case and re-plugs the NICs of running guests (see above);
        their traffic stops for the second or two the restart takes.
    type: str
    choices: [never, if_unused, if_needed]
    default: never
seealso:
  - module: virtkit.guests.libvirt_network_info
  - module: virtkit.guests.libvirt_domain
'''

EXAMPLES = r'''
- name: A NAT network with DHCP and a fixed address for web1
  virtkit.guests.libvirt_network:
    name: lab
    state: running
    autostart: true
    forward_mode: nat
    bridge: virbr-lab
    domain: lab.internal
    ipv4:
      address: 192.168.250.1/24
      dhcp_ranges:
        - {start: 192.168.250.100, end: 192.168.250.199}
      dhcp_hosts:
        - {mac: "52:54:00:25:00:10", ip: 192.168.250.10, name: web1}
    dns_hosts:
      - {ip: 192.168.250.5, hostnames: [repo, repo.lab.internal]}

- name: Add a DHCP host to the running network (live, no restart)
  virtkit.guests.libvirt_network:
    name: lab
    ipv4:
      address: 192.168.250.1/24
      dhcp_hosts:
        - {mac: "52:54:00:25:00:11", ip: 192.168.250.11, name: web2}

- name: An isolated network with IPv6
  virtkit.guests.libvirt_network:
    name: backend
    state: running
    forward_mode: isolated
    ipv6:
      address: fd00:251::1/64
      dhcp_ranges:
        - {start: "fd00:251::100", end: "fd00:251::1ff"}

- name: Guests on an existing host bridge
  virtkit.guests.libvirt_network:
    name: lan
    state: running
    forward_mode: bridge
    bridge: br0

- name: Remove a network
  virtkit.guests.libvirt_network:
    name: lab
    state: absent
'''

RETURN = r'''
changed:
  description: Whether anything changed (or, in check mode, would change).
  returned: always
  type: bool
actions:
  description: What the run did (check mode, what it would do), in order.
  returned: always
  type: list
  elements: dict
  sample: [{action: update, summary: "add a DHCP host of running network lab (live and persistent)"}]
pending_restart:
  description: Whether the running network differs from the wanted config in a way only a restart applies.
  returned: always
  type: bool
pending_restart_fields:
  description: The options that wait for a restart.
  returned: always
  type: list
  elements: str
  sample: [domain, mtu]
restart_blocked_by:
  description: With O(restart_policy=if_unused), the running guests that kept the network from restarting.
  returned: when a restart was wanted but guests use the network
  type: list
  elements: str
diff:
  description: Before and after (state, autostart, canonical persistent XML).
  returned: when diff mode is on
  type: dict
network:
  description: The network after the run (empty after O(state=absent)); the keys of
    RV(virtkit.guests.libvirt_network_info#module:networks).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import run_manager
from ansible_collections.virtkit.guests.plugins.module_utils._network import ARGUMENT_SPEC, NetworkManager


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    run_manager(module, NetworkManager)


if __name__ == '__main__':
    main()
