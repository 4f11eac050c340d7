# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Updates validate: merge() onto XML that libvirt wrote (fixtures/), with and without
xml_overrides, must give XML that libvirt's domain schema accepts, and merging the same
request again must change nothing.

test_merge.py validates new guests; this file validates the UPDATE path, which is what
runs on every rerun against an existing guest. Schema validation skips without
virt-xml-validate/xmllint on a developer machine and fails in CI (tests/unit/helpers.py).
"""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse, to_string
from ansible_collections.virtkit.guests.tests.unit.helpers import RICH, fixture, spec_of, validate_domain_xml

FIXTURES = ['running-inactive.xml', 'defined-q35-inactive.xml', 'rich-defined-inactive.xml']
RUNNING = 'running-inactive.xml'      # pc-i440fx, bios, a NIC, pty serial, VNC, agent, rng
Q35 = 'defined-q35-inactive.xml'      # q35, a qcow2 disk, an empty SATA cdrom, three NICs
RICH_XML = 'rich-defined-inactive.xml'  # q35, UEFI + secure boot, direct kernel boot, everything


def merge_onto(fixture_name, **options):
    """(root, editor): ``options`` merged onto a parsed copy of fixture ``fixture_name``."""
    root = parse(fixture(fixture_name))
    options.setdefault('name', root.findtext('name'))
    spec = spec_of(root.find('os/type').get('machine'), **options)
    return root, xmerge.merge(root, spec)


def again(root, **options):
    """The changes of merging the same request onto the serialized result (define, re-read)."""
    copy = parse(to_string(root))
    options.setdefault('name', copy.findtext('name'))
    return xmerge.merge(copy, spec_of(copy.find('os/type').get('machine'), **options)).changes


UPDATES = {
    'memory and vCPUs up, maximum raised': (RUNNING, {
        'memory': '512MiB', 'max_memory': '1GiB', 'vcpus': 3, 'max_vcpus': 4}),
    'memory down below the current maximum': (Q35, {'memory': 64}),
    'cpu: custom model to host-passthrough with topology': (RUNNING, {
        'vcpus': 4, 'max_vcpus': 4, 'cpu': {'mode': 'host-passthrough', 'sockets': 1, 'cores': 2, 'threads': 2}}),
    'cpu: passthrough to a custom model': (RICH_XML, {'cpu': {'mode': 'custom', 'model': 'Nehalem'}}),
    'add a disk, a cdrom with media and a volume': (RUNNING, {'disks': [
        {'path': '/var/lib/libvirt/images/a.qcow2', 'format': 'qcow2'},
        {'device': 'cdrom', 'path': '/var/lib/libvirt/images/seed.iso'},
        {'pool': 'default', 'volume': 'data.raw', 'format': 'raw', 'bus': 'scsi'}]}),
    'swap disk source, cache and readonly; insert cdrom media': (Q35, {'disks': [
        {'target': 'vda', 'path': '/var/lib/libvirt/images/other.qcow2', 'cache': 'none', 'readonly': True},
        {'target': 'sda', 'device': 'cdrom', 'path': '/iso/install.iso'}]}),
    'eject the cdrom media': (RICH_XML, {'disks': [{'target': 'sdc', 'device': 'cdrom'}]}),
    'add NICs of every kind and change a model': (RUNNING, {'interfaces': [
        {'network': 'default', 'model': 'e1000e'},
        {'bridge': 'br0', 'mac': '52:54:00:00:00:21'},
        {'direct': 'eth0', 'direct_mode': 'bridge', 'alias': 'ua-uplink'}]}),
    'devices_exclusive drops unlisted NICs and disks': (Q35, {
        'devices_exclusive': True, 'interfaces': [{'network': 'default'}],
        'disks': [{'target': 'vda', 'path': '/var/lib/libvirt/images/vk.qcow2'}]}),
    'bios guest to direct kernel boot and back to a boot order': (RUNNING, {
        'boot': {'kernel': '/var/lib/libvirt/boot/vmlinuz', 'initrd': '/var/lib/libvirt/boot/initrd.img',
                 'cmdline': 'console=ttyS0'}}),
    'drop direct kernel boot for a boot order': (RICH_XML, {
        'boot': {'devices': ['cdrom', 'hd'], 'kernel': '', 'initrd': '', 'cmdline': ''}}),
    'secure boot off on a UEFI guest': (RICH_XML, {'secure_boot': False}),
    'VNC to SPICE on a fixed port': (RUNNING, {'graphics': {'type': 'spice', 'port': 5931, 'listen': '0.0.0.0'}}),
    'graphics removed': (RUNNING, {'graphics': {'type': 'none'}}),
    'VNC with a password onto a headless guest': (Q35, {'graphics': {'type': 'vnc', 'password': 's3cret'}}),
    'serial from pty to a file with a log': (RUNNING, {
        'serial': {'type': 'file', 'path': '/var/log/libvirt/x-serial.log', 'log': '/var/log/libvirt/x.log'}}),
    'serial file back to pty': (RICH_XML, {'serial': {'type': 'pty'}}),
    'add an emulated TPM and host devices': (RUNNING, {
        'tpm': {'model': 'tpm-tis', 'version': '2.0'},
        'hostdevs': [{'type': 'pci', 'address': '0000:03:00.0'}, {'type': 'usb', 'vendor': '1d6b', 'product': '0002'}]}),
    'passthrough TPM': (Q35, {'tpm': {'backend': 'passthrough', 'device': '/dev/tpm0', 'model': 'tpm-crb'}}),
    'rng and guest agent off': (RUNNING, {'rng': False, 'guest_agent': False}),
    'rng and guest agent on': (Q35, {'rng': True, 'guest_agent': True}),
    'title, description and metadata': (RUNNING, {
        'title': 'Web 1', 'description': 'front end <b> & co', 'metadata': {'groups': ['web'], 'tier': 2}}),
    'metadata replaced and texts cleared': (RICH_XML, {'metadata': {'owner': 'team-b'}, 'title': '', 'description': ''}),
    'the whole rich request onto another guest': (Q35, dict(RICH, name=None, tpm=None)),
    'overrides: create, set and delete': (RUNNING, {'xml_overrides': [
        {'xpath': '/domain/features/hyperv/relaxed', 'attributes': {'state': 'on'}},
        {'xpath': '/domain/features/hyperv/vapic', 'attributes': {'state': 'on'}},
        {'xpath': '/domain/on_crash', 'value': 'restart'},
        {'xpath': '/domain/on_reboot', 'value': 'destroy'},
        {'xpath': '/domain/clock/@offset', 'value': 'localtime'},
        {'xpath': '/domain/cpu/@check', 'state': 'absent'},
        {'xpath': '/domain/devices/input', 'state': 'absent'},
        {'xpath': '/domain/devices/interface/model/@type', 'value': 'rtl8139'}]}),
    'overrides together with owned fields': (Q35, {
        'memory': 256, 'interfaces': [{'network': 'default', 'model': 'virtio'}],
        'xml_overrides': [
            {'xpath': '/domain/memoryBacking/source', 'attributes': {'type': 'memfd'}},
            {'xpath': '/domain/memoryBacking/access', 'attributes': {'mode': 'shared'}},
            {'xpath': '/domain/devices/memballoon/@model', 'value': 'none'},
            {'xpath': '/domain/devices/memballoon/address', 'state': 'absent'}]}),
    'overrides on a UEFI guest': (RICH_XML, {'xml_overrides': [
        {'xpath': '/domain/features/smm', 'attributes': {'state': 'on'}},
        {'xpath': '/domain/os/bootmenu', 'attributes': {'enable': 'yes', 'timeout': '3000'}}]}),
}


@pytest.mark.parametrize('case', sorted(UPDATES))
def test_updates_validate_and_converge(case):
    fixture_name, options = UPDATES[case]
    options = {k: v for k, v in options.items() if v is not None}
    root, ed = merge_onto(fixture_name, **options)
    assert ed.changes, 'the update changed nothing: the case does not test an update'
    validate_domain_xml(to_string(root))
    assert again(root, **options) == []


@pytest.mark.parametrize('name', FIXTURES)
def test_a_name_only_request_keeps_the_fixture_valid_and_unchanged(name):
    root, ed = merge_onto(name)
    assert ed.changes == []
    validate_domain_xml(to_string(root))


@pytest.mark.parametrize('name', FIXTURES)
def test_the_rich_request_onto_every_fixture_validates(name):
    # the fixture's own name; no emulated TPM (it needs swtpm on the host that defines it)
    options = {key: value for key, value in RICH.items() if key not in ('name', 'tpm')}
    root, _ed = merge_onto(name, **options)
    validate_domain_xml(to_string(root))
    assert again(root, **options) == []


def test_the_validator_rejects_what_an_override_breaks():
    """The checks above can fail: an override that yields XML libvirt's schema refuses."""
    root, ed = merge_onto(RUNNING, xml_overrides=[{'xpath': '/domain/devices/bogus', 'attributes': {'x': '1'}}])
    assert ed.changes
    with pytest.raises(AssertionError, match='libvirt domain schema rejects the XML'):
        validate_domain_xml(to_string(root))
