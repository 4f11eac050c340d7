# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_fleet's phases: shared base images, one thread per guest, one wait, results.

The engine drives the very managers the single-resource modules use (VolumeManager,
SeedManager, DomainManager, ContainerManager) over ONE libvirt connection. Check mode
runs their check modes: the same plans, nothing executed. A failing guest never stops
the others; its error is one line in the results.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, LIBVIRT_ARGS
from ansible_collections.virtkit.guests.plugins.module_utils._wait import Deadline
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse
from ansible_collections.virtkit.guests.plugins.module_utils._domain.devices import nic_mac
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._network import NetworkManager, xml_facts
from ansible_collections.virtkit.guests.plugins.module_utils._storage import volume as _volume
from ansible_collections.virtkit.guests.plugins.module_utils._storage.volume import VolumeManager
from ansible_collections.virtkit.guests.plugins.module_utils import _seed
from ansible_collections.virtkit.guests.plugins.module_utils._seed import SeedManager
from ansible_collections.virtkit.guests.plugins.module_utils._fleet.spec import checked, reservation_hostname

KVM_STATES = {'shutoff': 'stopped', 'shutdown': 'stopped', 'crashed': 'stopped', 'nostate': 'stopped'}


class _IpWait:
    """What :meth:`DomainManager.facts` reads from its ``wait`` argument."""

    def __init__(self, ip_sources, timeout):
        self.ip_sources = ip_sources
        self.wait_for_ip_timeout = timeout


class CheckDomainManager(DomainManager):
    """Check mode: a disk whose volume this run would create first is not an error.

    The single module's preflight refuses a disk on a missing volume; in a fleet check
    run the overlay, extra disks and seed are planned in the same run, so the domain is
    reported as to be defined on them.
    """

    def __init__(self, connection, planned):
        super().__init__(connection)
        self.planned = planned

    def _check_disk(self, name, d, new):
        if d.get('volume') and (d.get('pool'), d['volume']) in self.planned:
            pool = self.c.pool(d['pool'])
            if pool is None or self.c.volume(pool, d['volume']) is None:
                return
        super()._check_disk(name, d, new)


class GuestRun:
    """A guest's progress through the phases."""

    def __init__(self, plan):
        self.plan = plan
        self.existed = None
        self.changed = False
        self.actions = []
        self.diffs = []
        self.pending_restart = False
        self.pending_restart_fields = []
        self.facts = {}
        self.manager = None
        self.error = None
        self.planned = set()
        self.warnings = []

    def record(self, label, result):
        if result.get('changed'):
            self.changed = True
            if result.get('diff'):
                self.diffs.append((label, result['diff']))
        for action in result.get('actions') or []:
            self.actions.append('%s: %s' % (label, action['summary']))
        for warning in result.get('warnings') or []:
            self.warnings.append(warning)

    def fail(self, err):
        text = ' '.join(str(err).split())
        if not isinstance(err, VirtkitError):
            text = '%s: %s' % (type(err).__name__, text)
        prefix = '%s: ' % self.plan.name
        if text.startswith(prefix):
            text = text[len(prefix):]
        self.error = text


