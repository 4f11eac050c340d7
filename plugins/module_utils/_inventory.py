# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading every guest of a hypervisor in bulk, for the guest_inventory plugin.

A libvirt hypervisor is read over one connection: one ``listAllDomains`` call, one bulk
state call, one autostart listing, one XML document per guest (libvirt has no bulk XML
call) and one DHCP lease table per network; the guest agent or ARP table is asked only
for running guests whose NICs have no lease. An LXC host is read with one ``lxc-ls``
call plus file reads (the container configs and ``/proc/<pid>/net``); a remote LXC host
with a single SSH round trip running a fixed script.

Everything below :func:`read_libvirt` / :func:`read_lxc` is pure: guest records are plain
dicts (cacheable as JSON) and :func:`plan_hosts` turns them into host names, variables
and groups.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.virtkit.guests.plugins.module_utils._domain.addresses import (
    _agent_connected, usable)
from ansible_collections.virtkit.guests.plugins.module_utils._domain.facts import (
    STATE_NAMES, xml_facts)
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import facts as lxcfacts
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import (
    Runner, clean_error, parse_ls_fancy)
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse

LS_COLUMNS = 'NAME,STATE,PID,AUTOSTART,GROUPS,IPV4,IPV6'
MARK = '@@virtkit@@'
# Runs on a remote LXC host as `sh -c SCRIPT sh LXC_PATH`: the path is only ever "$1".
REMOTE_SCRIPT = r'''P="${1:-$(lxc-config lxc.lxcpath 2>/dev/null)}"; P="${P:-/var/lib/lxc}"
out=$(lxc-ls -P "$P" --fancy -F %(columns)s 2>&1) || { echo "%(mark)s error"; echo "$out"; exit 0; }
echo "%(mark)s path"; printf '%%s\n' "$P"
echo "%(mark)s ls"; printf '%%s\n' "$out"
for c in "$P"/*/config; do
  [ -f "$c" ] || continue
  n=${c%%/config}; n=${n##*/}
  echo; echo "%(mark)s config $n"; cat "$c"
done
printf '%%s\n' "$out" | tail -n +2 | while read -r n s p rest; do
  case "$p" in ''|*[!0-9]*) continue;; esac
  for f in route fib_trie if_inet6; do echo; echo "%(mark)s proc $n $f"; cat "/proc/$p/net/$f" 2>/dev/null; done
done
''' % {'columns': LS_COLUMNS, 'mark': MARK}
LXC_STATES = {'running': 'running', 'frozen': 'paused', 'stopped': 'shutoff'}
# Config keys shown as the container's settings (what lxc_container manages).
LXC_VISIBLE_KEYS = re.compile(r'^lxc\.(start\.|group$|cgroup2?\.|net\.|apparmor\.profile$|idmap$|arch$|uts\.name$)')


def hypervisor_label(source):
    """The hypervisor's name: ``name``, else the host of the URI or LXC host, else localhost."""
    if source.get('name'):
        return source['name']
    uri = source.get('uri') or ''
    match = re.match(r'^[\w+.-]+://(?:[^@/]*@)?([^/:?]+)', uri)
    if match:
        return match.group(1)
    if source.get('lxc_host'):
        return source['lxc_host'].rsplit('@', 1)[-1]
    return 'localhost'


# ---------------------------------------------------------------- libvirt

def _network_leases(conn, network, cache):
    """{mac: [(ip, prefix)]} of one network, one call per network and run."""
    if network in cache:
        return cache[network]
    cache[network] = {}
    net = conn.network(network)
    if net is None:
        return cache[network]
    try:
        if not net.isActive():
            return cache[network]
        leases = net.DHCPLeases()
    except libvirt.libvirtError:
        return cache[network]
    for lease in leases or []:
        mac = (lease.get('mac') or '').lower()
        if mac and usable(lease.get('ipaddr', '')):
            cache[network].setdefault(mac, []).append((lease['ipaddr'], lease.get('prefix')))
    return cache[network]


