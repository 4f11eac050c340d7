# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxc_container's options: the argument spec, validation and the typed -> keys rendering.

Everything here runs before the host is touched; bad input raises VirtkitError with one
line naming the option. It is pure but for two read-only looks at the host, both injectable:
the cgroup layout (``layout``) and what a bind mount's source is (``path_kind``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._units import parse_size
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import check_key, check_value

STATES = ('present', 'started', 'stopped', 'restarted', 'frozen', 'absent')
BACKING_STORES = ('dir', 'btrfs', 'lvm', 'zfs', 'overlayfs', 'loop')
NET_TYPES = ('veth', 'macvlan', 'phys', 'none', 'empty')

COMMON_ARGS = {
    'name': {'type': 'str', 'required': True},
    'lxc_path': {'type': 'path'},
}

NETWORK_OPTIONS = {
    'type': {'type': 'str', 'choices': list(NET_TYPES), 'default': 'veth'},
    'link': {'type': 'str'},
    'name': {'type': 'str'},
    'hwaddr': {'type': 'str'},
    'mtu': {'type': 'int'},
    'macvlan_mode': {'type': 'str', 'choices': ['private', 'vepa', 'bridge', 'passthru']},
    'ipv4': {'type': 'list', 'elements': 'str'},
    'ipv4_gateway': {'type': 'str'},
    'ipv6': {'type': 'list', 'elements': 'str'},
    'ipv6_gateway': {'type': 'str'},
}

MOUNT_OPTIONS = {
    'source': {'type': 'str'},
    'target': {'type': 'str', 'required': True},
    'readonly': {'type': 'bool', 'default': False},
    # dir, file, true (the default: what the source is) or false; see mount_create.
    'create': {'type': 'raw'},
    'optional': {'type': 'bool', 'default': False},
    'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
}

LIMIT_OPTIONS = {
    'memory': {'type': 'raw'},
    'memory_swap': {'type': 'raw'},
    'cpu_shares': {'type': 'int'},
    'cpus': {'type': 'float'},
    'cpuset': {'type': 'str'},
    'pids': {'type': 'int'},
}

ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    state={'type': 'str', 'choices': list(STATES), 'default': 'present'},
    template={'type': 'str', 'default': 'busybox'},
    rootfs_tarball={'type': 'path'},
    template_options={'type': 'list', 'elements': 'str', 'default': []},
    backing_store={'type': 'str', 'choices': list(BACKING_STORES), 'default': 'dir'},
    backing_store_options={'type': 'dict', 'options': {
        'dir': {'type': 'path'},
        'vgname': {'type': 'str'},
        'lvname': {'type': 'str'},
        'thinpool': {'type': 'str'},
        'fstype': {'type': 'str'},
        'fssize': {'type': 'str'},
        'zfsroot': {'type': 'str'},
    }},
    clone_from={'type': 'str'},
    clone_snapshot={'type': 'bool', 'default': False},
    limits={'type': 'dict', 'options': LIMIT_OPTIONS},
    networks={'type': 'list', 'elements': 'dict', 'options': NETWORK_OPTIONS},
    mounts={'type': 'list', 'elements': 'dict', 'options': MOUNT_OPTIONS},
    autostart={'type': 'bool'},
    autostart_order={'type': 'int'},
    autostart_delay={'type': 'int'},
    groups={'type': 'list', 'elements': 'str'},
    unprivileged={'type': 'bool'},
    config={'type': 'dict'},
    config_exclusive={'type': 'bool', 'default': False},
    restart_policy={'type': 'str', 'choices': ['never', 'if_needed'], 'default': 'never'},
    start_timeout={'type': 'int', 'default': 30},
    stop_timeout={'type': 'int', 'default': 30},
    force_stop={'type': 'bool', 'default': False},
    wait_for_ip={'type': 'bool', 'default': False},
    wait_for_ip_interfaces={'type': 'list', 'elements': 'str'},
    wait_for_ip_timeout={'type': 'int', 'default': 60},
)

# Passed to AnsibleModule, which checks it before applying template's default; validate()
# checks the same for other callers, where only a template other than the default shows.
MUTUALLY_EXCLUSIVE = [['template', 'rootfs_tarball'], ['clone_from', 'rootfs_tarball']]
# The backing store options lxc-copy can pass on for a clone (-L); the others are lxc-create's.
CLONE_BACKING_STORE_OPTIONS = ('fssize',)

NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')
_MAC_RE = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$|^([0-9a-fA-F]{2}:){3}xx:xx:xx$')
_CPUSET_RE = re.compile(r'^\d+(-\d+)?(,\d+(-\d+)?)*$')
_IFNAME_RE = re.compile(r'^[A-Za-z0-9_.-]{1,15}$')
_SIZE_RE = re.compile(r'^[0-9]+ ?([kKmMgGtT]i?[bB]?|[bB])?$')
_TEMPLATE_RE = re.compile(r'^[A-Za-z0-9_.-]+$|^/[^\s]+$')
# Keys that keep a container bootable: config_exclusive never removes them.
PROTECTED_PREFIXES = ('lxc.rootfs.', 'lxc.uts.name', 'lxc.include', 'lxc.arch', 'lxc.signal.',
                      'lxc.autodev', 'lxc.tty.', 'lxc.pty.', 'lxc.cap.', 'lxc.apparmor.',
                      'lxc.mount.auto', 'lxc.mount.entry', 'lxc.idmap', 'lxc.init.', 'lxc.console.',
                      'lxc.seccomp.', 'lxc.hook.', 'lxc.log.')


def check_name(name, option='name'):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise VirtkitError('%s: %r is not a valid container name (letters, digits, ".", "_", "-"; '
                           'at most 63 characters, starting with a letter or digit)' % (option, name))
    return name


class ContainerSpec:
    """The validated request. ``keys`` are the config keys the options render."""

    def __init__(self, params):
        self.params = params
        self.name = params['name']
        self.state = params.get('state') or 'present'
        self.rootfs_tarball = params.get('rootfs_tarball')
        self.template = 'local' if self.rootfs_tarball else (params.get('template') or 'busybox')
        self.template_options = list(params.get('template_options') or [])
        self.backing_store = params.get('backing_store') or 'dir'
        self.backing_store_options = dict((k, v) for k, v in (params.get('backing_store_options') or {}).items()
                                          if v is not None)
        self.clone_from = params.get('clone_from')
        self.clone_snapshot = bool(params.get('clone_snapshot'))
        self.unprivileged = params.get('unprivileged')
        self.config_exclusive = bool(params.get('config_exclusive'))
        self.restart_policy = params.get('restart_policy') or 'never'
        self.start_timeout = params.get('start_timeout') or 30
        self.stop_timeout = params.get('stop_timeout') if params.get('stop_timeout') is not None else 30
        self.force_stop = bool(params.get('force_stop'))
        self.wait_for_ip = bool(params.get('wait_for_ip'))
        self.wait_for_ip_interfaces = list(params.get('wait_for_ip_interfaces') or [])
        self.wait_for_ip_timeout = params.get('wait_for_ip_timeout') or 60
        self.limits = {}
        self.networks = None
        self.mounts = []
        self.raw = {}
        self.keys = {}          # key -> [values] set exactly
        self.owned = []         # keys removed unless in self.keys
        self.owned_prefixes = []
        self.mount_targets = {}  # target -> entry text or None (absent)


def _bytes(value, option):
    size = parse_size(value, option, default_unit='MiB')
    if size < 1024 * 1024:
        raise VirtkitError('%s: %r is below 1 MiB; sizes are read in MiB when no unit is given' % (option, value))
    return size


def validate(params, layout=None, path_kind=None):
    """Return a :class:`ContainerSpec` or raise VirtkitError. ``layout``: host cgroups;
    ``path_kind``: what a host path is (see :func:`host_path_kind`, the default)."""
    spec = ContainerSpec(params)
    check_name(spec.name)
    if spec.clone_from is not None:
        check_name(spec.clone_from, 'clone_from')
        if spec.clone_from == spec.name:
            raise VirtkitError('clone_from: a container cannot be cloned from itself (%s)' % spec.name)
    _source(spec, params)
    if not _TEMPLATE_RE.match(spec.template):
        raise VirtkitError('template: %r is not a template name or an absolute path' % spec.template)
    for opt in spec.template_options:
        if '\n' in opt or '\x00' in opt:
            raise VirtkitError('template_options: %r contains a newline or NUL byte' % opt)
    for key in ('start_timeout', 'stop_timeout', 'wait_for_ip_timeout'):
        value = params.get(key)
        if value is not None and value < 0:
            raise VirtkitError('%s: must not be negative, got %s' % (key, value))
    for ifname in spec.wait_for_ip_interfaces:
        if not _IFNAME_RE.match(ifname):
            raise VirtkitError('wait_for_ip_interfaces: %r is not an interface name' % ifname)
    if spec.wait_for_ip_interfaces:
        spec.wait_for_ip = True

    if spec.state == 'absent':
        return spec
    if params.get('limits'):
        _limits(spec, params['limits'], layout)
    if params.get('networks') is not None:
        _networks(spec, params['networks'])
    if params.get('mounts'):
        _mounts(spec, params['mounts'], path_kind or host_path_kind)
    _autostart(spec, params)
    if params.get('config'):
        _raw(spec, params['config'])
    return spec


