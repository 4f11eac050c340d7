# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a container, plan with pure code, execute the same plan, re-read and confirm."""

from __future__ import annotations

import bz2
import errno
import fcntl
import gzip
import io
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zlib

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._wait import WaitTimeout, poll
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.cgroup import read_text
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import facts as lxcfacts
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import guestnet
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import rootfs as lxcrootfs
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.plan import (
    ACTIVE, Current, apply_desired, build_plan, changed_keys, normalize_state)
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import Runner, clean_error, parse_info
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import (
    check_name, host_path_kind, idmap_entries, mount_target, validate)

TEMPLATE_DIR = '/usr/share/lxc/templates'
STAMP = '.virtkit-started'
CREATE_TIMEOUT = 1800
# After a start, how long the addresses of NICs with static addresses are watched: until the
# declared ones are there (a rootfs whose network setup was made to keep them), or the whole
# time (one whose own DHCP client may still replace them, see guestnet.survey).
SETTLE_TIMEOUT = 10
# LXC's marker of a creation in progress: lxc-create makes it (and holds a lock on it) before
# it creates the storage and removes it when the container is complete. One left without a
# lock is a creation that was killed: LXC 5 then reports the container as STOPPED.
PARTIAL = 'partial'
# The work directory for a rootfs tarball, one per container: ``<lxc_path>/.virtkit-create-<name>``
# (container names start with a letter or digit, so this never names a container). It only
# ever holds these files, and the run using it holds a flock on it.
WORKDIR_PREFIX = '.virtkit-create-'
WORKDIR_FILES = frozenset(('meta.tar.xz', 'rootfs.tar.xz'))
# lxc-copy makes no partial marker (LXC 5.0, checked on a killed copy): it makes the clone's
# directory, writes its config WITHOUT lxc.rootfs.path, copies the rootfs (an rsync that goes
# on as an orphan when lxc-copy is killed) and only then writes the final config. LXC reports
# such a half-made clone as an existing, STOPPED container, and starting it would run it on the
# host's root. So every clone runs under our own marker next to the container directory,
# ``<lxc_path>/.virtkit-clone-<name>`` (JSON, see CloneMarker), flocked by the run while it
# lives. It is written before the source is touched and before lxc-copy runs, and removed once
# the clone is complete and the source is back in its state.
CLONE_PREFIX = '.virtkit-clone-'
CLONE_PHASES = ('copying', 'copied')
# Backing stores whose half-made clone lxc-destroy removes in full: its storage is a directory
# (or an overlay's upper directory) inside the container directory. A half-made clone on lvm, zfs,
# btrfs or loop has a config without lxc.rootfs.path, so lxc-destroy would not remove its storage.
CLONE_DESTROYABLE = ('dir', 'overlay', 'overlayfs')
# The errors of a non-blocking lock that mean "someone else holds it"; any other (ENOLCK,
# EOPNOTSUPP on a file system without locks...) is an error of its own.
BUSY_ERRNOS = frozenset((errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES))


def try_lock(fd, name, path, flags=None, lock=None):
    """Take a non-blocking lock on ``fd``: True, or False when another process holds it.

    Any other failure is a one-line VirtkitError (a file system without locks would otherwise
    look busy for ever).
    """
    try:
        (lock or fcntl.flock)(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if flags is None else flags)
    except OSError as err:
        if err.errno in BUSY_ERRNOS:
            return False
        raise VirtkitError('%s: cannot lock %s: %s (does the filesystem of lxc_path support flock?)'
                           % (name, path, err.strerror or err))
    return True


def same_file(fd, path):
    """True when the open ``fd`` is still the file at ``path`` (not removed or replaced)."""
    try:
        return os.fstat(fd).st_ino == os.lstat(path).st_ino
    except OSError:
        return False


_GENERIC = ('received container state', 'the container failed to start', 'to get more details',
            'additional information can be obtained')


def _follows(args, flag, value):
    return any(a == flag and b == value for a, b in zip(args, args[1:])) or (flag + '=' + value) in args


def start_errors(log_text):
    """The causes in an lxc-start log (ERROR lines), without LXC's generic follow-ups."""
    causes = []
    for line in log_text.splitlines():
        if ' ERROR ' not in line:
            continue
        message = line.split(' ERROR ', 1)[1].split(' - ', 1)[-1].strip()
        if ' - ' in message and message.split(' - ', 1)[0].count(':') >= 2:
            message = message.split(' - ', 1)[1]  # "file.c:func:line - text"
        if message and not message.lower().startswith(_GENERIC) and message not in causes:
            causes.append(message)
    return '; '.join(causes[:3])


# LXC 5's lines for a bind mount that fails at start: "<errno text> - Failed to mount "SRC" on
# "ROOTFS/TARGET"" (conf.c mount_entry; utils.c safe_mount says "onto"), and for a target it could
# not create (conf.c mount_entry_create_dir_file): "<errno text> - Failed to create directory
# "ROOTFS/TARGET"" or "... - Failed to open "ROOTFS/TARGET"". ROOTFS is LXC's rootfs mount point.
_MOUNT_FAILED = re.compile(r' - (?P<message>(?P<cause>(?:(?! - )[^"])+) - Failed to mount "(?P<source>[^"]*)" '
                           r'on(?:to)? "(?P<path>[^"]*)")')
_CREATE_FAILED = re.compile(r'mount_entry_create_dir_file:\d+ - (?P<message>(?P<cause>(?:(?! - )[^"])+) - Failed to '
                            r'(?:create directory|open) "(?P<path>[^"]*)")')


def mount_failures(log_text):
    """(kind, LXC's message, its errno text, source or None, path) for each bind mount an lxc-start
    log says failed; kind is 'mount' (the mount itself) or 'create' (making its target)."""
    found = []
    for line in log_text.splitlines():
        if ' ERROR ' not in line:
            continue
        match = _CREATE_FAILED.search(line)
        kind = 'create'
        if match is None:
            match, kind = _MOUNT_FAILED.search(line), 'mount'
        if match is None:
            continue
        item = (kind, match.group('message'), match.group('cause'), match.groupdict().get('source'),
                match.group('path'))
        if not any(f[0] == kind and f[4] == item[4] for f in found):
            found.append(item)
    return found


def mount_start_error(log_text, mounts, path_kind=host_path_kind):
    """One line for a start that failed on one of ``mounts`` (ContainerSpec.mounts): the mount
    (mounts[i] and its target), what LXC logged and the option that fixes it; None when the log
    names none of them."""
    for kind, message, cause, source, path in mount_failures(log_text):
        candidates = [m for m in mounts if path.endswith('/' + m['path']) and (source is None or source == m['source'])]
        if not candidates:
            continue
        m = max(candidates, key=lambda c: len(c['path']))
        where, target = 'mounts[%d]' % m['index'], '/' + m['path']
        optional = '%s.optional: true to start without this mount' % where
        source_kind = path_kind(m['source'])
        noun = 'directory' if source_kind == 'dir' else 'file'
        errno_text = cause.lower()
        if kind == 'create':
            hint = ('LXC could not create the target (create=%s) in the container; choose a %s.target on a writable '
                    'path, or set %s.create: false and make %s in the root file system, or set %s'
                    % (m['creates'], where, where, target, optional))
        elif source_kind is None:
            hint = ('the source %s does not exist on the LXC host; fix %s.source (or create it), or set %s'
                    % (m['source'], where, optional))
        elif 'no such file' in errno_text and not m['creates']:
            hint = ('%s does not exist in the container and %s.create is false; set %s.create: %s (or leave create '
                    'out, the default), or make %s in the root file system, or set %s'
                    % (target, where, where, source_kind, target, optional))
        elif 'not a directory' in errno_text:
            hint = ('the source is a %s and %s in the container is not (a target made earlier stays in the root file '
                    'system); choose a %s.target that is free or a %s, or set %s'
                    % (noun, target, where, noun, optional))
        else:
            hint = 'check %s.source and %s.target, or set %s' % (where, where, optional)
        return '%s (target %s): %s; %s' % (where, target, message, hint)
    return None


