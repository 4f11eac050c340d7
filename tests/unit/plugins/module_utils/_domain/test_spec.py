# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""spec.validate: every bad request is refused with one clear line; defaults are filled."""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.tests.unit.helpers import params, spec_of


def refused(current_machine=None, **options):
    options.setdefault('name', 'web1')
    with pytest.raises(VirtkitError) as err:
        spec_of(current_machine, **options)
    message = str(err.value)
    assert '\n' not in message and 'Traceback' not in message
    return message


# Each case: options, and text the message must contain (it names the option and the problem).
BAD = {
    'bad name': ({'name': 'a/b'}, "name: 'a/b' is not a valid guest name"),
    'blank in name': ({'name': 'a b'}, 'is not a valid guest name'),
    'unknown memory unit': ({'memory': '2XB'}, "memory: unknown unit 'XB' in '2XB'"),
    'unreadable memory': ({'memory': 'two gigs'}, "memory: cannot read 'two gigs' as a size"),
    'memory below 1 MiB': ({'memory': '512KiB'}, "memory: '512KiB' is below 1 MiB"),
    'bad max_memory unit': ({'max_memory': '4 parsecs'}, "max_memory: unknown unit 'parsecs'"),
    'memory above max_memory': ({'memory': '4GiB', 'max_memory': '2GiB'},
                                'memory (4GiB) is above max_memory (2GiB)'),
    'vcpus above max_vcpus': ({'vcpus': 4, 'max_vcpus': 2}, 'vcpus (4) is above max_vcpus (2)'),
    'zero vcpus': ({'vcpus': 0}, 'vcpus: must be at least 1, got 0'),
    'zero max_vcpus': ({'max_vcpus': 0}, 'max_vcpus: must be at least 1, got 0'),
    'cpu model without custom': ({'cpu': {'mode': 'host-passthrough', 'model': 'Skylake'}},
                                 'cpu.model needs cpu.mode custom (got mode host-passthrough)'),
    'topology incomplete': ({'cpu': {'sockets': 2}, 'vcpus': 2}, 'cpu: a topology needs sockets, cores and threads '
                            '(missing cores, threads)'),
    'topology zero': ({'cpu': {'sockets': 0, 'cores': 1, 'threads': 1}}, 'must be at least 1'),
    'topology mismatch': ({'cpu': {'sockets': 1, 'cores': 2, 'threads': 1}, 'vcpus': 2, 'max_vcpus': 4},
                          'cpu: topology gives 2 vCPUs but max_vcpus is 4'),
    'topology below vcpus': ({'cpu': {'sockets': 1, 'cores': 1, 'threads': 1}, 'vcpus': 2},
                             'cpu: topology gives 1 vCPUs, fewer than vcpus (2)'),
    'secure_boot without uefi': ({'secure_boot': True}, 'secure_boot needs firmware: uefi'),
    'secure_boot with bios': ({'secure_boot': True, 'firmware': 'bios'}, 'secure_boot needs firmware: uefi'),
    'secure_boot on pc': ({'secure_boot': True, 'firmware': 'uefi', 'machine': 'pc'},
                          'secure_boot needs a q35 machine type (got pc)'),
    'tpm 1.2 on crb': ({'tpm': {'version': '1.2'}},
                       'tpm: model tpm-crb is TPM 2.0 only; use model tpm-tis for version 1.2'),
    'emulated tpm with a device': ({'tpm': {'device': '/dev/tpm0'}},
                                   'tpm.device is for backend passthrough; an emulated TPM (swtpm) has no host device'),
    'passthrough tpm, relative device': ({'tpm': {'backend': 'passthrough', 'device': 'tpm0'}},
                                         "tpm.device: 'tpm0' must be an absolute path to a host device"),
    'initrd without kernel': ({'boot': {'initrd': '/boot/initrd.img'}}, 'boot.initrd needs boot.kernel'),
    'cmdline without kernel': ({'boot': {'cmdline': 'console=ttyS0'}}, 'boot.cmdline needs boot.kernel'),
    'disk without source': ({'disks': [{'target': 'vda'}]},
                            'disks[0]: a disk needs path or pool+volume (only a cdrom may be empty)'),
    'pool without volume': ({'disks': [{'device': 'cdrom', 'pool': 'default'}]},
                            'disks[0]: pool default given without volume'),
    'cdrom on virtio': ({'disks': [{'device': 'cdrom', 'bus': 'virtio'}]},
                        'disks[0]: a cdrom cannot sit on the virtio bus'),
    'relative path': ({'disks': [{'path': 'images/a.qcow2'}]}, "disks[0]: path 'images/a.qcow2' must be absolute"),
    'bad target': ({'disks': [{'path': '/a', 'target': 'disk0'}]},
                   "disks[0]: target 'disk0' is not a disk name such as vda, sdb or hdc"),
    'two disks one target': ({'disks': [{'path': '/a', 'target': 'vdb'}, {'path': '/b', 'target': 'vdb'}]},
                             'disks: two disks use target vdb'),
    'bad MAC': ({'interfaces': [{'network': 'default', 'mac': '52:54:00:zz:00:01'}]},
                "interfaces[0]: mac '52:54:00:zz:00:01' is not a MAC address such as 52:54:00:12:34:56"),
    'short MAC': ({'interfaces': [{'network': 'default', 'mac': '52:54:00:00:01'}]}, 'is not a MAC address'),
    'multicast MAC': ({'interfaces': [{'network': 'default', 'mac': '01:00:5e:00:00:01'}]},
                      'interfaces[0]: mac 01:00:5e:00:00:01 is a multicast address'),
    'duplicate MAC': ({'interfaces': [{'network': 'default', 'mac': '52:54:00:00:00:01'},
                                      {'bridge': 'br0', 'mac': '52:54:00:00:00:01'}]},
                      'interfaces: two interfaces use mac 52:54:00:00:00:01'),
    'duplicate MAC in other case': ({'interfaces': [{'network': 'default', 'mac': '52:54:00:AA:00:01'},
                                                    {'bridge': 'br0', 'mac': '52:54:00:aa:00:01'}]},
                                    'two interfaces use mac 52:54:00:aa:00:01'),
    'bad alias': ({'interfaces': [{'network': 'default', 'alias': 'net0'}]},
                  "interfaces[0]: alias 'net0' must start with \"ua-\""),
    'duplicate alias': ({'interfaces': [{'network': 'default', 'alias': 'ua-a'}, {'network': 'default', 'alias': 'ua-a'}]},
                        'interfaces: two interfaces use alias ua-a'),
    'bad PCI address': ({'hostdevs': [{'type': 'pci', 'address': '0000:03:00'}]},
                        'hostdevs[0]: a PCI device needs address such as 0000:03:00.0'),
    'PCI function 8': ({'hostdevs': [{'type': 'pci', 'address': '0000:03:00.8'}]}, 'a PCI device needs address'),
    'PCI without address': ({'hostdevs': [{'type': 'pci'}]}, 'a PCI device needs address'),
    'duplicate PCI': ({'hostdevs': [{'type': 'pci', 'address': '03:00.0'}, {'type': 'pci', 'address': '0000:03:00.0'}]},
                      'hostdevs: device 0000:03:00:0 is listed twice'),
    'USB vendor only': ({'hostdevs': [{'type': 'usb', 'vendor': '1d6b'}]},
                        'hostdevs[0]: a USB device needs both vendor and product'),
    'USB bad id': ({'hostdevs': [{'type': 'usb', 'vendor': '1d6b', 'product': 'xyz'}]},
                   "hostdevs[0]: product 'xyz' is not a 4-digit hex id"),
    'USB nothing': ({'hostdevs': [{'type': 'usb'}]}, 'a USB device needs vendor+product or address BUS:DEVICE'),
    'graphics none with port': ({'graphics': {'type': 'none', 'port': 5900}},
                                'graphics: listen, port and password make no sense with type none'),
    'graphics port': ({'graphics': {'type': 'vnc', 'port': 80}}, 'graphics.port: 80 is not -1 (automatic) or 5900-65535'),
    'metadata key': ({'metadata': {'1st': 'x'}}, "metadata: key '1st' must start with a letter"),
    'metadata nested': ({'metadata': {'a': {'b': 1}}}, 'metadata: value of a must be a string, number, boolean'),
    'metadata control char': ({'metadata': {'a': 'x\x00y'}}, 'metadata: value of a has control characters'),
    'bad xpath': ({'xml_overrides': [{'xpath': '/domain/devices/disk[', 'value': 'x'}]},
                  "xml_overrides[0]: invalid XPath '/domain/devices/disk['"),
    'relative xpath': ({'xml_overrides': [{'xpath': 'devices/disk', 'value': 'x'}]},
                       'xml_overrides[0]: xpath must be absolute and start with /domain'),
    'absent with value': ({'xml_overrides': [{'xpath': '/domain/on_crash', 'state': 'absent', 'value': 'x'}]},
                          'xml_overrides[0]: state absent takes no value or attributes'),
    'present without value': ({'xml_overrides': [{'xpath': '/domain/on_crash'}]},
                              'xml_overrides[0]: give value or attributes (or state: absent)'),
    'negative shutdown_timeout': ({'shutdown_timeout': -1}, 'shutdown_timeout: must not be negative'),
    'negative wait_for_ip_timeout': ({'wait_for_ip_timeout': -1}, 'wait_for_ip_timeout: must not be negative'),
    'wait_for_ip when shut down': ({'wait_for_ip': True, 'state': 'shutdown'},
                                   'wait_for_ip needs state running (or present on a running guest), not shutdown'),
}


