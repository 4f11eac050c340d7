#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_pool
short_description: Define, edit, build, start and remove libvirt storage pools
version_added: 0.1.0
description:
  - Defines a libvirt storage pool from structured options (C(dir) pools fully; C(logical)
    and C(netfs) pools are generated from the same options) and keeps it in the wanted state.
  - An existing pool is edited in place; the options are merged onto its current persistent
    XML, so only what you set is owned and the pool's UUID survives.
  - Changes to O(path), O(mode), O(owner), O(group) and the C(source_*) options of a running
    pool are written to its persistent config and take effect when the pool starts again;
    they are reported in RV(pending_restart_fields). With O(restart_policy=if_needed) the
    pool is stopped, built again (which applies directory permissions) and started.
    Stopping a C(dir) pool does not disturb running guests that use its volumes, but
    stopping a C(netfs) pool unmounts it.
  - O(autostart) is applied at once.
  - O(state=absent) stops and undefines the pool and leaves its volumes on disk unless
    O(delete_volumes=true).
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
    details: The diff shows the pool's state, autostart and canonical persistent XML.
  platform:
    platforms: posix
options:
  name:
    description: The pool's name; its identity.
    type: str
    required: true
  state:
    description:
      - V(present) defines or edits the pool and leaves it running or stopped as it is (a new
        pool stays stopped).
      - V(running) also starts it; V(stopped) also stops it.
      - V(absent) stops and undefines it. A pool that does not exist is not an error.
    type: str
    choices: [present, running, stopped, absent]
    default: running
  type:
    description:
      - The pool type of a new pool (default V(dir)). It cannot change on an existing pool.
    type: str
    choices: [dir, logical, netfs]
  path:
    description:
      - The target path, a directory for V(dir) and V(netfs) pools (the mount point), or
        the volume group's device directory for V(logical) pools (default C(/dev/<source_name>)).
      - Required for a new V(dir) or V(netfs) pool.
    type: path
  mode:
    description: The target directory's mode as an octal string, for example V('0755').
    type: raw
  owner:
    description:
      - The target directory's owner, a numeric uid (V(107) or V('107')) or a user name.
      - A name is resolved to its uid on the host that runs the module, which is not the
        libvirt host when O(uri) is remote (for example C(qemu+ssh://)); there, give the
        libvirt host's numeric uid.
    type: raw
  group:
    description:
      - The target directory's group, a numeric gid (V(107) or V('107')) or a group name.
      - A name is resolved to its gid on the host that runs the module, which is not the
        libvirt host when O(uri) is remote; there, give the libvirt host's numeric gid.
    type: raw
  source_devices:
    description: For V(logical) pools, the physical volumes (block devices) of the volume group.
    type: list
    elements: path
  source_name:
    description: For V(logical) pools, the volume group name (default the pool name).
    type: str
  source_host:
    description: For V(netfs) pools, the file server's host name or address.
    type: str
  source_dir:
    description: For V(netfs) pools, the exported directory on the server.
    type: str
  source_format:
    description: For V(netfs) pools, the file system type (default V(auto) for a new pool).
    type: str
    choices: [auto, nfs, cifs, glusterfs]
  autostart:
    description: Whether libvirtd starts the pool when it starts. Omitted leaves it alone.
    type: bool
  build:
    description:
      - Build a new pool after defining it (creates the directory with O(mode), O(owner) and
        O(group); for V(logical) pools with O(source_devices), creates the volume group,
        refusing to overwrite existing data).
      - Also builds a V(dir) or V(netfs) pool again when its path or permissions change,
        while it is stopped.
    type: bool
    default: true
  refresh:
    description: Refresh the pool's volume list (does not count as a change).
    type: bool
    default: false
  restart_policy:
    description:
      - What to do when a change to a running pool needs a restart. V(never) reports it in
        RV(pending_restart_fields); V(if_needed) stops, builds and starts the pool.
    type: str
    choices: [never, if_needed]
    default: never
  delete_volumes:
    description:
      - With O(state=absent), delete every volume in the pool and the pool's directory
        before undefining it. Without it the volumes stay on disk.
    type: bool
    default: false
seealso:
  - module: virtkit.guests.libvirt_pool_info
  - module: virtkit.guests.libvirt_volume
'''

EXAMPLES = r'''
- name: A directory pool, running and autostarted
  virtkit.guests.libvirt_pool:
    name: images
    path: /srv/images
    mode: '0711'
    autostart: true

- name: Tighten the directory permissions and restart the pool to apply them
  virtkit.guests.libvirt_pool:
    name: images
    mode: '0700'
    restart_policy: if_needed

- name: An NFS pool
  virtkit.guests.libvirt_pool:
    name: shared
    type: netfs
    source_host: nas.example.com
    source_dir: /export/images
    source_format: nfs
    path: /var/lib/libvirt/shared

- name: Remove a pool but keep its volumes on disk
  virtkit.guests.libvirt_pool:
    name: images
    state: absent
'''

RETURN = r'''
actions:
  description:
    - The steps taken (or, in check mode, that would be taken), each with C(action) and C(summary).
    - A V(refresh) step (O(refresh=true)) is listed but does not make the result changed.
  returned: always
  type: list
  elements: dict
pending_restart:
  description: Whether the running pool differs from its config in a way only a restart applies.
  returned: always
  type: bool
pending_restart_fields:
  description: The options that wait for a restart of the pool.
  returned: always
  type: list
  elements: str
pool:
  description: The pool after the run (empty when absent, or new in check mode). The keys of RV(virtkit.guests.libvirt_pool_info#module:pools).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import run_manager
from ansible_collections.virtkit.guests.plugins.module_utils._storage.pool import ARGUMENT_SPEC, PoolManager


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    run_manager(module, PoolManager)


if __name__ == '__main__':
    main()
