# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""merge(): new guests on skeleton(), idempotence, device identity, exclusivity, ownership."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._xml import canonical, parse, to_string
from ansible_collections.virtkit.guests.tests.unit.helpers import (
    RICH, fixture, new_guest, spec_of, validate_domain_xml)

NS = {'v': xmerge.METADATA_NS}


def merged(xml, current_machine=None, **options):
    """(root, editor) after merging ``options`` onto a parsed copy of ``xml``."""
    root = parse(xml)
    options.setdefault('name', root.findtext('name'))
    machine = current_machine or root.find('os/type').get('machine')
    return root, xmerge.merge(root, spec_of(machine, **options))


def remerge(root, current_machine=None, **options):
    """Merge again onto a serialized copy (as after a define and re-read): the changes."""
    _again, ed = merged(to_string(root), current_machine, **options)
    return ed.changes


# ------------------------------------------------------------------ a new guest

def test_rich_spec_builds_the_expected_guest():
    root, ed = new_guest(spec_of(**RICH))
    assert root.get('type') == 'qemu'
    assert root.findtext('name') == 'rich'
    assert root.findtext('title') == 'A rich guest'
    assert root.findtext('description') == 'Every option at once'
    assert (root.find('memory').get('unit'), root.findtext('memory')) == ('KiB', str(2 * 1024 * 1024))
    assert root.findtext('currentMemory') == str(1024 * 1024)
    vcpu = root.find('vcpu')
    assert (vcpu.text, vcpu.get('current'), vcpu.get('placement')) == ('4', '2', None)  # placement deleted
    os_el = root.find('os')
    assert os_el.get('firmware') == 'efi'
    assert os_el.find('type').get('machine') == 'q35'
    assert [(f.get('name'), f.get('enabled')) for f in os_el.findall('firmware/feature')] == [
        ('enrolled-keys', 'yes'), ('secure-boot', 'yes')]
    assert root.find('features/smm').get('state') == 'on'
    assert os_el.findtext('kernel') == '/var/lib/libvirt/boot/vmlinuz'
    assert os_el.findtext('initrd') == '/var/lib/libvirt/boot/initrd.img'
    assert os_el.findtext('cmdline') == 'console=ttyS0 root=LABEL=root'
    cpu = root.find('cpu')
    assert (cpu.get('mode'), cpu.findtext('model')) == ('custom', 'qemu64')
    assert dict(cpu.find('topology').attrib) == {'sockets': '1', 'cores': '2', 'threads': '2'}

    disks = root.findall('devices/disk')
    assert [(d.get('type'), d.get('device'), d.find('target').get('dev'), d.find('target').get('bus'))
            for d in disks] == [('file', 'disk', 'vda', 'virtio'), ('volume', 'disk', 'vdb', 'virtio'),
                                ('file', 'cdrom', 'sda', 'sata'), ('file', 'cdrom', 'sdb', 'sata')]
    assert disks[0].find('driver').attrib == {'name': 'qemu', 'type': 'qcow2', 'cache': 'none'}
    assert disks[1].find('source').attrib == {'pool': 'default', 'volume': 'rich-data.raw'}
    assert disks[2].find('driver').get('type') == 'raw'  # iso is raw to qemu
    assert disks[2].find('readonly') is not None and disks[3].find('source') is None

    nics = root.findall('devices/interface')
    assert [n.get('type') for n in nics] == ['network', 'network', 'bridge', 'direct']
    assert nics[0].find('mac') is None  # libvirt picks it
    assert nics[1].find('mac').get('address') == '52:54:00:12:34:56'
    assert nics[2].find('alias').get('name') == 'ua-backend' and nics[2].find('model').get('type') == 'e1000e'
    assert nics[3].find('source').attrib == {'dev': 'eth0', 'mode': 'vepa'}
    assert nics[0].find('model').get('type') == 'virtio'

    graphics = root.find('devices/graphics')
    assert graphics.attrib == {'type': 'vnc', 'autoport': 'yes', 'listen': '127.0.0.1', 'passwd': 's3cret'}
    serial = root.find('devices/serial')
    assert serial.get('type') == 'file' and serial.find('source').get('path') == '/var/log/libvirt/rich-serial.log'
    assert serial.find('log').attrib == {'file': '/var/log/libvirt/rich-console.log', 'append': 'on'}
    tpm = root.find('devices/tpm')
    assert tpm.get('model') == 'tpm-crb' and tpm.find('backend').attrib == {'type': 'emulator', 'version': '2.0'}
    hostdevs = root.findall('devices/hostdev')
    assert hostdevs[0].find('source/address').attrib == {'domain': '0x0000', 'bus': '0x03', 'slot': '0x00',
                                                         'function': '0x0'}
    assert hostdevs[1].find('source/vendor').get('id') == '0x1d6b'
    assert hostdevs[2].find('source/address').attrib == {'bus': '1', 'device': '2'}
    assert root.find('devices/rng/backend').text == '/dev/urandom'
    assert root.find('devices/channel/target').get('name') == 'org.qemu.guest_agent.0'

    assert xmerge.read_metadata(root) == {'groups': ['web', 'production'], 'owner': 'team-a', 'tier': '1',
                                          'critical': 'true'}
    assert root.find('features/hyperv/relaxed').get('state') == 'on'
    assert root.findtext('on_crash') == 'restart'
    assert root.find('clock').get('offset') == 'utc'
    assert 'xml_overrides' in ed.fields() and 'disks:vda' in ed.fields()