def _domain_addresses(dom, source):
    """{mac: [(ip, prefix, guest ifname)]} from the agent or ARP, one call per guest."""
    kind = {'agent': libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            'arp': libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP}[source]
    try:
        found = dom.interfaceAddresses(kind, 0)
    except libvirt.libvirtError:
        return {}
    result = {}
    for ifname, info in (found or {}).items():
        mac = (info.get('hwaddr') or '').lower()
        for addr in info.get('addrs') or []:
            if mac and usable(addr.get('addr', '')):
                result.setdefault(mac, []).append((addr['addr'], addr.get('prefix'), ifname))
    return result


def libvirt_guest(root, state, autostart, sources, leases_for, ask_domain):
    """One guest record from its (live) XML; addresses only for a running guest.

    ``leases_for(network)`` returns that network's {mac: [(ip, prefix)]};
    ``ask_domain(source)`` returns {mac: [(ip, prefix, ifname)]} from the agent or ARP.
    """
    facts = xml_facts(root)
    nics = []
    for el, info in zip(root.findall('devices/interface'), facts['interfaces']):
        target = el.find('target')
        nics.append({'mac': (info['mac'] or '').lower(), 'type': info['type'], 'source': info['source'],
                     'network': (el.find('source').get('network') if el.find('source') is not None else None),
                     'target': target.get('dev') if target is not None else None})
    addresses = []
    if state in ('running', 'paused'):
        pending = [nic for nic in nics if nic['mac']]
        for source in sources:
            if not pending:
                break
            found = {}
            if source == 'lease':
                for nic in pending:
                    if nic['type'] == 'network' and nic['network']:
                        hits = leases_for(nic['network']).get(nic['mac'])
                        if hits:
                            found[nic['mac']] = [(ip, prefix, None) for ip, prefix in hits]
            elif source == 'agent' and not _agent_connected(root):
                continue
            else:
                found = ask_domain(source)
            for nic in list(pending):
                for ip, prefix, ifname in found.get(nic['mac'], []):
                    addresses.append(_address(ip, prefix, ifname or nic['target'], nic['mac'],
                                              nic['network'] or nic['source'], source))
                if found.get(nic['mac']):
                    pending.remove(nic)
    return {
        'kind': 'kvm',
        'name': facts['name'],
        'uuid': facts['uuid'],
        'state': state,
        'autostart': autostart,
        'vcpus': facts['vcpus'],
        'memory_mib': facts['memory_mib'],
        'metadata': facts['metadata'],
        'title': facts['title'],
        'interfaces': nics,
        'addresses': addresses,
        'lxc_groups': [],
    }


def _address(ip, prefix, interface, mac, network, source):
    family = 'ipv6' if ':' in ip else 'ipv4'
    return {'address': ip, 'prefix': prefix, 'family': family, 'interface': interface,
            'mac': mac, 'network': network, 'source': source}


