#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_snapshot_info
short_description: List the snapshots of a libvirt guest
version_added: 0.1.0
description:
  - Returns the snapshots of one guest, oldest first, and the name of its current snapshot.
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
  domain:
    description: The guest's name. A guest that does not exist is an error.
    type: str
    required: true
  name:
    description: One snapshot's name; all snapshots when omitted.
    type: str
seealso:
  - module: virtkit.guests.libvirt_snapshot
'''

EXAMPLES = r'''
- name: List web1's snapshots
  virtkit.guests.libvirt_snapshot_info:
    domain: web1
  register: snaps

- name: Names, oldest first
  ansible.builtin.debug:
    msg: "{{ snaps.snapshots | map(attribute='name') }}"
'''

RETURN = r'''
snapshots:
  description:
    - The snapshots (one or none when O(name) is given), oldest first, each with the keys of
      the RV(virtkit.guests.libvirt_snapshot#module:snapshot) that M(virtkit.guests.libvirt_snapshot) returns.
  returned: always
  type: list
  elements: dict
  sample:
    - name: before-upgrade
      description: state before the 2.0 upgrade
      state: running
      parent: null
      creation_time: 1764143000
      memory: internal
      current: true
      disks: [{target: vda, snapshot: internal, file: null}]
current:
  description: The name of the guest's current snapshot, or null.
  returned: always
  type: str
  sample: before-upgrade
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, Connection, run_module
from ansible_collections.virtkit.guests.plugins.module_utils._snapshot import SnapshotManager


def main():
    module = AnsibleModule(
        argument_spec=dict(LIBVIRT_ARGS, domain={'type': 'str', 'required': True}, name={'type': 'str'}),
        supports_check_mode=True,
    )

    def body():
        with Connection(module.params['uri']) as conn:
            result = SnapshotManager(conn).list(module.params['domain'], module.params['name'])
        result['changed'] = False
        return result

    run_module(module, body)


if __name__ == '__main__':
    main()