def test_rich_spec_is_idempotent():
    root, _ed = new_guest(spec_of(**RICH))
    assert remerge(root, **RICH) == []
    # And on the very same tree, without a round trip.
    assert xmerge.merge(root, spec_of(**RICH)).changes == []


def test_rich_spec_is_idempotent_on_what_libvirt_made_of_it():
    # fixtures/rich-defined-inactive.xml: RICH (without the TPM, as swtpm is not installed
    # on the host that made it, and without deleting vcpu/@placement, which libvirt writes
    # back) defined on qemu:///system and read back with dumpxml --inactive --security-info.
    options = dict(RICH)
    options.pop('tpm')
    options['xml_overrides'] = [o for o in RICH['xml_overrides'] if o.get('state') != 'absent']
    root, ed = merged(fixture('rich-defined-inactive.xml'), **options)
    assert ed.changes == []
    assert canonical(root) == canonical(parse(fixture('rich-defined-inactive.xml')))


def test_rich_spec_validates_against_libvirts_schema():
    root, _ed = new_guest(spec_of(**RICH))
    validate_domain_xml(to_string(root))


NEW_GUESTS = {
    'minimal': {},
    'memory and vcpus only': {'memory': 256, 'vcpus': 2},
    'bios on pc with boot order and an ide cdrom': {
        'machine': 'pc', 'firmware': 'bios', 'boot': {'devices': ['cdrom', 'hd', 'network']},
        'disks': [{'path': '/img/a.raw'}, {'device': 'cdrom', 'path': '/iso/install.iso'}]},
    'uefi without secure boot': {'machine': 'q35', 'firmware': 'uefi', 'secure_boot': False},
    'host cpu with dies': {
        'virt_type': 'kvm', 'vcpus': 4,
        'cpu': {'mode': 'host-passthrough', 'sockets': 2, 'dies': 1, 'cores': 2, 'threads': 1}},
    'every disk bus': {'disks': [
        {'path': '/dev/vg0/web'},
        {'path': '/img/b', 'bus': 'scsi', 'readonly': True, 'cache': 'writeback', 'format': 'raw'},
        {'path': '/img/c', 'bus': 'usb'},
        {'path': '/img/d', 'bus': 'sata', 'format': 'vmdk'},
        {'device': 'cdrom', 'bus': 'ide'}]},
    'spice on a fixed port, pty serial with a log': {'graphics': {'type': 'spice', 'port': 5930, 'listen': '0.0.0.0'},
                                                     'serial': {'type': 'pty', 'log': '/var/log/x.log'}},
    'passthrough tpm': {'tpm': {'backend': 'passthrough', 'device': '/dev/tpm0', 'model': 'tpm-tis'}},
    'direct NIC in passthrough mode, usb by address': {
        'interfaces': [{'direct': 'enp3s0', 'direct_mode': 'passthrough', 'model': 'e1000'}],
        'hostdevs': [{'type': 'usb', 'address': '003:004'}, {'type': 'pci', 'address': '04:00.1'}]},
    'empty texts and metadata': {'title': '', 'description': '', 'metadata': {}, 'rng': False, 'guest_agent': False},
    'graphics none': {'graphics': {'type': 'none'}},
    'direct kernel boot only': {'boot': {'kernel': '/k', 'initrd': '/i'}, 'virt_type': 'qemu'},
}


