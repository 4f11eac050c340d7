# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=absent undefines with the flags that remove NVRAM, TPM state, snapshot and
checkpoint metadata and a managed save image: a UEFI guest, a guest with snapshots or a
saved guest is removed, not refused.

The guest lives in libvirt's test driver (test:///default); a recording proxy around its
virDomain object captures every undefine call and can make one fail.
"""

from __future__ import annotations


import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.tests.unit.helpers import params

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'

if libvirt is not None:
    WANTED = {
        'VIR_DOMAIN_UNDEFINE_MANAGED_SAVE': libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
        'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA': libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
        'VIR_DOMAIN_UNDEFINE_NVRAM': libvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
        'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA': libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
        'VIR_DOMAIN_UNDEFINE_TPM': libvirt.VIR_DOMAIN_UNDEFINE_TPM,
    }
    FORBIDDEN = {  # keeping NVRAM or TPM state would leave files behind the user asked to remove
        'VIR_DOMAIN_UNDEFINE_KEEP_NVRAM': libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM,
        'VIR_DOMAIN_UNDEFINE_KEEP_TPM': libvirt.VIR_DOMAIN_UNDEFINE_KEEP_TPM,
    }


def libvirt_error(code, message):
    err = libvirt.libvirtError.__new__(libvirt.libvirtError)
    Exception.__init__(err, message)
    err.err = (code, libvirt.VIR_FROM_DOMAIN, message, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return err


class RecordingDomain:
    """A virDomain that records undefine calls; ``fail`` maps a call number to an error."""

    def __init__(self, dom, log, fail):
        self._dom, self._log, self._fail = dom, log, fail

    def __getattr__(self, attr):
        return getattr(self._dom, attr)

    def _record(self, call):
        self._log.append(call)
        error = self._fail.get(len(self._log))
        if error is not None:
            raise error

    def undefineFlags(self, flags=0):
        self._record(('undefineFlags', flags))
        # The test driver refuses NVRAM/TPM/checkpoint flags it has nothing for: the
        # flags were recorded, now remove the guest the way the driver can.
        return self._dom.undefineFlags(flags & (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA))

    def undefine(self):
        self._record(('undefine', None))
        return self._dom.undefine()


def recording(conn, fail=None):
    """Make ``conn`` hand out recording domains; returns the call log."""
    log = []
    real_lookup = conn.domain

    def domain(guest):
        dom = real_lookup(guest)
        return None if dom is None else RecordingDomain(dom, log, fail or {})

    conn.domain = domain
    return log


def define(conn, name, **options):
    DomainManager(conn).run(params(uri=URI, name=name, memory=64, **options), check_mode=False)


def absent(conn, name, check=False):
    return DomainManager(conn).run(params(uri=URI, name=name, state='absent'), check_mode=check)


def test_absent_passes_every_cleanup_flag(conn, name):
    define(conn, name)
    log = recording(conn)
    result = absent(conn, name)
    assert result['changed'] and [a['action'] for a in result['actions']] == ['undefine']
    assert log == [('undefineFlags', sum(WANTED.values()))]
    flags = log[0][1]
    for flag, value in WANTED.items():
        assert flags & value, '%s is missing' % flag
    for flag, value in FORBIDDEN.items():
        assert not flags & value, '%s must not be set' % flag
    assert conn.domain(name) is None


def test_absent_on_a_running_guest_powers_off_then_undefines_with_the_flags(conn, name):
    define(conn, name, state='running')
    log = recording(conn)
    result = absent(conn, name)
    assert [a['action'] for a in result['actions']] == ['destroy', 'undefine']
    assert log == [('undefineFlags', sum(WANTED.values()))]
    assert conn.domain(name) is None


def test_absent_removes_snapshot_metadata_too(conn, name):
    """A guest with a snapshot: a plain undefine would refuse it."""
    define(conn, name)
    conn.conn.lookupByName(name).snapshotCreateXML('<domainsnapshot><name>s1</name></domainsnapshot>', 0)
    with pytest.raises(libvirt.libvirtError):
        conn.conn.lookupByName(name).undefine()
    log = recording(conn)
    absent(conn, name)
    assert log[0][1] & libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    assert conn.domain(name) is None


def test_check_mode_and_absent_again_undefine_nothing(conn, name):
    define(conn, name)
    log = recording(conn)
    assert absent(conn, name, check=True)['changed']
    assert log == [] and conn.domain(name) is not None
    absent(conn, name)
    del log[:]
    result = absent(conn, name)
    assert not result['changed'] and log == []


@pytest.mark.parametrize('code', ['VIR_ERR_NO_SUPPORT', 'VIR_ERR_INVALID_ARG'])
def test_old_libvirt_without_the_flags_falls_back_to_a_plain_undefine(conn, name, code):
    define(conn, name)
    log = recording(conn, fail={1: libvirt_error(getattr(libvirt, code), 'unsupported flags (0x34)')})
    result = absent(conn, name)
    assert result['changed']
    assert log[0] == ('undefineFlags', sum(WANTED.values()))
    assert log[-1][0] in ('undefine', 'undefineFlags')
    assert conn.domain(name) is None


def test_a_guest_gone_meanwhile_is_not_an_error(conn, name):
    define(conn, name)
    log = recording(conn, fail={1: libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found: '%s'" % name)})
    assert absent(conn, name)['changed']
    assert log == [('undefineFlags', sum(WANTED.values()))]


def test_other_undefine_failures_are_one_line(conn, name):
    define(conn, name)
    recording(conn, fail={1: libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID,
                                           'Requested operation is not valid: cannot undefine domain with nvram')})
    with pytest.raises(VirtkitError) as exc:
        absent(conn, name)
    assert str(exc.value) == ('%s: undefine failed: Requested operation is not valid: '
                              'cannot undefine domain with nvram' % name)
    assert conn.domain(name) is not None  # nothing half-done: the guest is still defined