# ------------------------------------------------------------ local rootfs tarballs
# A tarball becomes a container through LXC's own ``local`` template, which takes a
# metadata tarball (the distribution config) and the rootfs (both xz-compressed).
LOCAL_TEMPLATE = os.path.join(TEMPLATE_DIR, 'lxc-local')
# Picked by lxc-local: "config" for privileged containers, "config-user" and "excludes-user"
# when it runs in a user namespace (unprivileged); device nodes cannot be made there.
LOCAL_METADATA = (
    ('config', 'lxc.include = LXC_TEMPLATE_CONFIG/common.conf\n'),
    ('config-user', 'lxc.include = LXC_TEMPLATE_CONFIG/common.conf\n'
                    'lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\n'),
    ('excludes-user', './dev/*\ndev/*\n'),
)
_MAGIC = ((b'\x1f\x8b', 'gzip'), (b'BZh', 'bzip2'), (b'\xfd7zXZ\x00', 'xz'), (b'\x28\xb5\x2f\xfd', 'zstd'))
_OPENERS = {'gzip': gzip.open, 'bzip2': bz2.open, 'xz': lzma.open, 'tar': open}


def tarball_compression(path):
    """'tar', 'gzip', 'bzip2' or 'xz' for a readable tar archive; VirtkitError otherwise.

    Reads the first header block only (through the decompressor) and checks its checksum.
    """
    where = 'rootfs_tarball: %s' % path
    if not os.path.isfile(path):
        raise VirtkitError('%s does not exist on the LXC host (or is not a file)' % where)
    try:
        with open(path, 'rb') as handle:
            magic = handle.read(6)
        kind = next((k for m, k in _MAGIC if magic.startswith(m)), 'tar')
        if kind == 'zstd':
            raise VirtkitError('%s is zstd-compressed; use a .tar, .tar.gz, .tar.bz2 or .tar.xz' % where)
        with _OPENERS[kind](path, 'rb') as handle:
            block = handle.read(tarfile.BLOCKSIZE)
    except (IOError, OSError, EOFError, lzma.LZMAError) as err:
        raise VirtkitError('%s cannot be read: %s' % (where, getattr(err, 'strerror', None) or err))
    try:
        tarfile.TarInfo.frombuf(block, 'utf-8', 'surrogateescape')
    except tarfile.HeaderError:
        raise VirtkitError('%s is not a tar archive (.tar, .tar.gz, .tar.bz2 or .tar.xz)%s'
                           % (where, ' (or it is empty)' if not block.strip(b'\x00') else ''))
    return kind


# A root file system has one of these at its top (after an optional leading "./").
ROOT_MARKERS = ('sbin/init', 'usr/sbin/init', 'bin/sh', 'usr/bin/sh')
# Top-level directories of a root file system (FHS): a tarball of only etc/... is not "one
# top directory too deep", it just is no root file system.
ROOT_DIRS = frozenset(('bin', 'boot', 'dev', 'etc', 'home', 'lib', 'lib32', 'lib64', 'libx32', 'media', 'mnt',
                       'opt', 'proc', 'root', 'run', 'sbin', 'srv', 'sys', 'tmp', 'usr', 'var'))


def _parts(name):
    """A member name's path components, without "", "." and a leading "/"."""
    return [p for p in name.split('/') if p not in ('', '.')]


def init_command(keys):
    """The program (first word) of lxc.init.cmd or lxc.execute.cmd in config keys, or None."""
    for key in ('lxc.init.cmd', 'lxc.execute.cmd'):
        values = (keys or {}).get(key) or []
        words = str(values[0]).split() if values else []
        if words:
            return key, words[0]
    return None


def check_rootfs_tarball(path, init=None):
    """Check that ``path`` is a readable tar whose top is a root file system; return its compression.

    The member list is streamed once through the decompressor (no file is written) and the
    scan stops at the first member that marks a root file system (ROOT_MARKERS), so the cost
    is at most one read of the archive. Refused in one line: a file that is not a readable
    tar, an empty archive, an archive whose members all sit under one top directory (the
    usual mistake: ``tar -cf x.tar rootfs`` instead of ``tar -C rootfs -cf x.tar .``) and one
    without any of ROOT_MARKERS at its top.

    ``init`` is (config key, program) when the container is started by lxc.init.cmd (or
    lxc.execute.cmd), see init_command: an application rootfs with that program in it is
    accepted without ROOT_MARKERS (the one-top-directory refusal still applies).
    """
    kind = tarball_compression(path)
    where = 'rootfs_tarball: %s' % path
    common = None  # the directories every member seen so far sits under
    seen = 0
    program = '/'.join(_parts(init[1])) if init else None
    found = False
    try:
        with _OPENERS[kind](path, 'rb') as raw:
            archive = tarfile.open(fileobj=raw, mode='r|')
            try:
                while True:
                    member = archive.next()
                    if member is None:
                        break
                    archive.members = []  # a stream: keep no list of members
                    parts = _parts(member.name)
                    if not parts:
                        continue
                    if '/'.join(parts) in ROOT_MARKERS:
                        return kind
                    seen += 1
                    if program and '/'.join(parts) == program and not member.isdir():
                        found = True
                    dirs = parts if member.isdir() else parts[:-1]
                    if common is None:
                        common = dirs
                    else:
                        n = 0
                        while n < min(len(common), len(dirs)) and common[n] == dirs[n]:
                            n += 1
                        common = common[:n]
                    if found and (not common or common[0] in ROOT_DIRS):
                        return kind  # no longer one top directory whatever follows
            finally:
                archive.close()
    except (tarfile.TarError, IOError, OSError, EOFError, lzma.LZMAError, zlib.error) as err:
        raise VirtkitError('%s cannot be read: %s' % (where, getattr(err, 'strerror', None) or err))
    if not seen:
        raise VirtkitError('%s is an empty tar archive' % where)
    if common and common[0] not in ROOT_DIRS:
        raise VirtkitError('%s: all its files sit under one top directory, %s/, but the top of the tarball must be '
                           'the container\'s / (make it from inside the root: tar -C DIR -cf FILE .)'
                           % (where, '/'.join(common)))
    if found:
        return kind
    if init:
        raise VirtkitError('%s does not look like a root file system: neither %s (the program of %s) nor any of %s '
                           'is in it' % (where, init[1], init[0], ', '.join(ROOT_MARKERS)))
    raise VirtkitError('%s does not look like a root file system: none of %s is at its top'
                       % (where, ', '.join(ROOT_MARKERS)))