@pytest.mark.parametrize('options', list(NEW_GUESTS.values()), ids=list(NEW_GUESTS))
def test_new_guests_validate_against_libvirts_schema_and_are_idempotent(options):
    options = dict(options, name='new-guest')
    root, _ed = new_guest(spec_of(**options))
    validate_domain_xml(to_string(root))
    assert remerge(root, **options) == []


def test_skeleton_defaults():
    root, ed = new_guest(spec_of(name='tiny'), virt_type='kvm', arch='aarch64')
    assert root.get('type') == 'kvm'
    assert root.find('os/type').get('arch') == 'aarch64'
    assert root.findtext('memory') == str(xmerge.DEFAULT_MEMORY_KIB)
    assert root.findtext('vcpu') == '1'
    assert ed.changes == []  # nothing beyond the skeleton was asked for
    assert root.find('features/acpi') is not None  # graceful shutdown needs ACPI
    assert root.find('devices/graphics') is None  # libvirt 9 rejects type none: omitted


def test_skeleton_memory_is_the_maximum():
    root, _ed = new_guest(spec_of(name='tiny', memory=512, max_memory=1024))
    assert root.findtext('memory') == str(1024 * 1024)
    assert root.findtext('currentMemory') == str(512 * 1024)
    root, _ed = new_guest(spec_of(name='tiny', memory=512))
    assert root.findtext('memory') == root.findtext('currentMemory') == str(512 * 1024)


def test_max_vcpus_defaults_to_vcpus_for_a_new_guest():
    root, _ed = new_guest(spec_of(name='tiny', vcpus=3))
    vcpu = root.find('vcpu')
    assert (vcpu.text, vcpu.get('current')) == ('3', None)


# ------------------------------------------------------------------ device identity

def test_nic_without_mac_matched_by_source_and_position_keeps_libvirts_identity():
    xml = fixture('defined-q35-inactive.xml')
    before = parse(xml)
    root, ed = merged(xml, interfaces=[{'network': 'default'}, {'network': 'default'},
                                       {'bridge': 'virbr0', 'mac': '52:54:00:AA:BB:CC'}])
    assert ed.changes == []
    assert canonical(root) == canonical(before)
    # A model change on the second NIC keeps its MAC and PCI address.
    root, ed = merged(xml, interfaces=[{'network': 'default'}, {'network': 'default', 'model': 'e1000e'}])
    nic = root.findall('devices/interface')[1]
    assert nic.find('mac').get('address') == '52:54:00:69:bc:03'
    assert nic.find('address').attrib == {'type': 'pci', 'domain': '0x0000', 'bus': '0x02', 'slot': '0x00',
                                          'function': '0x0'}
    assert nic.find('model').get('type') == 'e1000e'
    assert ed.fields() == ['interfaces:52:54:00:69:bc:03']
    assert [(c.kind, c.key) for c in ed.changes] == [('modify', 1)]


def test_nic_matched_by_mac_wins_over_position():
    xml = fixture('defined-q35-inactive.xml')
    root, ed = merged(xml, interfaces=[{'network': 'default', 'mac': '52:54:00:69:bc:03', 'model': 'rtl8139'}])
    nics = root.findall('devices/interface')
    assert len(nics) == 3
    assert nics[0].find('model').get('type') == 'virtio'   # the first NIC is untouched
    assert nics[1].find('model').get('type') == 'rtl8139'  # the one with that MAC changed


def test_nic_matched_by_alias():
    nics = [{'bridge': 'br0', 'alias': 'ua-a'}, {'bridge': 'br0', 'alias': 'ua-b'}]
    root, _ed = new_guest(spec_of(name='g', interfaces=nics))
    text = to_string(root)
    # Listing them the other way round changes nothing: identity is the alias, not the order.
    _root, ed = merged(text, interfaces=[{'bridge': 'br0', 'alias': 'ua-b'}, {'bridge': 'br0', 'alias': 'ua-a'}])
    assert ed.changes == []
    # A source change on an alias-matched NIC edits that NIC in place.
    root2, ed = merged(text, interfaces=[{'network': 'default', 'alias': 'ua-b'}])
    nics = root2.findall('devices/interface')
    assert len(nics) == 2 and nics[1].get('type') == 'network'
    assert nics[1].find('source').attrib == {'network': 'default'}
    assert ed.fields() == ['interfaces:ua-b']


def test_a_third_nic_on_the_same_source_is_added():
    root, ed = merged(fixture('defined-q35-inactive.xml'),
                      interfaces=[{'network': 'default'}, {'network': 'default'}, {'network': 'default'}])
    assert len(root.findall('devices/interface')) == 4
    assert ed.fields() == ['interfaces:default#2']
    assert [(c.kind, c.key) for c in ed.changes] == [('add', 2)]


