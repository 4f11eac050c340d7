# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""explain(): every libvirtError becomes one line with the likely cause.

The errors are fabricated with the code, domain and message libvirt 9 raises for each
cause (the messages are copied from real failures), so no daemon is needed.
"""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, explain, libvirt

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')


def fake_error(code_name, message, domain_name='VIR_FROM_NONE'):
    """A libvirtError as the bindings raise it, without touching libvirt's last-error state."""
    err = libvirt.libvirtError.__new__(libvirt.libvirtError)
    Exception.__init__(err, message)
    code = getattr(libvirt, code_name) if code_name else None
    err.err = None if code is None else (code, getattr(libvirt, domain_name), message, libvirt.VIR_ERR_ERROR,
                                         None, None, None, 0, 0)
    return err


CASES = {
    'daemon not running (no socket)': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
        "libvirtd is not running or its socket is missing (Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock': No such file or directory)"),
    'daemon not running (stale socket)': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused",
        "libvirtd is not running or its socket is missing (Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock': Connection refused)"),
    'permission denied on the socket': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied",
        "permission denied; run as root or as a member of the libvirt group (Failed to connect socket to "
        "'/var/run/libvirt/libvirt-sock': Permission denied)"),
    'polkit without an agent': (
        'VIR_ERR_AUTH_UNAVAILABLE', 'VIR_FROM_POLKIT',
        "authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'",
        "polkit did not authorize this user and no agent could ask; run as root or as a member of the libvirt "
        "group (authentication unavailable: no polkit agent available to authenticate action "
        "'org.libvirt.unix.manage')"),
    'authentication failed': (
        'VIR_ERR_AUTH_FAILED', 'VIR_FROM_POLKIT',
        'authentication failed: access denied by policy',
        'permission denied; run as root or as a member of the libvirt group '
        '(authentication failed: access denied by policy)'),
    'authentication cancelled': (
        'VIR_ERR_AUTH_CANCELLED', 'VIR_FROM_AUTH',
        'authentication cancelled: client refused to authenticate',
        'permission denied; run as root or as a member of the libvirt group '
        '(authentication cancelled: client refused to authenticate)'),
    'access control': (
        'VIR_ERR_ACCESS_DENIED', 'VIR_FROM_ACCESS',
        "access denied: 'vm1' denied access",
        "permission denied by libvirt's access control for this user (access denied: 'vm1' denied access)"),
    'read-only connection': (
        'VIR_ERR_OPERATION_DENIED', 'VIR_FROM_NONE',
        'operation forbidden: read only access prevents virDomainDefineXMLFlags',
        'the connection is read-only or forbids this operation '
        '(operation forbidden: read only access prevents virDomainDefineXMLFlags)'),
    'no such domain': (
        'VIR_ERR_NO_DOMAIN', 'VIR_FROM_QEMU',
        "Domain not found: no domain with matching name 'vm1'",
        "the guest does not exist (Domain not found: no domain with matching name 'vm1')"),
    'no such network': (
        'VIR_ERR_NO_NETWORK', 'VIR_FROM_NETWORK',
        "Network not found: no network with matching name 'lab'",
        "the network does not exist (Network not found: no network with matching name 'lab')"),
    'no such pool': (
        'VIR_ERR_NO_STORAGE_POOL', 'VIR_FROM_STORAGE',
        "Storage pool not found: no storage pool with matching name 'fast'",
        "the storage pool does not exist (Storage pool not found: no storage pool with matching name 'fast')"),
    'no such volume': (
        'VIR_ERR_NO_STORAGE_VOL', 'VIR_FROM_STORAGE',
        "Storage volume not found: no storage vol with matching name 'a.qcow2'",
        "the storage volume does not exist (Storage volume not found: no storage vol with matching name "
        "'a.qcow2')"),
    'timeout': (
        'VIR_ERR_OPERATION_TIMEOUT', 'VIR_FROM_QEMU',
        'Timed out during operation: cannot acquire state change lock',
        'libvirt timed out (Timed out during operation: cannot acquire state change lock)'),
    'name clash (other uuid)': (
        'VIR_ERR_OPERATION_FAILED', 'VIR_FROM_DOMAIN',
        "operation failed: domain 'vm1' already exists with uuid 8f2f5bd4-3c1e-4a5e-9f0a-55d7f1f4d7a1",
        "name clash: operation failed: domain 'vm1' already exists with uuid 8f2f5bd4-3c1e-4a5e-9f0a-55d7f1f4d7a1"),
    'name clash (domain exists)': (
        'VIR_ERR_DOM_EXIST', 'VIR_FROM_DOMAIN',
        "Requested operation is not valid: domain 'vm1' is already active",
        "name clash: Requested operation is not valid: domain 'vm1' is already active"),
    'name clash (network exists)': (
        'VIR_ERR_NETWORK_EXIST', 'VIR_FROM_NETWORK',
        "operation failed: network is already active as 'lab'",
        "name clash: operation failed: network is already active as 'lab'"),
    'ssh: unknown host key': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        'Cannot recv data: Host key verification failed.: Connection reset by peer',
        'SSH does not know the host key of the libvirt host; add it to known_hosts (or set no_verify=1 in '
        'the URI) (Cannot recv data: Host key verification failed.: Connection reset by peer)'),
    'ssh: key refused': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        'Cannot recv data: root@127.0.0.1: Permission denied (publickey).: Connection reset by peer',
        'SSH login to the libvirt host was refused; check the user and keyfile= of the URI, or the ssh-agent '
        '(Cannot recv data: root@127.0.0.1: Permission denied (publickey).: Connection reset by peer)'),
    'ssh: sshd not listening': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        'Cannot recv data: ssh: connect to host 127.0.0.1 port 1: Connection refused: Connection reset by peer',
        'the libvirt host cannot be reached over SSH (Cannot recv data: ssh: connect to host 127.0.0.1 '
        'port 1: Connection refused: Connection reset by peer)'),
    'ssh: no netcat on the host': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_RPC',
        'End of file while reading data: sh: 1: nc: not found: Input/output error',
        'the libvirt host lacks the proxy command of the SSH transport (netcat or virt-ssh-helper; '
        'proxy=native in the URI uses virt-ssh-helper) (End of file while reading data: sh: 1: nc: not found: '
        'Input/output error)'),
    'qemu cannot read a disk': (
        'VIR_ERR_SYSTEM_ERROR', 'VIR_FROM_STORAGE',
        "Cannot access storage file '/srv/pool/vm1.qcow2' (as uid:64055, gid:64055): Permission denied",
        "the QEMU process (uid 64055, gid 64055) may not read the file; check the permissions of the file and "
        "of its directories (Cannot access storage file '/srv/pool/vm1.qcow2' (as uid:64055, gid:64055): "
        "Permission denied)"),
    'swtpm_setup failed': (
        'VIR_ERR_INTERNAL_ERROR', 'VIR_FROM_TPM',
        "internal error: Could not run '/usr/bin/swtpm_setup'. exitstatus: 1; Check error log "
        "'/var/log/swtpm/libvirt/qemu/vm1-swtpm.log' for details.",
        "the guest's emulated TPM could not be set up; the swtpm log named in libvirt's message "
        "says why (often /var/lib/swtpm-localca is not writable by qemu.conf's swtpm_user, tss by "
        "default) (internal error: "
        "Could not run '/usr/bin/swtpm_setup'. exitstatus: 1; Check error log "
        "'/var/log/swtpm/libvirt/qemu/vm1-swtpm.log' for details.)"),
    'anything else stays as libvirt said it': (
        'VIR_ERR_OPERATION_INVALID', 'VIR_FROM_DOMAIN',
        'Requested operation is not valid: domain is not running',
        'Requested operation is not valid: domain is not running'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_explain_names_the_cause(case):
    code, domain, message, cause = CASES[case]
    assert explain(fake_error(code, message, domain), 'vm1', 'start') == 'vm1: start failed: %s' % cause


def test_explain_makes_one_line_of_a_multiline_message():
    err = fake_error('VIR_ERR_INTERNAL_ERROR', 'process exited while connecting to monitor:\n  qemu: \tbad option\n')
    assert explain(err, 'vm1', 'start') == 'vm1: start failed: process exited while connecting to monitor: qemu: bad option'


def test_explain_without_error_details():
    """A libvirtError that carries no error tuple (old bindings, Python-side raise) still reads."""
    err = fake_error(None, 'virDomainCreate() failed')
    assert err.get_error_code() is None
    assert explain(err, 'vm1', 'start') == 'vm1: start failed: virDomainCreate() failed'


def test_explain_codes_missing_from_the_bindings_match_nothing(monkeypatch):
    monkeypatch.delattr(libvirt, 'VIR_ERR_AUTH_UNAVAILABLE')
    err = fake_error(None, 'something odd')
    assert _libvirt._code('VIR_ERR_AUTH_UNAVAILABLE') == -1
    assert explain(err, 'vm1', 'start') == 'vm1: start failed: something odd'


def test_connect_failure_is_one_line_with_the_cause():
    """A real libvirt error: a unix socket that does not exist."""
    with pytest.raises(VirtkitError) as exc:
        Connection('qemu:///system?socket=/nonexistent/virtkit-unit.sock')
    msg = str(exc.value)
    assert '\n' not in msg
    assert msg.startswith('qemu:///system?socket=/nonexistent/virtkit-unit.sock: connect failed: '
                          'libvirtd is not running or its socket is missing (')


def test_call_translates_libvirt_errors():
    conn = Connection('test:///default')
    try:
        dom = conn.conn.lookupByName('test')
        with pytest.raises(VirtkitError) as exc:
            conn.call('test', 'define', conn.conn.defineXML,
                      "<domain type='test'><name>test</name><memory>1024</memory><os><type>hvm</type></os></domain>")
        assert str(exc.value).startswith('test: define failed: name clash: ')
        assert dom.isActive()  # the existing guest is untouched
        assert conn.domain('virtkit-unit-no-such-guest') is None
    finally:
        conn.close()


@pytest.mark.parametrize('uri, resolved, local', [
    ('qemu:///system', 'qemu:///system', True),
    ('test:///default', 'test:///default', True),
    ('qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k', 'qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k', False),
    ('qemu+tcp://localhost/system', 'qemu+tcp://localhost/system', False),
    # a libvirt.conf alias: the name says nothing, the connection's URI does
    ('hv1', 'qemu+ssh://root@hv1.example.com/system', False),
    ('here', 'qemu:///system', True),
])
def test_is_local_follows_the_connections_uri(uri, resolved, local):
    conn = Connection.__new__(Connection)
    conn.uri = uri

    class Fake:
        def getURI(self):
            return resolved

    conn.conn = Fake()
    assert conn.is_local is local
