# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a guest, plan with pure code, execute the same plan, re-read and confirm."""

from __future__ import annotations

import os
import time
from copy import deepcopy
from urllib.parse import urlparse

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import error_code, explain, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._wait import Deadline, WaitTimeout, poll
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse, to_string
from ansible_collections.virtkit.guests.plugins.module_utils._domain import devices as dev
from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.addresses import (
    AddressReader, first_address, guest_start_time)
from ansible_collections.virtkit.guests.plugins.module_utils._domain.facts import STATE_NAMES, xml_facts
from ansible_collections.virtkit.guests.plugins.module_utils._domain.plan import (
    LIVE_NS, LIVE_PREFIX, Current, LiveRequests, build_plan, disk_sources, live_device_present,
    storage_to_remove)
from ansible_collections.virtkit.guests.plugins.module_utils._domain.spec import validate

SHUTDOWN_RESEND_SECONDS = 10


def _flag(name, default=0):
    return getattr(libvirt, name, default) if libvirt is not None else default


class DomainManager:
    """Everything libvirt_domain does, over one :class:`Connection`."""

    def __init__(self, connection, clock=time.time):
        self.c = connection
        self.conn = connection.conn
        self.clock = clock
        self.dom = None
        self.started_at = None
        self.lease_baseline = None
        self.forced_off = False

    # ------------------------------------------------------------ reading

    def read(self, name):
        dom = self.c.domain(name)
        self.dom = dom
        if dom is None:
            return Current(name)
        secure = _flag('VIR_DOMAIN_XML_SECURE')
        state_code = self.c.call(name, 'read state', dom.state)[0]
        state = STATE_NAMES.get(state_code, 'nostate')
        if state == 'pmsuspended':
            state = 'paused'
        persistent = bool(self.c.call(name, 'read persistence', dom.isPersistent))
        inactive = self.c.call(name, 'read XML', dom.XMLDesc, secure | _flag('VIR_DOMAIN_XML_INACTIVE'))
        live = self.c.call(name, 'read live XML', dom.XMLDesc, secure) if state in ('running', 'paused') else None
        autostart = bool(self.c.call(name, 'read autostart', dom.autostart)) if persistent else False
        return Current(name, True, state, inactive, live, autostart, persistent,
                       lambda: self._nvram_of(name, inactive, live), lambda: default_nvram_path(self.c, name))

    def _nvram_of(self, name, inactive, live):
        """The NVRAM file of the guest (see :class:`Current`), or None."""
        path = xmerge.nvram_path(parse(live).find('os')) if live is not None else None
        os_el = parse(inactive).find('os')
        path = path or xmerge.nvram_path(os_el)
        if path is None and os_el is not None and os_el.get('firmware') == 'efi':
            # libvirt 9.0 chooses the file at start and names it in the live XML only; it
            # is <nvram dir>/<name>_VARS.fd (what virDomainUndefineFlags(NVRAM) removes).
            path = default_nvram_path(self.c, name)
        return path

    # ------------------------------------------------------------ checks before any change

    def host_defaults(self):
        caps = parse(self.c.capabilities(), 'host capabilities')
        arch = caps.findtext('host/cpu/arch') or 'x86_64'
        types = set()
        for guest in caps.iterfind('guest'):
            if guest.findtext('os_type') == 'hvm' and guest.find('arch') is not None \
                    and guest.find('arch').get('name') == arch:
                types.update(d.get('type') for d in guest.iterfind('arch/domain'))
        return arch, types

    def preflight(self, spec, current):
        """Connection-dependent validation; fills defaults for new devices. Changes nothing."""
        name = spec.name
        virt_type, arch = None, None
        root = parse(current.inactive_xml) if current.exists else None
        if not current.exists or (spec.virt_type and root.get('type') != spec.virt_type):
            arch, types = self.host_defaults()
            default = next((t for t in ('kvm', 'qemu') if t in types), min(types) if types else 'qemu')
            virt_type = spec.virt_type or default
            if types and virt_type not in types:
                raise VirtkitError('%s: virt_type %s is not available on this host (it offers %s); '
                                   'use virt_type: qemu where KVM is missing'
                                   % (name, virt_type, ', '.join(sorted(types))))
        if spec.state == 'absent':
            if current.exists and spec.remove_storage:
                for target, source in storage_to_remove(root, spec.remove_storage, name):
                    self._storage_handle(name, target, source)
            return virt_type, arch
        existing_targets = set()
        existing_sources = {}
        if root is not None:
            for target, _device, source in disk_sources(root):
                existing_targets.add(target)
                existing_sources[target] = source
            existing_targets.update(dev.disk_target(el) for el in root.findall('devices/disk'))
        for d in spec.disks or []:
            self._check_disk(name, d, d['target'] not in existing_targets)
        for n in spec.interfaces or []:
            if n['type'] == 'network':
                net = self.c.network(n['source'])
                if net is None:
                    raise VirtkitError('%s: network %s does not exist (define it first, for example with '
                                       'virtkit.guests.libvirt_network)' % (name, n['source']))
                if spec.state in ('running', 'paused') and not current.active and not net.isActive():
                    raise VirtkitError('%s: network %s is not active, so the guest cannot start '
                                       '(start it with virsh net-start %s)' % (name, n['source'], n['source']))
        if spec.boot:
            for key in ('kernel', 'initrd'):
                path = spec.boot.get(key)
                if path and self.c.is_local and not os.path.exists(path):
                    raise VirtkitError('%s: boot.%s %s does not exist' % (name, key, path))
        return virt_type, arch

    def _check_disk(self, name, d, new):
        label = '%s: disk %s' % (name, d['target'])
        if d.get('volume'):
            pool = self.c.pool(d['pool'])
            if pool is None:
                raise VirtkitError('%s: storage pool %s does not exist' % (label, d['pool']))
            vol = self.c.volume(pool, d['volume'])
            if vol is None:
                raise VirtkitError('%s: volume %s does not exist in pool %s' % (label, d['volume'], d['pool']))
            if new and not d.get('format'):
                d['format_default'] = _volume_format(vol)
        elif d.get('path'):
            if self.c.is_local and not os.path.exists(d['path']):
                raise VirtkitError('%s: %s does not exist' % (label, d['path']))
            if new and not d.get('format'):
                vol = self.c.volume_by_path(d['path'])
                if vol is not None:
                    d['format_default'] = _volume_format(vol)
                elif self.c.is_local:
                    d['format_default'] = _sniff_format(d['path'])

    def _storage_handle(self, name, target, source):
        """The volume (or local file) behind a disk, refusing what we must not delete."""
        if source.get('volume'):
            pool = self.c.pool(source['pool'])
            vol = self.c.volume(pool, source['volume']) if pool is not None else None
            return ('volume', vol) if vol is not None else ('gone', None)
        path = source.get('file') or source.get('dev')
        vol = self.c.volume_by_path(path)
        if vol is not None:
            return 'volume', vol
        if source.get('dev'):
            raise VirtkitError('%s: remove_storage will not wipe block device %s of disk %s (it is not a '
                               'volume of a libvirt pool)' % (name, path, target))
        if not self.c.is_local:
            raise VirtkitError('%s: cannot delete %s of disk %s over %s: it is not a volume of a libvirt pool'
                               % (name, path, target, self.c.uri))
        return ('file', path) if os.path.exists(path) else ('gone', None)

    # ------------------------------------------------------------ the run

    def run(self, params, check_mode=False):
        name = params['name']
        current = self.read(name)
        machine = None
        if current.exists:
            machine = parse(current.inactive_xml).find('os/type').get('machine')
        spec = validate(params, machine)
        virt_type, arch = self.preflight(spec, current)
        plan = build_plan(spec, current, virt_type=virt_type, arch=arch or 'x86_64')
        result = plan.result()
        result['warnings'] = list(plan.warnings)
        if check_mode:
            result['forced_off'] = False
            result['domain'] = self.facts(name, current=current) if current.exists else {}
            return result
        self.execute(plan, spec, current)
        result['forced_off'] = self.forced_off
        result['warnings'].extend(self.warnings)
        if self.late_pending:
            # Live changes the guest did not complete: the persistent config has them.
            result['pending_restart'] = True
            result['pending_restart_fields'].extend(
                f for f in self.late_pending if f not in result['pending_restart_fields'])
        if getattr(plan, 'restarting', False):
            result['pending_restart'] = False
            result['pending_restart_fields'] = []
        if spec.state == 'absent':
            result['domain'] = {}
            return result
        if plan.changed:
            self.confirm(spec)
            current = None  # re-read below: the run changed the guest
        result['domain'] = self.facts(name, current=current, wait=spec if spec.wait_for_ip else None)
        return result

    def execute(self, plan, spec, current):
        self.spec = spec
        self.current = current
        self.warnings = []
        self.late_pending = []
        live = parse(current.live_xml) if current.live_xml else None
        self.requests = LiveRequests.read(live)
        self.live_timeout = spec.live_timeout
        if live is not None and self.requests.balloon is not None \
                and xmerge.read_kib(live.find('currentMemory')) == self.requests.balloon[0]:
            # The guest reached the recorded target: the request is done. Kept, it would make
            # a later return towards the maximum (virsh setmem, the driver unloaded) look asked
            # for already, never corrected. Bookkeeping of this module, not a change of the
            # guest: it does not make the run changed (check mode leaves it to the next run).
            self.requests.balloon = None
            self._save_requests()
        for action in plan.actions:
            getattr(self, '_op_' + action.op)(**action.params)

    def confirm(self, spec):
        """Re-read and check that libvirt kept every field we set."""
        current = self.read(spec.name)
        if not current.exists:
            raise VirtkitError('%s: the guest disappeared right after it was defined' % spec.name)
        root = parse(current.inactive_xml)
        ed = xmerge.merge(root, spec)
        if ed.changes:
            raise VirtkitError('%s: libvirt did not keep %s as set (it rewrote them on define); '
                               'check the values against the host' % (spec.name, ', '.join(ed.fields())))

    # ------------------------------------------------------------ operations

    def _call(self, operation, func, *args):
        return self.c.call(self.spec.name, operation, func, *args)

    def _op_define(self, xml, new):
        flags = _flag('VIR_DOMAIN_DEFINE_VALIDATE')
        try:
            self.dom = self.conn.defineXMLFlags(xml, flags)
        except libvirt.libvirtError as err:
            if error_code(err) not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
                raise VirtkitError(explain(err, self.spec.name, 'define'))
            self.dom = self._call('define', self.conn.defineXML, xml)
        self._new_inactive = None

    def _inactive_root(self):
        if getattr(self, '_new_inactive', None) is None:
            xml = self._call('read XML', self.dom.XMLDesc,
                             _flag('VIR_DOMAIN_XML_INACTIVE') | _flag('VIR_DOMAIN_XML_SECURE'))
            self._new_inactive = parse(xml)
        return self._new_inactive

    # Live changes that need the guest's cooperation: libvirt returns once it has asked
    # (a balloon target, an ACPI/PCIe unplug request); the guest completes them, or not.
    # Wait a bounded time for the live XML to show the result; otherwise say so, record
    # the request in the live metadata so reruns do not ask again forever (plan.py reads
    # it back) and leave the persistent config (already defined) to the next boot.

    def _live_root(self):
        return parse(self._call('read live XML', self.dom.XMLDesc, _flag('VIR_DOMAIN_XML_SECURE')),
                     'the live XML of %s' % self.spec.name)

    def _live_wait(self, check):
        """Poll ``check(live_root)`` up to live_timeout (once on a paused guest).

        Returns None when it held, else how it gave up, as words for a warning.
        """
        paused = self.dom.state()[0] != _flag('VIR_DOMAIN_RUNNING', 1)
        try:
            poll(lambda: check(self._live_root()), 0 if paused else self.live_timeout, interval=0.25,
                 max_interval=1.0)
        except WaitTimeout:
            return 'at once: it is not running' if paused else 'within %ss' % self.live_timeout
        return None

    def _save_requests(self):
        el = self.requests.element()
        self._call('record the live requests', self.dom.setMetadata, _flag('VIR_DOMAIN_METADATA_ELEMENT'),
                   to_string(el) if el is not None else None, LIVE_PREFIX, LIVE_NS,
                   _flag('VIR_DOMAIN_AFFECT_LIVE'))

    def _op_set_memory(self, kib):
        self._call('set memory', self.dom.setMemoryFlags, kib, _flag('VIR_DOMAIN_AFFECT_LIVE'))
        waited = self._live_wait(lambda root: xmerge.read_kib(root.find('currentMemory')) == kib)
        if waited is None:
            if self.requests.balloon is not None:
                self.requests.balloon = None
                self._save_requests()
            return
        now = xmerge.read_kib(self._live_root().find('currentMemory'))
        # A rerun does not ask again while the guest stays where it is now.
        self.requests.balloon = (kib, now)
        self._save_requests()
        self.warnings.append('%s: memory: the guest is at %s MiB, it did not reach the %d MiB asked for %s%s; '
                             'the persistent config has it and reruns do not ask again while the guest stays there'
                             % (self.spec.name, now // 1024 if now is not None else 'unknown', kib // 1024, waited,
                                '' if waited.startswith('at once') else ' (no balloon driver in the guest?)'))

    def _op_set_vcpus(self, count):
        self._call('set vCPUs', self.dom.setVcpusFlags, count, _flag('VIR_DOMAIN_AFFECT_LIVE'))

    def _op_set_metadata(self, field):
        live = _flag('VIR_DOMAIN_AFFECT_LIVE')
        if field in ('title', 'description'):
            kind = _flag('VIR_DOMAIN_METADATA_TITLE' if field == 'title' else 'VIR_DOMAIN_METADATA_DESCRIPTION')
            value = getattr(self.spec, field) or None
            self._call('set ' + field, self.dom.setMetadata, kind, value, None, None, live)
            return
        value = to_string(xmerge.metadata_element(self.spec.metadata, namespaced=False)) if self.spec.metadata else None
        self._call('set metadata', self.dom.setMetadata, _flag('VIR_DOMAIN_METADATA_ELEMENT'), value,
                   xmerge.METADATA_PREFIX, xmerge.METADATA_NS, live)

    def _device_for_attach(self, kind, key):
        root = self._inactive_root()
        devices = root.find('devices')
        el = None
        if kind == 'disks':
            el = next((d for d in devices.findall('disk') if dev.disk_target(d) == key), None)
        elif kind == 'interfaces':
            el = dev.match_interfaces(devices, self.spec.interfaces)[0][key]
        elif kind == 'hostdevs':
            el = next((h for h in devices.findall('hostdev') if dev.hostdev_key(h) == key), None)
        if el is None:
            raise VirtkitError('%s: cannot find the new %s device in the persistent config'
                               % (self.spec.name, kind))
        el = deepcopy(el)
        for child in el.findall('address'):
            el.remove(child)
        alias = el.find('alias')
        if alias is not None and not (alias.get('name') or '').startswith('ua-'):
            el.remove(alias)
        return to_string(el)

    def _op_attach_device(self, kind, key, field=None):
        xml = self._device_for_attach(kind, key)
        self._call('attach %s' % kind[:-1], self.dom.attachDeviceFlags, xml, _flag('VIR_DOMAIN_AFFECT_LIVE'))
        if field in self.requests.detach:
            self.requests.detach.discard(field)
            self._save_requests()

    def _op_detach_device(self, xml, field=None):
        self._call('detach device', self.dom.detachDeviceFlags, xml, _flag('VIR_DOMAIN_AFFECT_LIVE'))
        element = parse(xml)
        field = field or element.tag
        waited = self._live_wait(lambda root: not live_device_present(root, element))
        if waited is None:
            if field in self.requests.detach:
                self.requests.detach.discard(field)
                self._save_requests()
            return
        self.requests.detach.add(field)
        self._save_requests()
        self.late_pending.append(field)
        self.warnings.append('%s: %s: the guest did not release the device %s%s; the persistent config no '
                             'longer has it, so it goes at the next restart (pending_restart); reruns do not ask '
                             'again' % (self.spec.name, field, waited,
                                        '' if waited.startswith('at once') else ' (does it ignore hot-unplug?)'))

    def _op_update_media(self, xml):
        self._call('change media', self.dom.updateDeviceFlags, xml, _flag('VIR_DOMAIN_AFFECT_LIVE'))

    def _op_autostart(self, value):
        self._call('set autostart', self.dom.setAutostart, 1 if value else 0)

    def _op_start(self, paused=False):
        # A managed save image is restored, not booted: the guest keeps the lease it took
        # before it was saved, so no start time may rule that lease out.
        restoring = bool(self._call('check managed save', self.dom.hasManagedSaveImage, 0))
        self.started_at = None if restoring else self.clock()
        if not self.c.is_local and not restoring:
            # Lease times are on the remote host's clock, not on ours: remember the leases the
            # guest's MACs hold before the start instead (see AddressReader.lease_keys).
            inactive = parse(self._call('read XML', self.dom.XMLDesc, 0))
            self.lease_baseline = AddressReader(self.c).lease_keys(inactive)
        flags = _flag('VIR_DOMAIN_START_PAUSED') if paused else 0
        self._call('start', self.dom.createWithFlags, flags)
        if not restoring:
            self._record_start_balloon()

    def _record_start_balloon(self):
        """Record the balloon target libvirt asked for at the start (LiveRequests.balloon).

        QEMU starts the guest with all of ``<memory>`` and libvirt asks the balloon for
        ``<currentMemory>``, which only a balloon driver in the guest reaches. Recorded
        like a target _op_set_memory asked for, a rerun that finds the guest still at (or
        on its way down from) its maximum does not ask again. The new QEMU process starts
        with the live requests of the persistent config only: the ones read before are void.
        """
        live = self._live_root()
        self.requests = LiveRequests.read(live)
        balloon = live.find('devices/memballoon')
        max_kib = xmerge.read_kib(live.find('memory'))
        target = xmerge.read_kib(self._inactive_root().find('currentMemory'))
        # As in plan._plan_live: only model none says there is no balloon device.
        if (balloon is not None and balloon.get('model') == 'none') or not max_kib or target is None \
                or target >= max_kib:
            return
        self.requests.balloon = (target, max_kib)
        self._save_requests()

    def _op_resume(self):
        self._call('resume', self.dom.resume)

    def _op_suspend(self):
        self._call('pause', self.dom.suspend)

    def _op_destroy(self):
        try:
            self.dom.destroy()
        except libvirt.libvirtError as err:
            if error_code(err) != libvirt.VIR_ERR_OPERATION_INVALID:  # already off
                raise VirtkitError(explain(err, self.spec.name, 'power off'))

    def _op_shutdown(self):
        self.graceful_shutdown(self.spec.shutdown_timeout, self.spec.force)

    def _op_restart(self, discard_nvram=None):
        self.graceful_shutdown(self.spec.shutdown_timeout, self.spec.force)
        if discard_nvram:
            self._op_discard_nvram(discard_nvram)
        self._op_start(paused=self.spec.state == 'paused')

    def _op_discard_nvram(self, path):
        """Discard an NVRAM file made for another firmware, then forget the request.

        A volume of a pool goes through the storage API, a local file is unlinked; a file
        on a remote host outside every pool is left with one warning (the request is
        forgotten all the same, so later runs stay unchanged).
        """
        name = self.spec.name
        if self.dom.isActive():  # pragma: no cover - the plan discards only while the guest is off
            raise VirtkitError('%s: will not discard the NVRAM file %s of a running guest' % (name, path))
        vol = self.c.volume_by_path(path)
        if vol is not None:
            self._call('delete the NVRAM volume %s' % path, vol.delete, 0)
        elif self.c.is_local:
            try:
                if os.path.isfile(path):
                    os.unlink(path)
            except OSError as err:
                raise VirtkitError('%s: cannot discard the NVRAM file %s: %s' % (name, path, err.strerror or err))
        else:
            self.warnings.append('%s: the NVRAM file %s on %s was made for the old firmware and is no volume of a '
                                 'libvirt pool, so it cannot be deleted over %s; delete it there (libvirt makes a '
                                 'new one from the template at the next start)'
                                 % (name, path, uri_host(self.c), self.c.uri))
        self._op_keep_nvram()

    def _op_keep_nvram(self):
        """Forget the NVRAM discard request in the persistent config."""
        xml = self._call('read XML', self.dom.XMLDesc, _flag('VIR_DOMAIN_XML_INACTIVE'))
        requests = LiveRequests.read(parse(xml))
        if requests.nvram is None:
            return
        requests.nvram = None
        el = requests.element()
        self._call('forget the NVRAM request', self.dom.setMetadata, _flag('VIR_DOMAIN_METADATA_ELEMENT'),
                   to_string(el) if el is not None else None, LIVE_PREFIX, LIVE_NS,
                   _flag('VIR_DOMAIN_AFFECT_CONFIG', 2))
        self._new_inactive = None

    def graceful_shutdown(self, timeout, force):
        """ACPI shutdown, re-sent every few seconds, bounded; force off only if allowed."""
        name = self.spec.name
        if not self.dom.isActive():
            return
        if self.dom.state()[0] in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
            # A paused guest cannot answer ACPI: let it run so it can shut down.
            self._op_resume()
        deadline = Deadline(timeout)
        last_request = None
        while self.dom.isActive():
            if deadline.expired:
                if force:
                    self._op_destroy()
                    self.forced_off = True
                    return
                raise VirtkitError('%s: did not shut down within %ss (the guest ignored the ACPI request); '
                                   'raise shutdown_timeout or set force: true to power it off'
                                   % (name, timeout))
            if last_request is None or time.monotonic() - last_request >= SHUTDOWN_RESEND_SECONDS:
                try:
                    self.dom.shutdown()
                except libvirt.libvirtError as err:
                    if self.dom.isActive():
                        raise VirtkitError(explain(err, name, 'shutdown'))
                last_request = time.monotonic()
            time.sleep(min(0.2, deadline.remaining()) or 0.01)

    def _op_undefine(self):
        # Newest flags last (TPM: libvirt 8.9, checkpoints: 5.6). A daemon older than these
        # bindings refuses flags it does not know, so drop the newest before falling back to
        # a plain undefine, which refuses a guest with NVRAM or snapshots.
        names = ('VIR_DOMAIN_UNDEFINE_MANAGED_SAVE', 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA',
                 'VIR_DOMAIN_UNDEFINE_NVRAM', 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA',
                 'VIR_DOMAIN_UNDEFINE_TPM')
        for count in (len(names), len(names) - 1, len(names) - 2):
            flags = 0
            for name in names[:count]:
                flags |= _flag(name)
            try:
                self.dom.undefineFlags(flags)
                return
            except libvirt.libvirtError as err:
                if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                if error_code(err) not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
                    raise VirtkitError(explain(err, self.spec.name, 'undefine'))
        self._call('undefine', self.dom.undefine)

    def _op_delete_storage(self, target, source):
        kind, handle = self._storage_handle(self.spec.name, target, source)
        if kind == 'volume':
            self._call('delete the volume of %s' % target, handle.delete, 0)
        elif kind == 'file':
            try:
                os.unlink(handle)
            except OSError as err:
                raise VirtkitError('%s: cannot delete %s of disk %s: %s' % (self.spec.name, handle, target, err))

    def _op_wait_for_ip(self):
        """Handled by facts(wait=...) after confirming; nothing to do in the sequence."""

    # ------------------------------------------------------------ facts

    def describe(self, name=None, ip_sources=('lease', 'agent')):
        """Facts of one guest (a list of zero or one) or of every guest, sorted by name."""
        if name is not None:
            names = [name]
        else:
            doms = self.c.call(self.c.uri, 'list guests', self.conn.listAllDomains, 0)
            names = sorted(d.name() for d in doms)
        result = []
        for guest in names:
            facts = self.facts(guest, sources=list(ip_sources))
            if facts:
                result.append(facts)
        return result

    def facts(self, name, current=None, wait=None, sources=None):
        if current is None:
            current = self.read(name)
        if not current.exists:
            return {}
        root = parse(current.live_xml or current.inactive_xml)
        facts = xml_facts(root)
        facts.update(state=current.state, persistent=current.persistent, autostart=current.autostart,
                     id=self.dom.ID() if current.active else None)
        addresses = {}
        if current.active:
            reader = AddressReader(self.c)
            sources = wait.ip_sources if wait else (sources or ['lease', 'agent'])
            since = self.started_at or guest_start_time(self.c, self.dom)

            def look():
                found = reader.read(self.dom, root, sources, since, self.lease_baseline)
                return found if first_address(found) else None

            if wait is not None:
                try:
                    addresses = poll(look, wait.wait_for_ip_timeout, interval=0.5, max_interval=1.0)
                except WaitTimeout:
                    raise VirtkitError('%s: no IP address from %s within %ss (is DHCP running on its network, '
                                       'or the guest agent installed?)'
                                       % (name, '/'.join(sources), wait.wait_for_ip_timeout))
            else:
                addresses = reader.read(self.dom, root, sources, since, self.lease_baseline)
        for nic in facts['interfaces']:
            nic['addresses'] = addresses.get(nic['mac'], [])
        facts['ip'] = first_address({n['mac']: n['addresses'] for n in facts['interfaces']})
        return facts