def test_existing_disk_keeps_its_address_and_cdrom_media_change_is_media():
    xml = fixture('defined-q35-inactive.xml')
    root, ed = merged(xml, disks=[{'path': '/var/lib/libvirt/images/virtkit-unit-fixture-q35.qcow2', 'cache': 'none'},
                                  {'device': 'cdrom', 'target': 'sda', 'path': '/iso/new.iso'}])
    vda, sda = root.findall('devices/disk')
    assert vda.find('address').attrib == {'type': 'pci', 'domain': '0x0000', 'bus': '0x06', 'slot': '0x00',
                                          'function': '0x0'}
    assert vda.find('driver').attrib == {'name': 'qemu', 'type': 'qcow2', 'cache': 'none'}
    assert sda.find('address').attrib == {'type': 'drive', 'controller': '0', 'bus': '0', 'target': '0', 'unit': '0'}
    assert sda.find('source').get('file') == '/iso/new.iso'
    assert [child.tag for child in sda] == ['driver', 'source', 'target', 'readonly', 'address']
    by_field = {c.field: (c.kind, c.key) for c in ed.changes}
    assert by_field == {'disks:vda': ('modify', 'vda'), 'disks:sda': ('media', 'sda')}
    # Ejecting: a cdrom listed without a source.
    root2, ed = merged(to_string(root), disks=[{'device': 'cdrom', 'target': 'sda'}])
    assert root2.find("devices/disk[@device='cdrom']/source") is None
    assert [(c.field, c.kind) for c in ed.changes] == [('disks:sda', 'media')]


def test_disk_source_swap_and_volume():
    xml = fixture('defined-q35-inactive.xml')
    root, ed = merged(xml, disks=[{'target': 'vda', 'pool': 'default', 'volume': 'web.qcow2'}])
    vda = root.find('devices/disk')
    assert vda.get('type') == 'volume'
    assert vda.find('source').attrib == {'pool': 'default', 'volume': 'web.qcow2'}
    assert [(c.field, c.kind) for c in ed.changes] == [('disks:vda', 'modify')]
    root, _ed = merged(xml, disks=[{'target': 'vda', 'path': '/dev/vg0/web'}])
    assert root.find('devices/disk').get('type') == 'block'
    assert root.find('devices/disk/source').attrib == {'dev': '/dev/vg0/web'}


def test_explicit_bus_is_owned_default_bus_is_not():
    xml = fixture('defined-q35-inactive.xml')
    _root, ed = merged(xml, disks=[{'target': 'vda', 'path': '/var/lib/libvirt/images/virtkit-unit-fixture-q35.qcow2'},
                                   {'device': 'cdrom', 'target': 'sda'}])
    assert ed.changes == []
    root, ed = merged(xml, disks=[{'target': 'vda', 'bus': 'scsi',
                                   'path': '/var/lib/libvirt/images/virtkit-unit-fixture-q35.qcow2'}])
    assert root.find('devices/disk/target').get('bus') == 'scsi'
    assert ed.fields() == ['disks:vda']


def test_new_disk_is_added_with_a_free_target():
    root, ed = merged(fixture('defined-q35-inactive.xml'),
                      disks=[{'path': '/var/lib/libvirt/images/virtkit-unit-fixture-q35.qcow2'}, {'path': '/img/data.raw'}])
    added = root.findall('devices/disk')[-1]
    assert added.find('target').attrib == {'dev': 'vdb', 'bus': 'virtio'}
    assert added.find('address') is None  # libvirt assigns one on define
    assert [(c.field, c.kind, c.key) for c in ed.changes] == [('disks:vdb', 'add', 'vdb')]


def test_hostdevs_matched_by_address_whatever_the_spelling():
    devs = [{'type': 'pci', 'address': '0000:0a:00.0'}, {'type': 'usb', 'vendor': '0x1D6B', 'product': '0002'}]
    root, _ed = new_guest(spec_of(name='g', hostdevs=devs))
    _root, ed = merged(to_string(root), hostdevs=[{'type': 'pci', 'address': '0a:00.0'},
                                                  {'type': 'usb', 'vendor': '1d6b', 'product': '0x0002'}])
    assert ed.changes == []
    # libvirt's own spelling of the rich guest's host devices, with guest-side addresses.
    options = {'hostdevs': RICH['hostdevs']}
    _root, ed = merged(fixture('rich-defined-inactive.xml'), **options)
    assert ed.changes == []


