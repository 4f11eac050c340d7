# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_fleet's options: validation of the guest list and its translation.

Every guest entry becomes the params dicts the single-resource modules would receive
(libvirt_volume for the base image, the overlay and extra disks, cloud_init_seed,
libvirt_domain, lxc_container). Each dict goes through Ansible's own
``ArgumentSpecValidator`` with that module's ``ARGUMENT_SPEC`` (types checked, defaults
filled) and then through that family's ``validate()``, so the managers get exactly what
the single modules would get and reject exactly what they would reject.

Everything here is pure (the LXC limits read the host's cgroup layout, nothing more)
and runs before anything is touched. All errors are collected: one line per bad guest.
"""

from __future__ import annotations

import ipaddress
import os
import re
from copy import deepcopy

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS
from ansible_collections.virtkit.guests.plugins.module_utils._mac import stable_mac
from ansible_collections.virtkit.guests.plugins.module_utils._units import parse_size
from ansible_collections.virtkit.guests.plugins.module_utils._domain import spec as domain_spec
from ansible_collections.virtkit.guests.plugins.module_utils._storage import volume as volume_spec
from ansible_collections.virtkit.guests.plugins.module_utils import _seed as seed_spec
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import spec as lxc_spec

KINDS = ('kvm', 'lxc')
STATES = ('running', 'stopped', 'present', 'absent')
DOMAIN_STATE = {'running': 'running', 'stopped': 'shutdown', 'present': 'present', 'absent': 'absent'}
CONTAINER_STATE = {'running': 'started', 'stopped': 'stopped', 'present': 'present', 'absent': 'absent'}
DISK_FORMATS = ('qcow2', 'raw')
# How a NIC's static ``ip`` reaches the guest: the seed's network-config (the guest sets it
# itself), or a DHCP host entry (MAC -> IP) on the libvirt network the NIC is on.
ADDRESS_MODES = ('cloud_init', 'dhcp_reservation')
_HOSTNAME_RE = re.compile(r'^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$')
CLOUD_INIT_KEYS = ('user_data', 'users', 'ssh_authorized_keys', 'packages', 'runcmd', 'hostname',
                   'network_config')
# Options of the generated params that the escape hatches must not override.
DOMAIN_RESERVED = ('uri', 'name', 'state', 'wait_for_ip', 'restart_policy')
CONTAINER_RESERVED = ('name', 'state', 'lxc_path', 'wait_for_ip', 'restart_policy')

ARGUMENT_SPEC = dict(
    LIBVIRT_ARGS,
    lxc_path={'type': 'path'},
    pool={'type': 'str', 'default': 'default'},
    guests={'type': 'list', 'elements': 'dict', 'required': True},
    defaults={'type': 'dict', 'default': {}, 'options': {
        'kvm': {'type': 'dict', 'default': {}},
        'lxc': {'type': 'dict', 'default': {}},
    }},
    restart_policy={'type': 'str', 'choices': ['never', 'if_needed'], 'default': 'never'},
    wait_timeout={'type': 'int', 'default': 300},
    parallel={'type': 'int', 'default': 10},
    only={'type': 'list', 'elements': 'str'},
)

COMMON_KEYS = {
    'name': {'type': 'str', 'required': True},
    'kind': {'type': 'str', 'required': True, 'choices': list(KINDS)},
    'state': {'type': 'str', 'choices': list(STATES), 'default': 'running'},
    'groups': {'type': 'list', 'elements': 'str', 'default': []},
    'autostart': {'type': 'bool'},
    'wait_for_ip': {'type': 'bool'},
    'host_vars': {'type': 'dict', 'default': {}},
}

KVM_KEYS = dict(
    COMMON_KEYS,
    image={'type': 'dict', 'options': {
        'url': {'type': 'str'},
        'path': {'type': 'path'},
        'checksum': {'type': 'str'},
        'format': {'type': 'str', 'choices': list(DISK_FORMATS)},
        'name': {'type': 'str'},
        'allow_unverified': {'type': 'bool', 'default': False},
    }, 'mutually_exclusive': [['url', 'path']], 'required_one_of': [['url', 'path', 'name']]},
    disk_size={'type': 'raw'},
    memory={'type': 'raw', 'default': '512MiB'},
    vcpus={'type': 'int', 'default': 1},
    virt_type={'type': 'str', 'choices': ['kvm', 'qemu']},
    firmware={'type': 'str', 'choices': ['bios', 'uefi']},
    boot={'type': 'dict'},
    metadata={'type': 'dict'},
    description={'type': 'str'},
    networks={'type': 'list', 'elements': 'dict', 'options': {
        'network': {'type': 'str'},
        'bridge': {'type': 'str'},
        'mac': {'type': 'str'},
        'model': {'type': 'str'},
        'ip': {'type': 'str'},
        'gateway': {'type': 'str'},
        'dns': {'type': 'list', 'elements': 'str'},
        'address_mode': {'type': 'str', 'choices': list(ADDRESS_MODES)},
    }, 'mutually_exclusive': [['network', 'bridge']], 'required_one_of': [['network', 'bridge']]},
    disks={'type': 'list', 'elements': 'dict', 'options': {
        'name': {'type': 'str', 'required': True},
        'size': {'type': 'raw', 'required': True},
        'format': {'type': 'str', 'choices': list(DISK_FORMATS), 'default': 'qcow2'},
        'bus': {'type': 'str', 'choices': ['virtio', 'sata', 'scsi', 'ide', 'usb']},
    }},
    cloud_init={'type': 'raw'},
    remove_storage={'type': 'bool', 'default': False},
    domain={'type': 'dict', 'default': {}},
)

LXC_KEYS = dict(
    COMMON_KEYS,
    template={'type': 'str'},
    template_options={'type': 'list', 'elements': 'str'},
    clone_from={'type': 'str'},
    limits={'type': 'dict'},
    networks={'type': 'list', 'elements': 'dict'},
    mounts={'type': 'list', 'elements': 'dict'},
    config={'type': 'dict'},
    unprivileged={'type': 'bool'},
    backing_store={'type': 'str'},
    container={'type': 'dict', 'default': {}},
    # Accepted so one absent+remove_storage list works for both kinds: lxc-destroy always
    # deletes a container's rootfs.
    remove_storage={'type': 'bool', 'default': False},
)

_DISK_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')


class FleetValidationError(VirtkitError):
    """All validation errors of a fleet, one line per bad guest in ``lines``."""

    def __init__(self, lines):
        super().__init__('%d of the guests are invalid; nothing was changed' % len(lines))
        self.message = '\n'.join(lines)
        self.lines = lines


class BaseImage:
    """One shared base volume: imported once per pool, used by several guests."""

    def __init__(self, name, params, source):
        self.name = name
        self.params = params      # libvirt_volume params, or None: an existing volume
        self.source = source      # (url or path, checksum, format) for dedupe checks
        self.guests = []


class Reservation:
    """A NIC's declared address as a DHCP host entry (MAC -> IP) of a libvirt network."""

    def __init__(self, where, network, mac, ip, prefix, hostname):
        self.where = where          # networks[N], for messages
        self.network = network
        self.mac = mac
        self.ip = ip                # the address, without prefix
        self.prefix = prefix        # None when the entry gave none
        self.hostname = hostname    # the guest's name when it is a valid host name, else None

    def __repr__(self):
        return 'Reservation(%s, %s, %s)' % (self.network, self.mac, self.ip)


class GuestPlan:
    """One validated guest: its entry and the params of every manager it needs."""

    def __init__(self, index, entry):
        self.index = index
        self.entry = entry
        self.name = entry['name']
        self.kind = entry['kind']
        self.state = entry['state']
        self.groups = list(entry.get('groups') or [])
        self.host_vars = dict(entry.get('host_vars') or {})
        self.wait_for_ip = False
        self.base = None           # BaseImage (kvm)
        self.overlay = None        # libvirt_volume params (kvm)
        self.disks = []            # [libvirt_volume params] (kvm)
        self.seed = None           # cloud_init_seed params (kvm)
        self.domain = None         # libvirt_domain params (kvm)
        self.container = None      # lxc_container params (lxc)
        self.remove_storage = False
        self.ansible_user = None
        self.static_ips = []       # addresses set through network-config (kvm)
        self.reservations = []     # Reservation: DHCP host entries on libvirt networks (kvm)
        self.macs = []             # (networks[N], MAC) of the NICs whose MAC is declared or derived (kvm)
        self.derived_macs = []     # (N, MAC) of the NICs whose MAC is derived (stable_mac) (kvm)

    @property
    def label(self):
        return 'guests[%d] (%s)' % (self.index, self.name)

    def volume_names(self):
        """Volumes this guest owns (never the shared base image), in removal order.

        The overlay's name is the guest's by convention, so it is listed even when the
        entry no longer names an image (a removal needs none of the guest's settings).
        """
        names = [self.overlay['name'] if self.overlay else '%s.qcow2' % self.name]
        names.extend(d['name'] for d in self.disks)
        return names


# ------------------------------------------------------------------ helpers

def merge_defaults(defaults, entry):
    """``entry`` over ``defaults``: the guest wins, dicts merge one level, lists are replaced."""
    merged = deepcopy(defaults or {})
    for key, value in entry.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            both = dict(merged[key])
            both.update(value)
            merged[key] = both
        else:
            merged[key] = deepcopy(value)
    return merged


def checked(spec, params, mutually_exclusive=None, required_one_of=None, required_together=None):
    """``params`` as AnsibleModule would pass them for ``spec``; VirtkitError on the first errors."""
    validator = ArgumentSpecValidator(spec, mutually_exclusive=mutually_exclusive,
                                      required_one_of=required_one_of, required_together=required_together)
    # Like module arguments left out: None means "not set" (choices would refuse it).
    result = validator.validate(dict((k, v) for k, v in params.items() if v is not None))
    if result.error_messages:
        raise VirtkitError('; '.join(_tidy(e) for e in result.errors.errors))
    return result.validated_parameters


def _tidy(error):
    message = error.error_message
    if type(error).__name__ == 'UnsupportedError':
        # "foo. Supported parameters include: ..." names every option; keep the point.
        keys, _sep, supported = message.partition('. Supported parameters include: ')
        return 'unknown key %s (valid: %s)' % (keys, supported.rstrip('.'))
    return message


def base_image_name(image):
    if image.get('name'):
        return image['name']
    source = image.get('url') or image.get('path')
    base = os.path.basename(source.split('?', 1)[0].rstrip('/'))
    if not base:
        raise VirtkitError('image: cannot derive a volume name from %r; set image.name' % source)
    return base


# ------------------------------------------------------------------ KVM

def _context(where, func, *args):
    """``func(*args)`` with its error prefixed by the guest key it came from."""
    try:
        return func(*args)
    except VirtkitError as err:
        raise VirtkitError('%s: %s' % (where, err))


def _volume_params(params):
    params = checked(volume_spec.ARGUMENT_SPEC, params)
    volume_spec.validate(params)
    return params


def _network_config(plan, nics):
    ethernets = {}
    for i, nic in enumerate(nics):
        eth = {'match': {'macaddress': nic['mac']}}
        if nic.get('ip') and nic.get('address_mode') != 'dhcp_reservation':
            eth['addresses'] = [nic['ip']]
            if nic.get('gateway'):
                # gateway4/gateway6, not routes: cloud-init before 23.x refuses "to: default",
                # and its ifupdown (eni) renderer writes routes as "route add" lines, which
                # need net-tools; a subnet gateway becomes ifupdown's own "gateway" line.
                # Every renderer (eni, netplan, networkd, NetworkManager, sysconfig) takes it.
                eth['gateway6' if ':' in nic['gateway'] else 'gateway4'] = nic['gateway']
            if nic.get('dns'):
                eth['nameservers'] = {'addresses': list(nic['dns'])}
        else:
            eth['dhcp4'] = True
        ethernets['nic%d' % i] = eth
    return {'version': 2, 'ethernets': ethernets}


def _kvm_networks(plan, entry):
    """(NICs with their MACs, whether a network-config is needed); fills static_ips and reservations."""
    nets = entry.get('networks')
    if nets is None:
        nets = [{'network': 'default'}]
    wants_static = any(n.get('ip') for n in nets)
    wants_config = False
    result = []
    for i, net in enumerate(nets):
        where = 'networks[%d]' % i
        n = dict((k, v) for k, v in net.items() if v is not None)
        mode = n.get('address_mode')
        if mode and not n.get('ip'):
            raise VirtkitError('%s: address_mode %s needs ip' % (where, mode))
        if wants_static and not n.get('mac'):
            n['mac'] = stable_mac(plan.name, i)
            plan.derived_macs.append((i, n['mac']))
        if mode == 'dhcp_reservation':
            plan.reservations.append(_reservation(plan, where, n))
            result.append(n)
            continue
        if n.get('ip'):
            try:
                iface = ipaddress.ip_interface(n['ip'])
            except ValueError:
                raise VirtkitError('%s.ip: %r is not an address with prefix such as 192.168.122.50/24'
                                   % (where, n['ip']))
            if '/' not in n['ip']:
                raise VirtkitError('%s.ip: %r needs a prefix length, for example %s/24' % (where, n['ip'], n['ip']))
            plan.static_ips.append(str(iface.ip))
            wants_config = True
        elif n.get('gateway') or n.get('dns'):
            raise VirtkitError('%s: gateway and dns need ip (they go into the static network-config)' % where)
        if n.get('gateway'):
            try:
                ipaddress.ip_address(n['gateway'])
            except ValueError:
                raise VirtkitError('%s.gateway: %r is not an IP address' % (where, n['gateway']))
        for addr in n.get('dns') or []:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise VirtkitError('%s.dns: %r is not an IP address' % (where, addr))
        result.append(n)
    return result, wants_config


def _reservation(plan, where, nic):
    """The DHCP host entry of a NIC with address_mode dhcp_reservation (pure checks only;
    the network's subnet, range and other hosts are checked against the host at run time)."""
    if not nic.get('network'):
        raise VirtkitError('%s: address_mode dhcp_reservation needs network (a libvirt network whose DHCP '
                           'server hands out the address), not bridge' % where)
    for key in ('gateway', 'dns'):
        if nic.get(key):
            raise VirtkitError('%s: %s cannot be set with address_mode dhcp_reservation (the network\'s DHCP '
                               'server gives the gateway and DNS)' % (where, key))
    text = nic['ip']
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise VirtkitError('%s.ip: %r is not an IPv4 address such as 192.168.122.50' % (where, text))
    if iface.version != 4:
        raise VirtkitError('%s.ip: %s: address_mode dhcp_reservation takes IPv4 addresses (libvirt matches '
                           'IPv6 DHCP hosts by DUID, not MAC)' % (where, text))
    prefix = iface.network.prefixlen if '/' in text else None
    hostname = reservation_hostname(plan.name)
    return Reservation(where, nic['network'], nic['mac'].lower(), str(iface.ip), prefix, hostname)


def reservation_hostname(name):
    """The name a guest's DHCP host entries carry: its own when it is a valid host name."""
    return name if _HOSTNAME_RE.match(name) else None


def _user_data(plan, ci):
    if ci.get('user_data') is not None:
        return ci['user_data']
    data = {}
    keys = list(ci.get('ssh_authorized_keys') or [])
    if ci.get('users'):
        users = []
        for user in ci['users']:
            if isinstance(user, dict):
                user = dict(user)
                if keys and not user.get('ssh_authorized_keys'):
                    user['ssh_authorized_keys'] = list(keys)
                if plan.ansible_user is None and user.get('name'):
                    plan.ansible_user = user['name']
            users.append(user)
        data['users'] = users if 'default' in users else ['default'] + users
    if keys:
        data['ssh_authorized_keys'] = keys
    for key in ('packages', 'runcmd'):
        if ci.get(key):
            data[key] = ci[key]
    return data


def _cloud_init(plan, entry, nics, wants_static):
    value = entry.get('cloud_init')
    if value is None or value is False:
        if wants_static and value is False:
            raise VirtkitError('networks[].ip needs cloud_init (the address is set through the seed\'s '
                               'network-config); remove cloud_init: false, or give the NIC '
                               'address_mode: dhcp_reservation')
        if not wants_static:
            return None
        value = {}
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise VirtkitError('cloud_init: must be false or a dict, not %s' % type(value).__name__)
    unknown = sorted(set(value) - set(CLOUD_INIT_KEYS))
    if unknown:
        raise VirtkitError('cloud_init: unknown key %s (it takes %s)' % (', '.join(unknown), ', '.join(CLOUD_INIT_KEYS)))
    for key in ('users', 'ssh_authorized_keys', 'packages', 'runcmd'):
        if value.get(key) is not None and not isinstance(value[key], list):
            raise VirtkitError('cloud_init.%s: must be a list' % key)
    params = {
        'state': 'present',
        'pool': None,  # filled by translate()
        'name': '%s-seed.iso' % plan.name,
        'user_data': _user_data(plan, value),
        'hostname': value.get('hostname') or plan.name,
    }
    if value.get('network_config') is not None:
        params['network_config'] = value['network_config']
    elif wants_static or plan.reservations:
        # Reservations too: without a network-config, cloud-init's fallback runs DHCP on the
        # first NIC only, and a reservation on another NIC would never be asked for.
        params['network_config'] = _network_config(plan, nics)
    return params


def _kvm(plan, entry, fleet):
    pool, uri = fleet['pool'], fleet['uri']
    name = plan.name
    if not domain_spec._NAME_RE.match(name):
        raise VirtkitError('name: %r is not a valid guest name (no "/" or blanks, 1-200 characters)' % name)
    plan.remove_storage = entry['remove_storage']
    if plan.state == 'absent':
        _kvm_absent(plan, entry, fleet)
        return
    if entry.get('disk_size') is not None:
        size = parse_size(entry['disk_size'], 'disk_size', default_unit='GiB')
        if size <= 0:
            raise VirtkitError('disk_size: must be positive, got %r' % (entry['disk_size'],))
    disks_out = []
    if entry.get('image'):
        image = entry['image']
        base = base_image_name(image)
        source = image.get('url') or image.get('path')
        if source:
            params = {'uri': uri, 'name': base, 'pool': pool, 'import_from': source,
                      'checksum': image.get('checksum'), 'format': image.get('format'),
                      'allow_unverified': image['allow_unverified']}
            params = _context('image', _volume_params, params)
        else:
            params = None
        plan.base = BaseImage(base, params, (source, image.get('checksum'), image.get('format')))
        overlay = {'uri': uri, 'name': '%s.qcow2' % name, 'pool': pool, 'format': 'qcow2',
                   'backing_volume': base, 'capacity': entry.get('disk_size')}
        if overlay['name'] == base:
            raise VirtkitError('image: the base volume %s would be the guest\'s own overlay; name it differently'
                               % base)
        plan.overlay = _context('disk_size', _volume_params, overlay)
        disks_out.append({'volume': plan.overlay['name'], 'pool': pool, 'format': 'qcow2'})
    elif entry.get('disk_size') is not None:
        raise VirtkitError('disk_size: needs image (it sizes the overlay on the base image)')
    seen = set()
    for i, disk in enumerate(entry.get('disks') or []):
        where = 'disks[%d]' % i
        if not _DISK_NAME_RE.match(disk['name']):
            raise VirtkitError('%s.name: %r must use letters, digits, ".", "_" or "-"' % (where, disk['name']))
        if disk['name'] in seen:
            raise VirtkitError('disks: two disks are named %s' % disk['name'])
        seen.add(disk['name'])
        size = parse_size(disk['size'], '%s.size' % where, default_unit='GiB')
        if size <= 0:
            raise VirtkitError('%s.size: must be positive, got %r' % (where, disk['size']))
        params = {'uri': uri, 'name': '%s-%s.%s' % (name, disk['name'], disk['format']), 'pool': pool,
                  'format': disk['format'], 'capacity': disk['size']}
        params = _context(where, _volume_params, params)
        plan.disks.append(params)
        d = {'volume': params['name'], 'pool': pool, 'format': disk['format']}
        if disk.get('bus'):
            d['bus'] = disk['bus']
        disks_out.append(d)
    nics, wants_static = _kvm_networks(plan, entry)
    seed = _cloud_init(plan, entry, nics, wants_static)
    if seed is not None:
        seed['pool'] = pool
        plan.seed = checked(dict(LIBVIRT_ARGS, **seed_spec.ARGUMENT_SPEC), dict(seed, uri=uri),
                            mutually_exclusive=seed_spec.MUTUALLY_EXCLUSIVE,
                            required_one_of=seed_spec.REQUIRED_ONE_OF,
                            required_together=seed_spec.REQUIRED_TOGETHER)
        try:
            seed_spec.validate(plan.seed)
        except VirtkitError as err:
            raise VirtkitError('cloud_init: %s' % err)
        disks_out.append({'device': 'cdrom', 'volume': plan.seed['name'], 'pool': pool, 'format': 'raw'})

    extra = dict(entry.get('domain') or {})
    reserved = sorted(set(extra) & set(DOMAIN_RESERVED))
    if reserved:
        raise VirtkitError('domain: %s cannot be set in the escape hatch (they are the guest\'s own keys '
                           'or the fleet\'s options)' % ', '.join(reserved))
    interfaces = [dict((k, v) for k, v in n.items() if k in ('network', 'bridge', 'mac', 'model')) for n in nics]
    plan.macs = [('networks[%d]' % i, n['mac'].lower()) for i, n in enumerate(nics) if n.get('mac')]
    params = {'uri': uri, 'name': name, 'state': DOMAIN_STATE[plan.state],
              'restart_policy': fleet['restart_policy'], 'wait_for_ip': False,
              'disks': disks_out + list(extra.pop('disks', None) or []),
              'interfaces': interfaces + list(extra.pop('interfaces', None) or [])}
    for key in ('memory', 'vcpus', 'virt_type', 'firmware', 'boot', 'metadata', 'description', 'autostart'):
        if entry.get(key) is not None:
            params[key] = entry[key]
    if plan.groups:
        # Stored on the guest (metadata key groups, which guest_inventory reads), so later
        # runs and other tools see the same groups as this run's add_host.
        params['metadata'] = dict({'groups': plan.groups}, **(params.get('metadata') or {}))
    params.update(extra)
    plan.domain = checked(domain_spec.ARGUMENT_SPEC, params)
    domain_spec.validate(deepcopy(plan.domain))
    wait = entry.get('wait_for_ip')
    plan.wait_for_ip = plan.state == 'running' and (wait if wait is not None else not plan.static_ips)


def _kvm_absent(plan, entry, fleet):
    """Removing a guest needs none of its settings, and must not fail on them (an image
    checksum that no longer resolves, say): only the names of what it owns."""
    for i, disk in enumerate(entry.get('disks') or []):
        if not _DISK_NAME_RE.match(disk['name']):
            raise VirtkitError('disks[%d].name: %r must use letters, digits, ".", "_" or "-"' % (i, disk['name']))
        plan.disks.append({'name': '%s-%s.%s' % (plan.name, disk['name'], disk['format']), 'pool': fleet['pool']})
    # The guest's DHCP reservations go with it: the entry names the networks, the MAC is the
    # entry's or the stable one the guest was created with.
    for i, nic in enumerate(entry.get('networks') or []):
        if nic.get('address_mode') == 'dhcp_reservation' and nic.get('network'):
            mac = (nic.get('mac') or stable_mac(plan.name, i)).lower()
            plan.reservations.append(Reservation('networks[%d]' % i, nic['network'], mac, None, None, None))
    extra = dict((k, v) for k, v in (entry.get('domain') or {}).items() if k in ('shutdown_timeout', 'force'))
    plan.domain = checked(domain_spec.ARGUMENT_SPEC, dict(extra, uri=fleet['uri'], name=plan.name, state='absent'))
    domain_spec.validate(deepcopy(plan.domain))


# ------------------------------------------------------------------ LXC

def _lxc(plan, entry, fleet, layout, path_kind=None):
    lxc_spec.check_name(plan.name)
    extra = dict(entry.get('container') or {})
    reserved = sorted(set(extra) & set(CONTAINER_RESERVED))
    if reserved:
        raise VirtkitError('container: %s cannot be set in the escape hatch (they are the guest\'s own keys '
                           'or the fleet\'s options)' % ', '.join(reserved))
    params = {'name': plan.name, 'lxc_path': fleet.get('lxc_path'), 'state': CONTAINER_STATE[plan.state],
              'restart_policy': fleet['restart_policy'], 'wait_for_ip': False}
    for key in ('template', 'template_options', 'clone_from', 'limits', 'networks', 'mounts', 'autostart',
                'config', 'unprivileged', 'backing_store'):
        if entry.get(key) is not None:
            params[key] = entry[key]
    if plan.groups:
        params['groups'] = plan.groups  # lxc.group: guest_inventory reads it
    params.update(extra)
    plan.container = checked(lxc_spec.ARGUMENT_SPEC, params)
    needs_layout = bool(plan.container.get('limits')) and plan.state != 'absent'
    lxc_spec.validate(deepcopy(plan.container), layout() if needs_layout else None, path_kind)
    wait = entry.get('wait_for_ip')
    plan.wait_for_ip = plan.state == 'running' and (wait if wait is not None else True)


# ------------------------------------------------------------------ the fleet

def _fleet_clashes(plans):
    """One line per guest whose NICs clash with an earlier NIC of the fleet (its own or another
    guest's): a MAC used twice (a derived MAC can equal another guest's, see _mac), or two
    DHCP reservations of one network for one address or one host name (dnsmasq gives each to
    one MAC only: the second guest would fail at run time, after the first was created)."""
    lines = []
    macs, addresses, hostnames = {}, {}, {}
    for plan in plans:
        if plan.kind != 'kvm' or plan.state == 'absent':
            continue
        problems = []

        def other(first):
            return first[1] if first[0] is plan else '%s %s' % (first[0].label, first[1])

        for where, mac in plan.macs:
            first = macs.setdefault(mac, (plan, where))
            if first[0] is not plan or first[1] != where:
                problems.append('%s: MAC %s is also used by %s; set networks[].mac to tell them apart'
                                % (where, mac, other(first)))
        for res in plan.reservations:
            first = addresses.setdefault((res.network, res.ip), (plan, res.where))
            if first != (plan, res.where):
                problems.append('%s: %s is also reserved by %s on network %s'
                                % (res.where, res.ip, other(first), res.network))
            if res.hostname:
                first = hostnames.setdefault((res.network, res.hostname.lower()), (plan, res.where))
                if first != (plan, res.where):
                    problems.append('%s: the host name %s is also reserved by %s on network %s (a DHCP host '
                                    'name names one MAC)' % (res.where, res.hostname, other(first), res.network))
        if problems:
            lines.append('%s: %s' % (plan.label, '; '.join(problems)))
    return lines


def validate_fleet(params, layout=None, path_kind=None):
    """(guest plans to run, base images) for the module params, or FleetValidationError.

    ``layout`` returns the host's cgroup layout (LXC limits need it); it is called only
    when a container sets limits. ``path_kind`` tells what a host path is (a container's bind
    mount sources are checked on the host, see lxc_container's spec); default: a look at the host.
    """
    if layout is None:
        from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup

        def layout():
            return cgroup.host_layout()
    defaults = params.get('defaults') or {}
    errors = []
    plans = []
    names = {}
    for index, raw in enumerate(params['guests']):
        label_name = raw.get('name') if isinstance(raw, dict) else None
        label = 'guests[%d] (%s)' % (index, label_name or '?')
        if not isinstance(raw, dict):
            errors.append('%s: must be a dict, not %s' % (label, type(raw).__name__))
            continue
        kind = raw.get('kind')
        if kind not in KINDS:
            errors.append('%s: kind: must be kvm or lxc, got %r' % (label, kind))
            continue
        try:
            entry = merge_defaults((defaults.get(kind) or {}), raw)
            entry = checked(KVM_KEYS if kind == 'kvm' else LXC_KEYS, entry)
            plan = GuestPlan(index, entry)
            if plan.name in names:
                raise VirtkitError('name: %s is already used by guests[%d]' % (plan.name, names[plan.name]))
            names[plan.name] = index
            if kind == 'kvm':
                _kvm(plan, entry, params)
            else:
                _lxc(plan, entry, params, layout, path_kind)
        except VirtkitError as err:
            errors.append('%s: %s' % (label, err))
            continue
        plans.append(plan)
    errors.extend(_fleet_clashes(plans))
    only = params.get('only')
    if only is not None:
        unknown = [n for n in only if n not in names]
        if unknown:
            errors.append('only: %s %s not in guests' % (', '.join(unknown), 'is' if len(unknown) == 1 else 'are'))
        plans = [p for p in plans if p.name in only]
    bases = {}
    for plan in plans:
        if plan.base is None or plan.state == 'absent':
            continue
        known = bases.setdefault(plan.base.name, plan.base)
        if known is not plan.base and known.source != plan.base.source:
            errors.append('%s: image: the base volume %s is also used by guests[%d] with another source or '
                          'checksum; give this image another name'
                          % (plan.label, plan.base.name, known.guests[0].index))
            continue
        plan.base = known
        known.guests.append(plan)
    if params.get('parallel', 1) < 1:
        errors.append('parallel: must be at least 1, got %s' % params['parallel'])
    if params.get('wait_timeout', 0) < 0:
        errors.append('wait_timeout: must not be negative, got %s' % params['wait_timeout'])
    if errors:
        raise FleetValidationError(errors)
    return plans, bases