def write_local_metadata(path):
    """The metadata tarball lxc-local reads (xz): the distribution config, no templates."""
    with tarfile.open(path, 'w:xz') as archive:
        for name, text in LOCAL_METADATA:
            data = text.encode('utf-8')
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))


def recompress_xz(source, kind, target):
    """Copy the tar stream of ``source`` into ``target`` as xz (lxc-local reads only xz)."""
    with _OPENERS[kind](source, 'rb') as fin, lzma.open(target, 'wb', preset=0) as fout:
        shutil.copyfileobj(fin, fout, 1024 * 1024)


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename (mode kept)."""
    directory = os.path.dirname(path)
    mode = None
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix='.config.', dir=directory)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
        os.chmod(tmp, mode if mode is not None else 0o640)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rootfs_configured(text, read_file=None, _depth=0):
    """True when a config names a root file system (lxc-copy writes it last, see CLONE_PREFIX),
    also through its ``lxc.include`` files (a file, or a directory of ``*.conf``); False when it
    names none; None when that cannot be told (an include that cannot be read, or no
    ``read_file``): the caller then refuses instead of destroying on a guess.

    Includes are not simply taken as "configured": lxc-copy writes the source's config (with its
    includes, such as a template's ``debian.common.conf``) before it copies the rootfs.
    """
    conf = LxcConfig.parse(text or '')
    if conf.first('lxc.rootfs.path') or conf.first('lxc.rootfs'):
        return True
    includes = conf.get('lxc.include')
    if not includes:
        return False
    if read_file is None or _depth >= 8:
        return None
    unknown = []
    for include in includes:
        paths = [include]
        if os.path.isdir(include):
            try:
                paths = [os.path.join(include, f) for f in sorted(os.listdir(include)) if f.endswith('.conf')]
            except OSError:
                unknown.append(include)
                continue
        for path in paths:
            included = read_file(path)
            found = None if included is None else rootfs_configured(included, read_file, _depth + 1)
            if found:
                return True
            if found is None:
                unknown.append(path)
    return None if unknown else False


class CloneMarker:
    """The marker of one clone in progress, held under an exclusive flock by the run making it.

    Its fields: ``clone`` and ``source`` (names), ``source_state`` (the source's state before
    the run touched it), ``source_stopped`` (true from just before the run stops or thaws the
    source) and ``phase`` (``copying``, then ``copied`` once lxc-copy returned success). It is
    rewritten in place with one write (padded, never truncated), so a killed run leaves either
    the old or the new text.
    """

    def __init__(self, path, fd, data):
        self.path, self.fd, self.data, self.size = path, fd, data, 0

    @classmethod
    def begin(cls, name, path, data):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
        except OSError as err:
            if err.errno == errno.EEXIST:
                raise VirtkitError('%s: another run is cloning this container right now (%s appeared); run again '
                                   'when it has finished' % (name, path))
            raise VirtkitError('%s: cannot write the clone marker %s: %s' % (name, path, err.strerror or err))
        marker = cls(path, fd, dict(data, clone=name, phase='copying'))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as err:
                raise VirtkitError('%s: cannot lock %s: %s (does the filesystem of lxc_path support flock?)'
                                   % (name, path, err.strerror or err))
            marker.write()
        except BaseException:
            marker.close(remove=True, quiet=True)  # nothing was touched yet
            raise
        return marker

    def update(self, **fields):
        self.data.update(fields)
        self.write()

    def write(self):
        text = json.dumps(self.data, sort_keys=True).encode('utf-8')
        padded = text + b' ' * max(0, self.size - len(text)) + b'\n'
        try:
            os.pwrite(self.fd, padded, 0)
            os.fsync(self.fd)
        except OSError as err:
            raise VirtkitError('%s: cannot write the clone marker %s: %s'
                               % (self.data.get('clone'), self.path, err.strerror or err))
        self.size = len(padded) - 1

    def close(self, remove, quiet=False):
        try:
            if remove:
                os.unlink(self.path)
        except OSError as err:
            if err.errno != errno.ENOENT and not quiet:
                raise VirtkitError('%s: cannot remove the clone marker %s: %s'
                                   % (self.data.get('clone'), self.path, err.strerror or err))
        finally:
            os.close(self.fd)


class ContainerManager:
    """Everything lxc_container does, for one lxc path."""

    # Where running processes are listed (a test may point it elsewhere).
    proc = '/proc'
    # The clock and sleep of the bounded waits (a test may replace them).
    sleep = staticmethod(time.sleep)
    clock = staticmethod(time.monotonic)

    def __init__(self, runner=None, lxc_path=None, read_file=None, layout=None, path_kind=None):
        self.r = runner or Runner(lxc_path)
        self.read_file = read_file or read_text
        # What a host path is (a bind mount's source): 'dir', 'file' or None (missing).
        self.path_kind = path_kind or host_path_kind
        self._layout = layout
        self.spec = None
        self.current = None
        self.pid = None
        # Why the static addresses of some NICs may not stick ({ifname: reason}, see guestnet).
        self.rootfs_reasons = {}

    @property
    def layout(self):
        if self._layout is None:
            self._layout = cgroup.host_layout()
        return self._layout

    def container_dir(self, name):
        return os.path.join(self.r.lxc_path, name)

    # ------------------------------------------------------------ reading

    def exists(self, name):
        """A complete container: its config is there and LXC's partial marker is not, nor is
        it a half-made clone (our clone marker with a config that names no root file system)."""
        path = self.r.config_path(name)
        if not os.path.isfile(path) or os.path.lexists(self.partial_path(name)):
            return False
        return not os.path.lexists(self.clone_marker_path(name)) or \
            rootfs_configured(self.read_file(path), self.read_file) is not False

    def partial_path(self, name):
        return os.path.join(self.container_dir(name), PARTIAL)

    def creation_ongoing(self, name):
        """True while an lxc-create holds the lock on the partial marker of ``name``.

        lxc-create locks the marker for as long as it runs; a marker we can lock is what
        a killed creation left. One we cannot even open counts as in use (never destroyed).
        """
        try:
            fd = os.open(self.partial_path(name), os.O_RDWR)
        except OSError:
            return True
        try:
            return not try_lock(fd, name, self.partial_path(name), lock=fcntl.lockf)
        finally:
            os.close(fd)  # also drops our lock

    def info(self, name):
        """(state, pid) from one lxc-info call."""
        _rc, out, _err = self.r.run('lxc-info', name, ['-s', '-p'], 'read state')
        info = parse_info(out)
        return normalize_state(info['state']), info['pid']

    def read(self, name):
        if os.path.lexists(self.partial_path(name)):
            # Half-created: not a container to report or configure (see PARTIAL).
            return Current(name, incomplete='ongoing' if self.creation_ongoing(name) else 'interrupted',
                           has_config=os.path.isfile(self.r.config_path(name)))
        marker = self.clone_marker(name)
        if marker is not None and not marker['error']:
            has_config = os.path.isfile(self.r.config_path(name))
            if marker['busy']:
                return Current(name, incomplete='ongoing', has_config=has_config, clone=marker)
            if marker['source'] and marker['source_stopped']:
                marker['source_now'] = self.info(marker['source'])[0] if self.exists(marker['source']) else 'absent'
            if marker['source'] and marker['phase'] == 'copying' and os.path.isdir(self.container_dir(name)):
                rootfs = rootfs_configured(self.read_file(self.r.config_path(name)), self.read_file) \
                    if has_config else False
                if rootfs is None:
                    marker['error'] = ('is the marker of an interrupted clone, but the config of %s includes a file '
                                       'that cannot be read, so this run cannot tell a half-made clone from a complete '
                                       'container; check %s and remove the marker by hand' % (name, self.container_dir(name)))
                    return Current(name, incomplete='interrupted', has_config=has_config, clone=marker)
                if not rootfs:
                    # lxc-copy never wrote the final config: a half-made clone (see CLONE_PREFIX).
                    return Current(name, incomplete='interrupted', has_config=has_config, clone=marker)
        current = self._read_complete(name)
        current.clone = marker
        return current

    def _read_complete(self, name):
        if not self.exists(name):
            return Current(name)
        text = self.read_file(self.r.config_path(name))
        if text is None:
            raise VirtkitError('%s: cannot read %s (permission denied?)' % (name, self.r.config_path(name)))
        stamp = self._stamp(name)
        fast = self.state_from_proc(name, stamp)
        state, pid = fast if fast is not None else self.info(name)
        started, booted = None, {}
        if state in ACTIVE and pid and stamp and stamp.get('pid') == pid \
                and stamp.get('ticks') == lxcfacts.proc_start_ticks(pid, self.read_file):
            started = stamp.get('config')
            booted = stamp.get('rootfs') if isinstance(stamp.get('rootfs'), dict) else {}
        current = Current(name, True, state, pid, text, started)
        current.started_rootfs = booted
        if booted:
            view, _why = lxcrootfs.rootfs_view(text)
            current.rootfs_now = dict((path, self._rootfs_text(view, path)) for path in booted)
        return current

    # ------------------------------------------------------------ clones in progress

    def clone_marker_path(self, name):
        return os.path.join(self.r.lxc_path, CLONE_PREFIX + name)

    def clone_marker(self, name):
        """The marker of an unfinished clone of ``name`` (a dict), or None.

        ``busy`` says why it must be left alone (a live run holds it, or lxc-copy or its rsync
        still works on the clone); ``error`` why it is not ours to act on (preflight refuses).
        An empty marker is one whose run was killed before it wrote anything, so before it
        touched the source or ran lxc-copy.
        """
        path = self.clone_marker_path(name)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        marker = {'path': path, 'error': None, 'busy': None, 'clone': name, 'source': None,
                  'source_state': None, 'source_stopped': False, 'phase': 'copying', 'source_now': None,
                  'backing_store': 'dir'}
        if not stat.S_ISREG(mode):
            marker['error'] = 'is not a clone marker of this module (not a regular file); remove it by hand'
            return marker
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
        except OSError as err:
            marker['error'] = 'cannot be read: %s' % (err.strerror or err)
            return marker
        try:
            if not try_lock(fd, name, path, fcntl.LOCK_SH | fcntl.LOCK_NB):
                marker['busy'] = 'another run is cloning this container right now (it holds %s)' % path
                return marker
            raw = os.read(fd, 65536)
        finally:
            os.close(fd)
        if raw.strip():
            try:
                data = json.loads(raw.decode('utf-8'))
            except ValueError:
                data = None
            if not (isinstance(data, dict) and data.get('clone') == name and isinstance(data.get('source'), str)
                    and data.get('source_state') in ('running', 'frozen', 'stopped')
                    and isinstance(data.get('source_stopped'), bool) and data.get('phase') in CLONE_PHASES
                    and isinstance(data.get('backing_store', 'dir'), str)):
                marker['error'] = 'is not a clone marker of this module for %s; check it and remove it by hand' % name
                return marker
            marker.update((k, data[k]) for k in ('source', 'source_state', 'source_stopped', 'phase',
                                                 'backing_store') if k in data)
        procs = self.clone_processes(name)
        if procs:
            marker['busy'] = ('an earlier lxc-copy is still making this container (%s work%s on %s)'
                              % (', '.join('PID %d %s' % p for p in procs[:5]), 's' if len(procs) == 1 else '',
                                 self.container_dir(name)))
        return marker

    def clone_processes(self, name):
        """(PID, program) of the processes working on the clone ``name``: an lxc-copy making it, or
        the rsync a killed lxc-copy left copying into it (found by their command lines)."""
        cdir = self.container_dir(name)
        found = []
        try:
            pids = [p for p in os.listdir(self.proc) if p.isdigit()]
        except OSError:
            return found
        for pid in pids:
            try:
                with open(os.path.join(self.proc, pid, 'cmdline'), 'rb') as handle:
                    args = handle.read().decode('utf-8', 'replace').split('\0')
            except (IOError, OSError):
                continue
            program = os.path.basename(args[0])
            if any(a == cdir or a.startswith(cdir + '/') for a in args[1:]) or (
                    program == 'lxc-copy' and _follows(args, '-N', name)
                    and ('-P' not in args or _follows(args, '-P', self.r.lxc_path))):
                found.append((int(pid), program))
        return sorted(found)

    def _stamp(self, name):
        raw = self.read_file(os.path.join(self.container_dir(name), STAMP))
        try:
            stamp = json.loads(raw) if raw else None
        except ValueError:
            return None
        # A stamp copied along with another container's directory is not ours.
        return stamp if isinstance(stamp, dict) and stamp.get('path') == self.r.config_path(name) else None

    def state_from_proc(self, name, stamp):
        """(state, pid) without a subprocess, or None when only lxc-info can tell.

        A container's monitor listens on the abstract socket ``@<lxc_path>/<name>/command``
        (listed in /proc/net/unix): without it the container is stopped. With it, the init
        PID we recorded at start is trusted only if that process still has the same start
        time; the freezer of its cgroup tells running from frozen.
        """
        socket_name = '@%s/command' % self.container_dir(name)
        if len(socket_name) > 100:
            return None  # LXC hashes long socket names
        table = self.read_file('/proc/net/unix')
        if table is None:
            return None
        if not any(line.endswith(' ' + socket_name) for line in table.splitlines()):
            return 'stopped', None
        if not stamp or not isinstance(stamp.get('pid'), int):
            return None
        pid = stamp['pid']
        if stamp.get('ticks') is None or stamp.get('ticks') != lxcfacts.proc_start_ticks(pid, self.read_file):
            return None
        is_frozen = cgroup.frozen(pid, self.layout, self.read_file)
        if is_frozen is None:
            return None
        return ('frozen' if is_frozen else 'running'), pid

    def _write_stamp(self, name, pid, text=None, rootfs=None):
        """Record what the container at ``pid`` started with: its config (``text``, by default the
        one on disk now) and the rootfs files edited since it started, as it booted with them
        (``rootfs``, {path: text}); both keep pending_restart on later runs until a restart."""
        if text is None:
            text = self.read_file(self.r.config_path(name))
        stamp = {'pid': pid, 'ticks': lxcfacts.proc_start_ticks(pid, self.read_file), 'config': text,
                 'path': self.r.config_path(name)}
        if rootfs:
            stamp['rootfs'] = rootfs
        try:
            write_atomic(os.path.join(self.container_dir(name), STAMP), json.dumps(stamp))
        except (IOError, OSError):
            pass  # only a hint for pending_restart on later runs

    # ------------------------------------------------------------ checks before any change

    def preflight(self, spec, current):
        name = spec.name
        marker = current.clone
        if marker and marker['error']:
            raise VirtkitError('%s: %s %s' % (name, marker['path'], marker['error']))
        if current.incomplete == 'ongoing':
            if marker:
                raise VirtkitError('%s: %s; run again when it has finished' % (name, marker['busy']))
            raise VirtkitError('%s: another process is creating this container right now (lxc-create holds %s); '
                               'run again when it has finished' % (name, self.partial_path(name)))
        if marker and current.incomplete == 'interrupted' and marker['backing_store'] not in CLONE_DESTROYABLE:
            raise VirtkitError(self._half_clone_storage_message(name, marker))
        if current.incomplete and not current.has_config and not (marker and self._empty_clone_dir(name)):
            raise VirtkitError('%s: an interrupted %s left %s without a config, so lxc-destroy cannot remove it; '
                               'check that nothing in it is needed and remove it by hand'
                               % (name, 'lxc-copy' if marker else 'lxc-create', self.container_dir(name)))
        if spec.state == 'absent':
            return
        if not current.exists:
            if spec.clone_from:
                if not self.exists(spec.clone_from):
                    raise VirtkitError('%s: clone_from %s does not exist in %s' % (name, spec.clone_from, self.r.lxc_path))
            elif spec.rootfs_tarball:
                try:
                    spec.tarball_kind = check_rootfs_tarball(spec.rootfs_tarball, init_command(spec.keys))
                except VirtkitError as err:
                    raise VirtkitError('%s: %s' % (name, err))
                if not os.path.isfile(LOCAL_TEMPLATE):
                    raise VirtkitError('%s: rootfs_tarball needs LXC\'s local template (%s is missing; install '
                                       'lxc)' % (name, LOCAL_TEMPLATE))
                if not shutil.which('xz'):
                    raise VirtkitError('%s: rootfs_tarball needs xz on the LXC host (apt-get install xz-utils)' % name)
            else:
                path = spec.template if spec.template.startswith('/') else os.path.join(
                    TEMPLATE_DIR, 'lxc-' + spec.template)
                if not os.path.isfile(path):
                    raise VirtkitError('%s: template %s not found (%s is missing; install lxc-templates or '
                                       'give the template\'s absolute path)' % (name, spec.template, path))
                if spec.template == 'debian' and not shutil.which('debootstrap'):
                    raise VirtkitError('%s: the debian template needs debootstrap (apt-get install debootstrap)' % name)
            if spec.unprivileged:
                try:
                    spec.idmap = idmap_entries(self.read_file('/etc/subuid'), self.read_file('/etc/subgid'))
                except VirtkitError as err:
                    raise VirtkitError('%s: %s' % (name, err))
        if spec.state in ('started', 'restarted', 'frozen'):
            for i, net in enumerate(spec.networks or []):
                link = net.get('link')
                if link and not os.path.exists('/sys/class/net/%s' % link):
                    raise VirtkitError('%s: networks[%d].link %s does not exist on the host, so the container '
                                       'cannot start (for lxcbr0 run /usr/libexec/lxc/lxc-net start)' % (name, i, link))

    def check_mount_targets(self, spec, current):
        """Refuse, before anything changes, a start that the mounts would make fail: a target missing
        in the root file system with create false, or one of the other type than its source. Only
        for an existing container whose rootfs is a directory here, and only when the plan starts or
        restarts it (a running container's mounts are in place: a target may be visible only under a
        mount this check does not see, from lxc.include or lxc.mount.fstab); the rest LXC reports at
        start."""
        rootfs_path = lxcrootfs.rootfs_dir(current.config_text) if current.exists else None
        if rootfs_path is None:
            return
        noun = {'dir': 'directory', 'file': 'file'}
        # A target under another mount (the template's /lib, a bind mount listed before it, /proc,
        # /sys, /dev) is not in the rootfs directory but in what is mounted there: not checked.
        others = set(t for t in (mount_target(e) for e in LxcConfig.parse(current.config_text).get('lxc.mount.entry'))
                     if t) | set(t for t, e in spec.mount_targets.items() if e) | {'proc', 'sys', 'dev'}
        for m in spec.mounts:
            if m.get('optional') or any(m['path'].startswith(t.rstrip('/') + '/') for t in others):
                continue
            where, target = 'mounts[%d]' % m['index'], '/' + m['path']
            found = lxcrootfs.rootfs_path_kind(rootfs_path, m['path'])
            source = self.path_kind(m['source'])
            if found is None and not m['creates']:
                raise VirtkitError('%s: %s.target: %s does not exist in the container\'s root file system and %s.create '
                                   'is false, so the container cannot start; set %s.create: %s (or leave create out), '
                                   'make %s in %s, or set %s.optional: true'
                                   % (spec.name, where, target, where, where, source or 'dir', target, rootfs_path, where))
            if found in noun and source in noun and found != source:
                raise VirtkitError('%s: %s.target: %s is a %s in the container but the source %s is a %s, so the '
                                   'container cannot start; choose a %s.target that is free or a %s, or set '
                                   '%s.optional: true' % (spec.name, where, target, noun[found], m['source'],
                                                          noun[source], where, noun[source], where))

    # ------------------------------------------------------------ the run

    def run(self, params, check_mode=False):
        check_name(params.get('name'))
        spec = validate(params, self.layout if params.get('limits') else None, self.path_kind)
        current = self.read(spec.name)
        self.preflight(spec, current)
        current.leftover = self.leftover_workdir(spec.name)
        self.rootfs_reasons = {}
        if current.exists and spec.networks is not None:
            current.rootfs_edits, self.rootfs_reasons = self.guest_network(spec, current.config_text)
            current.rootfs_overlay = isinstance(lxcrootfs.rootfs_view(current.config_text)[0], lxcrootfs.OverlayView)
        plan = build_plan(spec, current)
        if plan.rootfs_deferred:
            why = ('its rootfs is an overlay, not edited while the container runs: %s is edited when this module '
                   'next stops or restarts it (restart_policy: if_needed or state: restarted)'
                   % ', '.join(plan.rootfs_deferred))
            for ifname in guestnet.static_families(guestnet.nics(spec.networks)):
                self.rootfs_reasons.setdefault(ifname, why)
        if any(a.op in ('start', 'restart') for a in plan.actions):
            self.check_mount_targets(spec, current)
        result = plan.result()
        if check_mode:
            result['container'] = self.facts(spec.name, current, spec) if current.exists else {}
            self._address_warning(spec, result)
            return result
        self.spec, self.current = spec, current
        self.pid = current.pid
        self._held = None
        try:
            if current.clone:
                # Hold the marker the plan was made from for the whole run: a concurrent run of
                # the same task (made from the same stale reading) fails here instead of
                # destroying the clone the other run has just completed.
                self._held = self._hold_marker(spec.name, current.clone['path'])
            for action in plan.actions:
                getattr(self, '_op_' + action.op)(**action.params)
        finally:
            if self._held is not None:
                os.close(self._held)
                self._held = None
        if spec.state == 'absent':
            result['container'] = {}
            return result
        # The no-op path reads nothing more: one lxc-info in all.
        after = self.read(spec.name) if plan.changed else current
        if plan.changed:
            self.confirm(spec, plan, after)
        if after.active and after.pid and any(a.op in ('start', 'restart') for a in plan.actions):
            self.settle(spec, after.pid)
        result['container'] = self.facts(spec.name, after, spec)
        self._address_warning(spec, result)
        return result

    # ------------------------------------------------------------ static addresses

    def guest_network(self, spec, config_text):
        """(edits, reasons) for the guest's network setup (see guestnet.survey)."""
        nic_list = guestnet.nics(spec.networks)
        view, why = lxcrootfs.rootfs_view(config_text)
        if view is None:
            return [], dict((ifname, why) for ifname in guestnet.static_families(nic_list))
        return guestnet.survey(view, nic_list)

    @staticmethod
    def _rootfs_text(view, path):
        """A file's text in the rootfs, or None (missing, unreadable, larger than MAX_TEXT)."""
        if view is None:
            return None
        try:
            return view.read(path)
        except lxcrootfs.TooLarge:
            return None

    def _op_edit_rootfs(self, edits=None, record=True):
        spec = self.spec
        text = self.read_file(self.r.config_path(spec.name))
        if edits is None:
            edits, self.rootfs_reasons = self.guest_network(spec, text)
        view, _why = lxcrootfs.rootfs_view(text)
        for path, before, after in edits:
            if view is None or self._rootfs_text(view, path) != before:
                raise VirtkitError('%s: %s in the rootfs changed since this run read it; run again' % (spec.name, path))
            try:
                view.write(path, after)
            except OSError as err:
                raise VirtkitError('%s: cannot edit %s in the rootfs: %s' % (spec.name, path, err.strerror or err))
        current = self.current
        if edits and record and current.active and current.pid:
            # The running guest booted with the texts before: a restart is pending on later runs too.
            booted = dict(current.started_rootfs or {})
            for path, before, _after in edits:
                booted.setdefault(path, before)
            started = current.started_config if current.started_config is not None else current.config_text
            self._write_stamp(spec.name, current.pid, text=started, rootfs=booted)

    def settle(self, spec, pid):
        """Watch a freshly started container's static NICs (bounded by SETTLE_TIMEOUT)."""
        nic_list = [n for n in guestnet.nics(spec.networks) if n['ipv4']] if spec.networks else []
        if not nic_list:
            return
        want = dict((n['ifname'], sorted(a.split('/')[0] for a in n['ipv4'])) for n in nic_list)

        def held():
            seen = lxcfacts.addresses(pid, self.read_file)['interfaces']
            return all(sorted(seen.get(i, {}).get('ipv4') or []) == w for i, w in want.items())
        patient = any(n['ifname'] in self.rootfs_reasons for n in nic_list)
        try:
            poll(lambda: not patient and held(), SETTLE_TIMEOUT, interval=0.1, max_interval=0.5, sleep=self.sleep,
                 clock=self.clock)
        except WaitTimeout:
            pass  # the warning below names what the guest has

    def _address_warning(self, spec, result):
        if spec.networks is None:
            return
        facts = result.get('container') or {}
        observed = None
        # A container still to be restarted has the addresses of its old config: nothing to tell.
        if facts.get('state') in ACTIVE and facts.get('pid') and not result.get('pending_restart'):
            observed = dict((i, v.get('ipv4') or []) for i, v in (facts.get('interfaces') or {}).items())
        text = guestnet.warning(spec.name, guestnet.nics(spec.networks), self.rootfs_reasons, observed)
        if text:
            result.setdefault('warnings', []).append(text)

    def confirm(self, spec, plan, after):
        if not after.exists:
            raise VirtkitError('%s: the container disappeared while it was being set up' % spec.name)
        left = changed_keys(after.config_text, apply_desired(after.config_text, spec))
        if left:
            raise VirtkitError('%s: the config does not hold %s after writing it' % (spec.name, ', '.join(left)))
        if spec.networks is not None and any(a.op == 'edit_rootfs' and a.changes for a in plan.actions):
            edits, _reasons = self.guest_network(spec, after.config_text)
            if edits:
                raise VirtkitError('%s: the rootfs does not hold the edit of %s after writing it'
                                   % (spec.name, ', '.join(path for path, _b, _a in edits)))
        want = plan.after['state']
        if want in ('running', 'stopped', 'frozen') and after.state != want:
            raise VirtkitError('%s: expected the container %s, but it is %s' % (spec.name, want, after.state))

    # ------------------------------------------------------------ operations

    def _op_create(self):
        spec = self.spec
        args = ['-t', 'local' if spec.rootfs_tarball else spec.template, '-B', spec.backing_store]
        bso = spec.backing_store_options
        for opt in ('dir', 'vgname', 'lvname', 'thinpool', 'fstype', 'fssize', 'zfsroot'):
            if bso.get(opt):
                args += ['--%s' % opt, bso[opt]]
        tmp = workdir = lock = None
        try:
            if getattr(spec, 'idmap', None):
                base = self._default_config()
                fd, tmp = tempfile.mkstemp(prefix='virtkit-lxc-', suffix='.conf')
                with os.fdopen(fd, 'w') as handle:
                    handle.write(base + ''.join('lxc.idmap = %s\n' % e for e in spec.idmap))
                args += ['-f', tmp]
            if spec.rootfs_tarball:
                workdir, lock = self._tarball_workdir(spec.name)
                args += ['--'] + self._local_template_args(spec, workdir)
                operation = 'create from the rootfs tarball %s' % spec.rootfs_tarball
            else:
                if spec.template_options:
                    args += ['--'] + spec.template_options
                operation = 'create from template %s' % spec.template
            self.r.run('lxc-create', spec.name, args, operation, timeout=CREATE_TIMEOUT)
        finally:
            if tmp:
                os.unlink(tmp)
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            if lock is not None:
                os.close(lock)

    def workdir_path(self, name):
        return os.path.join(self.r.lxc_path, WORKDIR_PREFIX + name)

    def leftover_workdir(self, name, keep_lock=False):
        """The work directory a killed run left for ``name``, or None.

        Only ever ours to remove when it is a real directory holding nothing but the files
        this module writes there and no run holds its lock; anything else fails in one line.
        With ``keep_lock`` the result is (path, fd holding the lock) for removing it.
        """
        path = self.workdir_path(name)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if not stat.S_ISDIR(mode):
            raise VirtkitError('%s: %s is not a work directory of this module (not a directory); remove it by hand'
                               % (name, path))
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0))
        except OSError as err:
            if err.errno == errno.ENOENT:
                return None
            raise VirtkitError('%s: cannot read the work directory %s: %s' % (name, path, err.strerror or err))
        try:
            if not try_lock(fd, name, path):
                raise VirtkitError('%s: another run is creating this container right now (%s is in use); run again '
                                   'when it has finished' % (name, path))
            if not same_file(fd, path):
                raise VirtkitError('%s: another run is creating this container right now (%s was replaced); run '
                                   'again when it has finished' % (name, path))
            try:
                strange = sorted(set(os.listdir(path)) - WORKDIR_FILES)
            except OSError as err:
                raise VirtkitError('%s: cannot read the work directory %s: %s' % (name, path, err.strerror or err))
            if strange:
                raise VirtkitError('%s: %s holds files this module does not write (%s); remove it by hand'
                                   % (name, path, ', '.join(strange[:5])))
        except BaseException:
            os.close(fd)
            raise
        if keep_lock:
            return path, fd
        os.close(fd)
        return path

    def _remove_leftover(self, name):
        """Remove this container's leftover work directory (if any) while holding its lock."""
        found = self.leftover_workdir(name, keep_lock=True)
        if found is None:
            return
        path, fd = found
        try:
            shutil.rmtree(path)
        except OSError as err:
            raise VirtkitError('%s: cannot remove the leftover work directory %s: %s'
                               % (name, path, err.strerror or err))
        finally:
            os.close(fd)

    def _op_remove_workdir(self, path):
        self._remove_leftover(self.spec.name)

    def _tarball_workdir(self, name):
        """(path, locked fd) of this container's scratch directory next to the containers (room for
        a rootfs), readable by the template also when it runs as an unprivileged container's mapped
        root. A leftover of a killed run goes first; the lock shows other runs it is in use.

        Another run's leftover check may lock (and remove) the new directory between our mkdir
        and our lock: the lock then fails, or the directory is no longer the one we made; both
        read as busy.
        """
        path = self.workdir_path(name)
        busy = VirtkitError('%s: another run is creating this container right now (%s is in use); run again '
                            'when it has finished' % (name, path))
        self._remove_leftover(name)
        try:
            os.mkdir(path, 0o700)
        except OSError as err:
            if err.errno == errno.EEXIST:
                raise VirtkitError('%s: another run is creating this container right now (%s appeared); run again '
                                   'when it has finished' % (name, path))
            raise VirtkitError('%s: cannot make the work directory %s: %s' % (name, path, err.strerror or err))
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0))
        except OSError as err:
            if err.errno == errno.ENOENT:
                raise busy
            raise VirtkitError('%s: cannot open the work directory %s: %s' % (name, path, err.strerror or err))
        try:
            if not try_lock(fd, name, path) or not same_file(fd, path):
                raise busy
            try:
                os.chmod(path, 0o755)
            except OSError as err:
                raise VirtkitError('%s: cannot set the mode of the work directory %s: %s'
                                   % (name, path, err.strerror or err))
        except BaseException:
            os.close(fd)
            raise
        return path, fd

    def _local_template_args(self, spec, workdir):
        """lxc-local's arguments: a generated metadata tarball and the rootfs as xz."""
        kind = getattr(spec, 'tarball_kind', None) or tarball_compression(spec.rootfs_tarball)
        metadata = os.path.join(workdir, 'meta.tar.xz')
        write_local_metadata(metadata)
        os.chmod(metadata, 0o644)
        fstree = spec.rootfs_tarball
        if kind != 'xz':
            fstree = os.path.join(workdir, 'rootfs.tar.xz')
            try:
                recompress_xz(spec.rootfs_tarball, kind, fstree)
            except (IOError, OSError, EOFError, lzma.LZMAError) as err:
                raise VirtkitError('%s: rootfs_tarball: %s cannot be read: %s' % (spec.name, spec.rootfs_tarball, err))
            os.chmod(fstree, 0o644)
        elif getattr(spec, 'idmap', None):
            # The template of an unprivileged container reads as its mapped root: a copy
            # here is readable whatever the permissions on the way to the original.
            fstree = os.path.join(workdir, 'rootfs.tar.xz')
            shutil.copyfile(spec.rootfs_tarball, fstree)
            os.chmod(fstree, 0o644)
        return ['--metadata', metadata, '--fstree', fstree]

    def _default_config(self):
        for path in ('/etc/lxc/default.conf',):
            text = self.read_file(path)
            if text is not None:
                return text if text.endswith('\n') else text + '\n'
        return ''

    def _op_clone(self):
        """lxc-copy under our clone marker (see CLONE_PREFIX), so that a rerun after a kill at any
        point destroys a half-made clone and starts again a source this run had stopped."""
        spec = self.spec
        src = spec.clone_from
        state, _pid = self.info(src)
        args = ['-N', spec.name]
        if spec.backing_store != 'dir' or spec.backing_store_options:
            args += ['-B', spec.backing_store]
        if spec.backing_store_options.get('fssize'):
            args += ['-L', spec.backing_store_options['fssize']]
        restart = state in ACTIVE and not spec.clone_snapshot
        if spec.clone_snapshot:
            args.append('-s')
            if state in ACTIVE:
                args.append('-a')
        marker = CloneMarker.begin(spec.name, self.clone_marker_path(spec.name),
                                   {'source': src, 'source_state': state, 'source_stopped': False,
                                    'backing_store': spec.backing_store})
        restored = not restart
        try:
            if restart:
                marker.update(source_stopped=True)
                if state == 'frozen':
                    self.r.run('lxc-unfreeze', src, [], 'thaw the clone source')
                self._stop(src, spec.stop_timeout, spec.force_stop)
            try:
                self.r.run('lxc-copy', src, args, 'clone %s to %s' % (src, spec.name), timeout=CREATE_TIMEOUT)
                marker.update(phase='copied')
            finally:
                if restart:
                    self._start(src, spec.start_timeout)
                    if state == 'frozen':
                        self.r.run('lxc-freeze', src, [], 'freeze the clone source again')
                    restored = True
        finally:
            # Kept (for the next run) unless the source is back and the clone is complete, or
            # lxc-copy failed and cleaned up after itself.
            marker.close(remove=restored and (marker.data['phase'] == 'copied'
                                              or not os.path.lexists(self.container_dir(spec.name))))

    def _op_restore_source(self, source, start, freeze):
        if start:
            self._start(source, self.spec.start_timeout)
        if freeze:
            self.r.run('lxc-freeze', source, [], 'freeze the clone source again')

    def _hold_marker(self, name, path):
        """An fd holding an exclusive lock on the clone marker at ``path``, the same file this run
        read; VirtkitError (busy) when another run holds, dropped or replaced it since."""
        busy = VirtkitError('%s: another run is cloning this container right now (it holds, removed or replaced %s '
                            'since this run read it); run again when it has finished' % (name, path))
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
        except OSError as err:
            if err.errno == errno.ENOENT:
                raise busy
            raise VirtkitError('%s: cannot open the clone marker %s: %s' % (name, path, err.strerror or err))
        try:
            if not try_lock(fd, name, path) or not same_file(fd, path):
                raise busy
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _op_drop_clone_marker(self, path):
        """Remove the marker this run holds (see run)."""
        name = self.spec.name
        try:
            os.unlink(path)
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise VirtkitError('%s: cannot remove the clone marker %s: %s' % (name, path, err.strerror or err))

    def _half_clone_storage_message(self, name, marker):
        """The one line for a half-made clone whose storage lxc-destroy would leave behind."""
        store = marker['backing_store']
        cdir = self.container_dir(name)
        conf = LxcConfig.parse(self.read_file('/etc/lxc/lxc.conf') or '')
        if store == 'lvm':
            vg = conf.first('lxc.bdev.lvm.vg') or 'lxc'
            what = 'the logical volume /dev/%s/%s (lvremove %s/%s)' % (vg, name, vg, name)
        elif store == 'zfs':
            what = 'the ZFS dataset %s/%s (zfs destroy -r)' % (conf.first('lxc.bdev.zfs.root') or 'lxc', name)
        elif store == 'btrfs':
            what = 'the btrfs subvolume %s/rootfs (btrfs subvolume delete)' % cdir
        elif store == 'loop':
            what = 'the image %s/rootdev (and a loop device still attached to it: losetup -j)' % cdir
        else:
            what = 'its %s storage' % store
        return ('%s: an interrupted lxc-copy from %s left a half-made clone on the %s backing store, whose storage '
                'lxc-destroy does not remove; remove by hand %s if it exists and the directory %s, then run again '
                '(keep %s: it tells the next run what to restore)'
                % (name, marker['source'], store, what, cdir, marker['path']))

    def _empty_clone_dir(self, name):
        """True when the directory of a half-made clone holds nothing but an empty rootfs
        (lxc-copy was killed before it wrote the config): ours to remove without lxc-destroy."""
        cdir = self.container_dir(name)
        try:
            entries = os.listdir(cdir)
            return not os.path.islink(cdir) and set(entries) <= {'rootfs'} and \
                all(not os.path.islink(os.path.join(cdir, e)) and not os.listdir(os.path.join(cdir, e)) for e in entries)
        except OSError:
            return False

    def _op_write_config(self, text=None):
        name = self.spec.name
        path = self.r.config_path(name)
        current = self.read_file(path)
        if current is None:
            raise VirtkitError('%s: %s is missing after creation' % (name, path))
        if text is None:
            text = apply_desired(current, self.spec)
        if text != current:
            write_atomic(path, text)

    def _start(self, name, timeout):
        log = os.path.join(self.container_dir(name), 'virtkit-start.log')
        try:
            offset = os.path.getsize(log)
        except OSError:
            offset = 0
        rc, out, err = self.r.run('lxc-start', name, ['-d', '-o', log, '-l', 'ERROR'], check=False)
        if rc == 0:
            rc, out, err = self.r.run('lxc-wait', name, ['-s', 'RUNNING', '-t', timeout], check=False)
        if rc != 0:
            text = (self.read_file(log) or '')[offset:]
            mounts = self.spec.mounts if self.spec is not None and name == self.spec.name else []
            detail = mount_start_error(text, mounts, self.path_kind) or start_errors(text) or clean_error(err or out)
            raise VirtkitError('%s: start failed: %s' % (name, detail or 'no RUNNING state within %ss' % timeout))
        _state, pid = self.info(name)
        if pid:
            self._write_stamp(name, pid)
            if self.spec is not None and name == self.spec.name:
                self.pid = pid

    def _stop(self, name, timeout, force):
        if timeout > 0:
            rc, _out, err = self.r.run('lxc-stop', name, ['--nokill', '-t', timeout], check=False,
                                       timeout=timeout + 30)
            if rc == 0:
                return
            state, _pid = self.info(name)
            if state == 'stopped':
                return
            if not force:
                raise VirtkitError('%s: stop failed: the container did not shut down within %ss (set force_stop: '
                                   'true to kill it after the timeout)' % (name, timeout))
        elif not force:
            raise VirtkitError('%s: stop_timeout 0 needs force_stop: true (it kills at once)' % name)
        self.r.run('lxc-stop', name, ['-k'], 'kill', timeout=60)

    def _op_start(self):
        self._start(self.spec.name, self.spec.start_timeout)

    def _op_stop(self):
        name = self.spec.name
        state, _pid = self.info(name)
        if state == 'frozen':
            self.r.run('lxc-unfreeze', name, [], 'thaw before stopping')
        self._stop(name, self.spec.stop_timeout, self.spec.force_stop)

    def _op_restart(self, edits=None):
        self._op_stop()
        if edits:
            self._op_edit_rootfs(edits=edits, record=False)  # an overlay rootfs, edited while stopped
        self._op_start()

    def _op_freeze(self):
        self.r.run('lxc-freeze', self.spec.name, [], 'freeze')

    def _op_unfreeze(self):
        self.r.run('lxc-unfreeze', self.spec.name, [], 'thaw')

    def _op_destroy(self, active=False):
        name = self.spec.name
        current = getattr(self, 'current', None)
        if current is not None and current.clone and current.incomplete and not current.has_config:
            # A half-made clone without a config (see preflight): only empty directories to remove.
            cdir = self.container_dir(name)
            if self._empty_clone_dir(name):
                for entry in os.listdir(cdir):
                    os.rmdir(os.path.join(cdir, entry))
                os.rmdir(cdir)
                return
            if not os.path.lexists(cdir):
                return
        if current is not None and current.incomplete and current.clone is None and not (
                os.path.lexists(self.partial_path(name)) and not self.creation_ongoing(name)):
            # Checked again just before: another run may have made the container again (or be
            # making it) since this run read it as half-created.
            raise VirtkitError('%s: the half-created container changed since this run read it (another run?); '
                               'run again' % name)
        args = ['-f']
        if os.path.isdir(os.path.join(self.container_dir(name), 'snaps')) and \
                os.listdir(os.path.join(self.container_dir(name), 'snaps')):
            args.append('-s')
        self.r.run('lxc-destroy', name, args, 'destroy', timeout=600)

    def _op_wait_for_ip(self):
        spec = self.spec
        pid = self.pid
        if not pid:
            raise VirtkitError('%s: wait_for_ip: the container is not running' % spec.name)
        self.wait_for_ip(spec.name, pid, spec.wait_for_ip_interfaces, spec.wait_for_ip_timeout)

    def wait_for_ip(self, name, pid, interfaces, timeout):
        def look():
            addrs = lxcfacts.addresses(pid, self.read_file)
            if interfaces:
                ok = all(addrs['interfaces'].get(i, {}).get('ipv4') or addrs['interfaces'].get(i, {}).get('ipv6')
                         for i in interfaces)
            else:
                ok = bool(addrs['ipv4'] or addrs['ipv6'])
            return addrs if ok else None
        try:
            return poll(look, timeout, interval=0.1, max_interval=1.0)
        except WaitTimeout:
            seen = lxcfacts.addresses(pid, self.read_file)
            raise VirtkitError('%s: wait_for_ip: no address%s within %ss (seen: %s)' % (
                name, ' on ' + ', '.join(interfaces) if interfaces else '', timeout,
                ', '.join('%s=%s' % (k, ','.join(v['ipv4'] + v['ipv6'])) for k, v in sorted(seen['interfaces'].items()))
                or 'none'))

    # ------------------------------------------------------------ facts

    def facts(self, name, current, spec=None):
        if current is None or not current.exists:
            return {}
        conf = LxcConfig.parse(current.config_text)
        result = {
            'name': name,
            'state': current.state,
            'pid': current.pid,
            'lxc_path': self.r.lxc_path,
            'config_path': self.r.config_path(name),
            'autostart': conf.first('lxc.start.auto') == '1',
            'unprivileged': bool(conf.get('lxc.idmap')),
            'ipv4': [], 'ipv6': [], 'ips': [], 'interfaces': {},
        }
        if current.pid and current.state in ACTIVE:
            addrs = lxcfacts.addresses(current.pid, self.read_file)
            result.update(addrs)
            result['ips'] = addrs['ipv4'] + addrs['ipv6']
            result['limits'] = cgroup.read_limits(current.pid, self.layout, self.read_file)
        if spec is not None:
            managed = set(spec.keys) | set(spec.owned)
            mapping = conf.as_dict()
            result['managed_config'] = {k: v for k, v in mapping.items()
                                        if k in managed or (k.startswith('lxc.net.') and spec.networks is not None)}
            entries = [e for e in conf.get('lxc.mount.entry') if mount_target(e) in spec.mount_targets]
            if entries:
                result['managed_config']['lxc.mount.entry'] = entries
        else:
            result['config'] = conf.as_dict()
        return result
