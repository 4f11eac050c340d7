# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's root file system as the host reads it: the one home for rootfs access.

:func:`location` parses the config's ``lxc.rootfs.path`` (or the legacy ``lxc.rootfs``);
:func:`rootfs_view` gives a view of a directory rootfs (``dir``, ``btrfs``) or an overlay one
(a snapshot clone), :func:`rootfs_dir` the directory of a plain one. A view reads and writes
below the rootfs without following a symlink (the rootfs is the guest's: a link there must
not lead the host's root out of it) and keeps every file's owner and mode (an unprivileged
container's files belong to its mapped ids); :func:`resolve` and :func:`path_kind` resolve
symlinks inside the rootfs as the guest sees them.
"""

from __future__ import annotations

import errno
import os
import stat

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig

# Backing stores whose rootfs is a directory the host can read and edit in place.
DIRECTORY_STORES = ('dir', 'btrfs')
# An overlay rootfs (overlay:LOWER:UPPER): read through both, edited in UPPER.
OVERLAY_STORES = ('overlay', 'overlayfs')

# The largest file this module edits: a larger one is left alone (with a reason), never truncated.
MAX_TEXT = 1024 * 1024
# How many symlinks a path below the rootfs may pass through (as the kernel allows).
MAX_LINKS = 40
# overlayfs: an opaque upper directory hides the lower one; a whiteout file (with the xattr,
# kernel 6.7+) hides a lower file like a 0:0 character device does. trusted.* for a mount by
# root, user.* for one with userxattr (unprivileged).
OVERLAY_XATTR_PREFIXES = ('trusted.overlay.', 'user.overlay.')


class TooLarge(Exception):
    """A file below the rootfs is larger than MAX_TEXT (not read, so never rewritten truncated)."""


def location(config_text):
    """(store, [layer paths], the config's value) of the container's rootfs, or None when its
    config names none. A value without ``store:`` is a directory (``dir``)."""
    conf = LxcConfig.parse(config_text or '')
    value = conf.first('lxc.rootfs.path') or conf.first('lxc.rootfs')
    if not value:
        return None
    store, sep, path = value.partition(':')
    if not sep:
        store, path = 'dir', value
    return store, path.split(':'), value


def rootfs_view(config_text):
    """(view, None) of the container's rootfs from its config, or (None, why not).

    A directory (dir, btrfs) is read and edited in place; an overlay (a snapshot clone) is read
    through its upper directory, then its lower one, and edited in the upper one."""
    found = location(config_text)
    if found is None:
        return None, 'its config names no rootfs (lxc.rootfs.path)'
    store, layers, value = found
    if store in DIRECTORY_STORES and len(layers) == 1 and layers[0].startswith('/'):
        return RootfsView(layers[0]), None
    if store in OVERLAY_STORES and len(layers) == 2 and all(p.startswith('/') for p in layers):
        return OverlayView(RootfsView(layers[0]), RootfsView(layers[1])), None
    return None, 'its rootfs (%s) is on a backing store this module does not edit' % value


def rootfs_dir(config_text):
    """The directory of a container's root file system when it is a plain directory on the host
    (the dir or btrfs backing store), else None (lvm, zfs, loop, overlay: not readable here)."""
    found = location(config_text)
    if found is None or found[0] not in DIRECTORY_STORES or len(found[1]) != 1:
        return None
    path = found[1][0]
    return path if path.startswith('/') and os.path.isdir(path) else None


def path_kind(view, path):
    """What ``path`` (inside the container) is in the rootfs of ``view``, its symlinks resolved
    inside that root as they are in the container: 'dir', 'file', None (it does not exist) or
    'unknown' (cannot be told: a file in the middle, a symlink loop)."""
    resolved = resolve(view, path)
    if resolved is None:
        return 'unknown'
    parts = [p for p in resolved.split('/') if p]
    mode = stat.S_IFDIR
    for n in range(1, len(parts) + 1):
        st = view.stat('/'.join(parts[:n]))
        if st is None:
            return None
        mode = st.st_mode
        if n < len(parts) and not stat.S_ISDIR(mode):
            return 'unknown'
    return 'dir' if stat.S_ISDIR(mode) else 'file'


def rootfs_path_kind(rootfs, path):
    """:func:`path_kind` of ``path`` in the root file system directory ``rootfs``."""
    return path_kind(RootfsView(rootfs), path)


def resolve(view, path):
    """``path`` (below the rootfs) with its symlinks resolved as the guest sees them: inside the
    rootfs (an absolute link starts at its root, ".." stops there). None for a loop or a link
    that cannot be read; a missing part ends the walk (the rest is kept as it is)."""
    todo = [p for p in path.split('/') if p not in ('', '.')]
    done, links = [], 0
    while todo:
        part = todo.pop(0)
        if part == '..':
            done = done[:-1]
            continue
        st = view.stat('/'.join(done + [part]))
        if st is None:
            return '/'.join(done + [part] + todo)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            link = view.readlink('/'.join(done + [part]))
            if link is None or links > MAX_LINKS:
                return None
            if link.startswith('/'):
                done = []
            todo = [p for p in link.split('/') if p not in ('', '.')] + todo
            continue
        done.append(part)
    return '/'.join(done)


def _read_at(fd, leaf):
    ffd = os.open(leaf, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0), dir_fd=fd)
    try:
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            return None
        with os.fdopen(os.dup(ffd), 'rb') as handle:
            data = handle.read(MAX_TEXT + 1)
        if len(data) > MAX_TEXT:
            raise TooLarge(leaf)
        return data.decode('utf-8', 'surrogateescape')
    finally:
        os.close(ffd)


class RootfsView:
    """Files below a container's rootfs, never through a symlink; writes keep owner and mode."""

    def __init__(self, root):
        self.root = root

    def _dir_fd(self, parts):
        """An fd of the directory root/parts[0]/... opened without following links, or None."""
        try:
            fd = os.open(self.root, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        except OSError:
            return None
        for part in parts:
            try:
                nxt = os.open(part, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0),
                              dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = nxt
        return fd

    @staticmethod
    def _split(path):
        parts = [p for p in path.split('/') if p not in ('', '.')]
        if '..' in parts or not parts:
            raise ValueError('not a path below the rootfs: %r' % path)
        return parts[:-1], parts[-1]

    def _at(self, path, call, default=None):
        """``call(directory fd, leaf name)`` for a path below the root; ``default`` when the
        directory cannot be reached or the call raises OSError."""
        parents, leaf = self._split(path)
        fd = self._dir_fd(parents)
        if fd is None:
            return default
        try:
            return call(fd, leaf)
        except OSError:
            return default
        finally:
            os.close(fd)

    def _lstat(self, path):
        return self._at(path, lambda fd, leaf: os.stat(leaf, dir_fd=fd, follow_symlinks=False))

    def exists(self, path):
        return self._lstat(path) is not None

    def is_file(self, path):
        st = self._lstat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def listdir(self, path):
        fd = self._dir_fd([p for p in path.split('/') if p not in ('', '.')])
        if fd is None:
            return []
        try:
            return sorted(os.listdir(fd))
        except OSError:
            return []
        finally:
            os.close(fd)

    def read(self, path):
        """A regular file's text (None when missing, a link, not a file or unreadable); TooLarge
        when it is larger than MAX_TEXT."""
        return self._at(path, _read_at)

    def readlink(self, path):
        """A symlink's target (None when it is none or cannot be read)."""
        return self._at(path, lambda fd, leaf: os.readlink(leaf, dir_fd=fd))

    def xattr(self, path, name):
        """The extended attribute ``name`` of a file or directory (not a link), or None."""
        def get(fd, leaf):
            ffd = os.open(leaf, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0), dir_fd=fd)
            try:
                return os.getxattr(ffd, name)
            finally:
                os.close(ffd)
        return self._at(path, get)

    def stat(self, path):
        """The lstat of a path below the root (None when missing or not reachable)."""
        return self._lstat(path)

    def mkdir_like(self, path, like):
        """Make the directory ``path`` (its parent must exist) with the owner and mode of ``like``."""
        parents, leaf = self._split(path)
        fd = self._dir_fd(parents)
        if fd is None:
            raise OSError(errno.ENOENT, 'no such directory (or a symlink on the way)', path)
        try:
            os.mkdir(leaf, 0o700, dir_fd=fd)
            os.chown(leaf, like.st_uid, like.st_gid, dir_fd=fd, follow_symlinks=False)
            os.chmod(leaf, stat.S_IMODE(like.st_mode), dir_fd=fd)
        finally:
            os.close(fd)

    def write(self, path, text, like=None):
        """Replace a regular file (through a temporary file and a rename in its directory),
        keeping its owner and mode; a missing file is made with those of ``like`` (a stat).
        OSError when it cannot."""
        parents, leaf = self._split(path)
        fd = self._dir_fd(parents)
        if fd is None:
            raise OSError(errno.ENOENT, 'no such directory (or a symlink on the way)', path)
        tmp = '.%s.virtkit-%d' % (leaf, os.getpid())
        try:
            try:
                st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
            except OSError as err:
                if err.errno != errno.ENOENT or like is None:
                    raise
                st = like
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, 'not a regular file', path)
            tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600, dir_fd=fd)
            try:
                with os.fdopen(tfd, 'wb') as handle:
                    handle.write(text.encode('utf-8', 'surrogateescape'))
                    handle.flush()
                    os.fchown(handle.fileno(), st.st_uid, st.st_gid)
                    os.fchmod(handle.fileno(), stat.S_IMODE(st.st_mode))
                os.rename(tmp, leaf, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)


class OverlayView:
    """An overlay rootfs: reads see the upper directory over the lower one, as overlayfs merges
    them: a whiteout (a 0:0 character device, or a file with the overlay.whiteout xattr) or any
    other non-directory in the upper one hides the lower file, and so does an opaque upper
    directory (overlay.opaque "y") for everything below it; writes go to the upper one, copying
    the file's directories, owner and mode up from the lower one first."""

    def __init__(self, lower, upper):
        self.lower, self.upper = lower, upper

    def _xattr(self, path, name):
        return [v for v in (self.upper.xattr(path, p + name) for p in OVERLAY_XATTR_PREFIXES) if v is not None]

    def _whiteout(self, path, st):
        if stat.S_ISCHR(st.st_mode):
            return st.st_rdev == 0
        return stat.S_ISREG(st.st_mode) and st.st_size == 0 and bool(self._xattr(path, 'whiteout'))

    def _hidden(self, path):
        """True when the lower ``path`` cannot be seen: a directory on the way to it is not a
        directory in the upper one, or is an opaque one there."""
        parts = [p for p in path.split('/') if p not in ('', '.')][:-1]
        for n in range(1, len(parts) + 1):
            sub = '/'.join(parts[:n])
            st = self.upper.stat(sub)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode) or b'y' in self._xattr(sub, 'opaque'):
                return True
        return False

    def stat(self, path):
        st = self.upper.stat(path)
        if st is not None:
            return None if self._whiteout(path, st) else st
        return None if self._hidden(path) else self.lower.stat(path)

    def _layer(self, path):
        """The layer whose ``path`` the guest sees, or None."""
        st = self.upper.stat(path)
        if st is not None:
            return None if self._whiteout(path, st) else self.upper
        return None if self._hidden(path) else self.lower

    def exists(self, path):
        return self.stat(path) is not None

    def is_file(self, path):
        st = self.stat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def listdir(self, path):
        names = set(self.upper.listdir(path)) | set(self.lower.listdir(path))
        return sorted(n for n in names if self.exists('%s/%s' % (path, n)))

    def read(self, path):
        layer = self._layer(path)
        return None if layer is None else layer.read(path)

    def readlink(self, path):
        layer = self._layer(path)
        return None if layer is None else layer.readlink(path)

    def write(self, path, text):
        layer = self._layer(path)
        if layer is None:
            raise OSError(errno.ENOENT, 'not a file the guest sees (a whiteout or an opaque directory hides it)', path)
        if layer is self.lower:
            like = self.lower.stat(path)
            if like is None or not stat.S_ISREG(like.st_mode):
                raise OSError(errno.ENOENT, 'not a file in the lower directory', path)
            parts = [p for p in path.split('/') if p not in ('', '.')][:-1]
            for n in range(1, len(parts) + 1):
                sub = '/'.join(parts[:n])
                if self.upper.stat(sub) is None:
                    self.upper.mkdir_like(sub, self.lower.stat(sub))
            self.upper.write(path, text, like=like)
            return
        self.upper.write(path, text)