def parallel_map(func, items, workers):
    """[func(item)] in order; with workers > 1 the calls overlap (libvirt and subprocess
    calls release the GIL, so round trips to one hypervisor or to many run concurrently)."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))


def read_libvirt(uri, sources, workers=1, keep=None):
    """All guests behind one libvirt URI, over one connection.

    Libvirt has no bulk call for domain XML; with ``workers`` > 1 the per-guest XMLDesc
    round trips are issued concurrently on the one connection (libvirt's RPC client
    multiplexes calls), which matters for remote hypervisors. ``keep(name, state)`` drops
    guests before their XML is fetched (names are local, states come in bulk).
    """
    readonly = not set(sources) & {'agent', 'arp'}
    with Connection(uri, readonly=readonly) as conn:
        domains = conn.call(uri, 'list domains', conn.conn.listAllDomains, 0)
        states = {}
        try:
            for dom, stats in conn.conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE):
                states[dom.UUIDString()] = STATE_NAMES.get(stats.get('state.state'), 'nostate')
        except libvirt.libvirtError:
            pass  # drivers without bulk stats: per-guest state() below
        autostart = set(d.UUIDString() for d in conn.call(
            uri, 'list domains', conn.conn.listAllDomains, libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART))
        lease_cache = {}

        def fetch(dom):
            try:
                uuid = dom.UUIDString()
                state = states.get(uuid) or STATE_NAMES.get(dom.state()[0], 'nostate')
                if keep is not None and not keep(dom.name(), state):
                    return None
                return dom, uuid, state, dom.XMLDesc(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None  # undefined while we listed
                raise VirtkitError('%s: read guest failed: %s' % (uri, ' '.join(str(err).split())))

        guests = []
        for item in parallel_map(fetch, domains, workers):
            if item is None:
                continue
            dom, uuid, state, xml = item
            guests.append(libvirt_guest(
                parse(xml, 'domain XML'), state, uuid in autostart, sources,
                lambda network: _network_leases(conn, network, lease_cache),
                lambda source, dom=dom: _domain_addresses(dom, source)))
        return guests


# ---------------------------------------------------------------- LXC

def _run(argv, timeout):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise VirtkitError('%s is not installed' % argv[0])
    except subprocess.TimeoutExpired:
        raise VirtkitError('%s did not answer within %s s' % (argv[0], timeout))
    return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')


def ssh_argv(source, command_words):
    """ssh argv running ``command_words`` on the LXC host (each word quoted for its shell)."""
    argv = [source.get('lxc_ssh_executable') or 'ssh', '-o', 'BatchMode=yes']
    if source.get('lxc_host_port'):
        argv += ['-p', str(source['lxc_host_port'])]
    if source.get('lxc_host_user'):
        argv += ['-l', source['lxc_host_user']]
    argv += list(source.get('lxc_ssh_args') or [])
    return argv + [source['lxc_host'], '--', ' '.join(shlex.quote(w) for w in command_words)]


def parse_remote(text):
    """The remote script's output -> (ls text, {name: config text}, {name: {file: text}}, lxc path)."""
    ls, configs, proc, path = [], {}, {}, []
    current = None
    for line in (text or '').split('\n'):
        if line.startswith(MARK + ' '):
            words = line[len(MARK) + 1:].split(' ')
            if words[0] == 'error':
                current = []
                ls = current
                ls.append(MARK + ' error')
            elif words[0] == 'ls':
                current = ls
            elif words[0] == 'path':
                current = path
            elif words[0] == 'config' and len(words) == 2:
                current = configs.setdefault(words[1], [])
            elif words[0] == 'proc' and len(words) == 3:
                current = proc.setdefault(words[1], {}).setdefault(words[2], [])
            continue
        if current is not None:
            current.append(line)
    if ls and ls[0] == MARK + ' error':
        raise VirtkitError('lxc-ls failed: %s' % (clean_error('\n'.join(ls[1:])) or 'no output'))

    def join(lines):  # each section ends before the blank line the script prints
        return '\n'.join(lines).rstrip('\n') + '\n'
    return (join(ls), {k: join(v) for k, v in configs.items()},
            {n: {f: join(t) for f, t in files.items()} for n, files in proc.items()},
            path[0] if path else None)


def read_lxc(source, timeout=30):
    """All containers of one LXC host (local, or over SSH with one round trip)."""
    lxc_path = source.get('lxc_path')
    if source.get('lxc_host'):
        words = ['sh', '-c', REMOTE_SCRIPT, 'sh', lxc_path or '']
        rc, out, err = _run(ssh_argv(source, words), timeout)
        if rc != 0:
            cause = clean_error(err) or ' '.join(err.split())
            raise VirtkitError('ssh %s failed (rc %s): %s' % (source['lxc_host'], rc, cause))
        ls_text, configs, proc, remote_path = parse_remote(out)
        return lxc_guests(ls_text, configs.get, lambda name, fname: proc.get(name, {}).get(fname),
                          lxc_path or remote_path or '/var/lib/lxc')
    runner = Runner(lxc_path)
    _rc, out, _err = runner.run('lxc-ls', None, ['--fancy', '-F', LS_COLUMNS], 'list containers',
                                timeout=timeout)

    def read(path):
        try:
            with open(path) as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    def proc_file(name, fname):
        pid = pids.get(name)
        return read('/proc/%d/net/%s' % (pid, fname)) if pid else None

    rows = parse_ls_fancy(out)
    pids = dict((r['name'], int(r['pid'])) for r in rows if r.get('pid') and str(r['pid']).isdigit())
    return lxc_guests(out, lambda name: read(runner.config_path(name)), proc_file, runner.lxc_path)