# ------------------------------------------------------------------ devices_exclusive

def test_devices_exclusive_removes_only_unlisted_devices_of_listed_kinds():
    xml = fixture('rich-defined-inactive.xml')
    root, ed = merged(xml, devices_exclusive=True,
                      interfaces=[{'network': 'default', 'mac': '52:54:00:12:34:56'}],
                      hostdevs=[{'type': 'usb', 'address': '1:2'}])
    macs = [n.find('mac').get('address') for n in root.findall('devices/interface')]
    assert macs == ['52:54:00:12:34:56']
    assert len(root.findall('devices/hostdev')) == 1
    assert len(root.findall('devices/disk')) == 4  # disks were not listed: all stay
    assert root.find('devices/rng') is not None and root.find('devices/graphics') is not None
    other_macs = [n.find('mac').get('address') for n in parse(xml).findall('devices/interface')]
    other_macs.remove('52:54:00:12:34:56')
    removed = sorted(c.field for c in ed.changes if c.kind == 'remove')
    assert removed == sorted(['hostdevs:0000:03:00.0', 'hostdevs:1d6b:0002']
                             + ['interfaces:' + mac for mac in other_macs])
    assert all(c.kind == 'remove' for c in ed.changes)


def test_devices_exclusive_with_disks():
    root, ed = merged(fixture('rich-defined-inactive.xml'), devices_exclusive=True,
                      disks=[{'target': 'sdb', 'device': 'cdrom'}])
    assert [d.find('target').get('dev') for d in root.findall('devices/disk')] == ['sdb']
    assert sorted((c.field, c.kind, c.key) for c in ed.changes) == [
        ('disks:sda', 'remove', 'sda'), ('disks:vda', 'remove', 'vda'), ('disks:vdb', 'remove', 'vdb')]
    assert len(root.findall('devices/interface')) == 4


def test_without_devices_exclusive_unlisted_devices_stay():
    _root, ed = merged(fixture('rich-defined-inactive.xml'), interfaces=[{'network': 'default'}],
                       disks=[{'target': 'vda', 'path': '/var/lib/libvirt/images/rich.qcow2'}],
                       hostdevs=[])
    assert ed.changes == []


# ------------------------------------------------------------------ ownership

def test_a_name_only_spec_changes_nothing_on_real_libvirt_xml():
    for name in ('running-inactive.xml', 'running-live.xml', 'defined-q35-inactive.xml', 'rich-defined-inactive.xml'):
        xml = fixture(name)
        root, ed = merged(xml)
        assert ed.changes == [], name
        assert canonical(root) == canonical(parse(xml)), name


def test_omitted_options_leave_values_alone():
    xml = fixture('rich-defined-inactive.xml')
    before = parse(xml)
    root, ed = merged(xml, memory='1536MiB')
    assert ed.fields() == ['memory']
    # Only currentMemory differs.
    root.find('currentMemory').text = before.findtext('currentMemory')
    assert canonical(root) == canonical(before)


def test_memory_above_the_maximum_raises_it():
    root, ed = merged(fixture('running-inactive.xml'), memory=256)
    assert root.findtext('memory') == str(256 * 1024)
    assert root.findtext('currentMemory') == str(256 * 1024)
    assert ed.fields() == ['max_memory', 'memory']


def test_lowering_the_maximum_clamps_current_memory():
    root, ed = merged(fixture('running-inactive.xml'), max_memory=32)  # current is 64 MiB
    assert root.findtext('memory') == root.findtext('currentMemory') == str(32 * 1024)
    assert ed.fields() == ['max_memory', 'memory']


def test_memory_in_other_units_is_read():
    xml = ("<domain type='qemu'><name>m</name><memory unit='GiB'>1</memory><currentMemory unit='MiB'>512"
           "</currentMemory><vcpu>1</vcpu><os><type>hvm</type></os></domain>")
    assert merged(xml, memory=512, max_memory='1GiB')[1].changes == []
    root, ed = merged(xml, memory=768)
    assert (root.find('currentMemory').get('unit'), root.findtext('currentMemory')) == ('KiB', str(768 * 1024))


