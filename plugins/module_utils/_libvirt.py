# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one libvirt connection wrapper, its common options and its error translation."""

from __future__ import annotations

import re
import traceback

from ansible_collections.virtkit.guests.plugins.module_utils import _resource
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

try:
    import libvirt
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    LIBVIRT_IMPORT_ERROR = None

# Options every libvirt module shares (documented in the virtkit.guests.libvirt fragment).
LIBVIRT_ARGS = {
    'uri': {'type': 'str', 'default': 'qemu:///system'},
}


def require_libvirt(module):
    """Fail the module with Ansible's standard message when libvirt-python is missing."""
    if libvirt is None:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('libvirt-python (python3-libvirt)'),
                         exception=LIBVIRT_IMPORT_ERROR)


def _silence(ctx, err):
    """libvirt prints errors to stderr by default; we report them ourselves."""


def error_code(err):
    try:
        return err.get_error_code()
    except Exception:  # pragma: no cover - not a libvirtError
        return None


def _code(name):
    """A libvirt error code by name; -1 (matches nothing) when these bindings lack it."""
    return getattr(libvirt, name, -1)


# What the ssh client of a qemu+ssh:// URI says, and what it means. Checked before the
# local causes: "Permission denied" and "Connection refused" mean something else there.
_SSH_CAUSES = (
    (re.compile(r'host key verification failed'),
     'SSH does not know the host key of the libvirt host; add it to known_hosts (or set no_verify=1 in the URI)'),
    (re.compile(r'permission denied \((publickey|password|keyboard-interactive|gssapi)'),
     'SSH login to the libvirt host was refused; check the user and keyfile= of the URI, or the ssh-agent'),
    (re.compile(r'ssh: (connect to host|could not resolve hostname)'),
     'the libvirt host cannot be reached over SSH'),
    (re.compile(r'\b(nc|virt-ssh-helper): (\S+: )?not found'),
     'the libvirt host lacks the proxy command of the SSH transport (netcat or virt-ssh-helper; '
     'proxy=native in the URI uses virt-ssh-helper)'),
)
# QEMU runs as its own user: "run as root" is no advice when it cannot open a disk.
_QEMU_ACCESS = re.compile(r'cannot access storage file .* \(as uid:(\d+), gid:(\d+)\): permission denied')
# libvirt runs swtpm_setup as qemu.conf's swtpm_user when a guest with an emulated TPM
# starts; its own log (named in the message) has the reason.
_SWTPM_SETUP = re.compile(r"could not run '[^']*swtpm_setup'")


def explain(err, subject, operation):
    """Turn a libvirtError into one line naming the subject, operation and likely cause."""
    raw = ' '.join(str(err).split())
    low = raw.lower()
    code = error_code(err)
    cause = raw
    ssh = [text for pattern, text in _SSH_CAUSES if pattern.search(low)]
    qemu_access = _QEMU_ACCESS.search(low)
    if libvirt is not None:
        socket = 'socket' in low or 'connect' in low
        if ssh:
            cause = '%s (%s)' % (ssh[0], raw)
        elif qemu_access:
            cause = ('the QEMU process (uid %s, gid %s) may not read the file; check the permissions of '
                     'the file and of its directories (%s)' % (qemu_access.group(1), qemu_access.group(2), raw))
        elif _SWTPM_SETUP.search(low):
            cause = ("the guest's emulated TPM could not be set up; the swtpm log named in libvirt's message "
                     "says why (often /var/lib/swtpm-localca is not writable by qemu.conf's swtpm_user, tss by "
                     "default) (%s)" % raw)
        elif socket and ('no such file or directory' in low or 'connection refused' in low):
            cause = 'libvirtd is not running or its socket is missing (%s)' % raw
        elif code == _code('VIR_ERR_AUTH_UNAVAILABLE'):
            cause = ('polkit did not authorize this user and no agent could ask; run as root or as a member '
                     'of the libvirt group (%s)' % raw)
        elif 'permission denied' in low or code in (_code('VIR_ERR_AUTH_FAILED'), _code('VIR_ERR_AUTH_CANCELLED')):
            cause = 'permission denied; run as root or as a member of the libvirt group (%s)' % raw
        elif code == _code('VIR_ERR_ACCESS_DENIED'):
            cause = "permission denied by libvirt's access control for this user (%s)" % raw
        elif code == _code('VIR_ERR_OPERATION_DENIED'):
            cause = 'the connection is read-only or forbids this operation (%s)' % raw
        elif code == libvirt.VIR_ERR_NO_DOMAIN:
            cause = 'the guest does not exist (%s)' % raw
        elif code == libvirt.VIR_ERR_NO_NETWORK:
            cause = 'the network does not exist (%s)' % raw
        elif code == libvirt.VIR_ERR_NO_STORAGE_POOL:
            cause = 'the storage pool does not exist (%s)' % raw
        elif code == libvirt.VIR_ERR_NO_STORAGE_VOL:
            cause = 'the storage volume does not exist (%s)' % raw
        elif code == libvirt.VIR_ERR_OPERATION_TIMEOUT or 'timed out' in low:
            cause = 'libvirt timed out (%s)' % raw
        elif 'already exists' in low or code in (_code('VIR_ERR_DOM_EXIST'), _code('VIR_ERR_NETWORK_EXIST')):
            cause = 'name clash: %s' % raw
    return '%s: %s failed: %s' % (subject, operation, cause)


