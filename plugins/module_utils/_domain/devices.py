# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Devices of a domain: identity matching and merging of one device spec at a time.

Identity rules (DESIGN principle 1): a disk is its target name; a NIC is its MAC, else
its user alias, else its source and position among NICs with that source; a host
device is its PCI address or USB ids. Only attributes the user set are written.

Change records use the field ``disks:<target>``, ``interfaces:<mac or source#n>`` and
``hostdevs:<address>`` with kind ``add``, ``remove``, ``modify`` or ``media`` (a cdrom
source change, which libvirt can apply to a running guest).
"""

from __future__ import annotations

from ansible_collections.virtkit.guests.plugins.module_utils._xml import etree

AGENT_CHANNEL = 'org.qemu.guest_agent.0'


# ---------------------------------------------------------------- disks

def disk_target(el):
    target = el.find('target')
    return target.get('dev') if target is not None else None


def _desired_source(d):
    """(disk type, source attributes or None) for a disk spec."""
    if d.get('volume'):
        return 'volume', {'pool': d['pool'], 'volume': d['volume']}
    if d.get('path'):
        if d['path'].startswith('/dev/'):
            return 'block', {'dev': d['path']}
        return 'file', {'file': d['path']}
    return None, None


def _current_source(el):
    source = el.find('source')
    if source is None:
        return None
    keys = {'volume': ('pool', 'volume'), 'block': ('dev',), 'file': ('file',)}.get(el.get('type'), ())
    values = {k: source.get(k) for k in keys if source.get(k) is not None}
    return values or None


def merge_disks(ed, devices, disks, exclusive):
    current = {disk_target(el): el for el in devices.findall('disk')}
    wanted = set()
    for d in disks:
        target = d['target']
        wanted.add(target)
        field = 'disks:%s' % target
        el = current.get(target)
        if el is None:
            el = build_disk(d)
            devices.append(el)
            ed.record(field, 'add', target, el)
            continue
        _merge_disk(ed, el, d, field)
    if exclusive:
        for target, el in current.items():
            if target not in wanted:
                ed.remove(el, 'disks:%s' % target, 'remove', target)


def build_disk(d):
    dtype, source = _desired_source(d)
    el = etree.Element('disk', type=dtype or 'file', device=d['device'])
    driver = etree.SubElement(el, 'driver', name='qemu')
    fmt = d.get('format') or d.get('format_default')
    if fmt:
        driver.set('type', 'raw' if fmt == 'iso' else fmt)
    if d.get('cache'):
        driver.set('cache', d['cache'])
    if source:
        src = etree.SubElement(el, 'source')
        for key, value in source.items():
            src.set(key, value)
    etree.SubElement(el, 'target', dev=d['target'], bus=d['bus'])
    if d.get('readonly'):
        etree.SubElement(el, 'readonly')
    return el


def _merge_disk(ed, el, d, field):
    start = len(ed.changes)
    ed.attr(el, 'device', d['device'], field)
    dtype, source = _desired_source(d)
    if (dtype is not None or d['device'] == 'cdrom') and _current_source(el) != source:
        # The source differs: a media change for a cdrom, a disk swap otherwise.
        old = el.find('source')
        if old is not None:
            el.remove(old)
        if source:
            el.set('type', dtype)
            src = etree.Element('source')
            for key, value in source.items():
                src.set(key, value)
            # libvirt keeps <source> right after <driver>; order is cosmetic for it.
            driver = el.find('driver')
            if driver is not None:
                driver.addnext(src)
            else:
                el.insert(0, src)
        el_kind = 'media' if d['device'] == 'cdrom' and el.get('device') == 'cdrom' else 'modify'
        ed.record(field, el_kind, d['target'], el)
    if d.get('format') or d.get('cache'):
        driver = ed.child(el, 'driver', field)
        if driver.get('name') is None:
            ed.attr(driver, 'name', 'qemu', field)
        if d.get('format'):
            ed.attr(driver, 'type', 'raw' if d['format'] == 'iso' else d['format'], field)
        if d.get('cache'):
            ed.attr(driver, 'cache', d['cache'], field)
    if not d.get('bus_default'):
        ed.attr(ed.child(el, 'target', field), 'bus', d['bus'], field)
    if d.get('readonly') is not None:
        ed.ensure_flag(el, 'readonly', d['readonly'], field)
    # Record the generic edits above as modifications of this disk.
    for change in ed.changes[start:]:
        if change.key is None:
            change.kind, change.key, change.element = 'modify', d['target'], el


# ---------------------------------------------------------------- interfaces

def nic_source(el):
    source = el.find('source')
    if source is None:
        return None
    return source.get({'network': 'network', 'bridge': 'bridge', 'direct': 'dev'}.get(el.get('type'), 'network'))


def nic_mac(el):
    mac = el.find('mac')
    return mac.get('address').lower() if mac is not None and mac.get('address') else None


def nic_alias(el):
    alias = el.find('alias')
    return alias.get('name') if alias is not None else None


def match_interfaces(devices, interfaces):
    """Pair each interface spec with its current element (or None), by identity."""
    current = devices.findall('interface')
    claimed = set()
    pairs = [None] * len(interfaces)
    for index, n in enumerate(interfaces):
        for el in current:
            if id(el) in claimed:
                continue
            if (n.get('mac') and nic_mac(el) == n['mac']) or \
                    (not n.get('mac') and n.get('alias') and nic_alias(el) == n['alias']):
                pairs[index] = el
                claimed.add(id(el))
                break
    for index, n in enumerate(interfaces):
        if pairs[index] is not None or n.get('mac') or n.get('alias'):
            continue
        for el in current:
            if id(el) in claimed:
                continue
            if el.get('type') == n['type'] and nic_source(el) == n['source']:
                pairs[index] = el
                claimed.add(id(el))
                break
    return pairs, [el for el in current if id(el) not in claimed]


def interface_key(n, index):
    return n.get('mac') or n.get('alias') or '%s#%d' % (n['source'], index)


def merge_interfaces(ed, devices, interfaces, exclusive):
    pairs, unclaimed = match_interfaces(devices, interfaces)
    for index, (n, el) in enumerate(zip(interfaces, pairs)):
        key = interface_key(n, index)
        field = 'interfaces:%s' % (nic_mac(el) if el is not None and nic_mac(el) else key)
        if el is None:
            el = build_interface(n)
            devices.append(el)
            ed.record(field, 'add', index, el)
            continue
        start = len(ed.changes)
        if el.get('type') != n['type'] or nic_source(el) != n['source']:
            old = el.find('source')
            if old is not None:
                el.remove(old)
            el.set('type', n['type'])
            el.insert(0, _interface_source(n))
            ed.record(field)
        if n['type'] == 'direct':
            ed.attr(el.find('source'), 'mode', n.get('direct_mode') or 'bridge', field)
        if n.get('model'):
            ed.attr(ed.child(el, 'model', field), 'type', n['model'], field)
        if n.get('alias'):
            ed.attr(ed.child(el, 'alias', field), 'name', n['alias'], field)
        for change in ed.changes[start:]:
            change.kind, change.key, change.element = 'modify', index, el
    if exclusive:
        for el in unclaimed:
            ed.remove(el, 'interfaces:%s' % (nic_mac(el) or nic_source(el)), 'remove', None)


def _interface_source(n):
    if n['type'] == 'direct':
        return etree.Element('source', dev=n['source'], mode=n.get('direct_mode') or 'bridge')
    return etree.Element('source', **{n['type']: n['source']})


def build_interface(n):
    el = etree.Element('interface', type=n['type'])
    if n.get('mac'):
        etree.SubElement(el, 'mac', address=n['mac'])
    el.append(_interface_source(n))
    etree.SubElement(el, 'model', type=n.get('model') or 'virtio')
    if n.get('alias'):
        etree.SubElement(el, 'alias', name=n['alias'])
    return el


# ---------------------------------------------------------------- host devices

def _hex(value):
    try:
        return int(value, 16) if isinstance(value, str) and value.lower().startswith('0x') else int(value, 16)
    except (TypeError, ValueError):
        return None


def hostdev_key(el):
    source = el.find('source')
    if source is None:
        return None
    if el.get('type') == 'pci':
        a = source.find('address')
        if a is None:
            return None
        return ('pci', _hex(a.get('domain', '0')), _hex(a.get('bus')), _hex(a.get('slot')), _hex(a.get('function')))
    vendor, product = source.find('vendor'), source.find('product')
    if vendor is not None and product is not None:
        return ('usb', _hex(vendor.get('id')), _hex(product.get('id')))
    a = source.find('address')
    if a is not None:
        return ('usb-address', int(a.get('bus', '0')), int(a.get('device', '0')))
    return None


def spec_hostdev_key(h):
    if h['type'] == 'pci':
        return ('pci',) + tuple(int(x, 16) for x in h['pci'])
    if h.get('vendor'):
        return ('usb', int(h['vendor'], 16), int(h['product'], 16))
    return ('usb-address',) + tuple(int(x) for x in h['usb_address'])


def build_hostdev(h):
    el = etree.Element('hostdev', mode='subsystem', type=h['type'], managed='yes')
    source = etree.SubElement(el, 'source')
    if h['type'] == 'pci':
        dom, bus, slot, func = h['pci']
        etree.SubElement(source, 'address', domain='0x' + dom, bus='0x' + bus, slot='0x' + slot,
                         function='0x' + func)
    elif h.get('vendor'):
        etree.SubElement(source, 'vendor', id=h['vendor'])
        etree.SubElement(source, 'product', id=h['product'])
    else:
        etree.SubElement(source, 'address', bus=h['usb_address'][0], device=h['usb_address'][1])
    return el


def merge_hostdevs(ed, devices, hostdevs, exclusive):
    current = {hostdev_key(el): el for el in devices.findall('hostdev')}
    wanted = set()
    for h in hostdevs:
        key = spec_hostdev_key(h)
        wanted.add(key)
        if key not in current:
            el = build_hostdev(h)
            devices.append(el)
            ed.record('hostdevs:%s' % _key_text(key), 'add', key, el)
    if exclusive:
        for key, el in current.items():
            if key not in wanted:
                ed.remove(el, 'hostdevs:%s' % _key_text(key), 'remove', key)


def _key_text(key):
    if key is None:
        return 'unknown'
    if key[0] == 'pci':
        return '%04x:%02x:%02x.%x' % key[1:]
    if key[0] == 'usb':
        return '%04x:%04x' % key[1:]
    return '%d:%d' % key[1:]


# ---------------------------------------------------------------- singletons

def merge_graphics(ed, devices, g):
    field = 'graphics'
    current = devices.findall('graphics')
    if g['type'] == 'none':
        for el in current:
            ed.remove(el, field)
        return
    keep = None
    for el in current:
        if el.get('type') == g['type'] and keep is None:
            keep = el
        else:
            ed.remove(el, field)
    if keep is None:
        keep = etree.SubElement(devices, 'graphics', type=g['type'])
        ed.record(field)
        if g.get('port') is None:
            keep.set('autoport', 'yes')
    if g.get('port') is not None:
        if g['port'] == -1:
            # With autoport on, a port in the live XML is the one libvirt picked at
            # start: runtime state, not a difference. Drop only a fixed port.
            if keep.get('autoport') != 'yes':
                ed.attr(keep, 'autoport', 'yes', field)
                if keep.get('port') not in (None, '-1'):
                    ed.attr(keep, 'port', None, field)
        else:
            ed.attr(keep, 'autoport', 'no', field)
            ed.attr(keep, 'port', g['port'], field)
    if g.get('listen') is not None:
        ed.attr(keep, 'listen', g['listen'], field)
        listen = ed.child(keep, 'listen', field)
        ed.attr(listen, 'type', 'address', field)
        ed.attr(listen, 'address', g['listen'], field)
    if g.get('password') is not None:
        ed.attr(keep, 'passwd', g['password'], field)


def merge_serial(ed, devices, s):
    field = 'serial'
    el = devices.find('serial')
    if el is None:
        el = etree.SubElement(devices, 'serial', type=s['type'])
        etree.SubElement(el, 'target', port='0')
        ed.record(field)
    ed.attr(el, 'type', s['type'], field)
    source = el.find('source')
    if s['type'] == 'file':
        if source is None:
            source = etree.Element('source')
            el.insert(0, source)
            ed.record(field)
        ed.attr(source, 'path', s['path'], field)
    elif source is not None and s['type'] == 'pty' and source.get('path') and el.get('type') == 'pty':
        # A pty's path is runtime state in live XML; leave it.
        pass
    if s.get('log') is not None:
        log = ed.child(el, 'log', field)
        ed.attr(log, 'file', s['log'], field)
        ed.attr(log, 'append', 'on', field)


def merge_tpm(ed, devices, t):
    field = 'tpm'
    el = devices.find('tpm')
    if el is None:
        el = etree.SubElement(devices, 'tpm')
        ed.record(field)
    ed.attr(el, 'model', t['model'], field)
    backend = ed.child(el, 'backend', field)
    ed.attr(backend, 'type', t['backend'], field)
    if t['backend'] == 'emulator':
        ed.attr(backend, 'version', t['version'], field)
        dev = backend.find('device')
        if dev is not None:
            ed.remove(dev, field)
    else:
        ed.attr(backend, 'version', None, field)
        ed.attr(ed.child(backend, 'device', field), 'path', t['device'], field)


def merge_rng(ed, devices, wanted):
    field = 'rng'
    current = [el for el in devices.findall('rng') if el.get('model') == 'virtio']
    if wanted and not current:
        el = etree.SubElement(devices, 'rng', model='virtio')
        etree.SubElement(el, 'backend', model='random').text = '/dev/urandom'
        ed.record(field)
    elif not wanted:
        for el in current:
            ed.remove(el, field)


def agent_channels(devices):
    return [el for el in devices.findall('channel')
            if el.find('target') is not None and el.find('target').get('name') == AGENT_CHANNEL]


def merge_guest_agent(ed, devices, wanted):
    field = 'guest_agent'
    current = agent_channels(devices)
    if wanted and not current:
        el = etree.SubElement(devices, 'channel', type='unix')
        etree.SubElement(el, 'target', type='virtio', name=AGENT_CHANNEL)
        ed.record(field)
    elif not wanted:
        for el in current:
            ed.remove(el, field)
