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

from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._xml import canonical, etree, parse, to_string
from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.devices import (
    disk_target, hostdev_key, nic_mac)

ACTIVE_STATES = ('running', 'paused')
# Fields a running guest takes without a restart (applied to live and persistent config).
_LIVE_KINDS = {'add', 'remove', 'media'}
_CONFIG_ONLY = {'title', 'description', 'metadata'}


class Current:
    """What the manager read about the guest: enough for planning, nothing more."""

    def __init__(self, name, exists=False, state='absent', inactive_xml=None, live_xml=None,
                 autostart=False, persistent=True):
        self.name = name
        self.exists = exists
        self.state = state
        self.inactive_xml = inactive_xml
        self.live_xml = live_xml
        self.autostart = autostart
        self.persistent = persistent

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
    was when the run that asked gave up waiting. ``detach`` holds the fields (``disks:vdb``...) whose
    unplug the guest had not completed when the run that asked for it ended.
    """

    def __init__(self, balloon=None, detach=()):
        self.balloon = balloon
        self.detach = set(detach)

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
        return cls(balloon, detach)

    def element(self):
        """The element for virDomainSetMetadata (which adds the namespace), or None."""
        if self.balloon is None and not self.detach:
            return None
        el = etree.Element('live')
        if self.balloon is not None:
            etree.SubElement(el, 'balloon', target=str(self.balloon[0]), at=str(self.balloon[1]))
        for field in sorted(self.detach):
            etree.SubElement(el, 'detach', field=field)
        return el


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
    before_text, after_text = canonical(before_root), canonical(merged)
    if before_text != after_text:
        plan.merged_xml = to_string(merged)
        plan.before['xml'] = _mask(before_text)
        plan.after['xml'] = _mask(after_text)
        if current.exists:
            summary = 'update the persistent config of %s: %s' % (spec.name, ', '.join(ed.fields()))
        else:
            summary = 'define %s' % spec.name
        plan.add('define', summary, xml=plan.merged_xml, new=not current.exists)

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
            if requested.balloon == (spec.memory_kib, live_cur_kib):
                # Asked for on an earlier run and the guest has not moved since: asking
                # again changes nothing (DESIGN principle 4: honest, not changed forever).
                plan.warnings.append(
                    '%s: memory: the guest is still at %d MiB, not at the %d MiB an earlier run asked for '
                    '(no balloon driver in the guest?); not asking again, the persistent config has it'
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
    plan.pending_restart = pending
    restart = bool(pending) and spec.restart_policy == 'if_needed'
    if restart:
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
        after = 'shutoff'
    elif target == 'destroyed':
        if state in ACTIVE_STATES:
            plan.add('destroy', 'power %s off' % spec.name)
        after = 'shutoff'
    plan.after['state'] = after


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
