# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_domain's options: the argument spec and the pure validation of a request.

Everything here runs before the host is touched. A bad request raises VirtkitError
with one line that names the option and what is wrong with it.
"""

from __future__ import annotations

import re

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS
from ansible_collections.virtkit.guests.plugins.module_utils._units import to_kib

STATES = ('present', 'running', 'paused', 'shutdown', 'destroyed', 'absent')
IP_SOURCES = ('lease', 'agent', 'arp')

DISK_OPTIONS = {
    'target': {'type': 'str'},
    'device': {'type': 'str', 'choices': ['disk', 'cdrom'], 'default': 'disk'},
    'bus': {'type': 'str', 'choices': ['virtio', 'sata', 'scsi', 'ide', 'usb']},
    'path': {'type': 'path'},
    'pool': {'type': 'str'},
    'volume': {'type': 'str'},
    'format': {'type': 'str', 'choices': ['raw', 'qcow2', 'vmdk', 'vdi', 'iso']},
    'readonly': {'type': 'bool'},
    'cache': {'type': 'str', 'choices': ['default', 'none', 'writethrough', 'writeback',
                                         'directsync', 'unsafe']},
}

INTERFACE_OPTIONS = {
    'network': {'type': 'str'},
    'bridge': {'type': 'str'},
    'direct': {'type': 'str'},
    'direct_mode': {'type': 'str', 'choices': ['vepa', 'bridge', 'private', 'passthrough'],
                    'default': 'bridge'},
    'model': {'type': 'str'},
    'mac': {'type': 'str'},
    'alias': {'type': 'str'},
}

ARGUMENT_SPEC = dict(
    LIBVIRT_ARGS,
    name={'type': 'str', 'required': True},
    state={'type': 'str', 'choices': list(STATES), 'default': 'present'},
    virt_type={'type': 'str', 'choices': ['kvm', 'qemu']},
    arch={'type': 'str'},
    machine={'type': 'str'},
    memory={'type': 'raw'},
    max_memory={'type': 'raw'},
    vcpus={'type': 'int'},
    max_vcpus={'type': 'int'},
    cpu={'type': 'dict', 'options': {
        'mode': {'type': 'str', 'choices': ['host-passthrough', 'host-model', 'maximum', 'custom']},
        'model': {'type': 'str'},
        'sockets': {'type': 'int'},
        'dies': {'type': 'int'},
        'cores': {'type': 'int'},
        'threads': {'type': 'int'},
    }},
    firmware={'type': 'str', 'choices': ['bios', 'uefi']},
    secure_boot={'type': 'bool'},
    boot={'type': 'dict', 'options': {
        'devices': {'type': 'list', 'elements': 'str', 'choices': ['hd', 'cdrom', 'network', 'fd']},
        'kernel': {'type': 'str'},
        'initrd': {'type': 'str'},
        'cmdline': {'type': 'str'},
    }},
    disks={'type': 'list', 'elements': 'dict', 'options': DISK_OPTIONS,
           'mutually_exclusive': [['path', 'volume']], 'required_by': {'volume': 'pool'}},
    interfaces={'type': 'list', 'elements': 'dict', 'options': INTERFACE_OPTIONS,
                'mutually_exclusive': [['network', 'bridge', 'direct']],
                'required_one_of': [['network', 'bridge', 'direct']]},
    graphics={'type': 'dict', 'options': {
        'type': {'type': 'str', 'choices': ['none', 'vnc', 'spice'], 'required': True},
        'listen': {'type': 'str'},
        'port': {'type': 'int'},
        'password': {'type': 'str', 'no_log': True},
    }},
    serial={'type': 'dict', 'options': {
        'type': {'type': 'str', 'choices': ['pty', 'file'], 'default': 'pty'},
        'path': {'type': 'path'},
        'log': {'type': 'path'},
    }, 'required_if': [['type', 'file', ['path']]]},
    tpm={'type': 'dict', 'options': {
        'model': {'type': 'str', 'choices': ['tpm-crb', 'tpm-tis'], 'default': 'tpm-crb'},
        'backend': {'type': 'str', 'choices': ['emulator', 'passthrough'], 'default': 'emulator'},
        'version': {'type': 'str', 'choices': ['1.2', '2.0'], 'default': '2.0'},
        'device': {'type': 'path'},
    }, 'required_if': [['backend', 'passthrough', ['device']]]},
    hostdevs={'type': 'list', 'elements': 'dict', 'options': {
        'type': {'type': 'str', 'choices': ['pci', 'usb'], 'required': True},
        'address': {'type': 'str'},
        'vendor': {'type': 'str'},
        'product': {'type': 'str'},
    }},
    rng={'type': 'bool'},
    guest_agent={'type': 'bool'},
    autostart={'type': 'bool'},
    title={'type': 'str'},
    description={'type': 'str'},
    metadata={'type': 'dict'},
    xml_overrides={'type': 'list', 'elements': 'dict', 'options': {
        'xpath': {'type': 'str', 'required': True},
        'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
        'value': {'type': 'str'},
        'attributes': {'type': 'dict'},
    }},
    devices_exclusive={'type': 'bool', 'default': False},
    restart_policy={'type': 'str', 'choices': ['never', 'if_needed'], 'default': 'never'},
    shutdown_timeout={'type': 'int', 'default': 120},
    live_timeout={'type': 'int', 'default': 20},
    force={'type': 'bool', 'default': False},
    remove_storage={'type': 'list', 'elements': 'str', 'default': []},
    wait_for_ip={'type': 'bool', 'default': False},
    wait_for_ip_timeout={'type': 'int', 'default': 300},
    ip_sources={'type': 'list', 'elements': 'str', 'choices': list(IP_SOURCES),
                'default': ['lease', 'agent']},
)

# Fields the spec may own; used for change tracking and pending_restart reports.
_NAME_RE = re.compile(r'^[^/\s]{1,200}$')
_MAC_RE = re.compile(r'^([0-9a-f]{2}:){5}[0-9a-f]{2}$')
_PCI_RE = re.compile(r'^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$')
_HEX_RE = re.compile(r'^(0x)?[0-9a-f]{4}$')
_TARGET_RE = re.compile(r'^(vd|sd|hd|xvd)[a-z]{1,2}$')
_BUS_PREFIX = {'virtio': 'vd', 'sata': 'sd', 'scsi': 'sd', 'usb': 'sd', 'ide': 'hd'}


class DomainSpec:
    """The validated request: option values as the XML code consumes them.

    Attributes keep ``None`` for what the user did not set, so it stays untouched.
    """

    def __init__(self, params):
        self.params = params
        self.name = params['name']
        self.state = params.get('state') or 'present'
        for key in ('virt_type', 'arch', 'machine', 'vcpus', 'max_vcpus', 'cpu', 'firmware',
                    'secure_boot', 'boot', 'graphics', 'serial', 'tpm', 'rng', 'guest_agent',
                    'autostart', 'title', 'description', 'metadata', 'xml_overrides'):
            setattr(self, key, params.get(key))
        self.memory_kib = None
        self.max_memory_kib = None
        self.disks = None
        self.interfaces = None
        self.hostdevs = None
        self.devices_exclusive = bool(params.get('devices_exclusive'))
        self.restart_policy = params.get('restart_policy') or 'never'
        self.shutdown_timeout = params.get('shutdown_timeout', 120)
        self.live_timeout = params.get('live_timeout', 20)
        if self.live_timeout is None:
            self.live_timeout = 20
        self.force = bool(params.get('force'))
        self.remove_storage = list(params.get('remove_storage') or [])
        self.wait_for_ip = bool(params.get('wait_for_ip'))
        self.wait_for_ip_timeout = params.get('wait_for_ip_timeout', 300)
        self.ip_sources = list(params.get('ip_sources') or ['lease', 'agent'])

    @property
    def wants_config(self):
        return self.state != 'absent'


def validate(params, current_machine=None):
    """Return a :class:`DomainSpec` for ``params`` or raise VirtkitError (one line).

    ``current_machine`` is the machine type of the existing guest, used for defaults
    that depend on it (a cdrom's bus).
    """
    spec = DomainSpec(params)
    name = spec.name
    if not _NAME_RE.match(name or ''):
        raise VirtkitError('name: %r is not a valid guest name (no "/" or blanks, 1-200 characters)' % name)

    if params.get('memory') is not None:
        spec.memory_kib = to_kib(params['memory'], 'memory')
        if spec.memory_kib < 1024:
            raise VirtkitError('memory: %r is below 1 MiB; memory is read in MiB when no unit is given'
                               % params['memory'])
    if params.get('max_memory') is not None:
        spec.max_memory_kib = to_kib(params['max_memory'], 'max_memory')
        if spec.memory_kib is not None and spec.memory_kib > spec.max_memory_kib:
            raise VirtkitError('memory (%s) is above max_memory (%s)' % (params['memory'], params['max_memory']))
    for key in ('vcpus', 'max_vcpus'):
        value = params.get(key)
        if value is not None and value < 1:
            raise VirtkitError('%s: must be at least 1, got %s' % (key, value))
    if spec.vcpus is not None and spec.max_vcpus is not None and spec.vcpus > spec.max_vcpus:
        raise VirtkitError('vcpus (%s) is above max_vcpus (%s)' % (spec.vcpus, spec.max_vcpus))
    if spec.cpu:
        if spec.cpu.get('model') and spec.cpu.get('mode') not in (None, 'custom'):
            raise VirtkitError('cpu.model needs cpu.mode custom (got mode %s)' % spec.cpu['mode'])
        topo = [spec.cpu.get(k) for k in ('sockets', 'dies', 'cores', 'threads')]
        if any(v is not None for v in topo):
            if any(v is not None and v < 1 for v in topo):
                raise VirtkitError('cpu: sockets, dies, cores and threads must be at least 1')
            missing = [k for k in ('sockets', 'cores', 'threads') if spec.cpu.get(k) is None]
            if missing:
                raise VirtkitError('cpu: a topology needs sockets, cores and threads (missing %s)'
                                   % ', '.join(missing))
            total = 1
            for v in topo:
                total *= v or 1
            # The topology describes the maximum; without max_vcpus the guest's own
            # maximum applies (libvirt checks it), which must hold the active vCPUs.
            if spec.max_vcpus is not None and total != spec.max_vcpus:
                raise VirtkitError('cpu: topology gives %d vCPUs but max_vcpus is %d' % (total, spec.max_vcpus))
            if spec.max_vcpus is None and spec.vcpus is not None and total < spec.vcpus:
                raise VirtkitError('cpu: topology gives %d vCPUs, fewer than vcpus (%d)' % (total, spec.vcpus))
    if spec.secure_boot and spec.firmware != 'uefi':
        raise VirtkitError('secure_boot needs firmware: uefi')
    if spec.secure_boot and spec.machine and 'q35' not in spec.machine:
        raise VirtkitError('secure_boot needs a q35 machine type (got %s)' % spec.machine)
    if spec.secure_boot and not spec.machine and current_machine and 'q35' not in current_machine:
        # libvirt would define it, then fail to start: "Unable to find any firmware to satisfy 'efi'".
        raise VirtkitError('secure_boot needs a q35 machine type (the guest has %s; set machine: q35)'
                           % current_machine)
    if spec.tpm:
        _validate_tpm(spec.tpm)
    if spec.boot:
        for key in ('initrd', 'cmdline'):
            if spec.boot.get(key) and not spec.boot.get('kernel'):
                raise VirtkitError('boot.%s needs boot.kernel (direct kernel boot)' % key)

    machine = spec.machine or current_machine or ''
    if params.get('disks') is not None:
        spec.disks = _validate_disks(params['disks'], machine)
    if params.get('interfaces') is not None:
        spec.interfaces = _validate_interfaces(params['interfaces'])
    if params.get('hostdevs') is not None:
        spec.hostdevs = _validate_hostdevs(params['hostdevs'])
    if spec.graphics:
        g = spec.graphics
        if g['type'] == 'none' and any(g.get(k) is not None for k in ('listen', 'port', 'password')):
            raise VirtkitError('graphics: listen, port and password make no sense with type none')
        if g.get('port') is not None and not (g['port'] == -1 or 5900 <= g['port'] <= 65535):
            raise VirtkitError('graphics.port: %s is not -1 (automatic) or 5900-65535' % g['port'])
    if spec.metadata is not None:
        spec.metadata = _validate_metadata(spec.metadata)
    if spec.xml_overrides:
        _validate_overrides(spec.xml_overrides)
    if spec.live_timeout < 0:
        raise VirtkitError('live_timeout: must not be negative')
    if spec.shutdown_timeout < 0:
        raise VirtkitError('shutdown_timeout: must not be negative')
    if spec.wait_for_ip_timeout < 0:
        raise VirtkitError('wait_for_ip_timeout: must not be negative')
    if spec.wait_for_ip and spec.state not in ('running', 'present'):
        raise VirtkitError('wait_for_ip needs state running (or present on a running guest), not %s'
                           % spec.state)
    return spec


def _validate_disks(disks, machine):
    result = []
    explicit = set()
    for index, disk in enumerate(disks):
        d = dict(disk)
        label = 'disks[%d]' % index
        if d.get('device') == 'disk' and not (d.get('path') or d.get('volume')):
            raise VirtkitError('%s: a disk needs path or pool+volume (only a cdrom may be empty)' % label)
        if d.get('pool') and not d.get('volume'):
            raise VirtkitError('%s: pool %s given without volume' % (label, d['pool']))
        if d.get('device') == 'cdrom' and d.get('bus') == 'virtio':
            raise VirtkitError('%s: a cdrom cannot sit on the virtio bus; use sata, scsi or ide' % label)
        if d.get('path') and not d['path'].startswith('/'):
            raise VirtkitError('%s: path %r must be absolute' % (label, d['path']))
        if not d.get('bus'):
            d['bus_default'] = True
            if d.get('device') == 'cdrom':
                d['bus'] = 'sata' if 'q35' in machine else 'ide'
            elif d.get('target'):
                d['bus'] = {'vd': 'virtio', 'sd': 'scsi', 'hd': 'ide'}.get(d['target'][:2], 'virtio')
            else:
                d['bus'] = 'virtio'
        if d.get('target'):
            if not _TARGET_RE.match(d['target']):
                raise VirtkitError('%s: target %r is not a disk name such as vda, sdb or hdc'
                                   % (label, d['target']))
            if d['target'] in explicit:
                raise VirtkitError('disks: two disks use target %s' % d['target'])
            explicit.add(d['target'])
        if d.get('device') == 'cdrom' and d.get('readonly') is None:
            d['readonly'] = True
        result.append(d)
    # Targets default to the next free name for the disk's bus, in list order.
    used = set(explicit)
    for d in result:
        if not d.get('target'):
            prefix = _BUS_PREFIX[d['bus']]
            for letter in 'abcdefghijklmnopqrstuvwxyz':
                if prefix + letter not in used:
                    d['target'] = prefix + letter
                    break
            else:  # pragma: no cover - 26 disks on one bus
                raise VirtkitError('disks: no free target name on bus %s' % d['bus'])
            used.add(d['target'])
    return result


def _validate_interfaces(interfaces):
    result = []
    macs = set()
    aliases = set()
    for index, nic in enumerate(interfaces):
        n = dict(nic)
        label = 'interfaces[%d]' % index
        if n.get('mac'):
            mac = n['mac'].lower()
            if not _MAC_RE.match(mac):
                raise VirtkitError('%s: mac %r is not a MAC address such as 52:54:00:12:34:56'
                                   % (label, n['mac']))
            if int(mac[:2], 16) & 1:
                raise VirtkitError('%s: mac %s is a multicast address' % (label, mac))
            if mac in macs:
                raise VirtkitError('interfaces: two interfaces use mac %s' % mac)
            macs.add(mac)
            n['mac'] = mac
        if n.get('alias'):
            if not re.match(r'^ua-[A-Za-z0-9_-]+$', n['alias']):
                raise VirtkitError('%s: alias %r must start with "ua-" and use letters, digits, "-" or "_"'
                                   % (label, n['alias']))
            if n['alias'] in aliases:
                raise VirtkitError('interfaces: two interfaces use alias %s' % n['alias'])
            aliases.add(n['alias'])
        if n.get('network'):
            n['type'], n['source'] = 'network', n['network']
        elif n.get('bridge'):
            n['type'], n['source'] = 'bridge', n['bridge']
        else:
            n['type'], n['source'] = 'direct', n['direct']
        result.append(n)
    return result


def _validate_hostdevs(hostdevs):
    result = []
    seen = set()
    for index, dev in enumerate(hostdevs):
        h = dict(dev)
        label = 'hostdevs[%d]' % index
        if h['type'] == 'pci':
            m = _PCI_RE.match((h.get('address') or '').lower())
            if not m:
                raise VirtkitError('%s: a PCI device needs address such as 0000:03:00.0' % label)
            h['pci'] = (m.group(1) or '0000', m.group(2), m.group(3), m.group(4))
            key = ('pci',) + h['pci']
        else:
            if h.get('vendor') or h.get('product'):
                if not (h.get('vendor') and h.get('product')):
                    raise VirtkitError('%s: a USB device needs both vendor and product' % label)
                for k in ('vendor', 'product'):
                    if not _HEX_RE.match(h[k].lower()):
                        raise VirtkitError('%s: %s %r is not a 4-digit hex id' % (label, k, h[k]))
                    h[k] = '0x' + h[k].lower()[-4:]
                key = ('usb', h['vendor'], h['product'])
            else:
                m = re.match(r'^(\d{1,3})[:.-](\d{1,3})$', h.get('address') or '')
                if not m:
                    raise VirtkitError('%s: a USB device needs vendor+product or address BUS:DEVICE' % label)
                h['usb_address'] = (str(int(m.group(1))), str(int(m.group(2))))
                key = ('usb',) + h['usb_address']
        if key in seen:
            raise VirtkitError('hostdevs: device %s is listed twice' % ':'.join(key[1:]))
        seen.add(key)
        result.append(h)
    return result


def _validate_tpm(tpm):
    """What libvirt would refuse only at define (or swtpm only at start)."""
    if tpm.get('backend') == 'emulator':
        if tpm.get('device'):
            raise VirtkitError('tpm.device is for backend passthrough; an emulated TPM (swtpm) has no host device')
        if tpm.get('version') == '1.2' and tpm.get('model') == 'tpm-crb':
            raise VirtkitError('tpm: model tpm-crb is TPM 2.0 only; use model tpm-tis for version 1.2')
    elif not tpm['device'].startswith('/'):
        raise VirtkitError('tpm.device: %r must be an absolute path to a host device such as /dev/tpm0'
                           % tpm['device'])


def _validate_metadata(metadata):
    result = {}
    for key, value in metadata.items():
        if not re.match(r'^[A-Za-z_][A-Za-z0-9_.-]*$', str(key)):
            raise VirtkitError('metadata: key %r must start with a letter or "_" and use letters, digits, '
                               '".", "-" or "_"' % key)
        if isinstance(value, (list, tuple)):
            result[key] = [_scalar(key, v) for v in value]
        else:
            result[key] = _scalar(key, value)
    return result


def _scalar(key, value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (str, int, float)):
        text = str(value)
        if any(ord(ch) < 32 and ch not in '\t\n' for ch in text):
            raise VirtkitError('metadata: value of %s has control characters' % key)
        return text
    raise VirtkitError('metadata: value of %s must be a string, number, boolean or a list of them' % key)


def _validate_overrides(overrides):
    from lxml import etree
    for index, item in enumerate(overrides):
        label = 'xml_overrides[%d]' % index
        try:
            etree.XPath(item['xpath'], namespaces={'virtkit': 'x'})
        except etree.XPathSyntaxError as err:
            raise VirtkitError('%s: invalid XPath %r: %s' % (label, item['xpath'], err))
        if not item['xpath'].startswith('/domain'):
            raise VirtkitError('%s: xpath must be absolute and start with /domain' % label)
        if item.get('state') == 'absent' and (item.get('value') is not None or item.get('attributes')):
            raise VirtkitError('%s: state absent takes no value or attributes' % label)
        if item.get('state', 'present') == 'present' and item.get('value') is None \
                and not item.get('attributes') and '/@' not in item['xpath']:
            raise VirtkitError('%s: give value or attributes (or state: absent)' % label)