@pytest.mark.parametrize('options, text, current, fields', [
    ({'vcpus': 2}, '2', None, ['vcpus']),                # the maximum: the current attribute goes
    ({'vcpus': 1}, '2', '1', []),
    ({'max_vcpus': 4}, '4', '1', ['max_vcpus']),         # the active count (1) stays
    ({'vcpus': 3}, '3', None, ['max_vcpus', 'vcpus']),   # above the maximum raises it
    ({'max_vcpus': 1}, '1', None, ['max_vcpus', 'vcpus']),
    ({'vcpus': 2, 'max_vcpus': 4}, '4', '2', ['max_vcpus', 'vcpus']),
])
def test_vcpu_rules(options, text, current, fields):
    root, ed = merged(fixture('running-inactive.xml'), **options)  # <vcpu current='1'>2</vcpu>
    vcpu = root.find('vcpu')
    assert (vcpu.text, vcpu.get('current')) == (text, current)
    assert ed.fields() == fields


@pytest.mark.parametrize('wanted, changes', [
    ('pc', False), ('pc-i440fx-7.2', False), ('q35', True), ('pc-i440fx-6.2', True)])
def test_machine_aliases_match_versioned_types(wanted, changes):
    root, ed = merged(fixture('running-inactive.xml'), machine=wanted)
    assert bool(ed.changes) == changes
    if changes:
        assert root.find('os/type').get('machine') == wanted and ed.fields() == ['machine']


def test_cpu_mode_change_drops_the_model():
    root, ed = merged(fixture('running-inactive.xml'), cpu={'mode': 'host-passthrough'})
    assert root.find('cpu').get('mode') == 'host-passthrough'
    assert root.find('cpu/model') is None
    assert ed.fields() == ['cpu']
    # libvirt's own fallback/match stay when the model is confirmed.
    root, ed = merged(fixture('running-inactive.xml'), cpu={'model': 'qemu64'})
    assert ed.changes == [] and root.find('cpu/model').get('fallback') == 'forbid'


def test_boot_devices_and_kernel_removal():
    root, ed = merged(fixture('running-inactive.xml'), boot={'devices': ['network', 'hd']})
    assert [b.get('dev') for b in root.findall('os/boot')] == ['network', 'hd']
    assert ed.fields() == ['boot']
    assert merged(fixture('running-inactive.xml'), boot={'devices': ['hd']})[1].changes == []
    rich = fixture('rich-defined-inactive.xml')
    root, ed = merged(rich, boot={'kernel': '', 'initrd': '', 'cmdline': ''})
    assert root.find('os/kernel') is None and root.find('os/initrd') is None and root.find('os/cmdline') is None
    assert ed.fields() == ['boot']


def test_title_and_description_removal():
    root, ed = merged(fixture('rich-defined-inactive.xml'), title='', description='')
    assert root.find('title') is None and root.find('description') is None
    assert ed.fields() == ['title', 'description']
    root, ed = merged(fixture('defined-q35-inactive.xml'), title='t')
    assert root.find('title').getprevious().tag == 'uuid'  # where libvirt keeps it


def test_secure_boot_off_keeps_the_firmware_feature_element():
    root, ed = merged(fixture('rich-defined-inactive.xml'), firmware='uefi', secure_boot=False)
    assert [f.get('enabled') for f in root.findall('os/firmware/feature')] == ['no', 'no']
    assert ed.fields() == ['secure_boot']


def test_graphics_port_minus_one_accepts_a_port_libvirt_picked():
    live = fixture('running-live.xml')  # <graphics type='vnc' port='5900' autoport='yes' ...>
    assert merged(live, graphics={'type': 'vnc', 'port': -1, 'listen': '127.0.0.1'})[1].changes == []
    fixed = live.replace("port='5900' autoport='yes'", "port='5901' autoport='no'")
    root, ed = merged(fixed, graphics={'type': 'vnc', 'port': -1})
    graphics = root.find('devices/graphics')
    assert graphics.get('autoport') == 'yes' and graphics.get('port') is None
    assert ed.fields() == ['graphics']
    root, ed = merged(live, graphics={'type': 'vnc', 'port': 5905})
    assert (root.find('devices/graphics').get('port'), root.find('devices/graphics').get('autoport')) == ('5905', 'no')


def test_graphics_type_switch_and_none():
    root, ed = merged(fixture('running-inactive.xml'), graphics={'type': 'spice'})
    assert [g.get('type') for g in root.findall('devices/graphics')] == ['spice']
    root, ed = merged(fixture('running-inactive.xml'), graphics={'type': 'none'})
    assert root.find('devices/graphics') is None and ed.fields() == ['graphics']


