# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cgroup v1 / v2 / hybrid detection and the typed limits that map onto LXC keys.

A controller (memory, cpu, cpuset, pids) is either bound to a cgroup v1 hierarchy or
enabled in the cgroup2 tree; on a hybrid host each controller lives in exactly one place.
LXC takes ``lxc.cgroup.<file>`` for v1 controllers and ``lxc.cgroup2.<file>`` for v2, so
the keys are chosen per controller from what the host runs.
"""

from __future__ import annotations

import os

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

CONTROLLERS = ('memory', 'cpu', 'cpuset', 'pids')
DEFAULT_PERIOD = 100000

# limit -> controller, v1 files, v2 files (every file either version may carry for it)
LIMIT_FILES = {
    'memory': ('memory', ['memory.limit_in_bytes'], ['memory.max']),
    'memory_swap': ('memory', ['memory.memsw.limit_in_bytes'], ['memory.swap.max']),
    'cpu_shares': ('cpu', ['cpu.shares'], ['cpu.weight']),
    'cpus': ('cpu', ['cpu.cfs_quota_us', 'cpu.cfs_period_us'], ['cpu.max']),
    'cpuset': ('cpuset', ['cpuset.cpus'], ['cpuset.cpus']),
    'pids': ('pids', ['pids.max'], ['pids.max']),
}


class CgroupLayout:
    """Which controllers are v1 and which v2 on this host, and where they are mounted."""

    def __init__(self, v1=None, v2=None, v2_mount=None, v1_mounts=None, memsw=True):
        self.v1 = set(v1 or ())
        self.v2 = set(v2 or ())
        self.v2_mount = v2_mount
        self.v1_mounts = dict(v1_mounts or {})
        self.memsw = memsw

    @property
    def kind(self):
        if self.v1 and (self.v2_mount is not None):
            return 'hybrid'
        if self.v1:
            return 'v1'
        return 'v2' if self.v2_mount is not None else 'none'

    def version(self, controller):
        """'v2' or 'v1' for a controller, None when the host does not offer it."""
        if controller in self.v2:
            return 'v2'
        if controller in self.v1:
            return 'v1'
        return None

    def describe(self):
        return {'kind': self.kind,
                'controllers': {c: self.version(c) for c in CONTROLLERS}}


def parse_mounts(mounts_text, read_file=None):
    """Build a :class:`CgroupLayout` from /proc/self/mounts text.

    ``read_file(path)`` returns a file's text or None (tests pass a dict lookup).
    """
    read_file = read_file or read_text
    v1, v1_mounts, v2_mount = set(), {}, None
    for line in (mounts_text or '').splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        fstype, mountpoint, opts = parts[2], parts[1], parts[3].split(',')
        if fstype == 'cgroup':
            for opt in opts:
                if opt in CONTROLLERS or opt == 'freezer':
                    v1.add(opt)
                    v1_mounts.setdefault(opt, mountpoint)
        elif fstype == 'cgroup2' and v2_mount is None:
            v2_mount = mountpoint
    v2 = set()
    if v2_mount is not None:
        v2 = set((read_file(os.path.join(v2_mount, 'cgroup.controllers')) or '').split())
        v2 -= v1  # a controller bound to v1 is not usable in v2
    memsw = True
    if 'memory' in v1_mounts:
        memsw = read_file(os.path.join(v1_mounts['memory'], 'memory.memsw.limit_in_bytes')) is not None
    return CgroupLayout(v1, v2, v2_mount, v1_mounts, memsw)


def read_text(path):
    """A file's text, or None when it cannot be read (the default file reader)."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def host_layout():
    return parse_mounts(read_text('/proc/self/mounts') or '')


def weight_from_shares(shares):
    """cgroup v1 cpu.shares -> v2 cpu.weight (the mapping systemd and runc use)."""
    return 1 + ((max(2, min(262144, shares)) - 2) * 9999) // 262142


def render_limits(limits, layout, name=''):
    """Typed limits -> ({lxc key: [value]}, [keys owned]) for the host's layout.

    ``limits`` holds validated numbers (bytes, shares, CPUs as float, cpuset string, pids).
    The owned keys are every v1 and v2 key of each limit set, so a key of the other
    version left from another host is removed.
    """
    keys, owned = {}, []
    where = '%s: limits' % name if name else 'limits'
    for limit in ('memory', 'memory_swap', 'cpu_shares', 'cpus', 'cpuset', 'pids'):
        value = limits.get(limit)
        if value is None:
            continue
        controller, v1_files, v2_files = LIMIT_FILES[limit]
        owned += ['lxc.cgroup.' + f for f in v1_files] + ['lxc.cgroup2.' + f for f in v2_files]
        version = layout.version(controller)
        if version is None:
            raise VirtkitError('%s.%s: the host offers no %s cgroup controller (cgroup layout: %s)'
                               % (where, limit, controller, layout.kind))
        prefix = 'lxc.cgroup2.' if version == 'v2' else 'lxc.cgroup.'
        if limit == 'memory':
            keys[prefix + ('memory.max' if version == 'v2' else 'memory.limit_in_bytes')] = [str(value)]
        elif limit == 'memory_swap':
            if version == 'v1':
                if not layout.memsw:
                    raise VirtkitError('%s.memory_swap: the kernel has no swap accounting '
                                       '(memory.memsw.* is missing; boot with swapaccount=1)' % where)
                keys[prefix + 'memory.memsw.limit_in_bytes'] = [str(value)]
            else:
                keys[prefix + 'memory.swap.max'] = [str(value - limits['memory'])]
        elif limit == 'cpu_shares':
            if version == 'v2':
                keys[prefix + 'cpu.weight'] = [str(weight_from_shares(value))]
            else:
                keys[prefix + 'cpu.shares'] = [str(value)]
        elif limit == 'cpus':
            quota = int(round(value * DEFAULT_PERIOD))
            if version == 'v2':
                keys[prefix + 'cpu.max'] = ['%d %d' % (quota, DEFAULT_PERIOD)]
            else:
                keys[prefix + 'cpu.cfs_quota_us'] = [str(quota)]
                keys[prefix + 'cpu.cfs_period_us'] = [str(DEFAULT_PERIOD)]
        elif limit == 'cpuset':
            keys[prefix + 'cpuset.cpus'] = [value]
        elif limit == 'pids':
            keys[prefix + 'pids.max'] = [str(value)]
    return keys, owned