@pytest.mark.parametrize('options, text', list(BAD.values()), ids=list(BAD))
def test_bad_input_gives_one_clear_line(options, text):
    message = refused(**options)
    assert text in message, message


def test_minimal_request_owns_nothing():
    spec = spec_of(name='web1')
    assert spec.state == 'present'
    for attr in ('memory_kib', 'max_memory_kib', 'vcpus', 'max_vcpus', 'cpu', 'firmware', 'secure_boot',
                 'disks', 'interfaces', 'hostdevs', 'graphics', 'serial', 'tpm', 'rng', 'guest_agent',
                 'autostart', 'title', 'description', 'metadata', 'xml_overrides', 'machine', 'virt_type'):
        assert getattr(spec, attr) is None, attr
    assert spec.devices_exclusive is False
    assert spec.restart_policy == 'never'
    assert spec.shutdown_timeout == 120
    assert spec.remove_storage == []
    assert spec.ip_sources == ['lease', 'agent']
    assert spec.wants_config
    assert not spec_of(name='web1', state='absent').wants_config


def test_sizes_are_read_to_kib():
    spec = spec_of(name='web1', memory=512, max_memory='2GiB')
    assert spec.memory_kib == 512 * 1024
    assert spec.max_memory_kib == 2 * 1024 * 1024
    assert spec_of(name='web1', memory='1G').memory_kib == 1024 * 1024
    assert spec_of(name='web1', memory='1000MB').memory_kib == 976563  # decimal, rounded up to a KiB
    assert spec_of(name='web1', memory='1GB', max_memory='2GB').max_memory_kib == 1953125