def default_nvram_path(connection, name):
    """Where libvirt's QEMU driver keeps the NVRAM of a guest whose definition names none.

    Known for the system instance only (qemu:///system, also over a remote transport);
    None elsewhere.
    """
    uri = connection.uri
    if not uri:  # the default URI: ask what it stands for
        try:
            uri = connection.conn.getURI() or uri
        except (AttributeError, libvirt.libvirtError):
            pass
    parsed = urlparse(uri)
    if parsed.scheme.split('+')[0] == 'qemu' and parsed.path.rstrip('/') == '/system':
        return '/var/lib/libvirt/qemu/nvram/%s_VARS.fd' % name
    return None


def uri_host(connection):
    """The host a connection addresses, for messages."""
    return urlparse(connection.uri).hostname or connection.uri


def _volume_format(vol):
    try:
        root = parse(vol.XMLDesc(0), 'volume XML')
    except libvirt.libvirtError:
        return None
    fmt = root.find('target/format')
    value = fmt.get('type') if fmt is not None else None
    return value if value in ('raw', 'qcow2', 'vmdk', 'vdi') else ('raw' if value == 'iso' else None)


def _sniff_format(path):
    """qcow2 images start with 'QFI\\xfb'; anything else is read as raw."""
    try:
        with open(path, 'rb') as handle:
            return 'qcow2' if handle.read(4) == b'QFI\xfb' else 'raw'
    except OSError:
        return None