def proc_cgroups(text):
    """/proc/<pid>/cgroup -> {controller or '' for v2: path}."""
    result = {}
    for line in (text or '').splitlines():
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        if parts[1] == '':
            result[''] = parts[2]
        for ctrl in parts[1].split(','):
            if ctrl:
                result[ctrl] = parts[2]
    return result


def frozen(pid, layout, read_file=None):
    """True/False from the freezer of the container whose init is ``pid``; None if unknown."""
    read_file = read_file or read_text
    paths = proc_cgroups(read_file('/proc/%d/cgroup' % pid))
    if 'freezer' in paths and 'freezer' in layout.v1_mounts:
        state = read_file(os.path.join(layout.v1_mounts['freezer'], paths['freezer'].lstrip('/'), 'freezer.state'))
        return None if state is None else state.strip() in ('FROZEN', 'FREEZING')
    if '' in paths and layout.v2_mount:
        state = read_file(os.path.join(layout.v2_mount, paths[''].lstrip('/'), 'cgroup.freeze'))
        return None if state is None else state.strip() == '1'
    return None


def read_limits(pid, layout, read_file=None):
    """The limits in force for the container whose init is ``pid``, from its cgroup files.

    Returns {'memory': bytes or 'max', 'memory_swap', 'cpu_shares', 'cpus', 'cpuset',
    'pids', 'cgroups': {controller: directory}}; values the host does not offer are left out.
    """
    read_file = read_file or read_text
    paths = proc_cgroups(read_file('/proc/%d/cgroup' % pid))
    dirs = {}
    for ctrl in CONTROLLERS:
        version = layout.version(ctrl)
        if version == 'v1' and ctrl in paths and ctrl in layout.v1_mounts:
            dirs[ctrl] = os.path.join(layout.v1_mounts[ctrl], paths[ctrl].lstrip('/'))
        elif version == 'v2' and '' in paths and layout.v2_mount:
            dirs[ctrl] = os.path.join(layout.v2_mount, paths[''].lstrip('/'))

    def get(ctrl, filename):
        if ctrl not in dirs:
            return None
        text = read_file(os.path.join(dirs[ctrl], filename))
        return text.strip() if text is not None else None

    def num(text):
        return int(text) if text is not None and text.lstrip('-').isdigit() else text

    out = {'cgroups': dirs}
    v = {c: layout.version(c) for c in CONTROLLERS}
    if v['memory'] == 'v1':
        out['memory'] = num(get('memory', 'memory.limit_in_bytes'))
        out['memory_swap'] = num(get('memory', 'memory.memsw.limit_in_bytes'))
    elif v['memory'] == 'v2':
        out['memory'] = num(get('memory', 'memory.max'))
        swap = num(get('memory', 'memory.swap.max'))
        out['memory_swap'] = (swap + out['memory']) if isinstance(swap, int) and isinstance(out['memory'], int) else swap
    if v['cpu'] == 'v1':
        out['cpu_shares'] = num(get('cpu', 'cpu.shares'))
        quota, period = num(get('cpu', 'cpu.cfs_quota_us')), num(get('cpu', 'cpu.cfs_period_us'))
        out['cpus'] = round(float(quota) / period, 4) if isinstance(quota, int) and quota > 0 and period else None
    elif v['cpu'] == 'v2':
        out['cpu_weight'] = num(get('cpu', 'cpu.weight'))
        cpu_max = (get('cpu', 'cpu.max') or '').split()
        out['cpus'] = (round(float(cpu_max[0]) / int(cpu_max[1]), 4)
                       if len(cpu_max) == 2 and cpu_max[0].isdigit() else None)
    if v['cpuset']:
        out['cpuset'] = get('cpuset', 'cpuset.cpus' if v['cpuset'] == 'v1' else 'cpuset.cpus.effective')
    if v['pids']:
        out['pids'] = num(get('pids', 'pids.max'))
    return {k: val for k, val in out.items() if val is not None}
