# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for lxc_container: (current container, desired spec) -> Plan.

Nothing here runs a tool. The manager reads the container (one ``lxc-info`` and a few
files), calls :func:`build_plan`, and either returns the plan (check mode) or runs it.
"""

from __future__ import annotations

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig, is_repeatable, render_entries
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import guestnet
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import PROTECTED_PREFIXES, mount_target
from ansible_collections.virtkit.guests.plugins.module_utils._mac import stable_mac

ACTIVE = ('running', 'frozen')
# Keys read only by lxc-autostart (lxc.container.conf(5), AUTOSTART): a running container
# does not use them, so changing them never needs a restart.
NO_RESTART_KEYS = frozenset(('lxc.start.auto', 'lxc.start.delay', 'lxc.start.order', 'lxc.group'))


def normalize_state(state):
    """lxc-info's state -> running, stopped or frozen."""
    state = (state or '').lower()
    if state in ('running', 'starting', 'thawed'):
        return 'running'
    if state in ('frozen', 'freezing'):
        return 'frozen'
    return 'stopped'


class Current:
    """What the manager read about a container."""

    def __init__(self, name, exists=False, state='absent', pid=None, config_text=None, started_config=None,
                 incomplete=None, has_config=False, clone=None):
        self.name = name
        self.exists = exists
        self.state = state if exists else 'absent'
        self.pid = pid
        self.config_text = config_text
        # The config the running container was started with (recorded by us), if known.
        self.started_config = started_config
        # A half-created container (LXC's partial marker is there): 'interrupted' when the
        # lxc-create that made it is gone, 'ongoing' while it runs; such a container does not exist.
        self.incomplete = incomplete
        self.has_config = has_config
        # The work directory a killed run left for this container (set by the manager).
        self.leftover = None
        # The marker of a clone of this container that an earlier run began and did not finish
        # (a dict, see manager.CLONE_PREFIX): with incomplete 'interrupted' the container is a
        # half-made clone; the marker also says whether that run left the clone source stopped.
        self.clone = clone
        # The edits the guest's network setup in the rootfs needs for the declared static
        # addresses ([(path, before, after)], see guestnet.survey), read by the manager.
        self.rootfs_edits = []
        # The rootfs files edited while the container ran, as it booted with them ({path: text},
        # recorded by us next to started_config), and what they hold now ({path: text}).
        self.started_rootfs = {}
        self.rootfs_now = {}
        # The rootfs is an overlay (a snapshot clone): not edited while the container runs.
        self.rootfs_overlay = False

    @property
    def active(self):
        return self.state in ACTIVE


def apply_desired(text, spec):
    """Return the config text with ``spec`` applied (pure; comments and includes kept)."""
    conf = LxcConfig.parse(text)
    keys = spec.keys
    if 'lxc.net.' in spec.owned_prefixes:
        # Keep a generated MAC (identity) where the user names none. A NIC with static
        # addresses and no MAC at all gets a fixed one: LXC would make up a new MAC at every
        # start, and the neighbours' ARP caches would point at the old one for a while.
        for i, net in enumerate(spec.networks or []):
            hw = 'lxc.net.%d.hwaddr' % i
            if hw in keys or (net.get('type') or 'veth') in ('none', 'empty', 'phys'):
                continue
            mac = conf.get(hw)[:1] or ([stable_mac(spec.name, i, 'lxc')] if net.get('ipv4') or net.get('ipv6') else [])
            if mac:
                keys = dict(keys)
                keys[hw] = mac
        conf.remove_where(lambda k, v: (k.startswith('lxc.net.') or k.startswith('lxc.network.')) and k not in keys)
    conf.remove_where(lambda k, v: k in spec.owned and k not in keys)
    for key, values in keys.items():
        if key in spec.raw and is_repeatable(key) and not spec.config_exclusive:
            # config: a key whose lines add up (lxc.include, lxc.idmap...) gets the lines
            # asked for; the lines already there (the template's includes) stay.
            conf.ensure(key, values)
        else:
            conf.set(key, values)
    _apply_mounts(conf, spec.mount_targets)
    if spec.config_exclusive:
        conf.remove_where(lambda k, v: k not in keys and not k.startswith(PROTECTED_PREFIXES))
    return conf.render()


