# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge a DomainSpec onto domain XML (DESIGN principle 2: merge, don't regenerate).

``merge(root, spec)`` edits ``root`` in place and returns the Editor whose change list
says which user-facing fields differed. The same function builds a new guest (merged
onto :func:`skeleton`), updates an existing one (merged onto its inactive XML) and
tells what a running guest lacks (merged onto a copy of its live XML).
"""

from __future__ import annotations

import re

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._xml import Editor, canonical, etree
from ansible_collections.virtkit.guests.plugins.module_utils._domain import devices as dev

METADATA_NS = 'https://virtkit.dev/xmlns/guests/1'
METADATA_PREFIX = 'virtkit'
DEFAULT_MEMORY_KIB = 1024 * 1024
_UNIT_KIB = {'b': 1 / 1024.0, 'bytes': 1 / 1024.0, 'k': 1, 'kib': 1, 'kb': 1000 / 1024.0,
             'm': 1024, 'mib': 1024, 'mb': 1000 ** 2 / 1024.0,
             'g': 1024 ** 2, 'gib': 1024 ** 2, 'gb': 1000 ** 3 / 1024.0,
             't': 1024 ** 3, 'tib': 1024 ** 3, 'tb': 1000 ** 4 / 1024.0}


def skeleton(spec, virt_type, arch):
    """The smallest domain libvirt accepts; merge() fills in the rest from the spec."""
    root = etree.Element('domain', type=virt_type)
    etree.SubElement(root, 'name').text = spec.name
    memory_kib = spec.max_memory_kib or spec.memory_kib or DEFAULT_MEMORY_KIB
    etree.SubElement(root, 'memory', unit='KiB').text = str(memory_kib)
    etree.SubElement(root, 'vcpu', placement='static').text = '1'
    os_el = etree.SubElement(root, 'os')
    os_type = etree.SubElement(os_el, 'type', arch=arch)
    os_type.text = 'hvm'
    if spec.secure_boot and not spec.machine:
        os_type.set('machine', 'q35')  # secure boot needs SMM, which only q35 offers
    features = etree.SubElement(root, 'features')
    etree.SubElement(features, 'acpi')
    etree.SubElement(features, 'apic')
    etree.SubElement(root, 'devices')
    return root


def read_kib(el):
    """An element such as ``<memory unit='MiB'>512</memory>`` in KiB."""
    if el is None or not (el.text or '').strip():
        return None
    factor = _UNIT_KIB.get((el.get('unit') or 'KiB').lower(), 1)
    return int(round(int(el.text.strip()) * factor))


def merge(root, spec):
    ed = Editor(root)
    if spec.virt_type:
        ed.attr(root, 'type', spec.virt_type, 'virt_type')
    for field in ('title', 'description'):
        value = getattr(spec, field)
        if value is not None:
            _merge_text_child(ed, root, field, value)
    _merge_memory(ed, root, spec)
    _merge_vcpus(ed, root, spec)
    _merge_os(ed, root, spec)
    if spec.cpu:
        _merge_cpu(ed, root, spec.cpu)
    devices = root.find('devices')
    if devices is None:
        devices = etree.SubElement(root, 'devices')
    if spec.disks is not None:
        dev.merge_disks(ed, devices, spec.disks, spec.devices_exclusive)
    if spec.interfaces is not None:
        dev.merge_interfaces(ed, devices, spec.interfaces, spec.devices_exclusive)
    if spec.hostdevs is not None:
        dev.merge_hostdevs(ed, devices, spec.hostdevs, spec.devices_exclusive)
    if spec.graphics:
        dev.merge_graphics(ed, devices, spec.graphics)
    if spec.serial:
        dev.merge_serial(ed, devices, spec.serial)
    if spec.tpm:
        dev.merge_tpm(ed, devices, spec.tpm)
    if spec.rng is not None:
        dev.merge_rng(ed, devices, spec.rng)
    if spec.guest_agent is not None:
        dev.merge_guest_agent(ed, devices, spec.guest_agent)
    if spec.metadata is not None:
        merge_metadata(ed, root, spec.metadata)
    if spec.xml_overrides:
        apply_overrides(ed, root, spec.xml_overrides)
    return ed


def _merge_text_child(ed, root, tag, value):
    el = root.find(tag)
    if value == '':
        if el is not None:
            ed.remove(el, tag)
        return
    if el is None:
        el = etree.Element(tag)
        name = root.find('name')
        # <title> and <description> follow <name>/<uuid> in libvirt's own output.
        anchor = root.find('uuid') if root.find('uuid') is not None else name
        anchor.addnext(el)
        ed.record(tag)
    ed.text(el, value, tag)


def _merge_memory(ed, root, spec):
    mem = root.find('memory')
    cur = root.find('currentMemory')
    max_kib = read_kib(mem)
    if spec.max_memory_kib is not None and spec.max_memory_kib != max_kib:
        ed.attr(mem, 'unit', 'KiB', 'max_memory')
        ed.text(mem, spec.max_memory_kib, 'max_memory')
        max_kib = spec.max_memory_kib
    if spec.memory_kib is not None:
        if spec.memory_kib > max_kib:
            # Raising the ceiling is a restart-only change; the balloon target follows.
            ed.attr(mem, 'unit', 'KiB', 'max_memory')
            ed.text(mem, spec.memory_kib, 'max_memory')
            max_kib = spec.memory_kib
        want_cur = spec.memory_kib
    else:
        current = read_kib(cur)
        want_cur = min(current, max_kib) if current is not None else None
    if want_cur is None:
        return
    if cur is None:
        cur = etree.Element('currentMemory', unit='KiB')
        mem.addnext(cur)
        cur.text = str(read_kib(mem))
    if read_kib(cur) != want_cur:
        cur.set('unit', 'KiB')
        ed.text(cur, want_cur, 'memory')


def _merge_vcpus(ed, root, spec):
    if spec.vcpus is None and spec.max_vcpus is None:
        return
    el = root.find('vcpu')
    if el is None:
        el = etree.Element('vcpu', placement='static')
        el.text = '1'
        root.find('memory').addnext(el)
        ed.record('max_vcpus')
    cur_max = int(el.text.strip())
    current = int(el.get('current') or cur_max)
    new_max = spec.max_vcpus if spec.max_vcpus is not None else cur_max
    if spec.max_vcpus is None and spec.vcpus is not None and spec.vcpus > new_max:
        new_max = spec.vcpus
    new_current = spec.vcpus if spec.vcpus is not None else min(current, new_max)
    if new_max != cur_max:
        ed.text(el, new_max, 'max_vcpus')
    ed.attr(el, 'current', new_current if new_current < new_max else None, 'vcpus')


def _machine_matches(current, wanted):
    """'pc' and 'q35' are aliases libvirt expands to versioned machine types."""
    if current == wanted or current is None:
        return current == wanted
    if wanted == 'pc':
        return current.startswith('pc-i440fx-')
    if wanted == 'q35':
        return current.startswith('pc-q35-')
    return False


def _merge_os(ed, root, spec):
    os_el = root.find('os')
    type_el = os_el.find('type')
    if spec.arch:
        ed.attr(type_el, 'arch', spec.arch, 'arch')
    if spec.machine and not _machine_matches(type_el.get('machine'), spec.machine):
        ed.attr(type_el, 'machine', spec.machine, 'machine')
    if spec.firmware:
        _merge_firmware(ed, os_el, spec.firmware)
    if spec.secure_boot is not None and spec.firmware != 'bios':  # BIOS has no secure boot to describe
        _forget_selected_firmware(ed, os_el, spec)
        fw = ed.child(os_el, 'firmware', 'secure_boot')
        for name in ('enrolled-keys', 'secure-boot'):
            feature = ed.child(fw, 'feature', 'secure_boot', name=name)
            ed.attr(feature, 'enabled', 'yes' if spec.secure_boot else 'no', 'secure_boot')
        if spec.secure_boot:
            features = ed.child(root, 'features', 'secure_boot')
            smm = ed.child(features, 'smm', 'secure_boot')
            ed.attr(smm, 'state', 'on', 'secure_boot')
    boot = spec.boot or {}
    if boot.get('devices') is not None:
        current = [el.get('dev') for el in os_el.findall('boot')]
        if current != boot['devices']:
            for el in os_el.findall('boot'):
                os_el.remove(el)
            for name in boot['devices']:
                etree.SubElement(os_el, 'boot', dev=name)
            ed.record('boot')
    for key in ('kernel', 'initrd', 'cmdline'):
        if boot.get(key) is not None:
            el = os_el.find(key)
            if boot[key] == '':
                if el is not None:
                    ed.remove(el, 'boot')
                continue
            if el is None:
                el = etree.SubElement(os_el, key)
            ed.text(el, boot[key], 'boot')


def firmware_of(os_el):
    """'efi' or 'bios': what an <os> element boots with.

    libvirt 9.0 keeps ``<os firmware='efi'>`` in the inactive XML only: a running guest's
    live XML shows the pflash loader and NVRAM it selected instead, without the attribute.
    """
    if os_el.get('firmware'):
        return os_el.get('firmware')
    loader = os_el.find('loader')
    if os_el.find('nvram') is not None or (loader is not None and loader.get('type') == 'pflash'):
        return 'efi'
    return 'bios'


# NVRAM templates with enrolled keys (Debian *.ms.fd / *.snakeoil.fd, Fedora *.secboot.fd)
# and the plain ones without; any other name tells nothing.
_ENROLLED_TEMPLATE = re.compile(r'[._-](ms|secboot|snakeoil|enrolled)[._-]', re.I)
_PLAIN_TEMPLATE = re.compile(r'^(OVMF_VARS(_4M)?|edk2-[a-z0-9_]+-vars)\.(fd|raw|qcow2)$', re.I)


def selected_secure_boot(os_el):
    """What the loader and NVRAM template libvirt selected tell about secure boot.

    A dict with 'secure-boot' and/or 'enrolled-keys' ('yes'/'no'), empty when unknown.
    libvirt names them in the live XML of a running guest (from 9.2 also in the inactive
    XML): ``<loader secure='yes'>`` is secure-boot code (a pflash loader without it is
    not); the template's file name tells whether keys are enrolled.
    """
    found = {}
    if os_el is None:
        return found
    loader = os_el.find('loader')
    if loader is not None and (loader.text or '').strip():
        found['secure-boot'] = 'yes' if loader.get('secure') == 'yes' else 'no'
    nvram = os_el.find('nvram')
    template = (nvram.get('template') or '') if nvram is not None else ''
    base = template.rsplit('/', 1)[-1]
    if base and _ENROLLED_TEMPLATE.search(base):
        found['enrolled-keys'] = 'yes'
    elif base and _PLAIN_TEMPLATE.match(base):
        found['enrolled-keys'] = 'no'
    return found


def _forget_selected_firmware(ed, os_el, spec):
    """Let libvirt select the firmware again when secure boot flips (libvirt >= 9.2).

    libvirt 9.2 writes the loader and NVRAM template it selected into the inactive XML
    of a guest with ``<os firmware='efi'>``; kept, they would pin the old firmware. They
    are dropped when the requested secure boot differs from what they (or the explicit
    features) say, unless this run's ``xml_overrides`` set them. A loader set by an
    earlier run's overrides looks the same as libvirt's and is dropped too.
    """
    if os_el.get('firmware') != 'efi' or spec.firmware == 'bios':
        return
    loader, nvram = os_el.find('loader'), os_el.find('nvram')
    if loader is None and (nvram is None or not nvram.get('template')):
        return
    if any('loader' in str(o.get('xpath')) or 'nvram' in str(o.get('xpath')) for o in spec.xml_overrides or ()):
        return
    explicit = dict((f.get('name'), f.get('enabled')) for f in os_el.findall('firmware/feature'))
    known = selected_secure_boot(os_el)
    known.update((k, v) for k, v in explicit.items() if k in ('secure-boot', 'enrolled-keys'))
    wanted = 'yes' if spec.secure_boot else 'no'
    if all(value == wanted for value in known.values()):
        return
    if loader is not None:
        ed.remove(loader, 'secure_boot')
    if nvram is not None:
        for attr in ('template', 'templateFormat'):
            if nvram.get(attr) is not None:
                ed.attr(nvram, attr, None, 'secure_boot')


def firmware_signature(root, ran=None):
    """What a guest's NVRAM store was made for, as a comparable string ('bios' without one).

    UEFI with its secure boot features (V(auto) when unset: libvirt then picks by priority,
    which on q35 may be a secure-boot template; secure boot needs SMM, which only q35
    offers, so elsewhere unset means off) and the loader and NVRAM template when the
    definition names them. Read from inactive XML: libvirt 9.0 fills the loader in the live
    XML only. Two definitions with the same signature get the same NVRAM template.

    An unset feature is resolved from the loader and template libvirt selected
    (:func:`selected_secure_boot`): those of ``ran`` (the live XML of the running guest)
    first, then those ``root`` names (libvirt >= 9.2 writes them at define time).
    """
    os_el = root.find('os')
    if os_el is None or firmware_of(os_el) != 'efi':
        return 'bios'
    type_el = os_el.find('type')
    q35 = 'q35' in ((type_el.get('machine') if type_el is not None else None) or '')
    features = dict((f.get('name'), f.get('enabled')) for f in os_el.findall('firmware/feature'))
    selected = selected_secure_boot(os_el)
    if ran is not None:
        selected.update(selected_secure_boot(ran.find('os')))
    parts = ['efi']
    for name in ('secure-boot', 'enrolled-keys'):
        value = features.get(name) or selected.get(name) or ('auto' if q35 else 'no')
        parts.append('%s=%s' % (name, value))
    loader = os_el.find('loader')
    if loader is not None and (loader.text or '').strip():
        parts.append('loader=%s' % loader.text.strip())
    nvram = os_el.find('nvram')
    if nvram is not None and nvram.get('template'):
        parts.append('template=%s' % nvram.get('template'))
    return ' '.join(parts)


def nvram_path(os_el):
    """The NVRAM file an <os> element names, or None (libvirt 9.0 names none in the
    inactive XML of a guest with ``<os firmware='efi'>``; its live XML names it)."""
    el = os_el.find('nvram') if os_el is not None else None
    text = (el.text or '').strip() if el is not None else ''
    return text or None


def _merge_firmware(ed, os_el, firmware):
    """UEFI is <os firmware='efi'> (libvirt picks loader and NVRAM template from the
    firmware descriptors); BIOS is the x86 default, so it is the absence of UEFI.

    ``<os firmware='bios'>`` is never written: libvirt 9.0 then demands a firmware
    descriptor for SeaBIOS, which Debian does not ship, and the guest fails to start
    ("Unable to find any firmware to satisfy 'bios'").
    """
    current = firmware_of(os_el)
    if firmware == 'uefi':
        if current != 'efi':
            ed.attr(os_el, 'firmware', 'efi', 'firmware')
        return
    if current != 'efi':
        return
    ed.attr(os_el, 'firmware', None, 'firmware')
    for tag in ('loader', 'nvram', 'firmware'):
        for el in os_el.findall(tag):
            ed.remove(el, 'firmware')


def _merge_cpu(ed, root, cpu):
    el = root.find('cpu')
    if el is None:
        el = etree.Element('cpu')
        anchor = root.find('features')
        if anchor is None:
            anchor = root.find('os')
        anchor.addnext(el)
        ed.record('cpu')
    mode = cpu.get('mode') or ('custom' if cpu.get('model') else None)
    if mode:
        ed.attr(el, 'mode', mode, 'cpu')
        if mode != 'custom':
            model = el.find('model')
            if model is not None:
                ed.remove(model, 'cpu')
    if cpu.get('model'):
        ed.attr(el, 'match', el.get('match') or 'exact', 'cpu')
        model = ed.child(el, 'model', 'cpu')
        if model.get('fallback') is None:
            model.set('fallback', 'allow')
        ed.text(model, cpu['model'], 'cpu')
    topo = {k: cpu.get(k) for k in ('sockets', 'dies', 'cores', 'threads') if cpu.get(k) is not None}
    if topo:
        t = ed.child(el, 'topology', 'cpu')
        for key, value in topo.items():
            ed.attr(t, key, value, 'cpu')


def metadata_element(metadata, namespaced=True):
    """Our ``<virtkit:guest>`` element; without the namespace for virDomainSetMetadata,
    which adds the namespace itself."""
    ns = '{%s}' % METADATA_NS if namespaced else ''
    el = etree.Element(ns + 'guest', nsmap={METADATA_PREFIX: METADATA_NS} if namespaced else None)
    for key in sorted(metadata):
        value = metadata[key]
        var = etree.SubElement(el, ns + 'var', name=key)
        if isinstance(value, list):
            var.set('type', 'list')
            for item in value:
                etree.SubElement(var, ns + 'item').text = item
        else:
            var.text = value
    return el


def read_metadata(root):
    """Our key/values from a domain's ``<metadata>`` (lists stay lists)."""
    result = {}
    el = root.find('metadata/{%s}guest' % METADATA_NS)
    if el is None:
        return result
    for var in el.findall('{%s}var' % METADATA_NS):
        if var.get('type') == 'list':
            result[var.get('name')] = [item.text or '' for item in var.findall('{%s}item' % METADATA_NS)]
        else:
            result[var.get('name')] = var.text or ''
    return result