def test_valid_topology_and_secure_boot():
    spec = spec_of(name='web1', vcpus=2, max_vcpus=4, machine='q35', firmware='uefi', secure_boot=True,
                   cpu={'sockets': 1, 'dies': 1, 'cores': 2, 'threads': 2})
    assert spec.cpu['cores'] == 2
    # Topology against vcpus when max_vcpus is not given (a new guest's maximum).
    spec_of(name='web1', vcpus=4, cpu={'sockets': 2, 'cores': 2, 'threads': 1})
    # secure_boot with machine omitted is left to the existing guest's machine.
    spec_of(name='web1', firmware='uefi', secure_boot=True)


def test_secure_boot_follows_the_existing_guests_machine():
    message = refused('pc-i440fx-7.2', firmware='uefi', secure_boot=True)
    assert message == 'secure_boot needs a q35 machine type (the guest has pc-i440fx-7.2; set machine: q35)'
    spec_of('pc-q35-7.2', name='web1', firmware='uefi', secure_boot=True)
    spec_of('pc-i440fx-7.2', name='web1', firmware='uefi', secure_boot=True, machine='q35')
    spec_of('pc-i440fx-7.2', name='web1', firmware='uefi', secure_boot=False)


@pytest.mark.parametrize('tpm', [
    {},                                                      # tpm-crb, emulator, 2.0
    {'model': 'tpm-tis', 'version': '1.2'},                  # TPM 1.2 works on the TIS interface
    {'model': 'tpm-tis', 'backend': 'passthrough', 'device': '/dev/tpm0'},
], ids=['emulated 2.0', 'emulated 1.2 on tis', 'passthrough'])
def test_valid_tpm_requests(tpm):
    spec = spec_of(name='web1', firmware='uefi', tpm=tpm)
    assert spec.tpm['backend'] in ('emulator', 'passthrough')
    assert spec.tpm['model'] == tpm.get('model', 'tpm-crb')


def test_disk_targets_are_assigned_in_list_order_per_bus():
    spec = spec_of(name='web1', disks=[
        {'path': '/img/a.qcow2'},                       # vda
        {'path': '/img/b.qcow2', 'target': 'vdb'},      # explicit
        {'path': '/img/c.qcow2'},                       # vdc: vdb is taken
        {'path': '/img/d.raw', 'bus': 'scsi'},          # sda
        {'path': '/img/e.raw', 'bus': 'sata'},          # sdb: sd* is shared by scsi, sata and usb
        {'device': 'cdrom', 'path': '/iso/x.iso'},      # hda (ide on a pc machine)
        {'path': '/img/f.raw', 'bus': 'ide'},           # hdb
    ])
    assert [d['target'] for d in spec.disks] == ['vda', 'vdb', 'vdc', 'sda', 'sdb', 'hda', 'hdb']
    assert [d['bus'] for d in spec.disks] == ['virtio', 'virtio', 'virtio', 'scsi', 'sata', 'ide', 'ide']