class FleetEngine:
    def __init__(self, params, check_mode=False, connect=None, container_manager=None):
        self.params = params
        self.check_mode = check_mode
        self.pool = params['pool']
        self.uri = params['uri']
        self._connect = connect or Connection
        self._container_manager = container_manager or (lambda: ContainerManager(lxc_path=params.get('lxc_path')))
        self.c = None
        self.warnings = []
        self.images = []
        self.timings = {}
        # libvirt refuses a pool refresh while another stream (upload or digest read) runs in
        # the same pool ("pool has asynchronous jobs running"): storage steps take turns.
        # They are short; domain and container work stays parallel.
        self.storage_lock = threading.Lock()
        # DHCP reservations are checked against the network's hosts and leases, then added:
        # one guest at a time, so two guests cannot both pass the check for one address.
        self.network_lock = threading.Lock()

    # ------------------------------------------------------------ the run

    def run(self, plans, bases):
        runs = [GuestRun(plan) for plan in plans]
        start = self.start = time.monotonic()
        try:
            if any(plan.kind == 'kvm' for plan in plans):
                self.c = self._connect(self.uri)
            self.shared_phase(bases)
            self.timings['images'] = round(time.monotonic() - start, 2)
            self.guest_phase(runs)
            self.timings['guests'] = round(time.monotonic() - start, 2)
            if not self.check_mode:
                self.wait_phase(runs)
            self.timings['wait'] = round(time.monotonic() - start, 2)
        finally:
            if self.c is not None:
                self.c.close()
        return self.results(runs)

    # ------------------------------------------------------------ phase 1: base images, serially

    def shared_phase(self, bases):
        for base in bases.values():
            base.error = None
            base.planned = False
            info = {'name': base.name, 'pool': self.pool, 'changed': False, 'actions': [],
                    'guests': [p.name for p in base.guests]}
            try:
                if base.params is None:
                    pool = self.c.pool(self.pool)
                    if pool is None:
                        raise VirtkitError('the storage pool %s does not exist' % self.pool)
                    if self.c.volume(pool, base.name) is None:
                        raise VirtkitError('the base volume %s does not exist in pool %s (give image.url or '
                                           'image.path to import it)' % (base.name, self.pool))
                else:
                    result = VolumeManager(self.c).run(base.params, check_mode=self.check_mode)
                    base.result = result
                    info['changed'] = result['changed']
                    info['actions'] = [a['summary'] for a in result['actions']]
                    self.warnings.extend(result.get('warnings') or [])
                    base.planned = self.check_mode and any(a['action'] == 'import_image' for a in result['actions'])
                    if result['changed']:
                        info['diff'] = result.get('diff')
            except VirtkitError as err:
                base.error = 'image %s: %s' % (base.name, err)
                info['error'] = base.error
            self.images.append(info)

    # ------------------------------------------------------------ phase 2: per guest, in threads

    def guest_phase(self, runs):
        if not runs:
            return
        workers = max(1, min(self.params.get('parallel') or 1, len(runs)))
        # KVM guests first: their boots are the long pole (a TCG guest needs 10-20 s to a
        # lease, a container a few seconds), so their domains start before container
        # creation competes with them for the CPU.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self.converge, [run for run in runs if run.plan.kind == 'kvm']))
            list(pool.map(self.converge, [run for run in runs if run.plan.kind != 'kvm']))

    def converge(self, run):
        try:
            if run.plan.kind == 'kvm':
                self.converge_kvm(run)
            else:
                self.converge_lxc(run)
        except Exception as err:  # one guest's failure must not stop the others
            run.fail(err)
            run.facts = self.read_facts(run)
        self.timings.setdefault('converged', {})[run.plan.name] = round(time.monotonic() - self.start, 2)
        return run

    def read_facts(self, run):
        """The guest as it is after a failure (best effort: the result should not guess)."""
        try:
            if run.plan.kind == 'kvm':
                return DomainManager(self.c).facts(run.plan.name) if self.c is not None else {}
            manager = self._container_manager()
            return manager.facts(run.plan.name, manager.read(run.plan.name))
        except Exception:  # the error already reported is the one that matters
            return run.facts

    def _volume(self, run, params, label):
        with self.storage_lock:
            result = VolumeManager(self.c).run(params, check_mode=self.check_mode)
        run.record(label, result)
        if self.check_mode and any(a['action'] in ('create', 'import_image', 'clone') for a in result['actions']):
            run.planned.add((params['pool'], params['name']))
        return result

    def converge_kvm(self, run):
        plan = run.plan
        run.existed = self.c.domain(plan.name) is not None
        if plan.state == 'absent':
            manager = DomainManager(self.c)
            result = manager.run(plan.domain, check_mode=self.check_mode)
            run.record('domain', result)
            run.facts = {}
            for res in plan.reservations:
                self._reserve(run, res, 'absent')
            if plan.remove_storage:
                for name in plan.volume_names():
                    params = checked(_volume.ARGUMENT_SPEC, {'uri': self.uri, 'name': name, 'pool': self.pool,
                                                             'state': 'absent'})
                    self._volume(run, params, 'volume %s' % name)
                seed = checked(dict(LIBVIRT_ARGS, **_seed.ARGUMENT_SPEC),
                               {'uri': self.uri, 'state': 'absent', 'pool': self.pool,
                                'name': '%s-seed.iso' % plan.name})
                run.record('seed', self._seed(seed))
            return
        if plan.base is not None and plan.base.error:
            raise VirtkitError(plan.base.error)
        if run.existed:
            self._check_derived_macs(plan)
        # Before anything else of the guest: a refused reservation leaves nothing behind, and
        # the guest's first DHCP request already gets the reserved address.
        for res in plan.reservations:
            self._reserve(run, res, 'present')
        if plan.overlay is not None:
            label = 'overlay %s' % plan.overlay['name']
            if plan.base is not None and plan.base.planned and not self._exists(plan.overlay['name']):
                # The base image is only planned: the overlay manager cannot read it yet.
                run.record(label, {
                    'changed': True,
                    'actions': [{'action': 'create', 'summary': 'create a qcow2 overlay on %s/%s (after its import)'
                                 % (self.pool, plan.base.name)}],
                    'diff': {'before': 'exists: False\n', 'after': 'backing: %s/%s\nexists: True\nformat: qcow2\n'
                             % (self.pool, plan.base.name)},
                })
                run.planned.add((self.pool, plan.overlay['name']))
            else:
                self._volume(run, plan.overlay, label)
        for disk in plan.disks:
            self._volume(run, disk, 'disk %s' % disk['name'])
        if plan.seed is not None:
            result = self._seed(plan.seed)
            run.record('seed', result)
            if self.check_mode and result['changed']:
                run.planned.add((self.pool, plan.seed['name']))
        manager = CheckDomainManager(self.c, run.planned) if self.check_mode else DomainManager(self.c)
        run.manager = manager
        result = manager.run(plan.domain, check_mode=self.check_mode)
        run.record('domain', result)
        run.pending_restart = result.get('pending_restart', False)
        run.pending_restart_fields = result.get('pending_restart_fields', [])
        run.facts = result.get('domain') or {}
        run.warnings.extend(self._undeclared_reservations(run))

    def _undeclared_reservations(self, run):
        """A DHCP host entry for one of the guest's NICs that the entry no longer declares (its
        address_mode or ip was removed): the guest keeps getting that address. Said, not removed:
        nothing records which entries this module added (libvirt_network's hosts or another tool
        may own one just like it), and only entries that look like the ones it adds (the guest's
        MAC and its name) are named."""
        declared = set((res.network, res.mac) for res in run.plan.reservations)
        name = reservation_hostname(run.plan.name)
        out = []
        for nic in (run.facts or {}).get('interfaces') or []:
            mac, network = (nic.get('mac') or '').lower(), nic.get('source')
            if nic.get('type') != 'network' or not mac or (network, mac) in declared:
                continue
            net = self.c.network(network)
            if net is None:
                continue
            ipv4 = xml_facts(self.c.call(network, 'read XML', net.XMLDesc, 0))['ipv4'] or {}
            for host in ipv4.get('dhcp_hosts') or []:
                if (host.get('mac') or '').lower() == mac and host.get('name') == name and host.get('ip'):
                    out.append('network %s still reserves %s for the NIC %s of this guest, which the entry no '
                               'longer declares, so the guest keeps getting that address; the reservation is '
                               'left alone (remove it with libvirt_network, or declare it again with '
                               'address_mode: dhcp_reservation)' % (network, host['ip'], mac))
        return out

    def _check_derived_macs(self, plan):
        """Refuse, before anything changes, a derived MAC that an existing guest's NIC lacks.

        A NIC without ``mac`` gets a derived one when the guest has a static address (the seed's
        network-config and a DHCP reservation name the NIC by MAC, and they are made before the
        guest is read). A guest created earlier without one has the MAC libvirt generated: the
        derived MAC would match none of its NICs, so a second NIC would be added and the address
        bound to a MAC the guest does not have. Each such NIC is paired, in order, with the
        guest's NICs that no entry MAC names; with none left, it is a NIC really added.
        """
        if not plan.derived_macs:
            return
        current = DomainManager(self.c).read(plan.name)
        if not current.exists:
            return
        devices = parse(current.inactive_xml).find('devices')
        have = [nic_mac(el) for el in devices.findall('interface')] if devices is not None else []
        claimed = set(mac for _where, mac in plan.macs)
        unclaimed = [mac for mac in have if mac and mac not in claimed]
        problems = []
        for index, mac in plan.derived_macs:
            if mac in have or not unclaimed:
                continue
            theirs = unclaimed.pop(0)
            problems.append('networks[%d]: the guest\'s NIC has MAC %s, not the derived %s (the guest was made '
                            'without it); set networks[%d].mac: %s' % (index, theirs, mac, index, theirs))
        if problems:
            raise VirtkitError('; '.join(problems))

    def _reserve(self, run, res, state):
        with self.network_lock:
            try:
                result = NetworkManager(self.c).reserve(res.network, res.mac, res.ip, res.prefix, res.hostname,
                                                        state=state, check_mode=self.check_mode)
            except VirtkitError as err:
                raise VirtkitError('%s: %s' % (res.where, err))
        run.record('network %s' % res.network, result)

    def _seed(self, params):
        with self.storage_lock:
            return SeedManager(lambda: self.c).run(params, check_mode=self.check_mode)

    def _exists(self, name):
        pool = self.c.pool(self.pool)
        return pool is not None and self.c.volume(pool, name) is not None

    def converge_lxc(self, run):
        plan = run.plan
        manager = self._container_manager()
        run.manager = manager
        run.existed = manager.exists(plan.name)
        result = manager.run(plan.container, check_mode=self.check_mode)
        run.record('container', result)
        run.pending_restart = result.get('pending_restart', False)
        run.pending_restart_fields = result.get('pending_restart_fields', [])
        run.facts = result.get('container') or {}

    # ------------------------------------------------------------ phase 3: one wait for all addresses

    def wait_phase(self, runs):
        waiting = [run for run in runs if run.error is None and run.plan.wait_for_ip
                   and self.actual_state(run) == 'running' and not self.addresses(run)]
        if not waiting:
            return
        deadline = Deadline(self.params['wait_timeout'])

        def wait(run):
            try:
                name = run.plan.name
                # Whole seconds for the managers' messages; at most one second past the deadline.
                remaining = int(math.ceil(deadline.remaining()))
                if run.plan.kind == 'kvm':
                    sources = run.plan.domain.get('ip_sources') or ['lease', 'agent']
                    run.facts = run.manager.facts(name, wait=_IpWait(sources, remaining))
                else:
                    pid = run.facts.get('pid')
                    if not pid:
                        raise VirtkitError('%s: wait_for_ip: the container is not running' % name)
                    run.manager.wait_for_ip(name, pid, [], remaining)
                    run.facts = run.manager.facts(name, run.manager.read(name), run.manager.spec)
                self.timings.setdefault('addresses', {})[name] = round(time.monotonic() - self.start, 2)
            except Exception as err:
                run.fail(err)
            return run

        with ThreadPoolExecutor(max_workers=len(waiting)) as pool:
            list(pool.map(wait, waiting))

    # ------------------------------------------------------------ phase 4: results

    @staticmethod
    def actual_state(run):
        facts = run.facts or {}
        state = facts.get('state')
        if not state:
            return 'absent'
        if run.plan.kind == 'kvm':
            return KVM_STATES.get(state, state)
        return state

    @staticmethod
    def addresses(run):
        facts = run.facts or {}
        if run.plan.kind == 'kvm':
            return [a for nic in facts.get('interfaces') or [] for a in nic.get('addresses') or []]
        return list(facts.get('ips') or (facts.get('ipv4') or []) + (facts.get('ipv6') or []))

    def reservation_warnings(self, run):
        """A running guest whose NIC holds other addresses than its reservation (it got a lease
        before the reservation existed or changed): said once, with what it really has."""
        if not run.plan.reservations or run.error is not None or self.actual_state(run) != 'running':
            return []
        nics = dict(((nic.get('mac') or '').lower(), nic) for nic in (run.facts or {}).get('interfaces') or [])
        out = []
        for res in run.plan.reservations:
            have = [a for a in (nics.get(res.mac) or {}).get('addresses') or [] if _is_ipv4(a)]
            if have and res.ip not in have:
                out.append('%s: the guest has %s on network %s, not its reserved %s; it takes the reserved '
                           'address at its next DHCP renewal or restart' % (res.where, ', '.join(have),
                                                                            res.network, res.ip))
        return out

    def guest_result(self, run):
        plan = run.plan
        state = self.actual_state(run)
        addresses = self.addresses(run)
        ip = next((a for a in addresses if _is_ipv4(a)), None)
        if ip is None and plan.kind == 'kvm' and plan.static_ips and state == 'running':
            ip = next((a for a in plan.static_ips if _is_ipv4(a)), None)
        host_vars = {}
        if ip:
            host_vars['ansible_host'] = ip
        if plan.kind == 'lxc':
            host_vars.update(ansible_connection='virtkit.guests.lxc', ansible_lxc_name=plan.name)
            if self.params.get('lxc_path'):
                host_vars['ansible_lxc_path'] = self.params['lxc_path']
        else:
            host_vars['ansible_connection'] = 'ssh'
            if plan.ansible_user:
                host_vars['ansible_user'] = plan.ansible_user
        host_vars.update(plan.host_vars)
        result = {
            'name': plan.name,
            'kind': plan.kind,
            'state': state,
            'changed': run.changed,
            'actions': list(run.actions),
            'pending_restart': bool(run.pending_restart),
            'pending_restart_fields': list(run.pending_restart_fields or []),
            'ip': ip,
            'addresses': addresses,
            'groups': list(plan.groups),
            'host_vars': host_vars,
            'failed': run.error is not None,
        }
        if run.error is not None:
            result['error'] = run.error
        result['domain' if plan.kind == 'kvm' else 'container'] = run.facts or {}
        return result

    def results(self, runs):
        guests = []
        summary = {'created': 0, 'changed': 0, 'unchanged': 0, 'removed': 0, 'failed': 0}
        errors = []
        before, after = [], []
        for run in runs:
            guests.append(self.guest_result(run))
            plan = run.plan
            if not self.check_mode:
                run.warnings.extend(self.reservation_warnings(run))
            if run.error is not None:
                summary['failed'] += 1
                errors.append('%s: %s' % (plan.label, run.error))
            elif not run.changed:
                summary['unchanged'] += 1
            elif plan.state == 'absent':
                summary['removed' if run.existed else 'changed'] += 1
            elif not run.existed:
                summary['created'] += 1
            else:
                summary['changed'] += 1
            for label, diff in run.diffs:
                before.append(_section(plan.name, label, diff.get('before')))
                after.append(_section(plan.name, label, diff.get('after')))
            for warning in run.warnings:
                # Named once: most managers' warnings already start with the guest's name.
                self.warnings.append(warning if warning.startswith(plan.name + ': ') else
                                     '%s: %s' % (plan.name, warning))
        for image in self.images:
            if image.get('diff'):
                before.insert(0, _section('image', image['name'], image['diff'].get('before')))
                after.insert(0, _section('image', image['name'], image['diff'].get('after')))
        changed = any(g['changed'] for g in guests) or any(i['changed'] for i in self.images)
        return {
            'changed': changed,
            'guests': guests,
            'failed_guests': [g['name'] for g in guests if g['failed']],
            'errors': errors,
            'summary': summary,
            'images': [dict((k, v) for k, v in i.items() if k != 'diff') for i in self.images],
            'timings': self.timings,
            'warnings': self.warnings,
            'diff': {'before_header': 'fleet (before)', 'after_header': 'fleet (after)',
                     'before': ''.join(before), 'after': ''.join(after)},
        }


def _is_ipv4(address):
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def _section(name, label, text):
    lines = ['[%s] %s' % (name, label)]
    lines.extend('  ' + line for line in (text or '').rstrip('\n').split('\n') if line != '')
    return '\n'.join(lines) + '\n'
