#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_domain_info
short_description: Read KVM/QEMU guests from libvirt
version_added: 0.1.0
description:
  - Returns one guest, or all guests of a libvirt connection, with their state and the
    facts read from their XML (memory, vCPUs, disks, NICs with MACs, metadata) and their
    current addresses.
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
    description: One guest's name; all guests when omitted.
    type: str
  ip_sources:
    description:
      - Where addresses of running guests come from, in order of preference.
      - On a local C(qemu:///system) or C(qemu:///session) connection a DHCP lease that a
        booted guest took before its current boot (a stale lease of the same MAC) is left out.
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent]
seealso:
  - module: virtkit.guests.libvirt_domain
'''

EXAMPLES = r'''
- name: Read one guest
  virtkit.guests.libvirt_domain_info:
    name: web1
  register: web1

- name: Every guest with an address
  virtkit.guests.libvirt_domain_info:
  register: all_guests

- name: Print name and address of running guests
  ansible.builtin.debug:
    msg: "{{ item.name }} {{ item.ip }}"
  loop: "{{ all_guests.domains | selectattr('state', 'equalto', 'running') }}"
'''

RETURN = r'''
domains:
  description:
    - The guests (one or none when O(name) is given), each with the same keys as the
      RV(virtkit.guests.libvirt_domain#module:domain) that M(virtkit.guests.libvirt_domain) returns.
  returned: always
  type: list
  elements: dict
  sample:
    - name: web1
      state: running
      uuid: 8f2f5bd4-3c1e-4a5e-9f0a-55d7f1f4d7a1
      memory_mib: 2048
      vcpus: 2
      ip: 192.168.122.20
      interfaces: [{mac: "52:54:00:12:34:56", type: network, source: default,
                    model: virtio, addresses: [192.168.122.20]}]
      metadata: {groups: [web]}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, Connection, run_module
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            LIBVIRT_ARGS,
            name={'type': 'str'},
            ip_sources={'type': 'list', 'elements': 'str', 'choices': ['lease', 'agent', 'arp'],
                        'default': ['lease', 'agent']},
        ),
        supports_check_mode=True,
    )

    def body():
        with Connection(module.params['uri'], readonly=False) as conn:
            domains = DomainManager(conn).describe(module.params['name'], module.params['ip_sources'])
        return {'changed': False, 'domains': domains}

    run_module(module, body)


if __name__ == '__main__':
    main()