class Connection:
    """One libvirt connection per module run; lookups by name, errors as VirtkitError."""

    def __init__(self, uri, readonly=False):
        if libvirt is None:
            raise VirtkitError('libvirt-python is not installed on %s' % uri)
        self.uri = uri
        libvirt.registerErrorHandler(_silence, None)
        try:
            self.conn = libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
        except libvirt.libvirtError as err:
            raise VirtkitError(explain(err, uri, 'connect'))
        if self.conn is None:  # pragma: no cover - old bindings returned None
            raise VirtkitError('%s: connect failed' % uri)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def is_local(self):
        """True when the connection addresses this machine (its URI has no host part).

        Decided on the URI libvirt reports for the open connection, so an alias from
        libvirt.conf (``uri_aliases``, a name without ``://``) counts as what it stands for.
        Read once per connection.
        """
        if getattr(self, '_is_local', None) is None:
            uri = self.uri
            try:
                uri = self.conn.getURI() or uri
            except (AttributeError, libvirt.libvirtError):
                pass
            rest = uri.split('://', 1)[1] if '://' in uri else ''
            self._is_local = rest.startswith('/') or rest == ''
        return self._is_local

    def call(self, subject, operation, func, *args):
        """Run ``func(*args)`` translating libvirt errors into one-line VirtkitErrors."""
        try:
            return func(*args)
        except libvirt.libvirtError as err:
            raise VirtkitError(explain(err, subject, operation))

    def _lookup(self, func, name, missing_code):
        try:
            return func(name)
        except libvirt.libvirtError as err:
            if error_code(err) == missing_code:
                return None
            raise VirtkitError(explain(err, name, 'lookup'))

    def domain(self, name):
        return self._lookup(self.conn.lookupByName, name, libvirt.VIR_ERR_NO_DOMAIN)

    def network(self, name):
        return self._lookup(self.conn.networkLookupByName, name, libvirt.VIR_ERR_NO_NETWORK)

    def pool(self, name):
        return self._lookup(self.conn.storagePoolLookupByName, name, libvirt.VIR_ERR_NO_STORAGE_POOL)

    def volume(self, pool, name):
        """The volume ``name`` in pool object ``pool``, or None."""
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as err:
            if error_code(err) == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise VirtkitError(explain(err, name, 'volume lookup'))

    def volume_by_path(self, path):
        try:
            return self.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError as err:
            if error_code(err) in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_SUPPORT):
                return None
            raise VirtkitError(explain(err, path, 'volume lookup'))

    def capabilities(self):
        if not hasattr(self, '_caps'):
            self._caps = self.call(self.uri, 'read capabilities', self.conn.getCapabilities)
        return self._caps


def disk_users(connection, path, pool=None, volume=None):
    """Sorted names of the running guests with a disk (or a disk's backing chain) on ``path``.

    A disk given as ``<source pool=... volume=...>`` counts when it names ``pool`` and
    ``volume``. Only running guests hold their disks open; a guest that goes away while
    it is read is skipped.
    """
    from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse
    flag = getattr(libvirt, 'VIR_CONNECT_LIST_DOMAINS_ACTIVE', 1)
    names = set()
    for dom in connection.call(path, 'list guests', connection.conn.listAllDomains, flag):
        try:
            root = parse(dom.XMLDesc(0), 'domain XML')
        except libvirt.libvirtError:
            continue
        for source in root.iterfind('devices/disk//source'):
            if (path and path in (source.get('file'), source.get('dev'))) or (
                    volume and source.get('volume') == volume and source.get('pool') == pool):
                names.add(root.findtext('name'))
    return sorted(names)


def run_module(module, body):
    """:func:`_resource.run_module` after checking that libvirt-python is importable."""
    require_libvirt(module)
    _resource.run_module(module, body)


def run_manager(module, manager_class):
    """The whole body of a libvirt state module: one connection, ``manager.run()``.

    A ``warnings`` list in the manager's result becomes Ansible warnings.
    """
    def body():
        with Connection(module.params['uri']) as conn:
            result = manager_class(conn).run(module.params, check_mode=module.check_mode)
        for warning in result.pop('warnings', []):
            module.warn(warning)
        return result

    run_module(module, body)
