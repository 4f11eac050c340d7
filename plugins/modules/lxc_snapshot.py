#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lxc_snapshot
short_description: Create, restore and delete named LXC container snapshots
version_added: 0.1.0
description:
  - Manages snapshots of a (stopped) LXC container by name through C(lxc-snapshot).
  - LXC numbers snapshots C(snap0), C(snap1)...; the name given here is stored in the
    snapshot's comment, so V(present) and V(absent) are idempotent. A snapshot made outside
    this module can be addressed by its LXC name.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.lxc
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows whether the snapshot exists before and after.
  platform:
    platforms: posix
options:
  name:
    description: The container.
    type: str
    required: true
  snapshot:
    description: The snapshot's name.
    type: str
    required: true
  state:
    description:
      - V(present) creates the snapshot unless it exists; V(absent) deletes it if it exists.
      - V(restored) restores the container's rootfs and config from the snapshot (always a change).
      - Creating, deleting and restoring need the container stopped; a running container fails
        with a message saying so.
    type: str
    choices: [present, absent, restored]
    default: present
  comment:
    description: A comment stored with a new snapshot.
    type: str
seealso:
  - module: virtkit.guests.lxc_container
'''

EXAMPLES = r'''
- name: Snapshot web1 before an upgrade
  virtkit.guests.lxc_snapshot:
    name: web1
    snapshot: before-upgrade
    comment: taken by the upgrade playbook

- name: Roll back
  virtkit.guests.lxc_snapshot:
    name: web1
    snapshot: before-upgrade
    state: restored
'''

RETURN = r'''
actions:
  description: What the run did (or would do).
  returned: always
  type: list
  elements: dict
snapshot:
  description: The snapshot after the run (empty when absent).
  returned: always
  type: dict
  contains:
    name:
      description: The name given to this module (or the LXC name).
      type: str
    lxc_name:
      description: LXC's name, C(snapN).
      type: str
    comment:
      description: The comment.
      type: str
    timestamp:
      description: When it was taken.
      type: str
snapshots:
  description: All snapshots of the container.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._resource import run_module
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.snapshot import ARGUMENT_SPEC, run


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, lambda: run(ContainerManager(lxc_path=module.params['lxc_path']), module.params,
                                   check_mode=module.check_mode))


if __name__ == '__main__':
    main()