def _source(spec, params):
    """What a new container is made from: a template, a local rootfs tarball or a clone."""
    tarball = spec.rootfs_tarball
    if tarball is not None:
        for other in ('template', 'clone_from', 'template_options'):
            if params.get(other) and not (other == 'template' and params[other] == 'busybox'):
                raise VirtkitError('rootfs_tarball: cannot be combined with %s (a new container comes from one '
                                   'source)' % other)
        if not tarball.startswith('/') or '\n' in tarball or '\x00' in tarball:
            raise VirtkitError('rootfs_tarball: %r must be an absolute path on the LXC host' % tarball)
    fssize = spec.backing_store_options.get('fssize')
    if fssize is not None and not _SIZE_RE.match(str(fssize)):
        raise VirtkitError('backing_store_options.fssize: %r is not a size such as 2G or 512M' % fssize)
    if spec.clone_from is not None:
        extra = sorted(k for k in spec.backing_store_options if k not in CLONE_BACKING_STORE_OPTIONS)
        if extra:
            raise VirtkitError('backing_store_options: lxc-copy cannot set %s for a clone (with clone_from only '
                               '%s applies)' % (', '.join(extra), ', '.join(CLONE_BACKING_STORE_OPTIONS)))


def _limits(spec, limits, layout):
    out = {}
    if limits.get('memory') is not None:
        out['memory'] = _bytes(limits['memory'], 'limits.memory')
    if limits.get('memory_swap') is not None:
        out['memory_swap'] = _bytes(limits['memory_swap'], 'limits.memory_swap')
        if out.get('memory') is None:
            raise VirtkitError('limits.memory_swap needs limits.memory (memory_swap is memory plus swap)')
        if out['memory_swap'] < out['memory']:
            raise VirtkitError('limits.memory_swap (%s) is below limits.memory (%s); it is memory plus swap'
                               % (limits['memory_swap'], limits['memory']))
    shares = limits.get('cpu_shares')
    if shares is not None:
        if not 2 <= shares <= 262144:
            raise VirtkitError('limits.cpu_shares: must be between 2 and 262144, got %s' % shares)
        out['cpu_shares'] = shares
    cpus = limits.get('cpus')
    if cpus is not None:
        if not 0.01 <= cpus <= 4096:
            raise VirtkitError('limits.cpus: must be between 0.01 and 4096 CPUs, got %s' % cpus)
        out['cpus'] = cpus
    if limits.get('cpuset') is not None:
        cpuset = str(limits['cpuset']).replace(' ', '')
        if not _CPUSET_RE.match(cpuset):
            raise VirtkitError('limits.cpuset: %r is not a CPU list such as 0-1,3' % limits['cpuset'])
        out['cpuset'] = cpuset
    pids = limits.get('pids')
    if pids is not None:
        if pids < 1:
            raise VirtkitError('limits.pids: must be at least 1, got %s' % pids)
        out['pids'] = pids
    spec.limits = out
    if layout is not None:
        keys, owned = cgroup.render_limits(out, layout, spec.name)
        spec.keys.update(keys)
        spec.owned += owned


def _iface(value, family, option):
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise VirtkitError('%s: %r is not an IPv%d address with prefix such as %s'
                           % (option, value, family, '10.0.3.10/24' if family == 4 else 'fd00::10/64'))
    if iface.version != family:
        raise VirtkitError('%s: %r is not an IPv%d address' % (option, value, family))
    if '/' not in value:
        raise VirtkitError('%s: %r needs a prefix length, for example %s/24' % (option, value, value))
    return str(iface)


def with_broadcast(address):
    """An lxc.net.N.ipv4.address value with its broadcast ("10.0.3.5/24 10.0.3.255").

    Without one, LXC 5.0 sets the broadcast to the host part of the netmask (0.0.0.255 for a
    /24); /31 and /32 have no broadcast address and are written as they are.
    """
    iface = ipaddress.ip_interface(address)
    if iface.network.prefixlen > 30:
        return str(iface)
    return '%s %s' % (iface, iface.network.broadcast_address)


