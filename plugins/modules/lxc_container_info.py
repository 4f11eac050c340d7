#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lxc_container_info
short_description: Read LXC containers' state, addresses, limits in force and config
version_added: 0.1.0
description:
  - Returns the state, init PID, addresses, the limits in force (read from the container's
    cgroup files) and the config of LXC containers.
  - Reads the config files and C(/proc); calls C(lxc-info) once per container.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.lxc
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: N/A
  platform:
    platforms: posix
options:
  names:
    description: The containers to read; all containers in O(lxc_path) when omitted.
      A name that does not exist is returned with RV(containers[].state=absent).
    type: list
    elements: str
seealso:
  - module: virtkit.guests.lxc_container
'''

EXAMPLES = r'''
- name: Read two containers
  virtkit.guests.lxc_container_info:
    names: [web1, web2]
  register: lxc

- name: Show web1's address
  ansible.builtin.debug:
    msg: "{{ lxc.containers[0].ips }}"
'''

RETURN = r'''
containers:
  description: One entry per container, in the order asked (sorted by name when listing all).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The name.
      type: str
    state:
      description: V(running), V(stopped), V(frozen) or V(absent).
      type: str
    pid:
      description: The init process id on the host.
      type: int
    ips:
      description: All addresses.
      type: list
      elements: str
    interfaces:
      description: Addresses per interface.
      type: dict
    limits:
      description: The limits in force (running containers).
      type: dict
    config:
      description: The config file, each key with the list of its values.
      type: dict
    config_path:
      description: The config file.
      type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._resource import run_module
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import check_name


def main():
    module = AnsibleModule(argument_spec={
        'names': {'type': 'list', 'elements': 'str'},
        'lxc_path': {'type': 'path'},
    }, supports_check_mode=True)

    def body():
        manager = ContainerManager(lxc_path=module.params['lxc_path'])
        names = module.params['names']
        if names is None:
            root = manager.r.lxc_path
            names = sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, 'config'))) \
                if os.path.isdir(root) else []
        containers = []
        for name in names:
            check_name(name, 'names')
            current = manager.read(name)
            containers.append(manager.facts(name, current) if current.exists else {'name': name, 'state': 'absent'})
        return {'changed': False, 'containers': containers}

    run_module(module, body)


if __name__ == '__main__':
    main()
