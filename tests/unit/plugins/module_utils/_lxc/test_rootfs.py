# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's rootfs as the host reads it (rootfs): location, views, symlinks inside the root."""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.guestnet import nics, survey
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.rootfs import (
    OverlayView, RootfsView, rootfs_dir, rootfs_path_kind, rootfs_view)
from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.test_guestnet import (
    STATIC, fixture, tree)


def test_rootfs_dir_reads_the_same_location_as_the_view(tmp_path):
    assert rootfs_dir('lxc.rootfs.path = dir:%s\n' % tmp_path) == str(tmp_path)
    assert rootfs_dir('lxc.rootfs.path = %s\n' % tmp_path) == str(tmp_path)
    assert rootfs_dir('lxc.rootfs.path = btrfs:%s\n' % tmp_path) == str(tmp_path)
    assert rootfs_dir('lxc.rootfs = %s\n' % tmp_path) == str(tmp_path)  # the legacy key, as the view reads it
    assert rootfs_dir('lxc.rootfs.path = overlay:%s:%s\n' % (tmp_path, tmp_path)) is None
    assert rootfs_dir('lxc.rootfs.path = dir:%s/missing\n' % tmp_path) is None
    assert rootfs_dir('lxc.rootfs.path = lvm:/dev/lxc/a\n') is None and rootfs_dir('') is None


def test_rootfs_path_kind_resolves_symlinks_inside_the_root(tmp_path):
    root = tmp_path / 'rootfs'
    (root / 'mnt' / 'data').mkdir(parents=True)
    (root / 'etc').mkdir()
    (root / 'etc' / 'hostname').write_text('x')
    os.symlink('/mnt', str(root / 'media'))          # absolute: inside the root, not the host's /mnt
    os.symlink('../etc/hostname', str(root / 'mnt' / 'name'))
    os.symlink('loop', str(root / 'loop'))
    rootfs = str(root)
    assert rootfs_path_kind(rootfs, 'mnt/data') == 'dir'
    assert rootfs_path_kind(rootfs, 'etc/hostname') == 'file'
    assert rootfs_path_kind(rootfs, 'media/data') == 'dir'
    assert rootfs_path_kind(rootfs, 'media/name') == 'file'
    assert rootfs_path_kind(rootfs, 'mnt/share') is None
    assert rootfs_path_kind(rootfs, 'media/share/x') is None
    assert rootfs_path_kind(rootfs, 'etc/hostname/x') == 'unknown'
    assert rootfs_path_kind(rootfs, 'loop/x') == 'unknown'


def test_rootfs_view():
    view, why = rootfs_view('lxc.rootfs.path = dir:/var/lib/lxc/a/rootfs\n')
    assert isinstance(view, RootfsView) and view.root == '/var/lib/lxc/a/rootfs' and why is None
    assert rootfs_view('lxc.rootfs.path = /srv/a\n')[0].root == '/srv/a'
    assert rootfs_view('lxc.rootfs.path = btrfs:/var/lib/lxc/a/rootfs\n')[0].root == '/var/lib/lxc/a/rootfs'
    overlay = rootfs_view('lxc.rootfs.path = overlay:/var/lib/lxc/a/rootfs:/var/lib/lxc/b/overlay/delta\n')[0]
    assert isinstance(overlay, OverlayView)
    assert (overlay.lower.root, overlay.upper.root) == ('/var/lib/lxc/a/rootfs', '/var/lib/lxc/b/overlay/delta')
    assert 'backing store' in rootfs_view('lxc.rootfs.path = lvm:/dev/lxc/a\n')[1]
    assert 'backing store' in rootfs_view('lxc.rootfs.path = overlay:/a\n')[1]
    assert rootfs_view('lxc.uts.name = a\n') == (None, 'its config names no rootfs (lxc.rootfs.path)')