def _networks(spec, networks):
    spec.networks = []
    spec.owned_prefixes.append('lxc.net.')
    for i, net in enumerate(networks):
        where = 'networks[%d]' % i
        ntype = net.get('type') or 'veth'
        prefix = 'lxc.net.%d.' % i
        keys = {prefix + 'type': [ntype]}
        if ntype in ('none', 'empty'):
            extra = [k for k in ('link', 'name', 'hwaddr', 'mtu', 'ipv4', 'ipv6', 'ipv4_gateway', 'ipv6_gateway')
                     if net.get(k)]
            if extra:
                raise VirtkitError('%s: type %s takes no %s' % (where, ntype, ', '.join(extra)))
            if ntype == 'none' and len(networks) > 1:
                raise VirtkitError('%s: type none (share the host network) must be the only network' % where)
            spec.keys.update(keys)
            spec.networks.append(net)
            continue
        if ntype in ('macvlan', 'phys') and not net.get('link'):
            raise VirtkitError('%s: type %s needs link (the host interface)' % (where, ntype))
        if net.get('link'):
            if not _IFNAME_RE.match(net['link']):
                raise VirtkitError('%s.link: %r is not an interface name' % (where, net['link']))
            keys[prefix + 'link'] = [net['link']]
        keys[prefix + 'flags'] = ['up']
        if net.get('name'):
            if not _IFNAME_RE.match(net['name']):
                raise VirtkitError('%s.name: %r is not an interface name' % (where, net['name']))
            keys[prefix + 'name'] = [net['name']]
        if net.get('hwaddr'):
            if not _MAC_RE.match(net['hwaddr']):
                raise VirtkitError('%s.hwaddr: %r is not a MAC address' % (where, net['hwaddr']))
            keys[prefix + 'hwaddr'] = [net['hwaddr'].lower()]
        if net.get('mtu') is not None:
            if not 68 <= net['mtu'] <= 65535:
                raise VirtkitError('%s.mtu: must be between 68 and 65535, got %s' % (where, net['mtu']))
            keys[prefix + 'mtu'] = [str(net['mtu'])]
        if net.get('macvlan_mode'):
            if ntype != 'macvlan':
                raise VirtkitError('%s.macvlan_mode: only for type macvlan' % where)
            keys[prefix + 'macvlan.mode'] = [net['macvlan_mode']]
        for family, opt in ((4, 'ipv4'), (6, 'ipv6')):
            addrs = [_iface(a, family, '%s.%s' % (where, opt)) for a in net.get(opt) or []]
            if family == 4:
                addrs = [with_broadcast(a) for a in addrs]
            if addrs:
                keys[prefix + opt + '.address'] = addrs
            gateway = net.get(opt + '_gateway')
            if gateway:
                if gateway not in ('auto', 'dev'):
                    try:
                        gw = ipaddress.ip_address(gateway)
                    except ValueError:
                        raise VirtkitError('%s.%s_gateway: %r is not an address (or auto/dev)' % (where, opt, gateway))
                    if gw.version != family:
                        raise VirtkitError('%s.%s_gateway: %r is not an IPv%d address' % (where, opt, gateway, family))
                    gateway = str(gw)
                keys[prefix + opt + '.gateway'] = [gateway]
        spec.keys.update(keys)
        spec.networks.append(net)


def mount_target(entry):
    """The target (second field) of an lxc.mount.entry value, without a leading '/'."""
    fields = (entry or '').split()
    return fields[1].lstrip('/') if len(fields) > 1 else None


# mounts[].create as written by a user (YAML booleans, or their text after templating).
_CREATE_TRUE = ('true', 'yes', 'on')
_CREATE_FALSE = ('false', 'no', 'off')


def mount_create(value, where='mounts[]'):
    """mounts[].create -> 'dir', 'file', 'auto' (omitted or true: what the source is) or None (false)."""
    if value is None or value is True:
        return 'auto'
    if value is False:
        return None
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ('dir', 'file'):
        return text
    if text in _CREATE_TRUE:
        return 'auto'
    if text in _CREATE_FALSE:
        return None
    raise VirtkitError('%s.create: %r must be dir, file, true (the default: a directory for a directory source, '
                       'a file for a file source) or false (create nothing)' % (where, value))