def _memory_mib(conf):
    for key in ('lxc.cgroup2.memory.max', 'lxc.cgroup.memory.limit_in_bytes'):
        value = conf.first(key)
        if value and value.isdigit():
            return int(value) // (1024 * 1024)
    return None


def _cpus(conf):
    value = conf.first('lxc.cgroup2.cpu.max')
    if value:
        parts = value.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]):
            return round(int(parts[0]) / float(parts[1]), 2)
    quota, period = conf.first('lxc.cgroup.cpu.cfs_quota_us'), conf.first('lxc.cgroup.cpu.cfs_period_us')
    if quota and period and quota.isdigit() and period.isdigit() and int(period):
        return round(int(quota) / float(period), 2)
    return None


def lxc_guests(ls_text, config_text, proc_text, lxc_path):
    """Container records from ``lxc-ls --fancy`` text, config texts and /proc/<pid>/net texts.

    ``config_text(name)`` and ``proc_text(name, file)`` return text or None.
    """
    guests = []
    for row in parse_ls_fancy(ls_text):
        name = row.get('name')
        if not name:
            continue
        state = LXC_STATES.get(row.get('state'), row.get('state') or 'nostate')
        conf = LxcConfig.parse(config_text(name) or '')
        addresses = []
        if state in ('running', 'paused'):
            found = lxcfacts.addresses(0, read_file=lambda path, n=name: proc_text(n, path.rsplit('/', 1)[-1]))
            for ifname, fam in sorted(found['interfaces'].items()):
                for ip in fam['ipv4'] + fam['ipv6']:
                    addresses.append(_address(ip, None, ifname if ifname != '?' else None, None, None, 'proc'))
            if not addresses:  # no /proc access: lxc-ls's own list, without interfaces
                for ip in (row.get('ipv4') or []) + (row.get('ipv6') or []):
                    if usable(ip):
                        addresses.append(_address(ip, None, None, None, None, 'lxc-ls'))
        macs = {}
        for key, value in conf.entries():
            match = re.match(r'^lxc\.net\.(\d+)\.(hwaddr|name|link)$', key)
            if match:
                macs.setdefault(match.group(1), {})[match.group(2)] = value
        for index, nic in macs.items():
            nic.setdefault('name', 'eth%s' % index)  # LXC's default name
        for addr in addresses:
            for nic in macs.values():
                if addr['interface'] and nic['name'] == addr['interface']:
                    addr['mac'], addr['network'] = nic.get('hwaddr'), nic.get('link')
        groups = conf.get('lxc.group') or row.get('groups') or []
        guests.append({
            'kind': 'lxc',
            'name': name,
            'uuid': None,
            'state': state,
            'autostart': bool(row.get('autostart')) or conf.first('lxc.start.auto') == '1',
            'vcpus': _cpus(conf),
            'memory_mib': _memory_mib(conf),
            'metadata': {},
            'title': None,
            'interfaces': [{'mac': n.get('hwaddr'), 'target': n.get('name'), 'network': n.get('link')}
                           for _i, n in sorted(macs.items())],
            'addresses': addresses,
            'lxc_groups': list(groups),
            'lxc_path': lxc_path,
            'lxc_config': dict((k, v) for k, v in conf.as_dict().items() if LXC_VISIBLE_KEYS.match(k)),
        })
    return guests


# ---------------------------------------------------------------- pure: hosts, vars, groups

def choose_address(addresses, preferred):
    """ansible_host: the first address in the first preferred CIDR or network name, else
    the first IPv4 address, else the first address."""
    for want in preferred or []:
        try:
            net = ipaddress.ip_network(want, strict=False)
        except ValueError:
            net = None
        for addr in addresses:
            if net is not None:
                try:
                    if ipaddress.ip_address(addr['address']) in net:
                        return addr['address']
                except ValueError:
                    continue
            elif want in (addr.get('network'), addr.get('interface')):
                return addr['address']
    for addr in addresses:
        if addr['family'] == 'ipv4':
            return addr['address']
    return addresses[0]['address'] if addresses else None