def test_overlay_reads_upper_over_lower_and_writes_upper_only(tmp_path):
    lower = tree(tmp_path / 'lower', {'bin/busybox': '', 'etc/init.d/rcS': fixture('busybox-rcS'),
                                      'etc/network/interfaces': 'gone\n'})
    upper = tree(tmp_path / 'upper', {'etc/motd': 'hi\n'})
    os.mknod(str(tmp_path / 'upper' / 'etc' / 'network'), 0o600 | 0o020000, 0) if os.geteuid() == 0 else None
    os.chmod(str(tmp_path / 'lower' / 'etc' / 'init.d'), 0o751)
    view = OverlayView(lower, upper)
    assert view.read('etc/init.d/rcS') == fixture('busybox-rcS') and view.read('etc/motd') == 'hi\n'
    assert view.listdir('etc')[:2] == ['init.d', 'motd']
    if os.geteuid() == 0:  # a whiteout (character device 0:0) hides the lower directory
        assert view.read('etc/network/interfaces') is None and 'network' not in view.listdir('etc')
    edits, reasons = survey(view, nics([STATIC]))
    assert [e[0] for e in edits] == ['/etc/init.d/rcS'] and reasons == {}
    view.write('etc/init.d/rcS', edits[0][2])
    assert (tmp_path / 'upper' / 'etc' / 'init.d' / 'rcS').read_text() == edits[0][2]
    assert (tmp_path / 'lower' / 'etc' / 'init.d' / 'rcS').read_text() == fixture('busybox-rcS')
    assert oct(os.stat(str(tmp_path / 'upper' / 'etc' / 'init.d')).st_mode & 0o7777) == '0o751'
    assert survey(view, nics([STATIC])) == ([], {})


@pytest.mark.parametrize('prefix', ['trusted', 'user'])
def test_overlay_opaque_directories_and_xattr_whiteouts_hide_the_lower_layer(tmp_path, prefix):
    if prefix == 'trusted' and os.geteuid() != 0:
        pytest.skip('trusted.* xattrs need root')
    lower = tree(tmp_path / 'lower', {'bin/busybox': '', 'etc/init.d/rcS': fixture('busybox-rcS'),
                                      'etc/network/interfaces': 'iface eth0 inet dhcp\n'})
    upper = tree(tmp_path / 'upper', {'etc/init.d/README': 'the user emptied init.d\n', 'etc/network/interfaces': ''})
    os.setxattr(str(tmp_path / 'upper' / 'etc' / 'init.d'), prefix + '.overlay.opaque', b'y')
    # an xattr whiteout: an empty file with overlay.whiteout (its directory says "x": not opaque)
    os.setxattr(str(tmp_path / 'upper' / 'etc' / 'network' / 'interfaces'), prefix + '.overlay.whiteout', b'')
    os.setxattr(str(tmp_path / 'upper' / 'etc' / 'network'), prefix + '.overlay.opaque', b'x')
    view = OverlayView(lower, upper)
    assert view.read('etc/init.d/rcS') is None and view.listdir('etc/init.d') == ['README']
    assert view.read('etc/network/interfaces') is None and not view.exists('etc/network/interfaces')
    assert view.listdir('etc/network') == []
    with pytest.raises(OSError):
        view.write('etc/init.d/rcS', 'resurrected\n')
    with pytest.raises(OSError):
        view.write('etc/network/interfaces', 'resurrected\n')
    assert not (tmp_path / 'upper' / 'etc' / 'init.d' / 'rcS').exists()
    assert (tmp_path / 'upper' / 'etc' / 'network' / 'interfaces').read_text() == ''
    edits, reasons = survey(view, nics([STATIC]))
    assert edits == [] and 'no network setup this module knows' in reasons['eth0']


def test_view_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / 'outside'
    outside.write_text('iface eth0 inet dhcp\n')
    root = tmp_path / 'root'
    (root / 'etc' / 'network').mkdir(parents=True)
    (root / 'etc' / 'network' / 'interfaces').symlink_to(str(outside))
    os.symlink(str(tmp_path), str(root / 'up'))
    view = RootfsView(str(root))
    assert view.read('etc/network/interfaces') is None and view.read('up/outside') is None
    with pytest.raises(OSError):
        view.write('etc/network/interfaces', 'x')
    with pytest.raises(OSError):
        view.write('up/outside', 'x')
    with pytest.raises(ValueError):
        view.read('../outside')
    assert outside.read_text() == 'iface eth0 inet dhcp\n'
    assert survey(view, nics([STATIC]))[0] == []


def test_view_write_keeps_owner_and_mode(tmp_path):
    view = tree(tmp_path, {'etc/init.d/rcS': fixture('busybox-rcS')})
    path = tmp_path / 'etc' / 'init.d' / 'rcS'
    os.chmod(str(path), 0o744)
    if os.geteuid() == 0:
        os.chown(str(path), 100000, 100000)  # an unprivileged container's mapped root
    before = os.stat(str(path))
    view.write('etc/init.d/rcS', 'new\n')
    after = os.stat(str(path))
    assert path.read_text() == 'new\n'
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert sorted(os.listdir(str(path.parent))) == ['rcS']  # no temporary file left