def host_path_kind(path):
    """'dir', 'file' (anything that is not a directory: a file, a device node, a socket) or None
    when ``path`` does not exist on this host (symlinks followed, as LXC's bind mount does)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return 'dir' if stat.S_ISDIR(mode) else 'file'


def mount_entry(source, target, readonly=False, create=None, optional=False):
    """The lxc.mount.entry value of a bind mount (``target`` without its leading '/')."""
    opts = ['bind']
    if readonly:
        opts.append('ro')
    if create:
        opts.append('create=%s' % create)
    if optional:
        opts.append('optional')
    return '%s %s none %s 0 0' % (source, target, ','.join(opts))


def _mounts(spec, mounts, path_kind):
    """Render mounts by target. ``spec.mounts`` gets each present mount with ``index``, ``path``
    (the target, no leading '/'), ``create`` as asked (see mount_create) and ``creates`` (what the
    entry creates: dir, file or None), which the start-failure message reads."""
    for i, m in enumerate(mounts):
        where = 'mounts[%d]' % i
        target = (m.get('target') or '').strip()
        if not target or re.search(r'\s', target) or '..' in target.split('/'):
            raise VirtkitError('%s.target: %r must be a path inside the container without blanks or ".."'
                               % (where, m.get('target')))
        target = target.lstrip('/')
        if target in spec.mount_targets:
            raise VirtkitError('%s.target: /%s is listed twice' % (where, target))
        if m.get('state') == 'absent':
            spec.mount_targets[target] = None
            continue
        source = m.get('source')
        if not source or not source.startswith('/') or re.search(r'\s', source):
            raise VirtkitError('%s.source: %r must be an absolute host path without blanks' % (where, source))
        create = mount_create(m.get('create'), where)
        optional = bool(m.get('optional'))
        kind = path_kind(source)
        if kind is None and not optional:
            raise VirtkitError('%s.source: %s does not exist on the LXC host (create it, or set %s.optional: true '
                               'to start the container without this mount)' % (where, source, where))
        creates = create
        if create == 'auto':
            if kind is None:
                raise VirtkitError('%s.source: %s does not exist on the LXC host, so the type of the target cannot be '
                                   'told from it; set %s.create: dir or file (or false)' % (where, source, where))
            creates = kind
        elif create and kind and create != kind:
            raise VirtkitError('%s.create: %s, but the source %s is a %s, so LXC cannot mount it there; set %s.create: '
                               '%s or leave create out' % (where, create, source, 'directory' if kind == 'dir' else
                                                           'file', where, kind))
        entry = mount_entry(source, target, m.get('readonly'), creates, optional)
        check_value('lxc.mount.entry', entry, where)
        spec.mount_targets[target] = entry
        spec.mounts.append(dict(m, index=i, path=target, create=create, creates=creates))


def _autostart(spec, params):
    if params.get('autostart') is not None:
        spec.keys['lxc.start.auto'] = ['1' if params['autostart'] else '0']
    for opt, key in (('autostart_order', 'lxc.start.order'), ('autostart_delay', 'lxc.start.delay')):
        if params.get(opt) is not None:
            if params[opt] < 0 and opt == 'autostart_delay':
                raise VirtkitError('%s: must not be negative' % opt)
            spec.keys[key] = [str(params[opt])]
    if params.get('groups') is not None:
        for group in params['groups']:
            if not re.match(r'^[A-Za-z0-9_.-]+$', group or ''):
                raise VirtkitError('groups: %r is not a group name (letters, digits, ".", "_", "-")' % group)
        spec.keys['lxc.group'] = list(params['groups'])
        spec.owned.append('lxc.group')


def _raw(spec, config):
    for key, value in config.items():
        check_key(key, 'config')
        if key in spec.keys or any(key.startswith(p) for p in spec.owned_prefixes) or key in spec.owned:
            raise VirtkitError('config: %s is also set by a typed option (limits, networks, autostart, groups); '
                               'set it in one place' % key)
        if key == 'lxc.mount.entry':
            raise VirtkitError('config: use the mounts option for lxc.mount.entry')
        values = value if isinstance(value, list) else [value]
        spec.raw[key] = [check_value(key, v, 'config') for v in values]
    spec.keys.update(spec.raw)


def idmap_entries(subuid_text, subgid_text, user='root'):
    """lxc.idmap values for ``user``'s first ranges in /etc/subuid and /etc/subgid."""
    entries = []
    for kind, text, path in (('u', subuid_text, '/etc/subuid'), ('g', subgid_text, '/etc/subgid')):
        found = None
        for line in (text or '').splitlines():
            fields = line.strip().split(':')
            if len(fields) == 3 and fields[0] == user and fields[1].isdigit() and fields[2].isdigit():
                found = (int(fields[1]), int(fields[2]))
                break
        if found is None:
            raise VirtkitError('unprivileged: %s has no range for %s; add one, for example '
                               '"%s:100000:65536"' % (path, user, user))
        if found[1] < 65536:
            raise VirtkitError('unprivileged: the range for %s in %s has %d ids; a container needs 65536'
                               % (user, path, found[1]))
        entries.append('%s 0 %d %d' % (kind, found[0], 65536))
    return entries
