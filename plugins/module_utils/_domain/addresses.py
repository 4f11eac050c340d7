# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest's IP addresses from DHCP leases, the guest agent or the host's ARP table.

A DHCP lease outlives the boot that took it: right after a restart, libvirt still
reports the lease of the previous boot. When the caller knows when the guest started
(``since``), a lease counts only if the guest acquired it after that moment; the
acquisition time is the lease's expiry minus the network's lease time. A module run that
did not start the guest itself asks :func:`guest_start_time`, which reads the start time
of the guest's QEMU process on a local qemu:///system (or qemu:///session) connection.
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse

DEFAULT_LEASE_SECONDS = 3600  # dnsmasq's default when the network sets no lease time
_UNIT_SECONDS = {'seconds': 1, 'minutes': 60, 'hours': 3600}
# dnsmasq stores whole seconds (expiry = int(grant time) + lease time), so a lease taken
# in the same second as ``since`` looks up to one second older than it is.
CLOCK_SLACK_SECONDS = 1
QEMU_SYSTEM_RUN_DIR = '/run/libvirt/qemu'


def lease_seconds(network_xml):
    """The DHCP lease time of a libvirt network (first range that sets one)."""
    root = parse(network_xml, 'network XML')
    for lease in root.iterfind('ip/dhcp/range/lease'):
        expiry = int(lease.get('expiry', '0'))
        if expiry == 0:
            return None  # infinite leases: the acquisition time cannot be derived
        return expiry * _UNIT_SECONDS.get(lease.get('unit', 'minutes'), 60)
    return DEFAULT_LEASE_SECONDS


def fresh(lease, since, duration):
    """Whether a lease (a dict of virNetworkGetDHCPLeases) may belong to the boot that began at
    ``since`` (host epoch seconds). Without ``since``, without a known lease time (infinite
    leases) or without an expiry time, nothing tells a stale lease apart: it counts."""
    expiry = lease.get('expirytime')
    if since is None or duration is None or not expiry:
        return True
    acquired = int(expiry) - duration  # the grant or the last renewal
    return acquired + CLOCK_SLACK_SECONDS >= since


def qemu_run_dir(uri):
    """Where the QEMU driver of a local ``uri`` keeps its pid files, or None."""
    scheme, sep, rest = uri.partition('://')
    if not sep or scheme != 'qemu' or not rest.startswith('/'):
        return None  # remote (qemu+ssh://host/...), another driver, or an alias
    path = rest.split('?', 1)[0].rstrip('/')
    if path == '/system':
        return QEMU_SYSTEM_RUN_DIR
    if path == '/session' and os.environ.get('XDG_RUNTIME_DIR'):
        return os.path.join(os.environ['XDG_RUNTIME_DIR'], 'libvirt', 'qemu', 'run')
    return None


def _process_start(pid, proc):
    """Start time (host epoch seconds) of process ``pid`` from ``proc``/<pid>/stat, or None."""
    try:
        with open(os.path.join(proc, str(pid), 'stat')) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        with open(os.path.join(proc, 'stat')) as handle:
            btime = next(int(line.split()[1]) for line in handle if line.startswith('btime '))
        ticks = os.sysconf('SC_CLK_TCK')
        return btime + int(fields[19]) / float(ticks)  # field 22 of stat: starttime
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def _runs_guest(pid, name, proc):
    """Whether ``pid`` is the QEMU process of guest ``name`` (not a stale pid file)."""
    try:
        with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as handle:
            argv = handle.read().split(b'\0')
    except OSError:
        return False
    wanted = b'guest=' + name.replace(',', ',,').encode('utf-8')
    return any(arg == wanted or arg.startswith(wanted + b',') for arg in argv)


def guest_start_time(connection, dom, run_dir=None, proc='/proc'):
    """When the current boot of a running guest began (host epoch seconds), or None.

    The start of the guest's QEMU process: the earlier of its pid file's modification time and
    the process start time in /proc (both on the host's clock, the clock dnsmasq uses for
    lease expiry times). Only on a local QEMU connection (``run_dir`` overrides the pid
    file directory) and only for a guest libvirt booted (state reason ``booted``): a guest
    restored from a saved image, a snapshot or a migration keeps the lease it took before
    its current process started, so no lower bound is known for it and None is returned.
    A reboot inside the guest keeps the process: a lease from before it still counts.
    """
    if run_dir is None:
        run_dir = qemu_run_dir(getattr(connection, 'uri', '') or '')
    if run_dir is None or libvirt is None:
        return None
    try:
        state, reason = dom.state()[:2]
        name = dom.name()
    except libvirt.libvirtError:
        return None
    if state != libvirt.VIR_DOMAIN_RUNNING or reason != libvirt.VIR_DOMAIN_RUNNING_BOOTED:
        return None
    pid_file = os.path.join(run_dir, name + '.pid')
    try:
        written = os.stat(pid_file).st_mtime
        with open(pid_file) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    if not _runs_guest(pid, name, proc):
        return None
    started = _process_start(pid, proc)
    return written if started is None else min(written, started)