def _apply_mounts(conf, targets):
    from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import Line
    for target, entry in targets.items():
        positions = [i for i, line in enumerate(conf.lines)
                     if line.key == 'lxc.mount.entry' and mount_target(line.value) == target]
        if entry is None:
            drop = set(positions)
            conf.lines = [line for i, line in enumerate(conf.lines) if i not in drop]
            continue
        if positions:
            if conf.lines[positions[0]].value != entry:
                conf.lines[positions[0]] = Line('lxc.mount.entry', entry)
            drop = set(positions[1:])
            conf.lines = [line for i, line in enumerate(conf.lines) if i not in drop]
        else:
            last = [i for i, line in enumerate(conf.lines) if line.key == 'lxc.mount.entry']
            conf.lines.insert(last[-1] + 1 if last else len(conf.lines), Line('lxc.mount.entry', entry))


def restart_keys(before_text, after_text):
    """The changed keys a running container only picks up when it starts again.

    A mount entry that only gained (or lost) ``create=`` is no such change when the mount is not
    optional: the container runs, so that mount succeeded and its target exists; ``create=`` acts
    only on a missing target at a start. (Configs written before create became the default get
    it on their next run; running containers need no restart for it.)
    """
    keys = [k for k in changed_keys(before_text, after_text) if k not in NO_RESTART_KEYS]
    if 'lxc.mount.entry' in keys and _mounts_in_effect(before_text) == _mounts_in_effect(after_text):
        keys.remove('lxc.mount.entry')
    return keys


def _mounts_in_effect(text):
    """The mount entries of a config, ``create=`` dropped from those that are not optional."""
    out = []
    for entry in LxcConfig.parse(text).get('lxc.mount.entry'):
        fields = entry.split()
        if len(fields) > 3:
            opts = fields[3].split(',')
            if 'optional' not in opts:
                fields[3] = ','.join(o for o in opts if not o.startswith('create='))
        out.append(' '.join(fields))
    return out


def changed_keys(before_text, after_text):
    """Sorted keys whose values (in order) differ between two config texts."""
    before = LxcConfig.parse(before_text).as_dict()
    after = LxcConfig.parse(after_text).as_dict()
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _subset(text, keys):
    return render_entries(LxcConfig.parse(text).as_dict(set(keys)))


def new_container_keys(spec):
    """What the diff shows as 'after' for a container that does not exist yet."""
    mapping = {k: list(v) for k, v in spec.keys.items()}
    entries = [e for e in spec.mount_targets.values() if e]
    if entries:
        mapping['lxc.mount.entry'] = entries
    return render_entries(mapping)


