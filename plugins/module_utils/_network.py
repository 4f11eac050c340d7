# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt networks: argument spec, pure validation, merge, plan, and the manager.

The desired spec is merged onto the network's current persistent XML with an
:class:`~._xml.Editor` (libvirt's UUID, bridge name and MAC survive). DHCP host and DNS
host entries of an active network are changed live through ``virNetworkUpdate``; every
other change is written to the persistent config and reported as a pending restart.
"""

from __future__ import annotations

import ipaddress
import os
import re
from copy import deepcopy

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, error_code, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._xml import Editor, canonical, parse, to_string

try:
    from lxml import etree
except ImportError:  # pragma: no cover - reported by the module
    etree = None

FORWARD_MODES = ('nat', 'route', 'open', 'isolated', 'bridge')
# Fields a running network takes live (virNetworkUpdate); all others wait for a restart.
LIVE_FIELDS = ('dhcp_hosts', 'dns_hosts')

_RANGE = {'start': {'type': 'str', 'required': True}, 'end': {'type': 'str', 'required': True}}
_DHCP_HOST = {
    'mac': {'type': 'str'},
    'id': {'type': 'str'},
    'name': {'type': 'str'},
    'ip': {'type': 'str'},
    'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
}
_IP = {
    'address': {'type': 'str', 'required': True},
    'dhcp_ranges': {'type': 'list', 'elements': 'dict', 'options': _RANGE},
    'dhcp_hosts': {'type': 'list', 'elements': 'dict', 'options': _DHCP_HOST},
}

ARGUMENT_SPEC = dict(
    LIBVIRT_ARGS,
    name={'type': 'str', 'required': True},
    state={'type': 'str', 'choices': ['present', 'running', 'stopped', 'absent'], 'default': 'present'},
    forward_mode={'type': 'str', 'choices': list(FORWARD_MODES)},
    forward_dev={'type': 'str'},
    bridge={'type': 'str'},
    domain={'type': 'str'},
    mtu={'type': 'int'},
    ipv4={'type': 'dict', 'options': _IP},
    ipv6={'type': 'dict', 'options': _IP},
    dns_hosts={'type': 'list', 'elements': 'dict', 'options': {
        'ip': {'type': 'str', 'required': True},
        'hostnames': {'type': 'list', 'elements': 'str'},
        'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    }},
    hosts_exclusive={'type': 'bool', 'default': False},
    autostart={'type': 'bool'},
    restart_policy={'type': 'str', 'choices': ['never', 'if_unused', 'if_needed'], 'default': 'never'},
)

_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
_IFNAME = re.compile(r'^[A-Za-z0-9_.:-]{1,15}$')


class NetSpec:
    """Validated, normalised parameters (plain attributes)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _fail(name, msg):
    raise VirtkitError('%s: %s' % (name, msg))


def _ip_section(name, family, opts):
    """Validate one of ipv4/ipv6; returns a normalised dict."""
    if opts is None:
        return None
    label = '%s: %s' % (name, family)
    try:
        iface = ipaddress.ip_interface(opts['address'])
    except ValueError:
        raise VirtkitError('%s.address %r is not an address with a prefix such as %s'
                           % (label, opts['address'], '192.168.250.1/24' if family == 'ipv4' else 'fd00:250::1/64'))
    if '/' not in opts['address']:
        raise VirtkitError('%s.address %r needs a prefix length, for example %s/24'
                           % (label, opts['address'], opts['address']))
    want = 4 if family == 'ipv4' else 6
    if iface.version != want:
        raise VirtkitError('%s.address %s is not an IPv%d address' % (label, opts['address'], want))
    net = iface.network
    if want == 4 and net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise VirtkitError('%s.address %s is the network or broadcast address of %s; use a host address'
                           % (label, opts['address'], net))

    def host_ip(text, what):
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise VirtkitError('%s %s %r is not an IPv%d address' % (label, what, text, want))
        if ip.version != want or ip not in net:
            raise VirtkitError('%s %s %s is outside the subnet %s' % (label, what, text, net))
        return ip

    ranges = None
    if opts.get('dhcp_ranges') is not None:
        ranges = []
        for r in opts['dhcp_ranges']:
            start = host_ip(r['start'], 'dhcp range start')
            end = host_ip(r['end'], 'dhcp range end')
            if start > end:
                raise VirtkitError('%s dhcp range %s-%s starts after it ends' % (label, r['start'], r['end']))
            if start <= iface.ip <= end:
                raise VirtkitError('%s dhcp range %s-%s contains the network\'s own address %s'
                                   % (label, r['start'], r['end'], iface.ip))
            ranges.append((str(start), str(end)))
    hosts = None
    if opts.get('dhcp_hosts') is not None:
        hosts = []
        seen = {}
        for h in opts['dhcp_hosts']:
            h = dict(h)
            if want == 4 and h.get('id'):
                raise VirtkitError('%s dhcp host id %s: DHCP client ids (DUIDs) are for ipv6 hosts; '
                                   'match ipv4 hosts by mac' % (label, h['id']))
            if want == 6 and h.get('mac'):
                raise VirtkitError('%s dhcp host mac %s: libvirt matches ipv6 hosts by id (DUID) or name, not mac'
                                   % (label, h['mac']))
            if h.get('mac'):
                h['mac'] = h['mac'].lower()
                if not _MAC.match(h['mac']):
                    raise VirtkitError('%s dhcp host mac %r is not a MAC address like 52:54:00:12:34:56'
                                       % (label, h['mac']))
            key = h.get('mac') or h.get('id') or h.get('name')
            if not key:
                raise VirtkitError('%s dhcp host %s needs %s to identify it'
                                   % (label, h.get('ip'), 'mac' if want == 4 else 'id or name'))
            if h.get('ip'):
                h['ip'] = str(host_ip(h['ip'], 'dhcp host %s ip' % key))
            elif h['state'] == 'present':
                raise VirtkitError('%s dhcp host %s needs an ip' % (label, key))
            what = 'mac' if h.get('mac') else ('id' if h.get('id') else 'name')
            if key in seen:
                raise VirtkitError('%s dhcp hosts list %s %s twice' % (label, what, key))
            seen[key] = True
            hosts.append(h)
        ips = [h['ip'] for h in hosts if h['state'] == 'present']
        dup = sorted(set(ip for ip in ips if ips.count(ip) > 1))
        if dup:
            raise VirtkitError('%s dhcp hosts give %s to more than one host' % (label, dup[0]))
    return {'family': family, 'ip': str(iface.ip), 'prefix': net.prefixlen, 'network': net,
            'ranges': ranges, 'hosts': hosts}


def validate(params):
    """Pure validation of module parameters; raises a one-line VirtkitError."""
    name = params['name']
    if not name or '/' in name:
        _fail(name, 'the network name must be non-empty and contain no "/"')
    spec = NetSpec(name=name, state=params['state'], forward_mode=params.get('forward_mode'),
                   forward_dev=params.get('forward_dev'), bridge=params.get('bridge'),
                   domain=params.get('domain'), mtu=params.get('mtu'), autostart=params.get('autostart'),
                   hosts_exclusive=params.get('hosts_exclusive', False),
                   restart_policy=params.get('restart_policy') or 'never')
    if spec.state == 'absent':
        spec.ipv4 = spec.ipv6 = spec.dns_hosts = None
        return spec
    if spec.bridge is not None and not _IFNAME.match(spec.bridge):
        _fail(name, 'bridge %r is not a valid interface name (at most 15 letters, digits, "_.:-")' % spec.bridge)
    if spec.mtu is not None and not 68 <= spec.mtu <= 65535:
        _fail(name, 'mtu %d is outside 68-65535' % spec.mtu)
    if spec.forward_dev is not None and spec.forward_mode not in ('nat', 'route'):
        _fail(name, 'forward_dev needs forward_mode nat or route')
    spec.ipv4 = _ip_section(name, 'ipv4', params.get('ipv4'))
    spec.ipv6 = _ip_section(name, 'ipv6', params.get('ipv6'))
    if spec.forward_mode == 'bridge':
        if not spec.bridge:
            _fail(name, 'forward_mode bridge needs bridge: the name of an existing host bridge')
        for key in ('ipv4', 'ipv6', 'domain', 'mtu', 'dns_hosts'):
            if params.get(key) is not None:
                _fail(name, '%s cannot be set with forward_mode bridge (libvirt only plugs guests into the '
                      'host bridge %s; addresses come from the host\'s LAN)' % (key, spec.bridge))
    dns = None
    if params.get('dns_hosts') is not None:
        dns = []
        seen = set()
        for h in params['dns_hosts']:
            try:
                ip = str(ipaddress.ip_address(h['ip']))
            except ValueError:
                _fail(name, 'dns host ip %r is not an IP address' % h['ip'])
            if ip in seen:
                _fail(name, 'dns hosts list %s twice' % ip)
            seen.add(ip)
            if h['state'] == 'present' and not h.get('hostnames'):
                _fail(name, 'dns host %s needs at least one hostname' % ip)
            dns.append({'ip': ip, 'hostnames': list(h.get('hostnames') or []), 'state': h['state']})
    spec.dns_hosts = dns
    return spec


# ------------------------------------------------------------------ XML merge


def _ip_elements(root, family):
    found = []
    for el in root.findall('ip'):
        fam = el.get('family') or ('ipv6' if ':' in (el.get('address') or '') else 'ipv4')
        if fam == family:
            found.append(el)
    return found


def _el_prefix(el):
    if el.get('prefix'):
        return int(el.get('prefix'))
    if el.get('netmask'):
        return ipaddress.ip_network('0.0.0.0/%s' % el.get('netmask')).prefixlen
    return 24 if ':' not in (el.get('address') or '') else 64


def host_key(el, family):
    """Identity of a DHCP host element: mac for ipv4, id else name for ipv6."""
    if family == 'ipv4':
        return (el.get('mac') or '').lower() or el.get('name')
    return el.get('id') or el.get('name')


def _merge_ip(ed, root, ip, exclusive):
    family = ip['family']
    existing = _ip_elements(root, family)
    el = existing[0] if existing else None
    if el is None:
        el = etree.SubElement(root, 'ip')
        if family == 'ipv6':
            el.set('family', 'ipv6')
        ed.record(family)
    cur_addr = el.get('address')
    same = False
    if cur_addr:
        try:
            same = ipaddress.ip_address(cur_addr) == ipaddress.ip_address(ip['ip']) and _el_prefix(el) == ip['prefix']
        except ValueError:
            same = False
    if not same:
        ed.attr(el, 'address', ip['ip'], family)
        ed.attr(el, 'netmask', None, family)
        ed.attr(el, 'prefix', str(ip['prefix']), family)
    if ip['ranges'] is not None:
        dhcp = el.find('dhcp')
        current = [(r.get('start'), r.get('end')) for r in dhcp.findall('range')] if dhcp is not None else []
        if current != ip['ranges']:
            dhcp = ed.child(el, 'dhcp', family)
            for r in dhcp.findall('range'):
                dhcp.remove(r)
            for pos, (start, end) in enumerate(ip['ranges']):
                r = etree.Element('range')
                r.set('start', start)
                r.set('end', end)
                dhcp.insert(pos, r)
            ed.record(family)
    if ip['hosts'] is not None:
        dhcp = el.find('dhcp')
        if dhcp is None and any(h['state'] == 'present' for h in ip['hosts']):
            dhcp = ed.child(el, 'dhcp', family)
        if dhcp is None:
            return
        by_key = {}
        for h in dhcp.findall('host'):
            by_key.setdefault(host_key(h, family), h)
        wanted = set()
        for h in ip['hosts']:
            key = h.get('mac') or h.get('id') or h.get('name')
            wanted.add(key)
            cur = by_key.get(key)
            if h['state'] == 'absent':
                if cur is not None:
                    ed.remove(cur, 'dhcp_hosts', 'remove', key)
                continue
            if cur is None:
                cur = etree.SubElement(dhcp, 'host')
                ed.record('dhcp_hosts', 'add', key)
            for attr in ('mac', 'id', 'name', 'ip'):
                if h.get(attr) is not None:
                    ed.attr(cur, attr, h[attr], 'dhcp_hosts')
        if exclusive:
            for key, cur in by_key.items():
                if key not in wanted:
                    ed.remove(cur, 'dhcp_hosts', 'remove', key)


def _merge_dns(ed, root, hosts, exclusive):
    dns = root.find('dns')
    current = {}
    if dns is not None:
        for h in dns.findall('host'):
            try:
                current.setdefault(str(ipaddress.ip_address(h.get('ip'))), h)
            except ValueError:
                current.setdefault(h.get('ip'), h)
    wanted = set()
    for h in hosts:
        wanted.add(h['ip'])
        cur = current.get(h['ip'])
        if h['state'] == 'absent':
            if cur is not None:
                ed.remove(cur, 'dns_hosts', 'remove', h['ip'])
            continue
        names = [n.text for n in cur.findall('hostname')] if cur is not None else None
        if names == h['hostnames']:
            continue
        if dns is None:
            dns = ed.child(root, 'dns', 'dns_hosts')
        if cur is None:
            cur = etree.SubElement(dns, 'host')
            cur.set('ip', h['ip'])
        for n in cur.findall('hostname'):
            cur.remove(n)
        for name in h['hostnames']:
            etree.SubElement(cur, 'hostname').text = name
        ed.record('dns_hosts', 'modify', h['ip'])
    if exclusive:
        for ip, cur in current.items():
            if ip not in wanted:
                ed.remove(cur, 'dns_hosts', 'remove', ip)


def skeleton(name):
    root = etree.Element('network')
    etree.SubElement(root, 'name').text = name
    return root


def merge(root, spec):
    """Apply ``spec`` onto the network XML ``root`` in place; returns the Editor."""
    ed = Editor(root)
    ed.text(ed.child(root, 'name', 'name'), spec.name, 'name')
    if spec.forward_mode is not None:
        fwd = root.find('forward')
        if spec.forward_mode == 'isolated':
            if fwd is not None:
                ed.remove(fwd, 'forward_mode')
        else:
            if fwd is None:
                fwd = ed.child(root, 'forward', 'forward_mode')
            if (fwd.get('mode') or 'nat') != spec.forward_mode:
                ed.attr(fwd, 'mode', spec.forward_mode, 'forward_mode')
                for child in list(fwd):
                    if child.tag == 'nat' and spec.forward_mode != 'nat':
                        fwd.remove(child)
            elif fwd.get('mode') is None:
                fwd.set('mode', spec.forward_mode)  # libvirt's default spelled out; not a change
    if spec.forward_dev is not None:
        fwd = root.find('forward')
        if fwd is None:
            fwd = ed.child(root, 'forward', 'forward_dev')
        ed.attr(fwd, 'dev', spec.forward_dev, 'forward_dev')
    if spec.bridge is not None:
        ed.attr(ed.child(root, 'bridge', 'bridge'), 'name', spec.bridge, 'bridge')
    if spec.domain is not None:
        ed.attr(ed.child(root, 'domain', 'domain'), 'name', spec.domain, 'domain')
    if spec.mtu is not None:
        ed.attr(ed.child(root, 'mtu', 'mtu'), 'size', str(spec.mtu), 'mtu')
    for ip in (spec.ipv4, spec.ipv6):
        if ip is not None:
            _merge_ip(ed, root, ip, spec.hosts_exclusive)
    if spec.dns_hosts is not None:
        _merge_dns(ed, root, spec.dns_hosts, spec.hosts_exclusive)
    return ed


# ------------------------------------------------------------------ live host updates


def _section(name):
    return getattr(libvirt, name) if libvirt is not None else name


def host_entries(root):
    """{(section, parent_index, key): element} of DHCP hosts (per ip) and DNS hosts."""
    out = {}
    for index, ip in enumerate(root.findall('ip')):
        family = ip.get('family') or ('ipv6' if ':' in (ip.get('address') or '') else 'ipv4')
        for h in ip.findall('dhcp/host'):
            out.setdefault(('VIR_NETWORK_SECTION_IP_DHCP_HOST', index, host_key(h, family)), h)
    for h in root.findall('dns/host'):
        out.setdefault(('VIR_NETWORK_SECTION_DNS_HOST', -1, h.get('ip')), h)
    return out


def _ip_identity(el):
    try:
        return ipaddress.ip_interface('%s/%d' % (el.get('address'), _el_prefix(el)))
    except ValueError:
        return el.get('address')


def host_updates(before, after):
    """virNetworkUpdate operations turning the hosts of ``before`` into those of ``after``.

    Each is (command, section, parent_index, xml). DHCP hosts change with MODIFY; DNS hosts,
    which libvirt cannot modify, with DELETE then ADD.
    """
    old, new = host_entries(before), host_entries(after)
    # DHCP hosts of an <ip> that is new or readdressed wait for the restart with it.
    ips_before, ips_after = before.findall('ip'), after.findall('ip')
    moved = set(i for i, el in enumerate(ips_after)
                if i >= len(ips_before) or _ip_identity(ips_before[i]) != _ip_identity(el))
    old = dict((k, v) for k, v in old.items() if not (k[0].endswith('DHCP_HOST') and k[1] in moved))
    new = dict((k, v) for k, v in new.items() if not (k[0].endswith('DHCP_HOST') and k[1] in moved))
    ops = []
    for key, el in old.items():
        if key not in new:
            ops.append(('DELETE', key[0], key[1], to_string(el)))
    for key, el in new.items():
        if key not in old:
            ops.append(('ADD_LAST', key[0], key[1], to_string(el)))
        elif canonical(old[key]) != canonical(el):
            if key[0] == 'VIR_NETWORK_SECTION_DNS_HOST':
                ops.append(('DELETE', key[0], key[1], to_string(old[key])))
                ops.append(('ADD_LAST', key[0], key[1], to_string(el)))
            else:
                ops.append(('MODIFY', key[0], key[1], to_string(el)))
    return ops


# ------------------------------------------------------------------ planning


class Current:
    """What the manager read about the network."""

    def __init__(self, name, exists=False, active=False, persistent=True, autostart=False,
                 inactive_xml=None, live_xml=None, users=(), inactive_reliable=True):
        self.name = name
        self.exists = exists
        self.active = active
        self.persistent = persistent
        self.autostart = autostart
        self.inactive_xml = inactive_xml
        self.live_xml = live_xml
        self.users = list(users)   # running guests with a NIC on this network
        self.inactive_reliable = inactive_reliable


def _state_name(active, exists=True):
    return ('running' if active else 'stopped') if exists else 'absent'


def pending_fields(spec, live_xml):
    """Fields of ``spec`` that the running network (``live_xml``) lacks, minus live ones."""
    if live_xml is None:
        return []
    ed = merge(parse(live_xml, 'live network XML'), spec)
    return [f for f in ed.fields() if f not in LIVE_FIELDS]


def build_plan(spec, current):
    """Pure: (spec, current) -> Plan with actions for the manager's ``_op_*`` methods."""
    plan = Plan(spec.name)
    plan.pending_fields = []
    plan.before = {'state': _state_name(current.active, current.exists)}
    if current.exists:
        plan.before['autostart'] = current.autostart
        plan.before['xml'] = canonical(parse(current.inactive_xml))
    if spec.state == 'absent':
        plan.after = {'state': 'absent'}
        if current.exists:
            if current.active:
                plan.add('destroy', 'stop network %s' % spec.name)
            if current.persistent:
                plan.add('undefine', 'undefine network %s' % spec.name)
        return plan

    base = parse(current.inactive_xml) if current.exists else skeleton(spec.name)
    root = deepcopy(base)
    ed = merge(root, spec)
    needs_define = bool(ed.changes) or not current.exists or not current.persistent
    active = current.active
    live_ops = []
    if current.exists and active and current.live_xml is not None:
        live_root = parse(current.live_xml, 'live network XML')
        live_after = deepcopy(live_root)
        merge(live_after, spec)
        live_ops = host_updates(live_root, live_after)
        config_ops = host_updates(base, root)
        if live_ops and live_ops == config_ops and current.inactive_reliable:
            # Hosts only differ the same way live and in the config: LIVE|CONFIG updates.
            for op in live_ops:
                plan.add('update', '%s %s of running network %s (live and persistent)'
                         % (op[0].lower().replace('_last', ''), _section_label(op[1]), spec.name),
                         command=op[0], section=op[1], index=op[2], xml=op[3], config=True)
            needs_define = any(f not in LIVE_FIELDS for f in ed.fields()) or not current.persistent
        else:
            for op in live_ops:
                plan.add('update', '%s %s of running network %s (live)'
                         % (op[0].lower().replace('_last', ''), _section_label(op[1]), spec.name),
                         command=op[0], section=op[1], index=op[2], xml=op[3], config=False)
    if needs_define:
        fields = ed.fields() or ['name']
        plan.add('define', ('define network %s' % spec.name) if not current.exists else
                 'update the persistent config of network %s: %s' % (spec.name, ', '.join(fields)),
                 xml=to_string(root))
    plan.merged_xml = to_string(root)
    want_active = {'running': True, 'stopped': False}.get(spec.state, active)
    if current.exists and active and want_active:
        plan.pending_fields = pending_fields(spec, current.live_xml)
        if plan.pending_fields and spec.restart_policy != 'never':
            if current.users and spec.restart_policy == 'if_unused':
                plan.restart_blocked_by = current.users
            else:
                summary = 'restart network %s to apply %s' % (spec.name, ', '.join(plan.pending_fields))
                if current.users:
                    summary += ', carrying the NICs of running guests %s over' % ', '.join(current.users)
                plan.add('restart', summary)
                plan.pending_fields = []
    if want_active and not active:
        plan.add('start', 'start network %s' % spec.name)
    elif active and not want_active:
        plan.add('destroy', 'stop network %s' % spec.name)
    autostart = current.autostart if current.exists else False
    if spec.autostart is not None and spec.autostart != autostart:
        plan.add('autostart', 'set autostart of network %s to %s' % (spec.name, spec.autostart),
                 value=spec.autostart)
        autostart = spec.autostart
    plan.after = {'state': _state_name(want_active), 'autostart': autostart, 'xml': canonical(root)}
    return plan


def _section_label(section):
    return 'a DHCP host' if section.endswith('DHCP_HOST') else 'a DNS host'


def reservation_problem(network, el, roots, mac, ip, prefix=None, hostname=None):
    """Pure: refuse a DHCP reservation ``mac`` -> ``ip`` on the IPv4 ``<ip>`` element ``el``.

    ``roots`` are the network's persistent and live XML, whose host entries are checked
    for another MAC holding ``ip`` or ``hostname``. Raises a one-line VirtkitError.
    """
    iface = _ip_identity(el)
    if not isinstance(iface, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        raise VirtkitError('network %s: cannot read its IPv4 address %r' % (network, el.get('address')))
    subnet = iface.network
    addr = ipaddress.ip_address(ip)
    if addr not in subnet:
        raise VirtkitError('%s is outside the subnet %s of network %s (reservations go into its first IPv4 '
                           'subnet)' % (ip, subnet, network))
    if prefix is not None and prefix != subnet.prefixlen:
        raise VirtkitError('%s/%d does not match the subnet %s of network %s' % (ip, prefix, subnet, network))
    if addr == iface.ip:
        raise VirtkitError('%s is the host\'s own address on network %s' % (ip, network))
    if addr in (subnet.network_address, subnet.broadcast_address):
        raise VirtkitError('%s is the network or broadcast address of %s (network %s)' % (ip, subnet, network))
    if el.find('dhcp/range') is None:
        raise VirtkitError('network %s has no DHCP range in %s, so no DHCP server hands out the reservation '
                           '(add ipv4.dhcp_ranges with libvirt_network, or use a network-config address)'
                           % (network, subnet))
    for root in roots:
        for h in root.findall('ip/dhcp/host'):
            other = (h.get('mac') or '').lower()
            if other == mac:
                continue
            if h.get('ip') == ip:
                raise VirtkitError('%s is already reserved for %s on network %s' % (ip, other or h.get('name'), network))
            if hostname and h.get('name') == hostname:
                raise VirtkitError('the host name %s is already reserved for %s (%s) on network %s'
                                   % (hostname, other or '?', h.get('ip'), network))


# ------------------------------------------------------------------ facts


def xml_facts(xml):
    """Readable facts from network XML."""
    root = parse(xml, 'network XML')
    fwd = root.find('forward')
    facts = {
        'name': root.findtext('name'),
        'uuid': root.findtext('uuid'),
        'forward_mode': 'isolated' if fwd is None else (fwd.get('mode') or 'nat'),
        'forward_dev': fwd.get('dev') if fwd is not None else None,
        'bridge': root.find('bridge').get('name') if root.find('bridge') is not None else None,
        'mac': root.find('mac').get('address') if root.find('mac') is not None else None,
        'domain': root.find('domain').get('name') if root.find('domain') is not None else None,
        'mtu': int(root.find('mtu').get('size')) if root.find('mtu') is not None else None,
        'ipv4': None,
        'ipv6': None,
        'dns_hosts': [{'ip': h.get('ip'), 'hostnames': [n.text for n in h.findall('hostname')]}
                      for h in root.findall('dns/host')],
    }
    for family in ('ipv4', 'ipv6'):
        els = _ip_elements(root, family)
        if not els:
            continue
        el = els[0]
        facts[family] = {
            'address': '%s/%d' % (el.get('address'), _el_prefix(el)),
            'dhcp_ranges': [{'start': r.get('start'), 'end': r.get('end')} for r in el.findall('dhcp/range')],
            'dhcp_hosts': [dict((k, h.get(k)) for k in ('mac', 'id', 'name', 'ip') if h.get(k))
                           for h in el.findall('dhcp/host')],
        }
    return facts


# ------------------------------------------------------------------ the manager


def _flag(name, default=0):
    return getattr(libvirt, name, default) if libvirt is not None else default


class NetworkManager:
    """Everything libvirt_network does, over one :class:`~._libvirt.Connection`."""

    def __init__(self, connection):
        self.c = connection
        self.conn = connection.conn
        self.net = None

    def read(self, name, with_users=False):
        net = self.c.network(name)
        self.net = net
        if net is None:
            return Current(name)
        active = bool(self.c.call(name, 'read state', net.isActive))
        persistent = bool(self.c.call(name, 'read persistence', net.isPersistent))
        autostart = bool(self.c.call(name, 'read autostart', net.autostart)) if persistent else False
        reliable = True
        try:
            inactive = net.XMLDesc(_flag('VIR_NETWORK_XML_INACTIVE', 1))
        except libvirt.libvirtError as err:
            if error_code(err) not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise VirtkitError('%s: read XML failed: %s' % (name, ' '.join(str(err).split())))
            inactive = self.c.call(name, 'read XML', net.XMLDesc, 0)   # drivers without the flag
            reliable = not active
        live = self.c.call(name, 'read live XML', net.XMLDesc, 0) if active else None
        users = self.users(name) if (with_users and active) else []
        return Current(name, True, active, persistent, autostart, inactive, live, users, reliable)

    def users(self, name, nics=False):
        """Running guests with a NIC on network ``name`` (names, or (domain, [NIC]) pairs)."""
        found = []
        for dom in self.c.call(name, 'list guests', self.conn.listAllDomains, _flag('VIR_CONNECT_LIST_DOMAINS_ACTIVE')):
            try:
                root = parse(dom.XMLDesc(0), 'domain XML')
            except libvirt.libvirtError:
                continue   # the guest went away meanwhile
            mine = [el for el in root.findall('devices/interface')
                    if el.get('type') == 'network' and el.find('source') is not None
                    and el.find('source').get('network') == name]
            if mine:
                found.append((dom, mine) if nics else dom.name())
        return found

    def preflight(self, spec, current):
        """Checks that need the host, before anything changes."""
        if spec.state == 'absent':
            return
        root = parse(current.inactive_xml) if current.exists else None
        cur_bridge = root.find('bridge').get('name') if root is not None and root.find('bridge') is not None else None
        mine = set()
        for other in self.c.call(spec.name, 'list networks', self.conn.listAllNetworks, 0):
            oname = other.name()
            if oname == spec.name:
                continue
            try:
                oroot = parse(other.XMLDesc(0), 'network XML')
            except libvirt.libvirtError:
                continue
            obr = oroot.find('bridge')
            if obr is not None and obr.get('name'):
                mine.add(obr.get('name'))
                if spec.bridge and obr.get('name') == spec.bridge:
                    ofwd = oroot.find('forward')
                    if not (spec.forward_mode == 'bridge' and ofwd is not None and ofwd.get('mode') == 'bridge'):
                        raise VirtkitError('%s: bridge %s is already used by libvirt network %s'
                                           % (spec.name, spec.bridge, oname))
            for ip in (spec.ipv4, spec.ipv6):
                if ip is None:
                    continue
                for el in _ip_elements(oroot, ip['family']):
                    try:
                        onet = ipaddress.ip_interface('%s/%d' % (el.get('address'), _el_prefix(el))).network
                    except ValueError:
                        continue
                    if onet.overlaps(ip['network']):
                        raise VirtkitError('%s: subnet %s overlaps %s of libvirt network %s'
                                           % (spec.name, ip['network'], onet, oname))
        if not self.c.is_local or not spec.bridge:
            return
        exists = os.path.exists('/sys/class/net/%s' % spec.bridge)
        if spec.forward_mode == 'bridge':
            if not exists:
                raise VirtkitError('%s: host bridge %s does not exist (forward_mode bridge uses an existing '
                                   'bridge; create it first)' % (spec.name, spec.bridge))
        elif exists and spec.bridge != cur_bridge and spec.bridge not in mine:
            raise VirtkitError('%s: bridge %s clashes with an existing host interface; choose another '
                               'bridge name' % (spec.name, spec.bridge))

    def run(self, params, check_mode=False):
        spec = validate(params)
        current = self.read(spec.name, with_users=spec.restart_policy != 'never')
        self.preflight(spec, current)
        plan = build_plan(spec, current)
        result = {
            'changed': plan.changed,
            'actions': plan.describe(),
            'diff': plan.diff(),
            'pending_restart': bool(plan.pending_fields),
            'pending_restart_fields': plan.pending_fields,
        }
        blocked = getattr(plan, 'restart_blocked_by', None)
        if blocked:
            result['restart_blocked_by'] = blocked
        if check_mode:
            result['network'] = self.facts(current) if current.exists else {}
            return result
        for action in plan.actions:
            getattr(self, '_op_' + action.op)(spec, **action.params)
        if spec.state == 'absent':
            result['network'] = {}
            return result
        after = self.read(spec.name)
        if plan.changed:
            self.confirm(spec, after)
        # Pending is what the running network still lacks after the run, read back.
        pending = pending_fields(spec, after.live_xml) if after.active else []
        if pending and any(a.op in ('restart', 'start') for a in plan.actions):
            raise VirtkitError('%s: the network was (re)started but runs without %s as set'
                               % (spec.name, ', '.join(pending)))
        result['pending_restart'] = bool(pending)
        result['pending_restart_fields'] = pending
        result['network'] = self.facts(after)
        return result

    def confirm(self, spec, current):
        if not current.exists:
            raise VirtkitError('%s: the network disappeared right after it was defined' % spec.name)
        if current.inactive_reliable:
            ed = merge(parse(current.inactive_xml), spec)
            if ed.changes:
                raise VirtkitError('%s: libvirt did not keep %s as set; check the values against the host'
                                   % (spec.name, ', '.join(ed.fields())))
        if current.active:
            ed = merge(parse(current.live_xml), spec)
            missed = [f for f in ed.fields() if f in LIVE_FIELDS]
            if missed and not [f for f in ed.fields() if f not in LIVE_FIELDS]:
                raise VirtkitError('%s: the running network did not take %s' % (spec.name, ', '.join(missed)))

    def facts(self, current):
        facts = xml_facts(current.live_xml or current.inactive_xml)
        facts.update({'active': current.active, 'persistent': current.persistent,
                      'autostart': current.autostart, 'state': _state_name(current.active)})
        return facts

    def describe(self, name=None, leases=False):
        """Facts of one network (or all); [] when ``name`` does not exist."""
        if name is not None:
            names = [name]
        else:
            names = sorted(n.name() for n in self.c.call(self.c.uri, 'list networks', self.conn.listAllNetworks, 0))
        out = []
        for n in names:
            current = self.read(n)
            if not current.exists:
                continue
            facts = self.facts(current)
            if leases:
                facts['leases'] = self.leases(n) if current.active else []
            out.append(facts)
        return out

    def leases(self, name):
        try:
            raw = self.net.DHCPLeases()
        except libvirt.libvirtError as err:
            if error_code(err) == libvirt.VIR_ERR_NO_SUPPORT:
                return []
            raise VirtkitError('%s: read DHCP leases failed: %s' % (name, ' '.join(str(err).split())))
        return [{'mac': lease.get('mac'), 'ip': lease.get('ipaddr'), 'prefix': lease.get('prefix'),
                 'hostname': lease.get('hostname'), 'expiry': lease.get('expirytime')} for lease in raw]

    def reserve(self, network, mac, ip, prefix=None, hostname=None, state='present', check_mode=False):
        """A DHCP host entry (``mac`` -> ``ip``, optionally ``hostname``) on an existing network.

        The entry goes into the network's first IPv4 subnet, live and persistent (no restart),
        through the same plan as :meth:`run`. Refused in one line, before anything changes,
        when the network does not exist, has no DHCP range in the subnet holding ``ip``, or
        when ``ip`` (or ``hostname``) is reserved for or leased to another MAC. With ``state``
        absent the entry of ``mac`` is removed if there is one.
        """
        mac = mac.lower()
        current = self.read(network)
        nothing = {'changed': False, 'actions': [], 'diff': {}, 'pending_restart': False,
                   'pending_restart_fields': []}
        if not current.exists:
            if state == 'absent':
                return nothing
            raise VirtkitError('network %s does not exist (a DHCP reservation goes into an existing libvirt '
                               'network; create it with libvirt_network)' % network)
        roots = [parse(current.inactive_xml, 'network XML')]
        if current.live_xml is not None:
            roots.append(parse(current.live_xml, 'live network XML'))
        subnets = _ip_elements(roots[0], 'ipv4')
        if not subnets:
            if state == 'absent':
                return nothing
            raise VirtkitError('network %s has no IPv4 subnet for the reservation of %s' % (network, ip))
        el = subnets[0]
        iface = _ip_identity(el)
        if state == 'present':
            reservation_problem(network, el, roots, mac, ip, prefix, hostname)
            if current.active:
                for lease in self.leases(network):
                    if lease['ip'] == ip and (lease['mac'] or '').lower() != mac:
                        raise VirtkitError('%s is leased to %s on network %s; choose another address or '
                                           'reserve it once that lease has ended' % (ip, lease['mac'], network))
            host = {'mac': mac, 'ip': ip, 'name': hostname, 'state': 'present'}
        else:
            host = {'mac': mac, 'state': 'absent'}
        params = {'name': network, 'state': 'present', 'hosts_exclusive': False, 'restart_policy': 'never',
                  'ipv4': {'address': str(iface), 'dhcp_hosts': [host]}}
        return self.run(params, check_mode=check_mode)

    # ------------------------------------------------------------ operations

    def _op_define(self, spec, xml):
        self.net = self.c.call(spec.name, 'define', self.conn.networkDefineXML, xml)

    def _op_update(self, spec, command, section, index, xml, config):
        flags = _flag('VIR_NETWORK_UPDATE_AFFECT_LIVE')
        if config:
            flags |= _flag('VIR_NETWORK_UPDATE_AFFECT_CONFIG')
        self.c.call(spec.name, 'update (%s %s)' % (command.lower(), _section_label(section)), self.net.update,
                    _flag('VIR_NETWORK_UPDATE_COMMAND_' + command), _section(section), index, xml, flags)

    def _op_restart(self, spec):
        """Stop and start the network; running guests' NICs ride out the restart elsewhere.

        Stopping a network deletes its bridge, which leaves the tap devices of running guests
        unplugged (libvirt does not re-plug them when the network starts again). So each such
        NIC is first moved (live only) onto a transient isolated holding network with a bridge
        and no addresses, and moved back once the network runs again: libvirt plugs the tap
        into the new bridge. The guests' persistent config is never touched.
        """
        users = self.users(spec.name, nics=True)
        hold = None
        moved = []
        try:
            if users:
                hold = self._holding_network(spec.name)
                for dom, nics in users:
                    for nic in nics:
                        self._move_nic(spec.name, dom, nic, hold.name())
                        moved.append((dom, nic))
            self._op_destroy(spec)
            self._op_start(spec)
        finally:
            errors = []
            for dom, nic in moved:
                try:
                    self._move_nic(spec.name, dom, nic, spec.name)
                except VirtkitError as err:
                    errors.append(str(err))
            if hold is not None:
                try:
                    hold.destroy()
                except libvirt.libvirtError:
                    pass
            if errors:
                raise VirtkitError('%s: restarted, but could not plug NICs back: %s' % (spec.name, '; '.join(errors)))

    def _holding_network(self, name):
        suffix = '%05d' % (os.getpid() % 100000)
        xml = ("<network><name>virtkit-hold-%s</name><bridge name='vkhold%s' stp='off'/></network>"
               % (suffix, suffix))
        return self.c.call(name, 'create holding network for running guests\' NICs', self.conn.networkCreateXML, xml)

    def _move_nic(self, name, dom, nic, target):
        el = deepcopy(nic)
        src = el.find('source')
        for attr in list(src.attrib):
            if attr != 'network':
                del src.attrib[attr]
        src.set('network', target)
        mac = el.find('mac').get('address') if el.find('mac') is not None else '?'
        self.c.call('%s' % name, 'move NIC %s of guest %s to network %s' % (mac, dom.name(), target),
                    dom.updateDeviceFlags, to_string(el), _flag('VIR_DOMAIN_AFFECT_LIVE', 1))

    def _op_start(self, spec):
        self.c.call(spec.name, 'start', self.net.create)

    def _op_destroy(self, spec):
        self.c.call(spec.name, 'stop', self.net.destroy)

    def _op_undefine(self, spec):
        self.c.call(spec.name, 'undefine', self.net.undefine)

    def _op_autostart(self, spec, value):
        self.c.call(spec.name, 'set autostart', self.net.setAutostart, 1 if value else 0)