def usable(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


class AddressReader:
    """Reads addresses for the NICs of one guest; caches network lookups per run."""

    def __init__(self, conn):
        self.conn = conn
        self._lease_time = {}

    def _network_leases(self, network, mac, since, baseline=None):
        net = self.conn.network(network)
        if net is None or not net.isActive():
            return []
        duration = None
        if since is not None and baseline is None:  # the lease time only matters for dropping stale leases
            if network not in self._lease_time:
                self._lease_time[network] = lease_seconds(net.XMLDesc(0))
            duration = self._lease_time[network]
        result = []
        try:
            leases = net.DHCPLeases(mac)
        except libvirt.libvirtError:
            return []
        for lease in leases:
            if baseline is not None:
                if lease_key(lease) in baseline:
                    continue  # held before this module started the guest: an earlier boot's
            elif not fresh(lease, since, duration):
                continue  # a lease from an earlier boot of this MAC
            if usable(lease.get('ipaddr', '')):
                result.append(lease['ipaddr'])
        return result

    def _from_domain(self, dom, source):
        try:
            found = dom.interfaceAddresses(source, 0)
        except libvirt.libvirtError:
            return {}
        result = {}
        for info in (found or {}).values():
            mac = (info.get('hwaddr') or '').lower()
            for addr in info.get('addrs') or []:
                if mac and usable(addr.get('addr', '')):
                    result.setdefault(mac, []).append(addr['addr'])
        return result

    def lease_keys(self, root):
        """The leases the guest's MACs hold now, taken just before the module starts it.

        Over a remote URI the leases' expiry times are on the libvirt host's clock, which
        need not agree with the clock of the host running the module; a lease missing from
        this set (new, or renewed with another expiry) is then what marks this boot's.
        """
        keys = set()
        for mac, kind, network in _nics(root):
            if kind != 'network' or not network:
                continue
            net = self.conn.network(network)
            if net is None or not net.isActive():
                continue
            try:
                keys.update(lease_key(lease) for lease in net.DHCPLeases(mac))
            except libvirt.libvirtError:
                continue
        return frozenset(keys)

    def read(self, dom, live_root, sources, since=None, baseline=None):
        """{mac: [addresses]} for the guest's NICs, trying ``sources`` in order.

        A ``baseline`` (:meth:`lease_keys`) drops the leases in it instead of those older
        than ``since``.
        """
        nics = _nics(live_root)
        result = {mac: [] for mac, _t, _n in nics}
        for source in sources:
            if source == 'lease':
                for mac, kind, network in nics:
                    if kind == 'network' and network and not result[mac]:
                        result[mac] = self._network_leases(network, mac, since, baseline)
            elif source == 'agent':
                # live_root may be from before the boot (a wait polls with the XML read once):
                # the agent connects only once the guest runs it, so ask libvirt again.
                if not _agent_connected(live_root) and not _agent_connected_now(dom):
                    continue
                for mac, addrs in self._from_domain(dom, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT).items():
                    if mac in result and not result[mac]:
                        result[mac] = addrs
            elif source == 'arp':
                for mac, addrs in self._from_domain(dom, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP).items():
                    if mac in result and not result[mac]:
                        result[mac] = addrs
        return result


def _nics(root):
    """(mac, interface type, network name or None) of each NIC with a MAC."""
    nics = []
    for el in root.findall('devices/interface'):
        mac_el, src = el.find('mac'), el.find('source')
        if mac_el is None:
            continue
        nics.append((mac_el.get('address').lower(), el.get('type'),
                     src.get('network') if src is not None else None))
    return nics


def lease_key(lease):
    """What tells one DHCP lease (a dict of virNetworkGetDHCPLeases) from another."""
    return ((lease.get('mac') or '').lower(), lease.get('ipaddr'), str(lease.get('expirytime')))


def _agent_connected(live_root):
    """Only ask the agent when libvirt says it is connected: a dead agent blocks calls."""
    for target in live_root.iterfind('devices/channel/target'):
        if target.get('name') == 'org.qemu.guest_agent.0':
            return target.get('state') == 'connected'
    return False


def _agent_connected_now(dom):
    try:
        return _agent_connected(parse(dom.XMLDesc(0), 'live domain XML'))
    except (libvirt.libvirtError, VirtkitError):
        return False


def first_address(addresses):
    for addrs in addresses.values():
        for addr in addrs:
            return addr
    return None
