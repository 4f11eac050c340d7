#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_snapshot
short_description: Create, revert to and delete snapshots of libvirt guests
version_added: 0.1.0
description:
  - Manages one snapshot of a libvirt guest, identified by its name.
  - By default a snapshot is internal (kept inside the guest's qcow2 disks, so every disk
    must be qcow2); a running or paused guest's snapshot includes its memory and CPU state,
    a shut-off guest's covers the disks. With O(disk_only=true) libvirt makes an external,
    disk-only snapshot (new overlay files next to the disks; the guest writes to them from
    then on).
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
    details: The diff shows whether the snapshot exists, its description, whether it is the
      guest's current snapshot and, for O(state=reverted), the last snapshot reverted to and the
      O(revert_state) of that revert.
  platform:
    platforms: posix
options:
  domain:
    description: The guest's name.
    type: str
    required: true
  name:
    description: The snapshot's name; its identity.
    type: str
    required: true
  state:
    description:
      - V(present) creates the snapshot when no snapshot of that name exists, and sets
        O(description) on an existing one. It never re-takes an existing snapshot.
      - V(absent) deletes the snapshot (its data inside qcow2 disks with it) when it exists.
        Children of the snapshot are kept and re-parented by libvirt.
      - V(reverted) reverts the guest to the snapshot. The revert is recorded in the guest's
        metadata (the persistent config; the live XML of a transient guest), with the
        O(revert_state) it was asked to end in. A rerun is not changed while the snapshot is
        still the guest's current one and the record names it and the same O(revert_state).
        Creating another snapshot makes that one current, so a later revert runs again; so does
        a revert to the same snapshot with a different O(revert_state).
      - A rerun does not compare the guest's power state or contents. A guest started, paused,
        shut down or written to since the revert is left as it is, and the rerun is not changed.
        Use M(virtkit.guests.libvirt_domain) for the power state, or O(force_revert=true) to roll
        back again.
    type: str
    choices: [present, absent, reverted]
    default: present
  description:
    description: The snapshot's description (O(state=present)); changed in place on an existing snapshot.
    type: str
  disk_only:
    description:
      - Make an external disk-only snapshot (O(state=present), new snapshots only).
      - Deleting an external snapshot merges its overlays back (libvirt 9.0 or later).
        Reverting to one needs libvirt 9.9 or later; against an older libvirt daemon the
        module refuses the revert with a one-line error before anything is touched (in check
        mode too).
    type: bool
    default: false
  force_revert:
    description: With O(state=reverted), revert even when the record says the guest is already there.
    type: bool
    default: false
  revert_state:
    description:
      - With O(state=reverted), the guest's power state after the revert. V(snapshot) (the
        default) is the state the snapshot was taken in, whatever the guest's state is now; a
        snapshot taken shut off leaves the guest shut off, one taken running or paused leaves
        it running or paused.
      - V(running) and V(paused) start the guest in that state after the revert, also from a
        snapshot taken shut off (booting from the reverted disks); a snapshot taken running ends
        paused with V(paused), and one taken paused ends running with V(running).
      - After a revert with V(running) or V(paused) the module re-reads the guest and fails when
        it is not in that state; the revert is then not recorded, so a rerun reverts again.
      - There is no choice to end shut off; revert to a snapshot taken shut off, or stop the
        guest afterwards with M(virtkit.guests.libvirt_domain).
      - Omitted, it is V(snapshot); for a rerun's comparison with the record, omitted and
        V(snapshot) are the same.
    type: str
    choices: [snapshot, running, paused]
notes:
  - M(virtkit.guests.libvirt_domain) with O(virtkit.guests.libvirt_domain#module:state=absent)
    removes a guest that has snapshots (it drops their metadata; internal snapshot data goes
    with the qcow2 disks).
seealso:
  - module: virtkit.guests.libvirt_snapshot_info
  - module: virtkit.guests.libvirt_domain
'''

EXAMPLES = r'''
- name: Snapshot web1 before the upgrade (with memory when it runs)
  virtkit.guests.libvirt_snapshot:
    domain: web1
    name: before-upgrade
    description: state before the 2.0 upgrade

- name: Roll back
  virtkit.guests.libvirt_snapshot:
    domain: web1
    name: before-upgrade
    state: reverted

- name: Roll back to a snapshot taken shut off and boot the guest (a rerun is not changed)
  virtkit.guests.libvirt_snapshot:
    domain: web1
    name: installed
    state: reverted
    revert_state: running

- name: Drop the snapshot
  virtkit.guests.libvirt_snapshot:
    domain: web1
    name: before-upgrade
    state: absent
'''

RETURN = r'''
snapshot:
  description: The snapshot after the run (in check mode, as it is now); empty when it does not exist.
  returned: always
  type: dict
  sample:
    name: before-upgrade
    description: state before the 2.0 upgrade
    state: running
    parent: null
    creation_time: 1764143000
    memory: internal
    current: true
    disks: [{target: vda, snapshot: internal, file: null}]
actions:
  description: What was done (in check mode, what would be done), in order.
  returned: always
  type: list
  elements: dict
  sample: [{action: create, summary: create snapshot before-upgrade of web1 with memory}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, run_manager
from ansible_collections.virtkit.guests.plugins.module_utils._snapshot import ARGUMENT_SPEC, SnapshotManager


def main():
    module = AnsibleModule(argument_spec=dict(LIBVIRT_ARGS, **ARGUMENT_SPEC), supports_check_mode=True)

    run_manager(module, SnapshotManager)


if __name__ == '__main__':
    main()