def merge_metadata(ed, root, metadata):
    """Our namespace element belongs wholly to the ``metadata`` option."""
    container = root.find('metadata')
    current = container.find('{%s}guest' % METADATA_NS) if container is not None else None
    wanted = metadata_element(metadata) if metadata else None
    if canonical(current) == canonical(wanted):
        return
    if current is not None:
        ed.remove(current, 'metadata')
    if wanted is not None:
        metadata_container(root).append(wanted)
        ed.record('metadata')
    elif container is not None and len(container) == 0:
        root.remove(container)


def metadata_container(root):
    """The domain's ``<metadata>``, made where libvirt puts it when missing."""
    container = root.find('metadata')
    if container is None:
        container = etree.Element('metadata')
        anchor = root.find('description')
        if anchor is None:
            anchor = root.find('title')
        if anchor is None:
            anchor = root.find('uuid') if root.find('uuid') is not None else root.find('name')
        anchor.addnext(container)
    return container


def apply_overrides(ed, root, overrides):
    field = 'xml_overrides'
    ns = {METADATA_PREFIX: METADATA_NS}
    for index, item in enumerate(overrides):
        xpath = item['xpath']
        found = root.xpath(xpath, namespaces=ns)
        if not isinstance(found, list):
            raise VirtkitError('xml_overrides[%d]: %r selects a value, not elements or attributes'
                               % (index, xpath))
        if item.get('state') == 'absent':
            for node in found:
                if _is_text(node):
                    ed.text(node.getparent(), None, field)
                elif getattr(node, 'is_attribute', False):
                    parent = node.getparent()
                    del parent.attrib[node.attrname]
                    ed.record(field)
                elif hasattr(node, 'getparent') and not isinstance(node, str):
                    ed.remove(node, field)
            continue
        if not found:
            found = [_create_path(ed, root, xpath, index)]
        for node in found:
            if _is_text(node):
                # .../text() selects an element's text: set that text.
                ed.text(node.getparent(), item.get('value') or '', field)
                continue
            if getattr(node, 'is_attribute', False):
                parent = node.getparent()
                ed.attr(parent, node.attrname, item.get('value') or '', field)
                continue
            if isinstance(node, (str, tuple)) or not isinstance(node.tag, str):
                raise VirtkitError('xml_overrides[%d]: %r selects something other than elements, '
                                   'attributes or text' % (index, xpath))
            if item.get('value') is not None:
                ed.text(node, item['value'], field)
            for key, value in (item.get('attributes') or {}).items():
                ed.attr(node, key, None if value is None else _attr_text(value), field)


def _is_text(node):
    """An XPath text() result (lxml smart string); its parent is the element."""
    return isinstance(node, str) and getattr(node, 'is_text', False)


def _attr_text(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return str(value)


def _create_path(ed, root, xpath, index):
    """Create a missing simple path such as /domain/features/hyperv/relaxed (or .../@attr)."""
    parts = xpath.strip('/').split('/')
    if parts[0] != 'domain':
        raise VirtkitError('xml_overrides[%d]: %r must start with /domain' % (index, xpath))
    attr = None
    if parts[-1].startswith('@'):
        attr = parts.pop()[1:]
    el = root
    for part in parts[1:]:
        if not part.replace('-', '').replace('_', '').isalnum():
            raise VirtkitError('xml_overrides[%d]: %r matches nothing and is not a simple path '
                               '(/domain/a/b) that could be created' % (index, xpath))
        el = ed.child(el, part, 'xml_overrides')
    if attr is not None:
        ed.attr(el, attr, '', 'xml_overrides')
        return el.xpath('@' + attr)[0]
    return el
