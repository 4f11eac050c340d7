# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning: (current guest, desired spec) -> Plan (DESIGN principle 3).

Nothing here talks to libvirt. The manager reads the current state, calls
:func:`build_plan`, and either returns the plan (check mode) or executes it.
"""

from __future__ import annotations

import re
from copy import deepcopy

from ansible_collections.virtkit.guests.plugins.module_utils._resource import Action, Plan
from ansible_collections.virtkit.guests.plugins.module_utils._xml import canonical, etree, parse, to_string
from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.devices import (
    disk_target, hostdev_key, nic_mac)

ACTIVE_STATES = ('running', 'paused')
# Fields a running guest takes without a restart (applied to live and persistent config).
_LIVE_KINDS = {'add', 'remove', 'media'}
_CONFIG_ONLY = {'title', 'description', 'metadata'}


class Current:
    """What the manager read about the guest: enough for planning, nothing more.

    ``nvram`` is the guest's NVRAM file: what its live XML names while it runs, else what
    its definition names or, for ``<os firmware='efi'>`` without one, the path libvirt
    derives for it (the manager knows the rule; None when it cannot tell).
    ``default_nvram`` is that derived path for the guest's name (None when unknown).
    Either may be given as a function, called once on first use: deriving the path may
    cost a call to libvirt that most runs do not need.
    """

    def __init__(self, name, exists=False, state='absent', inactive_xml=None, live_xml=None,
                 autostart=False, persistent=True, nvram=None, default_nvram=None):
        self.name = name
        self.exists = exists
        self.state = state
        self.inactive_xml = inactive_xml
        self.live_xml = live_xml
        self.autostart = autostart
        self.persistent = persistent
        self._lazy = {'nvram': nvram, 'default_nvram': default_nvram}

    def _resolve(self, key):
        value = self._lazy[key]
        if callable(value):
            value = self._lazy[key] = value()
        return value

    @property
    def nvram(self):
        return self._resolve('nvram')

    @property
    def default_nvram(self):
        return self._resolve('default_nvram')

    @property
    def active(self):
        return self.state in ACTIVE_STATES


# What earlier runs asked of a running guest that only completes with its cooperation
# (a balloon target, a hot-unplug). Kept in the guest's *live* metadata under a namespace
# of its own (libvirt keeps one element per namespace; ``metadata`` owns the other), so
# it is gone after the next boot, when the persistent config applies anyway.
LIVE_NS = 'https://virtkit.dev/xmlns/guests/1/live'
LIVE_PREFIX = 'virtkitlive'


class LiveRequests:
    """The live requests recorded on a running guest: a balloon target and detaches.

    ``balloon`` is ``(target_kib, at_kib)``: the target asked for and where the guest
    was when the run that asked gave up waiting, or, for the target libvirt asks for when
    this module starts the guest, its maximum (QEMU starts every guest with all of
    ``<memory>``; only a balloon driver in the guest moves it to ``<currentMemory>``).
    ``detach`` holds the fields (``disks:vdb``...) whose
    unplug the guest had not completed when the run that asked for it ended.

    ``nvram`` is the one request kept in the *persistent* config (same namespace): a dict
    with the ``path`` of the NVRAM file to discard once the guest is off, the firmware
    signature it was made ``for`` and the ``field`` that changed. A firmware change on a
    running guest records it, since the running guest still uses that file.
    """

    def __init__(self, balloon=None, detach=(), nvram=None):
        self.balloon = balloon
        self.detach = set(detach)
        self.nvram = nvram

    @classmethod
    def read(cls, root):
        el = root.find('metadata/{%s}live' % LIVE_NS) if root is not None else None
        if el is None:
            return cls()
        balloon = None
        b = el.find('{%s}balloon' % LIVE_NS)
        if b is not None:
            try:
                balloon = (int(b.get('target')), int(b.get('at')))
            except (TypeError, ValueError):
                balloon = None
        detach = [d.get('field') for d in el.findall('{%s}detach' % LIVE_NS) if d.get('field')]
        nvram = None
        n = el.find('{%s}discard-nvram' % LIVE_NS)
        if n is not None and n.get('path') and n.get('for'):
            nvram = {'path': n.get('path'), 'for': n.get('for'), 'field': n.get('field') or 'firmware'}
        return cls(balloon, detach, nvram)

    def balloon_asked(self, target_kib, now_kib):
        """Was ``target_kib`` asked for already, with the guest still where it was then or on
        its way from there (a balloon inflates in steps)? Asking again would change nothing:
        QEMU keeps the target. A guest anywhere else moved away from it (someone set another
        target, or it deflated): ask again."""
        if self.balloon is None or now_kib is None or self.balloon[0] != target_kib:
            return False
        low, high = sorted(self.balloon)
        return low <= now_kib <= high

    def element(self, namespaced=False):
        """The element for virDomainSetMetadata (which adds the namespace), or None.

        ``namespaced`` gives the element as it stands in domain XML.
        """
        if self.balloon is None and not self.detach and self.nvram is None:
            return None
        ns = '{%s}' % LIVE_NS if namespaced else ''
        el = etree.Element(ns + 'live', nsmap={LIVE_PREFIX: LIVE_NS} if namespaced else None)
        if self.balloon is not None:
            etree.SubElement(el, ns + 'balloon', target=str(self.balloon[0]), at=str(self.balloon[1]))
        for field in sorted(self.detach):
            etree.SubElement(el, ns + 'detach', field=field)
        if self.nvram is not None:
            n = etree.SubElement(el, ns + 'discard-nvram', path=self.nvram['path'], field=self.nvram['field'])
            n.set('for', self.nvram['for'])
        return el

    def store(self, root):
        """Put these requests into domain XML ``root`` (replacing the ones there)."""
        container = root.find('metadata')
        old = container.find('{%s}live' % LIVE_NS) if container is not None else None
        new = self.element(namespaced=True)
        if old is not None:
            container.remove(old)
        if new is not None:
            xmerge.metadata_container(root).append(new)
        elif container is not None and len(container) == 0:
            root.remove(container)


def live_device_present(live_root, element):
    """Is the device ``element`` (taken from the live XML) still in ``live_root``?

    Identity as in devices.py: a disk by target, a NIC by MAC, a host device by its
    source address; anything else by the alias libvirt gave it.
    """
    devices = live_root.find('devices')
    if devices is None:
        return False
    tag = element.tag
    if tag == 'disk':
        return any(disk_target(el) == disk_target(element) for el in devices.findall('disk'))
    if tag == 'interface' and nic_mac(element):
        return any(nic_mac(el) == nic_mac(element) for el in devices.findall('interface'))
    if tag == 'hostdev' and hostdev_key(element) is not None:
        return any(hostdev_key(el) == hostdev_key(element) for el in devices.findall('hostdev'))
    alias = element.find('alias')
    if alias is None or not alias.get('name'):
        return any(canonical(el) == canonical(element) for el in devices.findall(tag))
    return any(el.find('alias') is not None and el.find('alias').get('name') == alias.get('name')
               for el in devices.findall(tag))


def _mask(text):
    return re.sub(r"passwd=(['\"]).*?\1", "passwd='********'", text) if text else text


def build_plan(spec, current, virt_type=None, arch='x86_64'):
    """Return the Plan that brings ``current`` to ``spec``.

    ``virt_type`` and ``arch`` are the host defaults for a new guest.
    """
    plan = Plan(spec.name)
    plan.merged_xml = None
    plan.live_changes = []
    plan.warnings = []
    plan.before = {'state': current.state}
    plan.after = {'state': current.state}
    if spec.state == 'absent':
        _plan_absent(plan, spec, current)
        return plan

    if current.exists:
        before_root = parse(current.inactive_xml, 'the current XML of %s' % spec.name)
        merged = deepcopy(before_root)
    else:
        before_root = None
        merged = xmerge.skeleton(spec, spec.virt_type or virt_type or 'kvm', spec.arch or arch)
    ed = xmerge.merge(merged, spec)
    nvram = _plan_nvram(plan, spec, current, before_root, merged)
    before_text, after_text = canonical(before_root), canonical(merged)
    if before_text != after_text:
        plan.merged_xml = to_string(merged)
        plan.before['xml'] = _mask(before_text)
        plan.after['xml'] = _mask(after_text)
        if current.exists:
            summary = 'update the persistent config of %s: %s' % (spec.name, ', '.join(ed.fields()) or 'metadata')
            if plan.nvram_later:
                summary += ' (its NVRAM file %s is discarded once it is off)' % plan.nvram_later
        else:
            summary = 'define %s' % spec.name
        plan.add('define', summary, xml=plan.merged_xml, new=not current.exists)
    if nvram is not None:
        plan.actions.append(nvram)

    target = spec.state
    stays_active = current.active and target in ('present', 'running', 'paused')
    if stays_active:
        _plan_live(plan, spec, current)

    if spec.autostart is not None and bool(spec.autostart) != bool(current.autostart and current.exists):
        plan.before['autostart'] = bool(current.autostart)
        plan.after['autostart'] = bool(spec.autostart)
        plan.add('autostart', 'turn autostart %s' % ('on' if spec.autostart else 'off'),
                 value=bool(spec.autostart))

    _plan_lifecycle(plan, spec, current)
    if spec.wait_for_ip and plan.after['state'] == 'running':
        plan.add('wait_for_ip', 'wait up to %ss for an address' % spec.wait_for_ip_timeout, changes=False)
    return plan


def _plan_nvram(plan, spec, current, before_root, merged):
    """Discard an NVRAM file that no longer fits the firmware (DESIGN principle 5).

    libvirt copies the firmware's NVRAM template only when the guest's NVRAM file is
    missing, so a guest leaving UEFI keeps an orphaned file and one whose secure boot
    changes keeps the variables (and enrolled keys) of its old template. When the
    firmware signature changes (:func:`merge.firmware_signature`) the file goes:

    - guest off: right after the define (the returned action, placed after it);
    - guest running: it still uses the file, so ``merged`` records the request in the
      persistent config (``LiveRequests.nvram``); ``plan.nvram_later`` names the file
      for the restart or shutdown that this run or a later one does, and a later run
      that finds the guest off discards it then (the returned action).

    Either way the define records the request, so a discard that fails is retried.
    Secure boot left unset (V(auto) on q35) is resolved from what the running guest's
    live XML (or libvirt >= 9.2's inactive XML) says libvirt selected; when that is
    unknown nothing is discarded, with a warning: the file may hold boot entries or
    keys the user needs. Only the file the guest's own (live, else inactive) definition
    names, or the path libvirt derives for it, is ever discarded (a recorded request
    naming another file is dropped with a warning). Returns an action to place after
    the define, or None.
    """
    plan.nvram_later = None
    plan.nvram_field = None
    if before_root is None:
        return None
    requests = LiveRequests.read(before_root)
    record = requests.nvram
    if record is not None and record['path'] not in _own_nvram(current, before_root):
        # Metadata anyone with access to the guest can write: only the guest's own file goes.
        plan.warnings.append('%s: the NVRAM discard request in its metadata names %s, which is not the NVRAM file '
                             'of this guest; request dropped, nothing deleted' % (spec.name, record['path']))
        stored = LiveRequests.read(merged)
        stored.nvram = None
        stored.store(merged)
        record = None
    live_root = parse(current.live_xml, 'the live XML of %s' % spec.name) if current.live_xml else None
    old_raw, new_sig = xmerge.firmware_signature(before_root), xmerge.firmware_signature(merged)
    if record is not None:
        stored = LiveRequests.read(merged)
        if record['for'] == new_sig:
            # Changed back before the file went: it fits again, forget the request.
            if current.active:
                stored.nvram = None
                stored.store(merged)
                return None
            return Action('keep_nvram', 'keep the NVRAM file %s: it fits the firmware again' % record['path'])
        if current.active:
            plan.nvram_later, plan.nvram_field = record['path'], record['field']
            return None
        return Action('discard_nvram', 'discard the NVRAM file %s (made for the old firmware; libvirt makes a '
                      'new one from the template at the next start)' % record['path'], path=record['path'])
    if old_raw == new_sig or old_raw == 'bios':
        return None
    # What the guest really ran with, where libvirt chose while secure_boot was unset.
    old_sig = xmerge.firmware_signature(before_root, ran=live_root)
    # secure_boot when the secure boot features differ, else firmware.
    sb_only = 'bios' not in (old_sig, new_sig) and old_sig.split()[1:3] != new_sig.split()[1:3]
    field = 'secure_boot' if sb_only else 'firmware'
    if old_sig == new_sig:
        return None
    if sb_only and old_sig.split()[3:] == new_sig.split()[3:] and 'auto' in ' '.join(
            old_sig.split()[1:3] + new_sig.split()[1:3]):
        # Never delete what may still be needed (boot entries, enrolled keys) unless it is known to be stale.
        plan.warnings.append('%s: %s: libvirt chose the firmware while secure_boot was unset, so it is unknown '
                             'whether the NVRAM file %s was made for the new setting; kept as is (to reset it, '
                             'delete it while the guest is off: libvirt makes a new one from the template at the '
                             'next start)' % (spec.name, field, current.nvram or 'of the guest'))
        return None
    if current.nvram is None:
        plan.warnings.append('%s: %s: cannot tell which NVRAM file the old firmware used (the definition names '
                             'none and the connection is not qemu:///system); libvirt keeps it, remove it by hand'
                             % (spec.name, field))
        return None
    # Recorded in the persistent config by the define itself, so a discard that fails (or a
    # run killed right after the define) is retried by the next run instead of forgotten.
    stored = LiveRequests.read(merged)
    stored.nvram = {'path': current.nvram, 'for': old_sig, 'field': field}
    stored.store(merged)
    if current.active:
        plan.nvram_later, plan.nvram_field = current.nvram, field
        return None
    what = 'leaves UEFI' if new_sig == 'bios' else 'gets another NVRAM template'
    return Action('discard_nvram', 'discard the NVRAM file %s (the firmware %s; libvirt makes a new one from the '
                  'template at the next start)' % (current.nvram, what), path=current.nvram)


def _own_nvram(current, before_root):
    """The paths that are the guest's own NVRAM file: the one it uses, the one its definition
    names and the one libvirt derives for its name."""
    paths = {current.nvram, xmerge.nvram_path(before_root.find('os')), current.default_nvram}
    paths.discard(None)
    return paths


def _plan_live(plan, spec, current):
    live_root = parse(current.live_xml, 'the live XML of %s' % spec.name)
    # The running guest's ceilings, read before the merge raises them in this copy.
    live_max_kib = xmerge.read_kib(live_root.find('memory'))
    vcpu_el = live_root.find('vcpu')
    live_max_vcpus = int(vcpu_el.text) if vcpu_el is not None and vcpu_el.text else None
    live_cur_kib = xmerge.read_kib(live_root.find('currentMemory')) or live_max_kib
    balloon = live_root.find('devices/memballoon')
    # Without a balloon device libvirt cannot change the memory of a running guest.
    no_balloon = balloon is not None and balloon.get('model') == 'none'
    requested = LiveRequests.read(live_root)
    live_ed = xmerge.merge(live_root, spec)
    ops, pending = [], []
    for field in live_ed.fields():
        changes = [c for c in live_ed.changes if c.field == field]
        kinds = {c.kind for c in changes}
        if field == 'memory' and spec.memory_kib is not None and spec.memory_kib <= (live_max_kib or 0) \
                and not no_balloon:
            if requested.balloon_asked(spec.memory_kib, live_cur_kib):
                # Asked for when this module started the guest or by an earlier run, and the
                # guest has not moved away since: asking again changes nothing (DESIGN
                # principle 4: honest, not changed forever).
                plan.warnings.append(
                    '%s: memory: the guest is at %d MiB, not at the %d MiB asked for when the module started it '
                    'or by an earlier run (no balloon driver in the guest, or still on its way?); not asking '
                    'again, the persistent config has it'
                    % (spec.name, live_cur_kib // 1024, spec.memory_kib // 1024))
                continue
            ops.append(('set_memory', 'set the memory of the running guest to %d MiB' % (spec.memory_kib // 1024),
                        {'kib': spec.memory_kib}))
        elif field == 'vcpus' and spec.vcpus is not None and spec.vcpus <= (live_max_vcpus or 0):
            ops.append(('set_vcpus', 'set the vCPUs of the running guest to %d' % spec.vcpus, {'count': spec.vcpus}))
        elif field in _CONFIG_ONLY:
            ops.append(('set_metadata', 'update %s of the running guest' % field, {'field': field}))
        elif kinds and kinds <= _LIVE_KINDS and len(changes) == 1:
            change = changes[0]
            kind = field.split(':', 1)[0]
            if change.kind == 'add':
                ops.append(('attach_device', 'attach %s %s to the running guest' % (kind[:-1], field.split(':', 1)[1]),
                            {'kind': kind, 'key': change.key, 'field': field}))
            elif change.kind == 'remove' and field in requested.detach:
                # An earlier run asked for this unplug and the guest has not done it.
                plan.warnings.append(
                    '%s: %s: an earlier run asked the guest to release this device and it still holds it '
                    '(the guest ignores hot-unplug, or is not running?); not asking again, it goes at the next '
                    'restart' % (spec.name, field))
                pending.append(field)
            elif change.kind == 'remove':
                ops.append(('detach_device', 'detach %s %s from the running guest' % (kind[:-1], field.split(':', 1)[1]),
                            {'xml': to_string(change.element), 'field': field}))
            else:
                ops.append(('update_media', 'change the media in %s' % field.split(':', 1)[1],
                            {'xml': to_string(change.element)}))
        else:
            pending.append(field)
    if plan.nvram_later and plan.nvram_field not in pending:
        # The running guest still uses an NVRAM file made for another firmware.
        pending.append(plan.nvram_field)
    plan.pending_restart = pending
    restart = bool(pending) and spec.restart_policy == 'if_needed'
    if restart:
        if plan.nvram_later:
            plan.add('restart', 'restart %s to apply %s, discarding its NVRAM file %s while it is off'
                     % (spec.name, ', '.join(pending), plan.nvram_later), discard_nvram=plan.nvram_later)
        else:
            plan.add('restart', 'restart %s to apply %s' % (spec.name, ', '.join(pending)))
        plan.restarting = True
        return
    for op, summary, params in ops:
        plan.add(op, summary, **params)


def _plan_lifecycle(plan, spec, current):
    state, target = current.state if current.exists else 'shutoff', spec.state
    if getattr(plan, 'restarting', False):
        # The restart starts the guest paused only for state paused: plan from there.
        state = 'paused' if target == 'paused' else 'running'
        if target == 'present' and current.state == 'paused':
            plan.add('suspend', 'pause %s again after the restart' % spec.name)
            state = 'paused'
    after = state
    if target == 'running':
        if state == 'paused':
            plan.add('resume', 'resume %s' % spec.name)
        elif state not in ACTIVE_STATES:
            plan.add('start', 'start %s' % spec.name, paused=False)
        after = 'running'
    elif target == 'paused':
        if state == 'running':
            plan.add('suspend', 'pause %s' % spec.name)
        elif state not in ACTIVE_STATES:
            plan.add('start', 'start %s paused' % spec.name, paused=True)
        after = 'paused'
    elif target == 'shutdown':
        if state in ACTIVE_STATES:
            plan.add('shutdown', 'shut %s down (ACPI, up to %ss%s)'
                     % (spec.name, spec.shutdown_timeout, ', then force off' if spec.force else ''))
            _discard_when_off(plan)
        after = 'shutoff'
    elif target == 'destroyed':
        if state in ACTIVE_STATES:
            plan.add('destroy', 'power %s off' % spec.name)
            _discard_when_off(plan)
        after = 'shutoff'
    plan.after['state'] = after


def _discard_when_off(plan):
    if getattr(plan, 'nvram_later', None):
        plan.add('discard_nvram', 'discard the NVRAM file %s (made for the old firmware; libvirt makes a new one '
                 'from the template at the next start)' % plan.nvram_later, path=plan.nvram_later)


def _plan_absent(plan, spec, current):
    plan.after['state'] = 'absent'
    if not current.exists:
        return
    root = parse(current.inactive_xml, 'the current XML of %s' % spec.name)
    volumes = storage_to_remove(root, spec.remove_storage, spec.name)
    if current.active:
        plan.add('destroy', 'power %s off' % spec.name)
    if current.persistent:
        # A transient guest is gone once powered off; there is nothing to undefine.
        plan.add('undefine', 'undefine %s (with its NVRAM, TPM state, snapshot metadata and managed save)'
                 % spec.name)
    for target, source in volumes:
        plan.add('delete_storage', 'delete the storage of %s: %s' % (target, source), target=target,
                 source=source)


def disk_sources(root):
    """[(target, device, source dict)] for every disk of a domain."""
    result = []
    for el in root.findall('devices/disk'):
        src = el.find('source')
        if src is None:
            continue
        source = {k: v for k, v in src.attrib.items() if k in ('file', 'dev', 'pool', 'volume')}
        if source:
            result.append((disk_target(el), el.get('device'), source))
    return result


def storage_to_remove(root, names, guest):
    """Resolve ``remove_storage`` (targets or 'all') against the guest's disks."""
    from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
    if not names:
        return []
    disks = disk_sources(root)
    by_target = {t: (t, s) for t, d, s in disks}
    if 'all' in names:
        # 'all' means the guest's writable disks; install media (cdroms) stay.
        return [(t, s) for t, d, s in disks if d == 'disk']
    result = []
    for name in names:
        if name not in by_target:
            raise VirtkitError('%s: remove_storage names %s, but the guest has no disk with that target '
                               '(it has %s)' % (guest, name, ', '.join(sorted(by_target)) or 'none'))
        result.append(by_target[name])
    return result
