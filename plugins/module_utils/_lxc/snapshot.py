# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named LXC snapshots: create, restore, delete (plan, then apply).

``lxc-snapshot`` names snapshots ``snap0``, ``snap1``...; the user's name is kept in the
snapshot's comment file (first line ``virtkit-snapshot: NAME``), so lookups read files only.
A snapshot may also be addressed by its LXC name (``snap0``).
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.plan import ACTIVE
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import check_name

MARK = 'virtkit-snapshot: '
SNAP_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')

ARGUMENT_SPEC = {
    'name': {'type': 'str', 'required': True},
    'snapshot': {'type': 'str', 'required': True},
    'state': {'type': 'str', 'choices': ['present', 'absent', 'restored'], 'default': 'present'},
    'comment': {'type': 'str'},
    'lxc_path': {'type': 'path'},
}


def list_snapshots(container_dir, read_file):
    """[{'name', 'lxc_name', 'comment', 'timestamp'}] from <container>/snaps/*."""
    snaps_dir = os.path.join(container_dir, 'snaps')
    if not os.path.isdir(snaps_dir):
        return []
    result = []
    for entry in sorted(os.listdir(snaps_dir), key=lambda s: (len(s), s)):
        path = os.path.join(snaps_dir, entry)
        if not os.path.isfile(os.path.join(path, 'config')):
            continue
        comment = read_file(os.path.join(path, 'comment')) or ''
        first, _nl, rest = comment.partition('\n')
        name = first[len(MARK):].strip() if first.startswith(MARK) else entry
        result.append({'name': name, 'lxc_name': entry, 'comment': rest.strip() if first.startswith(MARK) else comment.strip(),
                       'timestamp': (read_file(os.path.join(path, 'ts')) or '').strip()})
    return result


def find(snapshots, name):
    for snap in snapshots:
        if snap['name'] == name:
            return snap
    for snap in snapshots:
        if snap['lxc_name'] == name:
            return snap
    return None


def build_plan(container, snapshot, state, found, container_state):
    plan = Plan('%s snapshot %s' % (container, snapshot))
    plan.before = {'snapshot': 'present' if found else 'absent'}
    plan.after = dict(plan.before)
    if state == 'present' and not found:
        plan.add('create', 'snapshot %s as %s' % (container, snapshot))
        plan.after['snapshot'] = 'present'
    elif state == 'absent' and found:
        plan.add('delete', 'delete snapshot %s (%s) of %s' % (snapshot, found['lxc_name'], container),
                 lxc_name=found['lxc_name'])
        plan.after['snapshot'] = 'absent'
    elif state == 'restored':
        if not found:
            raise VirtkitError('%s: restore failed: there is no snapshot %s' % (container, snapshot))
        plan.add('restore', 'restore %s from snapshot %s (%s)' % (container, snapshot, found['lxc_name']),
                 lxc_name=found['lxc_name'])
    if plan.changed and container_state in ACTIVE:
        raise VirtkitError('%s: snapshot %s: the container is %s; LXC snapshots and restores need it stopped '
                           '(virtkit.guests.lxc_container state=stopped first)' % (container, snapshot, container_state))
    return plan


def run(manager, params, check_mode=False):
    name = check_name(params['name'])
    snapshot = params['snapshot']
    if not SNAP_NAME_RE.match(snapshot or ''):
        raise VirtkitError('snapshot: %r is not a valid snapshot name (letters, digits, ".", "_", "-")' % snapshot)
    if params.get('comment') and '\x00' in params['comment']:
        raise VirtkitError('comment: contains a NUL byte')
    if not manager.exists(name):
        raise VirtkitError('%s: the container does not exist in %s' % (name, manager.r.lxc_path))
    directory = manager.container_dir(name)
    snaps = list_snapshots(directory, manager.read_file)
    found = find(snaps, snapshot)
    state = params.get('state') or 'present'
    container_state = 'stopped'
    if state == 'restored' or (state == 'present' and not found) or (state == 'absent' and found):
        container_state, _pid = manager.info(name)
    plan = build_plan(name, snapshot, state, found, container_state)
    result = {'changed': plan.changed, 'actions': plan.describe(), 'diff': plan.diff()}
    if not check_mode:
        for action in plan.actions:
            if action.op == 'create':
                fd, tmp = tempfile.mkstemp(prefix='virtkit-snap-')
                with os.fdopen(fd, 'w') as handle:
                    handle.write(MARK + snapshot + '\n' + (params.get('comment') or '') + '\n')
                try:
                    manager.r.run('lxc-snapshot', name, ['-c', tmp], 'snapshot %s' % snapshot, timeout=1800)
                finally:
                    os.unlink(tmp)
            elif action.op == 'delete':
                manager.r.run('lxc-snapshot', name, ['-d', action.params['lxc_name']],
                              'delete snapshot %s' % snapshot, timeout=600)
            elif action.op == 'restore':
                manager.r.run('lxc-snapshot', name, ['-r', action.params['lxc_name']],
                              'restore snapshot %s' % snapshot, timeout=1800)
        snaps = list_snapshots(directory, manager.read_file)
        found = find(snaps, snapshot)
        if state in ('present', 'restored') and not found:
            raise VirtkitError('%s: snapshot %s is missing after lxc-snapshot' % (name, snapshot))
    result['snapshot'] = found or {}
    result['snapshots'] = snaps
    return result