def test_explicit_targets_are_never_reused_by_earlier_defaults():
    spec = spec_of(name='web1', disks=[{'path': '/img/a'}, {'path': '/img/b', 'target': 'vda'}])
    assert [d['target'] for d in spec.disks] == ['vdb', 'vda']


@pytest.mark.parametrize('machine, current, bus, target', [
    ('q35', None, 'sata', 'sda'),
    ('pc-q35-7.2', None, 'sata', 'sda'),
    (None, 'pc-q35-7.2', 'sata', 'sda'),     # an existing guest's machine decides
    ('pc', None, 'ide', 'hda'),
    (None, 'pc-i440fx-7.2', 'ide', 'hda'),
    (None, None, 'ide', 'hda'),
])
def test_cdrom_bus_follows_the_machine(machine, current, bus, target):
    options = {'name': 'web1', 'disks': [{'device': 'cdrom'}]}
    if machine:
        options['machine'] = machine
    d = spec_of(current, **options).disks[0]
    assert (d['bus'], d['target']) == (bus, target)
    assert d['bus_default'] is True
    assert d['readonly'] is True  # cdroms default to read-only


def test_bus_default_flag_and_bus_from_target():
    disks = spec_of(name='web1', disks=[
        {'path': '/a'},
        {'path': '/b', 'bus': 'virtio'},
        {'path': '/c', 'target': 'sdc'},
        {'path': '/d', 'target': 'hdd'},
        {'path': '/e', 'target': 'xvda'},
        {'device': 'cdrom', 'bus': 'scsi'},
    ]).disks
    assert [d.get('bus_default', False) for d in disks] == [True, False, True, True, True, False]
    assert [d['bus'] for d in disks] == ['virtio', 'virtio', 'scsi', 'ide', 'virtio', 'scsi']
    assert disks[0].get('readonly') is None  # only cdroms get a readonly default
    assert spec_of(name='web1', disks=[{'device': 'cdrom', 'readonly': False}]).disks[0]['readonly'] is False


def test_interfaces_are_normalized():
    nics = spec_of(name='web1', interfaces=[
        {'network': 'default'},
        {'bridge': 'br0', 'mac': '52:54:00:AB:CD:EF'},
        {'direct': 'eth0', 'direct_mode': 'vepa', 'alias': 'ua-uplink'},
    ]).interfaces
    assert [(n['type'], n['source']) for n in nics] == [('network', 'default'), ('bridge', 'br0'), ('direct', 'eth0')]
    assert nics[1]['mac'] == '52:54:00:ab:cd:ef'
    assert nics[2]['alias'] == 'ua-uplink'


def test_hostdevs_are_normalized():
    devs = spec_of(name='web1', hostdevs=[
        {'type': 'pci', 'address': '03:00.1'},
        {'type': 'pci', 'address': '0000:0A:1F.7'},
        {'type': 'usb', 'vendor': '1D6B', 'product': '0x0002'},
        {'type': 'usb', 'address': '001:012'},
    ]).hostdevs
    assert devs[0]['pci'] == ('0000', '03', '00', '1')
    assert devs[1]['pci'] == ('0000', '0a', '1f', '7')
    assert (devs[2]['vendor'], devs[2]['product']) == ('0x1d6b', '0x0002')
    assert devs[3]['usb_address'] == ('1', '12')


def test_metadata_values_become_text():
    spec = spec_of(name='web1', metadata={'groups': ['web', 1, True], 'owner': 'team-a', 'n': 3, 'on': False})
    assert spec.metadata == {'groups': ['web', '1', 'true'], 'owner': 'team-a', 'n': '3', 'on': 'false'}


def test_validate_does_not_change_the_module_params():
    p = params(name='web1', disks=[{'device': 'cdrom'}], interfaces=[{'network': 'default', 'mac': '52:54:00:AA:BB:CC'}])
    from ansible_collections.virtkit.guests.plugins.module_utils._domain.spec import validate
    validate(p)
    assert p['disks'][0].get('target') is None and 'bus_default' not in p['disks'][0]
    assert p['interfaces'][0]['mac'] == '52:54:00:AA:BB:CC'


def test_topology_larger_than_vcpus_is_left_to_the_guests_maximum():
    # An existing guest may have max_vcpus 4 and run 2: the topology describes the maximum.
    spec = spec_of(name="web1", vcpus=2, cpu={"sockets": 1, "cores": 2, "threads": 2})
    assert spec.cpu['cores'] == 2
