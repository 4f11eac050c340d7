# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest's IP addresses from DHCP leases, the guest agent or the host's ARP table.

A DHCP lease outlives the boot that took it: right after a restart, libvirt still
reports the lease of the previous boot. When the caller knows when the guest started
(``since``), a lease counts only if the guest acquired it after that moment; the
acquisition time is the lease's expiry minus the network's lease time.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse

DEFAULT_LEASE_SECONDS = 3600  # dnsmasq's default when the network sets no lease time
_UNIT_SECONDS = {'seconds': 1, 'minutes': 60, 'hours': 3600}


def lease_seconds(network_xml):
    """The DHCP lease time of a libvirt network (first range that sets one)."""
    root = parse(network_xml, 'network XML')
    for lease in root.iterfind('ip/dhcp/range/lease'):
        expiry = int(lease.get('expiry', '0'))
        if expiry == 0:
            return None  # infinite leases: the acquisition time cannot be derived
        return expiry * _UNIT_SECONDS.get(lease.get('unit', 'minutes'), 60)
    return DEFAULT_LEASE_SECONDS


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

    def _network_leases(self, network, mac, since):
        net = self.conn.network(network)
        if net is None or not net.isActive():
            return []
        duration = None
        if since is not None:  # the lease time only matters for dropping stale leases
            if network not in self._lease_time:
                self._lease_time[network] = lease_seconds(net.XMLDesc(0))
            duration = self._lease_time[network]
        result = []
        try:
            leases = net.DHCPLeases(mac)
        except libvirt.libvirtError:
            return []
        for lease in leases:
            if since is not None and duration is not None and lease.get('expirytime'):
                acquired = int(lease['expirytime']) - duration
                if acquired + 1 < since:
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

    def read(self, dom, live_root, sources, since=None):
        """{mac: [addresses]} for the guest's NICs, trying ``sources`` in order."""
        nics = []
        for el in live_root.findall('devices/interface'):
            mac_el, src = el.find('mac'), el.find('source')
            if mac_el is None:
                continue
            nics.append((mac_el.get('address').lower(), el.get('type'),
                         src.get('network') if src is not None else None))
        result = {mac: [] for mac, _t, _n in nics}
        for source in sources:
            if source == 'lease':
                for mac, kind, network in nics:
                    if kind == 'network' and network and not result[mac]:
                        result[mac] = self._network_leases(network, mac, since)
            elif source == 'agent':
                if not _agent_connected(live_root):
                    continue
                for mac, addrs in self._from_domain(dom, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT).items():
                    if mac in result and not result[mac]:
                        result[mac] = addrs
            elif source == 'arp':
                for mac, addrs in self._from_domain(dom, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP).items():
                    if mac in result and not result[mac]:
                        result[mac] = addrs
        return result


def _agent_connected(live_root):
    """Only ask the agent when libvirt says it is connected: a dead agent blocks calls."""
    for target in live_root.iterfind('devices/channel/target'):
        if target.get('name') == 'org.qemu.guest_agent.0':
            return target.get('state') == 'connected'
    return False


def first_address(addresses):
    for addrs in addresses.values():
        for addr in addrs:
            return addr
    return None