def test_serial_pty_on_live_xml_keeps_its_runtime_path():
    live = fixture('running-live.xml')
    root, ed = merged(live, serial={'type': 'pty'})
    assert ed.changes == []
    assert root.find('devices/serial/source').get('path') == '/dev/pts/3'
    root, ed = merged(live, serial={'type': 'file', 'path': '/var/log/s.log'})
    assert root.find('devices/serial/source').get('path') == '/var/log/s.log'
    assert ed.fields() == ['serial']


def test_rng_and_guest_agent_off_remove_them():
    root, ed = merged(fixture('running-inactive.xml'), rng=False, guest_agent=False)
    assert root.find('devices/rng') is None and root.find('devices/channel') is None
    assert ed.fields() == ['rng', 'guest_agent']
    assert merged(fixture('running-inactive.xml'), rng=True, guest_agent=True)[1].changes == []


def test_tpm_backend_switch():
    root, _ed = new_guest(spec_of(name='t', tpm={}))
    root2, ed = merged(to_string(root), tpm={'backend': 'passthrough', 'device': '/dev/tpm0'})
    backend = root2.find('devices/tpm/backend')
    assert backend.get('type') == 'passthrough' and backend.get('version') is None
    assert backend.find('device').get('path') == '/dev/tpm0'
    root3, ed = merged(to_string(root2), tpm={})
    assert root3.find('devices/tpm/backend/device') is None
    assert root3.find('devices/tpm/backend').get('version') == '2.0'


# ------------------------------------------------------------------ metadata and overrides

def test_metadata_is_owned_as_a_whole():
    xml = fixture('rich-defined-inactive.xml')
    root, ed = merged(xml, metadata={'owner': 'team-b'})
    assert xmerge.read_metadata(root) == {'owner': 'team-b'}
    assert ed.fields() == ['metadata']
    root, ed = merged(xml, metadata={})
    assert root.find('metadata') is None  # nothing else was in it
    assert xmerge.read_metadata(root) == {}
    # Other applications' metadata stays.
    other = xml.replace('<metadata>', '<metadata><app:x xmlns:app="urn:app">1</app:x>')
    root, _ed = merged(other, metadata={})
    assert root.find('metadata/{urn:app}x') is not None
    # List order is meaningful.
    _root, ed = merged(xml, metadata={'groups': ['production', 'web'], 'owner': 'team-a', 'tier': 1,
                                      'critical': True})
    assert ed.fields() == ['metadata']


def test_metadata_on_a_guest_without_it_lands_after_the_texts():
    root, _ed = merged(fixture('defined-q35-inactive.xml'), metadata={'a': 'b'}, title='T')
    assert [c.tag for c in root][:5] == ['name', 'uuid', 'title', 'metadata', 'memory']


def test_overrides_create_set_and_delete():
    xml = fixture('running-inactive.xml')
    root, ed = merged(xml, xml_overrides=[
        {'xpath': '/domain/features/hyperv/vapic', 'attributes': {'state': True}},
        {'xpath': '/domain/on_reboot', 'value': 'destroy'},
        {'xpath': '/domain/cpu/@check', 'state': 'absent'},
        {'xpath': '/domain/devices/input', 'state': 'absent'},
        {'xpath': '/domain/devices/interface/model/@type', 'value': 'e1000'},
        {'xpath': '/domain/name/text()', 'value': 'renamed'},
        {'xpath': '/domain/devices/graphics', 'attributes': {'listen': None}},
    ])
    assert root.find('features/hyperv/vapic').get('state') == 'yes'
    assert root.findtext('on_reboot') == 'destroy'
    assert root.find('cpu').get('check') is None
    assert root.find('devices/input') is None
    assert root.find('devices/interface/model').get('type') == 'e1000'
    assert root.findtext('name') == 'renamed'
    assert root.find('devices/graphics').get('listen') is None
    assert set(ed.fields()) == {'xml_overrides'}
    overrides = [
        {'xpath': '/domain/features/hyperv/vapic', 'attributes': {'state': True}},
        {'xpath': '/domain/cpu/@check', 'state': 'absent'},
        {'xpath': '/domain/name/text()', 'value': 'renamed'},
    ]
    assert remerge(root, name='renamed', xml_overrides=overrides) == []


