# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A running container's addresses, read from its init process's /proc (no subprocess).

/proc/<pid>/net shows the container's network namespace: local IPv4 addresses are the
``/32 host LOCAL`` leaves of fib_trie, mapped to interfaces through the route table;
IPv6 addresses and their interfaces come from if_inet6.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.cgroup import read_text


def parse_fib_trie(text):
    """Local IPv4 addresses (loopback excluded), in order of appearance."""
    result, last = [], None
    for line in (text or '').splitlines():
        stripped = line.strip()
        if stripped.startswith('|-- '):
            last = stripped[4:].strip()
        elif stripped.startswith('/32 host LOCAL') and last:
            if not last.startswith('127.') and last not in result:
                result.append(last)
            last = None
    return result


def parse_routes(text):
    """/proc/net/route -> [(iface, network int, mask int)] (the file is little-endian hex)."""
    routes = []
    for line in (text or '').splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest = struct.unpack('<I', struct.pack('>I', int(fields[1], 16)))[0]
            mask = struct.unpack('<I', struct.pack('>I', int(fields[7], 16)))[0]
        except ValueError:
            continue
        routes.append((fields[0], dest, mask))
    return routes


def _iface_for(addr, routes):
    value = struct.unpack('>I', socket.inet_aton(addr))[0]
    best = None
    for iface, dest, mask in routes:
        if mask and value & mask == dest and (best is None or mask > best[1]):
            best = (iface, mask)
    return best[0] if best else None


def parse_if_inet6(text):
    """Global IPv6 addresses -> [(iface, address)] (link-local and loopback left out)."""
    result = []
    for line in (text or '').splitlines():
        fields = line.split()
        if len(fields) != 6 or fields[3] != '00':
            continue
        raw = fields[0]
        addr = str(ipaddress.IPv6Address(int(raw, 16)))
        result.append((fields[5], addr))
    return result


def addresses(pid, read_file=None):
    """{'ipv4': [...], 'ipv6': [...], 'interfaces': {ifname: {'ipv4': [...], 'ipv6': [...]}}}."""
    read_file = read_file or read_text
    base = '/proc/%d/net/' % pid
    routes = parse_routes(read_file(base + 'route'))
    out = {'ipv4': [], 'ipv6': [], 'interfaces': {}}
    for addr in parse_fib_trie(read_file(base + 'fib_trie')):
        iface = _iface_for(addr, routes) or '?'
        out['ipv4'].append(addr)
        out['interfaces'].setdefault(iface, {'ipv4': [], 'ipv6': []})['ipv4'].append(addr)
    for iface, addr in parse_if_inet6(read_file(base + 'if_inet6')):
        out['ipv6'].append(addr)
        out['interfaces'].setdefault(iface, {'ipv4': [], 'ipv6': []})['ipv6'].append(addr)
    return out


def proc_start_ticks(pid, read_file=None):
    """The start time (clock ticks since boot) of a process; identifies one boot of it."""
    text = (read_file or read_text)('/proc/%d/stat' % pid)
    if not text:
        return None
    fields = text.rsplit(')', 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None
