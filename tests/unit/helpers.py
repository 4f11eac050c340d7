# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the unit tests of the libvirt_domain code.

Import as ``ansible_collections.virtkit.guests.tests.unit.helpers`` (tests/unit/conftest.py
puts the collection on sys.path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.spec import ARGUMENT_SPEC, validate
from ansible_collections.virtkit.guests.plugins.module_utils._xml import to_string

UNIT = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(UNIT, 'plugins', 'module_utils', '_domain', 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def params(**options):
    """Module parameters as AnsibleModule would pass them (defaults filled, types checked)."""
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(options))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def spec_of(current_machine=None, **options):
    return validate(params(**options), current_machine)


def new_guest(spec, virt_type='qemu', arch='x86_64'):
    """(root, editor) for a new guest: the spec merged onto the skeleton."""
    root = xmerge.skeleton(spec, spec.virt_type or virt_type, spec.arch or arch)
    return root, xmerge.merge(root, spec)


def in_ci():
    """True when the CI environment variable says so (CI runs with CI=true)."""
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')


def schema_validator():
    """Path of virt-xml-validate. Without it (or without xmllint, which it runs) the test is
    skipped on a developer machine but FAILS in CI: there schema validation must run."""
    tool = shutil.which('virt-xml-validate')
    if tool is None or shutil.which('xmllint') is None:
        message = ('virt-xml-validate (libvirt-clients) or xmllint (libxml2-utils) is not installed; '
                   'scripts/setup-host.sh packages installs both')
        if in_ci():
            pytest.fail(message + ' (CI is set: schema validation must not be skipped)', pytrace=False)
        pytest.skip(message)
    return tool


def validate_xml(text, schema):
    """Assert that libvirt's ``schema`` (domain, network, pool, ...) accepts ``text`` (a string
    or an lxml element), with virt-xml-validate."""
    tool = schema_validator()
    text = text if isinstance(text, str) else to_string(text)
    handle = tempfile.NamedTemporaryFile('w', suffix='.xml', prefix='virtkit-%s-' % schema, delete=False)
    try:
        with handle:
            handle.write(text)
        proc = subprocess.run([tool, handle.name, schema], capture_output=True, text=True, timeout=60,
                              check=False)
    finally:
        os.unlink(handle.name)
    assert proc.returncode == 0, 'libvirt %s schema rejects the XML: %s%s\n%s' % (
        schema, proc.stdout, proc.stderr, text)


def validate_domain_xml(text):
    """Assert that libvirt's domain schema accepts ``text`` (runs virt-xml-validate)."""
    validate_xml(text, 'domain')


# A request that uses nearly every option at once (q35, UEFI + secure boot, direct kernel
# boot, every disk and NIC flavour, every singleton device, metadata and overrides).
RICH = dict(
    name='rich',
    virt_type='qemu',
    machine='q35',
    memory='1GiB',
    max_memory='2GiB',
    vcpus=2,
    max_vcpus=4,
    cpu={'mode': 'custom', 'model': 'qemu64', 'sockets': 1, 'cores': 2, 'threads': 2},
    firmware='uefi',
    secure_boot=True,
    boot={'kernel': '/var/lib/libvirt/boot/vmlinuz', 'initrd': '/var/lib/libvirt/boot/initrd.img',
          'cmdline': 'console=ttyS0 root=LABEL=root'},
    disks=[
        {'path': '/var/lib/libvirt/images/rich.qcow2', 'format': 'qcow2', 'cache': 'none'},
        {'pool': 'default', 'volume': 'rich-data.raw', 'format': 'raw'},
        {'device': 'cdrom', 'path': '/var/lib/libvirt/images/seed.iso', 'format': 'iso'},
        {'device': 'cdrom'},
    ],
    interfaces=[
        {'network': 'default'},
        {'network': 'default', 'mac': '52:54:00:12:34:56'},
        {'bridge': 'br0', 'alias': 'ua-backend', 'model': 'e1000e'},
        {'direct': 'eth0', 'direct_mode': 'vepa', 'mac': '52:54:00:12:34:57', 'alias': 'ua-uplink'},
    ],
    graphics={'type': 'vnc', 'listen': '127.0.0.1', 'port': -1, 'password': 's3cret'},
    serial={'type': 'file', 'path': '/var/log/libvirt/rich-serial.log', 'log': '/var/log/libvirt/rich-console.log'},
    tpm={'model': 'tpm-crb', 'backend': 'emulator', 'version': '2.0'},
    hostdevs=[
        {'type': 'pci', 'address': '0000:03:00.0'},
        {'type': 'usb', 'vendor': '1d6b', 'product': '0002'},
        {'type': 'usb', 'address': '1:2'},
    ],
    rng=True,
    guest_agent=True,
    title='A rich guest',
    description='Every option at once',
    metadata={'groups': ['web', 'production'], 'owner': 'team-a', 'tier': 1, 'critical': True},
    xml_overrides=[
        {'xpath': '/domain/features/hyperv/relaxed', 'attributes': {'state': 'on'}},   # created
        {'xpath': '/domain/on_crash', 'value': 'restart'},                              # created
        {'xpath': '/domain/vcpu/@placement', 'state': 'absent'},                        # attribute deleted
        {'xpath': '/domain/clock/@offset', 'value': 'utc'},                             # created attribute
    ],
)


def trusted(text):
    """Text as ansible-core holds what it read from a playbook or an inventory file: trusted as a
    template on 2.19+ (data tagging); any string is one on 2.17/2.18."""
    from ansible_collections.virtkit.guests.plugins.plugin_utils import _untrusted
    if _untrusted.DATA_TAGGING:
        from ansible.template import trust_as_template
        return trust_as_template(text)
    return text


def render(expression, variables):
    """``{{ expression }}`` rendered with ``variables`` as a play's template is, on the running core."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    return Templar(loader=DataLoader(), variables=variables).template(trusted('{{ %s }}' % expression))