def build_plan(spec, current):
    plan = Plan(spec.name)
    plan.new_config = None
    plan.rootfs_deferred = []
    defer = False
    plan.restarting = False
    plan.before = {'state': current.state}
    plan.after = {'state': current.state}
    if getattr(current, 'leftover', None):
        plan.add('remove_workdir', 'remove the work directory %s left by an interrupted run' % current.leftover,
                 path=current.leftover)
    marker = getattr(current, 'clone', None)
    half = None
    if current.incomplete == 'interrupted' and not current.exists:
        half = ('destroy the half-made clone %s (an earlier lxc-copy from %s was interrupted)'
                % (spec.name, marker['source']) if marker else
                'destroy the half-created %s (an earlier lxc-create was interrupted)' % spec.name)
    if marker:
        _restore_source(plan, spec.name, marker)
    if spec.state == 'absent':
        plan.after['state'] = 'absent'
        if current.exists:
            plan.add('destroy', 'destroy %s%s (with its snapshots)'
                     % (spec.name, ', killing it first' if current.active else ''), active=current.active)
        elif half:
            plan.add('destroy', half, active=False)
        if marker:
            _drop_marker(plan, marker)
        return plan

    if not current.exists:
        if half:
            plan.add('destroy', half + ' to create it again', active=False)
        if marker:
            _drop_marker(plan, marker)
        if spec.clone_from:
            plan.add('clone', 'clone %s from %s%s' % (spec.name, spec.clone_from,
                                                      ' (overlay snapshot)' if spec.clone_snapshot else ''))
        elif getattr(spec, 'rootfs_tarball', None):
            plan.add('create', 'create %s from the rootfs tarball %s (%s backing store)'
                     % (spec.name, spec.rootfs_tarball, spec.backing_store))
        else:
            plan.add('create', 'create %s from the %s template (%s backing store)'
                     % (spec.name, spec.template, spec.backing_store))
        plan.after['config'] = new_container_keys(spec)
        plan.add('write_config', 'write the config of %s before its first start' % spec.name, text=None)
        if spec.networks is not None:
            statics = sorted(guestnet.static_families(guestnet.nics(spec.networks)))
            # Read from the rootfs once it exists (a clone's or a tarball's may hold anything).
            plan.add('edit_rootfs', 'keep the guest\'s own DHCP client off %s (static addresses) in the rootfs of %s '
                     'before its first start' % (', '.join(statics), spec.name), changes=bool(statics), edits=None)
        state = 'stopped'
    else:
        if marker:
            _drop_marker(plan, marker)
        if spec.unprivileged is not None:
            has_idmap = bool(LxcConfig.parse(current.config_text).get('lxc.idmap'))
            if bool(spec.unprivileged) != has_idmap:
                raise VirtkitError('%s: unprivileged: the container exists as %s container; converting it '
                                   'needs its files re-owned, so create a new container instead'
                                   % (spec.name, 'an unprivileged' if has_idmap else 'a privileged'))
        new_text = apply_desired(current.config_text, spec)
        keys = changed_keys(current.config_text, new_text)
        if keys:
            plan.new_config = new_text
            plan.before['config'] = _subset(current.config_text, keys)
            plan.after['config'] = _subset(new_text, keys)
            plan.add('write_config', 'update %s in the config of %s' % (', '.join(keys), spec.name), text=new_text)
        edits = current.rootfs_edits
        # Changing the upper directory of a mounted overlay is undefined (kernel docs): while the
        # container runs, an overlay rootfs is edited between the stop and the start of a restart,
        # or after a stop, this run makes; else the edit waits (pending_restart, a reason).
        defer = bool(edits) and current.active and current.rootfs_overlay
        if edits and not defer:
            _edit_rootfs(plan, spec, edits)
        state = current.state
        if current.active:
            baseline = current.started_config if current.started_config is not None else current.config_text
            # The guest reads its network setup when it boots.
            plan.pending_restart = restart_keys(baseline, new_text) + [
                'rootfs ' + path for path in rootfs_restart_paths(current, edits)]

    _lifecycle(plan, spec, state)
    if defer:
        _edit_rootfs_stopped(plan, spec, edits)
    if spec.wait_for_ip and plan.after['state'] in ACTIVE:
        plan.add('wait_for_ip', 'wait up to %ss for an address%s' % (
            spec.wait_for_ip_timeout,
            ' on ' + ', '.join(spec.wait_for_ip_interfaces) if spec.wait_for_ip_interfaces else ''),
            changes=False)
    return plan


def rootfs_restart_paths(current, edits):
    """The rootfs files (paths) whose text differs, after ``edits``, from the one the running
    container booted with: recorded edits of earlier runs (current.started_rootfs) stay pending
    until a restart, like config keys; an edit that brings a file back to its booted text is none."""
    booted = dict(current.started_rootfs or {})
    after = dict(current.rootfs_now or {})
    for path, before, new in edits:
        booted.setdefault(path, before)
        after[path] = new
    return sorted(path for path in booted if after.get(path) != booted[path])


def _edit_rootfs(plan, spec, edits, summary_tail='', **params):
    plan.add('edit_rootfs', 'edit %s in the rootfs of %s so that the guest\'s own DHCP client %s%s'
             % (', '.join(path for path, _b, _a in edits), spec.name, _edit_purpose(spec), summary_tail),
             edits=edits, **params)
    for path, before, after in edits:
        plan.before['rootfs ' + path] = before
        plan.after['rootfs ' + path] = after