def matches(guest, include, exclude, states):
    name = guest['name']
    if include and not any(fnmatch.fnmatchcase(name, pat) for pat in include):
        return False
    if exclude and any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
        return False
    return not states or guest['state'] in states


def declared_groups(guest):
    """The groups a guest declares: metadata ``groups`` (list or comma list) and lxc.group."""
    groups = []
    value = (guest.get('metadata') or {}).get('groups')
    if isinstance(value, str):
        value = [v.strip() for v in value.split(',')]
    for group in list(value or []) + list(guest.get('lxc_groups') or []):
        if group and group not in groups:
            groups.append(group)
    return groups


def host_vars(guest, hypervisor, source, options):
    """The variables of one guest's host."""
    hvars = {
        'virtkit_kind': guest['kind'],
        'virtkit_name': guest['name'],
        'virtkit_hypervisor': hypervisor,
        'virtkit_state': guest['state'],
        'virtkit_autostart': guest['autostart'],
        'virtkit_vcpus': guest['vcpus'],
        'virtkit_memory_mib': guest['memory_mib'],
        'virtkit_addresses': guest['addresses'],
        'virtkit_interfaces': guest['interfaces'],
        'virtkit_metadata': guest['metadata'],
        'virtkit_groups': declared_groups(guest),
    }
    address = choose_address(guest['addresses'], options.get('preferred_networks'))
    if guest['kind'] == 'kvm':
        hvars['virtkit_uri'] = source.get('uri')
        hvars['virtkit_uuid'] = guest['uuid']
        if address:
            hvars['ansible_host'] = address
        if options.get('kvm_connection'):
            hvars['ansible_connection'] = options['kvm_connection']
    else:
        hvars['virtkit_lxc_path'] = guest.get('lxc_path')
        hvars['virtkit_lxc_config'] = guest.get('lxc_config', {})
        if address:
            hvars['ansible_host'] = address
        if options.get('lxc_connection'):
            hvars['ansible_connection'] = options['lxc_connection']
            hvars['ansible_lxc_name'] = guest['name']
            hvars['ansible_lxc_path'] = guest.get('lxc_path')
            if source.get('lxc_host'):
                hvars['ansible_lxc_host'] = source['lxc_host']
                for key in ('lxc_host_user', 'lxc_host_port', 'lxc_ssh_args', 'lxc_ssh_executable'):
                    if source.get(key):
                        hvars['ansible_' + key] = source[key]
    hvars.update(source.get('vars') or {})
    return hvars


def plan_hosts(collected, options):
    """[(host name, vars, groups)] for every guest that passes the filters.

    ``collected`` is [(hypervisor label, source dict, [guest records])] in source order.
    Naming (``host_name``): ``name`` - the guest's own name; when several guests share one,
    the first listed keeps it and each other one becomes ``<name>.<hypervisor>`` (or
    ``<name>.<kind>.<hypervisor>`` when a VM and a container share a name on one
    hypervisor); ``name_hypervisor`` - always ``<name>.<hypervisor>``.
    Returns (hosts, clashes) where clashes lists the renamed hosts.
    """
    hosts, taken, clashes = [], set(), []
    for hypervisor, source, guests in collected:
        for guest in guests:
            if not matches(guest, options.get('include'), options.get('exclude'), options.get('states')):
                continue
            qualified = '%s.%s' % (guest['name'], hypervisor)
            if options.get('host_name') == 'name_hypervisor':
                name = qualified
            else:
                name = guest['name']
                if name in taken:
                    name = qualified
                    clashes.append((guest['name'], hypervisor))
            if name in taken:
                name = '%s.%s.%s' % (guest['name'], guest['kind'], hypervisor)
            taken.add(name)
            groups = [guest['kind'], 'hypervisor_%s' % hypervisor, 'state_%s' % guest['state']]
            groups += declared_groups(guest)
            hosts.append((name, host_vars(guest, hypervisor, source, options), groups))
    return hosts, clashes
