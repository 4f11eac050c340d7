# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Static addresses that stick: the guest's own network setup in the container's rootfs.

LXC sets a static address (``lxc.net.N.ipv4.address``) on the interface before the guest's
init runs; a DHCP client the guest then starts on the same interface flushes it (busybox's
udhcpc) or adds a second address (ifupdown's dhclient). Where the rootfs layout is known,
the line that starts that client is turned off for a NIC with static addresses, with a
marker of ours so it comes back when the NIC goes back to DHCP:

- busybox (template busybox): ``/etc/init.d/rcS`` runs ``/bin/udhcpc`` (on eth0);
- ifupdown (template debian, its clones and tarballs): ``iface NIC inet dhcp`` in
  ``/etc/network/interfaces``, ``interfaces.d/*`` and what their ``source`` and
  ``source-directory`` lines name becomes ``inet manual`` (ifupdown then leaves the address
  to LXC); for static IPv6, ``inet6 dhcp`` or ``inet6 auto``. A symlink among them is
  resolved inside the rootfs (as the guest sees it) and its target edited; one ifupdown
  reads that this module cannot (unreadable, too large, through a loop) is a reason.

A file larger than MAX_TEXT is never edited (a reason instead), so never written truncated.

Other layouts (a systemd-networkd ``.network`` file with DHCP on, netplan, NetworkManager,
or none this module knows) are not edited: :func:`survey` returns why, for one warning.

Everything here is pure but for the rootfs view it is given (see the rootfs module: it reads
and writes below the rootfs without following a symlink and keeps owners and modes).
"""

from __future__ import annotations

import fnmatch
import re
import stat

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.rootfs import MAX_TEXT, TooLarge, resolve

MARKER = 'virtkit.guests'
RCS = 'etc/init.d/rcS'
INTERFACES = 'etc/network/interfaces'
INTERFACES_D = 'etc/network/interfaces.d'
NETWORKD_DIRS = ('etc/systemd/network', 'usr/lib/systemd/network', 'lib/systemd/network')
NETPLAN_DIR = 'etc/netplan'
NETWORK_MANAGER = ('usr/sbin/NetworkManager', 'sbin/NetworkManager')
# ifupdown files read through source/source-directory at most (loops, huge trees).
MAX_IFUPDOWN_FILES = 64

_MARK_RE = re.compile(r'^# virtkit\.guests: (\S+) has a static (ipv[46]) address \(lxc\.net\.(\d+)\); was: (.*)$')
_UDHCPC_RE = re.compile(r'^\s*(?:/usr)?(?:/s?bin/)?udhcpc(?:\s+(.*))?$')
_IFACE_RE = re.compile(r'^(\s*)iface\s+(\S+)\s+(inet6?)\s+(\S+)(.*)$')
_SOURCE_RE = re.compile(r'^\s*(source|source-directory)\s+(\S+)\s*$')
# run-parts' names: what source-directory reads from a directory
_RUN_PARTS_RE = re.compile(r'^[a-zA-Z0-9_-]+$')
_DHCP_METHODS = {'inet': ('dhcp',), 'inet6': ('dhcp', 'auto')}
_FAMILY = {'inet': 'ipv4', 'inet6': 'ipv6'}
_METHOD_FAMILY = {'ipv4': 'inet', 'ipv6': 'inet6'}


def nics(networks):
    """The container's NICs as LXC names them: [{'index', 'ifname', 'ipv4', 'ipv6'}].

    ``ipv4``/``ipv6`` are the declared addresses with prefix. An unnamed NIC gets the
    lowest free ``ethN`` in order (what LXC does); type none and empty have no NIC.
    """
    nets = [(i, n) for i, n in enumerate(networks or []) if (n.get('type') or 'veth') not in ('none', 'empty')]
    taken = set(n['name'] for _i, n in nets if n.get('name'))
    out, free = [], 0
    for i, net in nets:
        ifname = net.get('name')
        if not ifname:
            while 'eth%d' % free in taken:
                free += 1
            ifname = 'eth%d' % free
            taken.add(ifname)
        out.append({'index': i, 'ifname': ifname,
                    'ipv4': [str(a).split()[0] for a in net.get('ipv4') or []],
                    'ipv6': [str(a).split()[0] for a in net.get('ipv6') or []]})
    return out


def static_families(nic_list):
    """{ifname: (index, {'ipv4', 'ipv6'} declared static)} for the NICs with static addresses."""
    return dict((n['ifname'], (n['index'], set(f for f in ('ipv4', 'ipv6') if n[f])))
                for n in nic_list if n['ipv4'] or n['ipv6'])


def _marker(ifname, family, index, original):
    return '# %s: %s has a static %s address (lxc.net.%d); was: %s' % (MARKER, ifname, family, index, original)


def _static(statics, ifname, family):
    return ifname in statics and family in statics[ifname][1]


def udhcpc_interface(args):
    """The interface a udhcpc command line configures (eth0 unless -i/--interface says)."""
    words = (args or '').split()
    for i, word in enumerate(words):
        if word in ('-i', '--interface') and i + 1 < len(words):
            return words[i + 1]
        if word.startswith('--interface='):
            return word.split('=', 1)[1]
        if word.startswith('-i') and len(word) > 2 and not word.startswith('--'):
            return word[2:]
    return 'eth0'


def edit_rcs(text, statics):
    """busybox's rcS with udhcpc off for NICs with a static IPv4 address (and back on for the
    others). Returns (new text, {ifname: 'off'|'on'|'complex'} for every udhcpc line seen)."""
    lines = text.split('\n')
    seen = {}
    for n, line in enumerate(lines):
        mark = _MARK_RE.match(line)
        if mark:
            ifname, family, _index, original = mark.groups()
            if family == 'ipv4' and not _static(statics, ifname, 'ipv4'):
                lines[n] = original
                seen[ifname] = 'on'
            else:
                seen[ifname] = 'off'
            continue
        found = _UDHCPC_RE.match(line)
        if not found or re.search(r'[;&|`$<>()]', line):
            anywhere = re.search(r'\budhcpc\b(.*)$', line)
            if anywhere and not line.lstrip().startswith('#'):
                # part of a shell construct: not rewritten
                seen[udhcpc_interface(anywhere.group(1))] = 'complex'
            continue
        ifname = udhcpc_interface(found.group(1))
        if _static(statics, ifname, 'ipv4'):
            lines[n] = _marker(ifname, 'ipv4', statics[ifname][0], line)
            seen[ifname] = 'off'
        else:
            seen.setdefault(ifname, 'on')
    return '\n'.join(lines), seen


def edit_interfaces(text, statics):
    """ifupdown's interfaces(5) with ``iface NIC inet dhcp`` (``inet6 dhcp|auto``) as ``manual``
    for NICs with static addresses of that family, and back for the others. Returns
    (new text, {(ifname, family): method after the edit} for every iface stanza)."""
    lines = text.split('\n')
    out, seen = [], {}
    n = 0
    while n < len(lines):
        line = lines[n]
        mark = _MARK_RE.match(line)
        nxt = _IFACE_RE.match(lines[n + 1]) if mark and n + 1 < len(lines) else None
        if mark and nxt and nxt.group(2) == mark.group(1) and _FAMILY[nxt.group(3)] == mark.group(2) \
                and nxt.group(4) == 'manual':
            ifname, family = mark.group(1), mark.group(2)
            if _static(statics, ifname, family):
                out += [line, lines[n + 1]]
                seen[(ifname, family)] = 'manual'
            else:
                out.append(mark.group(4))
                seen[(ifname, family)] = _IFACE_RE.match(mark.group(4)).group(4) \
                    if _IFACE_RE.match(mark.group(4)) else 'dhcp'
            n += 2
            continue
        found = _IFACE_RE.match(line)
        if found:
            indent, ifname, method_family, method, rest = found.groups()
            family = _FAMILY[method_family]
            if method in _DHCP_METHODS[method_family] and _static(statics, ifname, family):
                out += [_marker(ifname, family, statics[ifname][0], line),
                        '%siface %s %s manual%s' % (indent, ifname, method_family, rest)]
                seen[(ifname, family)] = 'manual'
                n += 1
                continue
            seen[(ifname, family)] = method
        out.append(line)
        n += 1
    return '\n'.join(out), seen


def _networkd_dhcp(text, ifname):
    """The DHCP families a systemd-networkd .network file turns on for ``ifname`` (a set)."""
    section, names, dhcp = None, None, ''
    for raw in (text or '').splitlines():
        line = raw.strip()
        if not line or line[0] in '#;':
            continue
        if line.startswith('['):
            section = line.strip('[]').strip()
            continue
        key, _sep, value = line.partition('=')
        key, value = key.strip(), value.strip()
        if section == 'Match' and key == 'Name':
            names = (names or []) + value.split()
        elif section == 'Network' and key == 'DHCP':
            dhcp = value.lower()
    if names is not None and not any(fnmatch.fnmatchcase(ifname, pattern.lstrip('!')) != pattern.startswith('!')
                                     for pattern in names):
        return set()
    return {'yes': {'ipv4', 'ipv6'}, 'true': {'ipv4', 'ipv6'}, 'on': {'ipv4', 'ipv6'}, '1': {'ipv4', 'ipv6'},
            'both': {'ipv4', 'ipv6'}, 'ipv4': {'ipv4'}, 'ipv6': {'ipv6'}}.get(dhcp, set())


def survey(view, nic_list):
    """What the rootfs needs so that the static addresses of ``nic_list`` stick.

    Returns (edits, reasons): edits ``[(path, before, after)]`` (paths below the rootfs,
    with a leading "/"), reasons ``{ifname: why its address may not stick}`` for the NICs
    with static addresses that no edit here can protect.
    """
    statics = static_families(nic_list)
    edits, reasons, known = [], {}, False
    rcs = _read(view, RCS)
    if rcs is TooLarge and view.exists('bin/busybox'):
        known = True
        for ifname, (_index, families) in statics.items():
            if 'ipv4' in families:
                reasons[ifname] = '/%s is larger than %d bytes, so this module does not edit it' % (RCS, MAX_TEXT)
    elif rcs is not None and view.exists('bin/busybox'):
        known = True
        new, seen = edit_rcs(rcs, statics)
        if new != rcs:
            edits.append(('/' + RCS, rcs, new))
        for ifname, how in seen.items():
            if how == 'complex' and _static(statics, ifname, 'ipv4'):
                reasons[ifname] = '/%s starts udhcpc on it in a shell construct this module does not rewrite' % RCS
    texts, skipped = ifupdown_files(view)
    for path, text in texts:
        known = True
        new, _seen = edit_interfaces(text, statics)
        if new != text:
            edits.append(('/' + path, text, new))
    if skipped:
        known = True
        for ifname in statics:
            reasons.setdefault(ifname, 'ifupdown reads %s, which this module does not edit' % ', '.join(skipped))
    for directory in NETWORKD_DIRS:
        for name in view.listdir(directory):
            if not name.endswith('.network'):
                continue
            text = _read(view, '%s/%s' % (directory, name))
            text = '' if text is TooLarge else text
            for ifname, (_index, families) in statics.items():
                if families & _networkd_dhcp(text, ifname) and ifname not in reasons:
                    reasons[ifname] = 'systemd-networkd runs DHCP on it (/%s/%s)' % (directory, name)
    netplan = [n for n in view.listdir(NETPLAN_DIR) if n.endswith(('.yaml', '.yml'))]
    for name in netplan:
        text = _read(view, '%s/%s' % (NETPLAN_DIR, name))
        text = '' if text in (None, TooLarge) else text
        if re.search(r'dhcp[46]:\s*(true|yes|on)\b', text):
            for ifname in statics:
                reasons.setdefault(ifname, 'netplan may run DHCP on it (/%s/%s)' % (NETPLAN_DIR, name))
    if any(view.exists(p) for p in NETWORK_MANAGER):
        for ifname in statics:
            reasons.setdefault(ifname, 'NetworkManager is installed in the guest and may run DHCP on it')
    if not known and not netplan:
        for ifname in statics:
            reasons.setdefault(ifname, 'the rootfs has no network setup this module knows (busybox\'s '
                                       '/etc/init.d/rcS, ifupdown\'s /etc/network/interfaces)')
    return edits, reasons


def _read(view, path):
    """A file's text below the rootfs, None (missing, a link, unreadable) or TooLarge."""
    try:
        return view.read(path)
    except TooLarge:
        return TooLarge


def _sourced(view, directory, keyword, pattern):
    """(paths, why not) of what a ``source`` (a glob) or ``source-directory`` line names, paths
    below the rootfs as the guest reads them; relative ones start at the including file's directory."""
    full = pattern if pattern.startswith('/') else '%s/%s' % (directory, pattern)
    if keyword == 'source-directory':
        where = resolve(view, full)
        if where is None:
            return [], '/%s (a symlink this module does not follow)' % full.strip('/')
        return ['%s/%s' % (where, n) for n in view.listdir(where) if _RUN_PARTS_RE.match(n)], None
    head, _sep, leaf = full.rstrip('/').rpartition('/')
    if any(c in head for c in '*?['):
        return [], '%s (a wildcard in a directory name)' % full
    where = resolve(view, head)
    if where is None:
        return [], '/%s (a symlink this module does not follow)' % head.strip('/')
    if not any(c in leaf for c in '*?['):
        return ['%s/%s' % (where, leaf)], None
    return ['%s/%s' % (where, n) for n in view.listdir(where) if fnmatch.fnmatchcase(n, leaf)
            and not (n.startswith('.') and not leaf.startswith('.'))], None


def ifupdown_files(view):
    """The interfaces(5) files ifupdown reads in the rootfs: ([(path, text)], [why not for each
    one this module cannot edit]). From /etc/network/interfaces (and interfaces.d/*, as always),
    through its ``source`` and ``source-directory`` lines; a symlink is resolved inside the rootfs
    and its target edited; a file that cannot be read or is too large is named in ``why not``."""
    if view.stat(INTERFACES) is None:
        return [], []
    todo = [INTERFACES] + ['%s/%s' % (INTERFACES_D, n) for n in view.listdir(INTERFACES_D) if not n.startswith('.')]
    texts, skipped, seen = [], [], set()
    while todo:
        path = resolve(view, todo.pop(0))
        if path is None:
            skipped.append('a file through a symlink loop')
            continue
        if path in seen:
            continue
        seen.add(path)
        if len(seen) > MAX_IFUPDOWN_FILES:
            skipped.append('more than %d files' % MAX_IFUPDOWN_FILES)
            break
        st = view.stat(path)
        if st is None or stat.S_ISDIR(st.st_mode):
            continue  # ifupdown skips it as well
        text = _read(view, path)
        if text is TooLarge:
            skipped.append('/%s (larger than %d bytes)' % (path, MAX_TEXT))
            continue
        if text is None:
            skipped.append('/%s (not a regular file this module can read)' % path)
            continue
        texts.append((path, text))
        directory = path.rpartition('/')[0]
        for line in text.split('\n'):
            found = _SOURCE_RE.match(line)
            if found:
                more, why = _sourced(view, directory, found.group(1), found.group(2))
                todo += more
                if why:
                    skipped.append(why)
    return texts, skipped


def warning(name, nic_list, reasons, observed=None):
    """One warning for the NICs whose static addresses may not or do not stick, or None.

    ``observed``: {ifname: [IPv4 addresses the running container has on it]} (or None)."""
    parts = []
    for nic in nic_list:
        if not (nic['ipv4'] or nic['ipv6']):
            continue
        ifname = nic['ifname']
        want = sorted(a.split('/')[0] for a in nic['ipv4'])
        have = None if observed is None or not nic['ipv4'] else sorted(observed.get(ifname) or [])
        text = []
        if have is not None and have != want:
            text.append('has %s instead of the declared %s' % (', '.join(have) or 'no IPv4 address',
                                                               ', '.join(want)))
        if ifname in reasons:
            text.append(('because ' if text else 'may lose its static address: ') + reasons[ifname])
        if text:
            parts.append('%s (networks[%d]) %s' % (ifname, nic['index'], ' '.join(text)))
    if not parts:
        return None
    return ('%s: %s; the guest\'s own network setup is not made to keep the address here: configure it inside '
            'the guest (or declare no static address and use DHCP)' % (name, '; '.join(parts)))