def _edit_rootfs_stopped(plan, spec, edits):
    """The edits of a running container's overlay rootfs where this plan stops it: right after a
    stop, or between the stop and the start of a restart. Else plan.rootfs_deferred names them."""
    plan.rootfs_deferred = []
    for n, action in enumerate(plan.actions):
        if action.op == 'restart':
            action.params['edits'] = edits
            action.summary += ' (editing %s in its overlay rootfs while it is stopped)' % ', '.join(
                path for path, _b, _a in edits)
            for path, before, after in edits:
                plan.before['rootfs ' + path] = before
                plan.after['rootfs ' + path] = after
            return
        if action.op == 'stop':
            tail = plan.actions[n + 1:]
            plan.actions = plan.actions[:n + 1]
            _edit_rootfs(plan, spec, edits, ' (its overlay rootfs, once stopped)', record=False)
            plan.actions += tail
            return
    plan.rootfs_deferred = [path for path, _b, _a in edits]


def _edit_purpose(spec):
    statics = sorted(guestnet.static_families(guestnet.nics(spec.networks)))
    if statics:
        return 'leaves the static addresses of %s alone' % ', '.join(statics)
    return 'runs again where the NICs went back to DHCP'


def source_to_restore(marker):
    """What the clone source needs after an interrupted clone: (start, freeze) or None.

    Only a source the run stopped (the marker says so, written before it touched the source)
    and that is still stopped is started again; one that was frozen is frozen again.
    """
    if not marker.get('source_stopped') or marker.get('source_state') not in ACTIVE:
        return None
    now = marker.get('source_now')
    if now == 'stopped':
        return True, marker['source_state'] == 'frozen'
    if now == 'running' and marker['source_state'] == 'frozen':
        return False, True
    return None


def _restore_source(plan, name, marker):
    todo = source_to_restore(marker)
    if todo is None:
        return
    start, freeze = todo
    verb = 'start and freeze' if start and freeze else 'start' if start else 'freeze'
    plan.add('restore_source', '%s the clone source %s again (an interrupted clone of %s left it %s)'
             % (verb, marker['source'], name, marker['source_now']), source=marker['source'], start=start,
             freeze=freeze)


def _drop_marker(plan, marker):
    plan.add('drop_clone_marker', 'remove the clone marker %s of an interrupted run' % marker['path'],
             path=marker['path'])


def _lifecycle(plan, spec, state):
    target, name = spec.state, spec.name
    restart = bool(plan.pending_restart) and spec.restart_policy == 'if_needed'
    after = state
    if target == 'restarted':
        plan.add('restart' if state in ACTIVE else 'start', '%s %s' % (
            'restart' if state in ACTIVE else 'start', name))
        plan.restarting = True
        after = 'running'
    elif target in ('started', 'frozen'):
        if state == 'stopped':
            plan.add('start', 'start %s' % name)
            after = 'running'
        elif restart:
            plan.add('restart', 'restart %s to apply %s' % (name, ', '.join(plan.pending_restart)))
            plan.restarting = True
            after = 'running'
        elif state == 'frozen' and target == 'started':
            plan.add('unfreeze', 'thaw %s' % name)
            after = 'running'
        if target == 'frozen' and after == 'running':
            plan.add('freeze', 'freeze %s' % name)
            after = 'frozen'
    elif target == 'stopped':
        if state in ACTIVE:
            kill = ', then kill' if spec.force_stop else ''
            plan.add('stop', 'stop %s (clean, up to %ss%s)' % (name, spec.stop_timeout, kill))
            after = 'stopped'
    elif target == 'present':
        if state in ACTIVE and restart:
            plan.add('restart', 'restart %s to apply %s' % (name, ', '.join(plan.pending_restart)))
            plan.restarting = True
            if state == 'frozen':
                plan.add('freeze', 'freeze %s' % name)
    if plan.restarting or after == 'stopped':
        plan.pending_restart = []
    plan.after['state'] = after
