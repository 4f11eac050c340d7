# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the storage tests: a transient dir pool on the real libvirtd (skipped
when qemu:///system is not reachable) and libvirt's embedded test driver."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

IMAGES = '/var/lib/libvirt/images'


@pytest.fixture
def system_conn():
    if _libvirt.libvirt is None:
        pytest.skip('libvirt-python is not installed')
    try:
        conn = _libvirt.Connection('qemu:///system')
    except VirtkitError as err:
        pytest.skip('qemu:///system is not reachable: %s' % err)
    yield conn
    conn.close()


@pytest.fixture
def system_pool(system_conn):
    """(connection, pool name, directory) of a transient dir pool, removed afterwards."""
    if not os.path.isdir(IMAGES) or not os.access(IMAGES, os.W_OK):
        pytest.skip('%s is not writable' % IMAGES)
    path = tempfile.mkdtemp(prefix='vk-test-unit-', dir=IMAGES)
    name = 'vk-test-unit-%s' % uuid.uuid4().hex[:8]
    xml = "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (name, path)
    pool = system_conn.conn.storagePoolCreateXML(xml, 0)
    try:
        yield system_conn, name, path
    finally:
        try:
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
            pool.destroy()
        except _libvirt.libvirt.libvirtError:
            pass
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def test_conn():
    if _libvirt.libvirt is None:
        pytest.skip('libvirt-python is not installed')
    conn = _libvirt.Connection('test:///default')
    yield conn
    conn.close()


@pytest.fixture
def validate_xml():
    """``validate_xml(text, schema)`` asserts libvirt's schema accepts the XML (virt-xml-validate);
    skips without the tools, fails in CI."""
    from ansible_collections.virtkit.guests.tests.unit.helpers import schema_validator, validate_xml as check
    schema_validator()  # skip (or fail in CI) before the test runs, not halfway through it
    return check


def module_params(spec, **options):
    """Module parameters as AnsibleModule would pass them (defaults filled, types checked)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    result = ArgumentSpecValidator(spec).validate(dict(options))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters
