#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_pool_info
short_description: Read libvirt storage pools
version_added: 0.1.0
description:
  - Returns the settings, state, sizes and volume names of one pool or of every pool.
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
    description: The pool to read. Omitted reads every pool.
    type: str
seealso:
  - module: virtkit.guests.libvirt_pool
'''

EXAMPLES = r'''
- name: Read one pool
  virtkit.guests.libvirt_pool_info:
    name: images
  register: images

- name: Where it keeps its volumes
  ansible.builtin.debug:
    msg: "{{ images.pools[0].path }} holds {{ images.pools[0].volumes | length }} volumes"
'''

RETURN = r'''
pools:
  description: The pools found (one entry, or none when O(name) does not exist), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The pool's name.
      type: str
    uuid:
      description: The pool's UUID.
      type: str
    type:
      description: The pool type.
      type: str
    state:
      description: V(running) or V(stopped).
      type: str
    autostart:
      description: Whether libvirtd starts the pool.
      type: bool
    persistent:
      description: Whether the pool is defined (not transient).
      type: bool
    path:
      description: The target path.
      type: str
    mode:
      description: The target directory's mode (octal string).
      type: str
    owner:
      description: The target directory's owner (uid).
      type: str
    group:
      description: The target directory's group (gid).
      type: str
    source:
      description: The source (C(devices), C(name), C(host), C(dir), C(format)); empty for dir pools.
      type: dict
    capacity:
      description: Capacity in bytes (0 while stopped).
      type: int
    allocation:
      description: Allocation in bytes.
      type: int
    available:
      description: Free space in bytes.
      type: int
    volumes:
      description: The names of the pool's volumes (empty while stopped).
      type: list
      elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, Connection, run_module
from ansible_collections.virtkit.guests.plugins.module_utils._storage.pool import facts


def main():
    module = AnsibleModule(argument_spec=dict(LIBVIRT_ARGS, name={'type': 'str'}), supports_check_mode=True)

    def body():
        with Connection(module.params['uri'], readonly=True) as conn:
            if module.params['name']:
                names = [module.params['name']]
            else:
                names = sorted(p.name() for p in conn.call(conn.uri, 'list pools', conn.conn.listAllStoragePools, 0))
            pools = [f for f in (facts(conn, n) for n in names) if f]
            return {'changed': False, 'pools': pools}

    run_module(module, body)


if __name__ == '__main__':
    main()