def test_override_errors_are_one_line():
    xml = fixture('running-inactive.xml')
    with pytest.raises(VirtkitError, match=r"^xml_overrides\[0\]: '/domain/vcpu \* 2' selects a value"):
        merged(xml, xml_overrides=[{'xpath': '/domain/vcpu * 2', 'value': '1'}])
    with pytest.raises(VirtkitError, match=r"^xml_overrides\[1\]: .* matches nothing and is not a simple path"):
        merged(xml, xml_overrides=[{'xpath': '/domain/on_crash', 'value': 'destroy'},
                                   {'xpath': "/domain/devices/disk[@device='floppy']", 'value': 'x'}])
    with pytest.raises(VirtkitError, match=r"^xml_overrides\[0\]: .* selects something other than elements"):
        merged(xml, xml_overrides=[{'xpath': '/domain/namespace::*', 'value': 'x'}])
    commented = xml.replace('<devices>', '<devices><!-- a note -->')
    with pytest.raises(VirtkitError, match=r"^xml_overrides\[0\]: .* selects something other than elements"):
        merged(commented, xml_overrides=[{'xpath': '/domain/devices/comment()', 'value': 'x'}])


def test_overrides_on_our_metadata_namespace():
    root, _ed = new_guest(spec_of(name='m', metadata={'a': 'b'}, xml_overrides=[
        {'xpath': "/domain/metadata/virtkit:guest/virtkit:var[@name='a']", 'value': 'c'}]))
    assert xmerge.read_metadata(root) == {'a': 'c'}


def test_merge_does_not_touch_the_spec():
    spec = spec_of(**RICH)
    snapshot = copy.deepcopy(spec.__dict__)
    new_guest(spec)
    new_guest(spec)
    assert spec.__dict__ == snapshot


# ------------------------------------------------------------------ firmware as libvirt 9.0 reports it

UEFI_TPM = {'firmware': 'uefi', 'secure_boot': False, 'tpm': {'model': 'tpm-crb', 'version': '2.0'}}


def test_a_started_uefi_guest_is_still_uefi():
    # libvirt 9.0 drops <os firmware='efi'> from the live XML and shows the pflash
    # loader and the NVRAM it selected instead.
    root, ed = merged(fixture('uefi-tpm-live.xml'), **UEFI_TPM)
    assert root.find('os').get('firmware') is None
    assert ed.changes == []
    root, ed = merged(fixture('secure-boot-live.xml'), firmware='uefi', secure_boot=True)
    assert ed.changes == []
    root, ed = merged(fixture('uefi-tpm-inactive.xml'), **UEFI_TPM)
    assert ed.changes == []


@pytest.mark.parametrize('name', ['uefi-tpm-live.xml', 'uefi-tpm-inactive.xml', 'secure-boot-live.xml'])
def test_bios_removes_uefi_and_never_writes_firmware_bios(name):
    root, ed = merged(fixture(name), firmware='bios')
    os_el = root.find('os')
    assert ed.fields() == ['firmware']
    assert os_el.get('firmware') is None
    assert [el.tag for el in os_el if el.tag in ('loader', 'nvram', 'firmware')] == []
    assert remerge(root, firmware='bios') == []


def test_bios_on_a_new_or_bios_guest_changes_nothing():
    # <os firmware='bios'> makes libvirt 9.0 look for a SeaBIOS firmware descriptor,
    # which Debian does not ship: "Unable to find any firmware to satisfy 'bios'".
    root, _ed = new_guest(spec_of(name='b', firmware='bios', secure_boot=False))
    assert root.find('os').get('firmware') is None
    assert root.find('os/firmware') is None
    validate_domain_xml(to_string(root))
    xml = fixture('running-inactive.xml')
    assert merged(xml, firmware='bios')[1].changes == []
    assert merged(xml.replace('<os>', "<os firmware='bios'>"), firmware='bios')[1].changes == []


def test_uefi_on_a_bios_guest_is_a_firmware_change():
    root, ed = merged(fixture('running-inactive.xml'), firmware='uefi')
    assert ed.fields() == ['firmware']
    assert root.find('os').get('firmware') == 'efi'


def test_firmware_of():
    assert xmerge.firmware_of(parse(fixture('uefi-tpm-live.xml')).find('os')) == 'efi'
    assert xmerge.firmware_of(parse(fixture('uefi-tpm-inactive.xml')).find('os')) == 'efi'
    assert xmerge.firmware_of(parse(fixture('running-live.xml')).find('os')) == 'bios'
    rom = parse("<domain><os><loader type='rom'>/usr/share/seabios/bios.bin</loader></os></domain>")
    assert xmerge.firmware_of(rom.find('os')) == 'bios'
