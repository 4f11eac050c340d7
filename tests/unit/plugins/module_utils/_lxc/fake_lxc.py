# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake of the lxc-* tools working on a temporary lxc path, shared by the _lxc unit tests.

Import as ``ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc``
(tests/unit/conftest.py puts the collection on sys.path). Not named test_*: pytest does not
collect it.
"""

from __future__ import annotations

import os
import shutil
import tarfile

from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')

# The state a container is in after each of these tools ran on it.
STATE_AFTER = {
    'lxc-start': 'RUNNING',
    'lxc-stop': 'STOPPED',
    'lxc-freeze': 'FROZEN',
    'lxc-unfreeze': 'RUNNING',
}
OK = (0, b'', b'')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


# What lxc-busybox writes that matters for addresses (see guestnet).
BUSYBOX_RCS = '#!/bin/sh\n/bin/syslogd\n/bin/mount -a\n/bin/udhcpc\n'


def make_busybox_rootfs(rootfs):
    for sub in ('bin', 'etc/init.d'):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    with open(os.path.join(rootfs, 'bin', 'busybox'), 'w') as handle:
        handle.write('')
    path = os.path.join(rootfs, 'etc', 'init.d', 'rcS')
    with open(path, 'w') as handle:
        handle.write(BUSYBOX_RCS)
    os.chmod(path, 0o744)


def read_host_file(path):
    """A ``read_file`` for ContainerManager that sees no /proc, /sys or /etc of the host."""
    if path.startswith(('/proc/', '/sys/', '/etc/')):
        return None
    return cgroup.read_text(path)


class FakeLxc:
    """Just enough of the lxc-* tools: state in a dict, containers as directories, every argv recorded.

    A test file tunes it with a subclass:

    - ``fixed_pid``: the PID lxc-info reports for a running container; None: it counts up from
      4000, one more at each lxc-start.
    - ``copy_refuses_running``: lxc-copy refuses a source that is not stopped unless ``-s``
      (a snapshot clone), as LXC does.
    - ``only``: the tools it answers; any other raises AssertionError. None: every tool it knows.
    - ``extra_config(argv)``: lines lxc-create adds to the new config after the template's.

    ``fail`` maps a tool to the stderr it fails with; ``local`` collects what the local template
    got: (metadata members, fstree path, fstree members).
    """

    fixed_pid = None
    copy_refuses_running = True
    only = None

    def __init__(self, root):
        self.root = root
        self.state = {}
        self.pid = self.fixed_pid or 4000
        self.calls = []
        self.fail = {}
        self.local = []

    def __call__(self, argv, data=None, timeout=None):
        self.calls.append(list(argv))
        tool, name = argv[0], argv[2] if len(argv) > 2 and argv[1] == '-n' else None
        handler = getattr(self, '_' + tool.replace('-', '_'), None)
        if (self.only is not None and tool not in self.only) or (handler is None and tool not in STATE_AFTER):
            raise AssertionError('unexpected %s' % argv)
        if tool in self.fail:
            return 1, b'', self.fail[tool].encode()
        cdir = os.path.join(self.root, name) if name else None
        if tool in STATE_AFTER:
            self.state[name] = STATE_AFTER[tool]
            if tool == 'lxc-start' and self.fixed_pid is None:
                self.pid += 1
            return OK
        return handler(argv, name, cdir)

    def extra_config(self, argv):
        return ''

    def _lxc_info(self, argv, name, cdir):
        if not os.path.isdir(cdir):
            return 1, b'', b"lxc-info: %s: tools/lxc_info.c: main: 1 Container doesn't exist" % name.encode()
        state = self.state.get(name, 'STOPPED')
        out = 'State:          %s\n' % state
        if state != 'STOPPED':
            out += 'PID:            %d\n' % self.pid
        return 0, out.encode(), b''

    def _lxc_create(self, argv, name, cdir):
        if argv[argv.index('-t') + 1] == 'local':
            # Read the inputs now: they are temporary files.
            meta = argv[argv.index('--metadata') + 1]
            fstree = argv[argv.index('--fstree') + 1]
            with tarfile.open(meta, 'r:xz') as archive:
                members = {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}
            with tarfile.open(fstree, 'r:xz') as archive:
                self.local.append((members, fstree, sorted(archive.getnames())))
        rootfs = os.path.join(cdir, 'rootfs')
        os.makedirs(rootfs)
        if argv[argv.index('-t') + 1] == 'local':
            with tarfile.open(fstree, 'r:xz') as archive:  # the tests' own tarballs
                archive.extractall(rootfs)
        if argv[argv.index('-t') + 1] == 'busybox':
            make_busybox_rootfs(rootfs)
        with open(os.path.join(cdir, 'config'), 'w') as handle:
            handle.write(fixture('busybox.config').replace('/var/lib/lxc/vk-fx/rootfs', rootfs)
                         + self.extra_config(argv))
        return OK

    def _lxc_copy(self, argv, name, cdir):
        if self.copy_refuses_running and self.state.get(name, 'STOPPED') != 'STOPPED' and '-s' not in argv:
            return 1, b'', b'lxc-copy: x: tools/lxc_copy.c: main: 1 Cannot clone a running container'
        target = os.path.join(self.root, argv[argv.index('-N') + 1])
        shutil.copytree(cdir, target, symlinks=True)
        path = os.path.join(target, 'config')
        with open(path) as handle:
            text = handle.read()
        with open(path, 'w') as handle:  # lxc-copy points the clone at its own rootfs
            handle.write(text.replace(os.path.join(cdir, 'rootfs'), os.path.join(target, 'rootfs')))
        return OK

    def _lxc_wait(self, argv, name, cdir):
        return OK

    def _lxc_destroy(self, argv, name, cdir):
        shutil.rmtree(cdir)
        self.state.pop(name, None)
        return OK

    def _lxc_snapshot(self, argv, name, cdir):
        snaps = os.path.join(cdir, 'snaps')
        if '-c' in argv:
            os.makedirs(snaps, exist_ok=True)
            target = os.path.join(snaps, 'snap%d' % len(os.listdir(snaps)))
            os.makedirs(target)
            shutil.copy(os.path.join(cdir, 'config'), target)
            shutil.copy(argv[argv.index('-c') + 1], os.path.join(target, 'comment'))
            with open(os.path.join(target, 'ts'), 'w') as handle:
                handle.write('2026:11:26 07:09:05\n')
        elif '-d' in argv:
            shutil.rmtree(os.path.join(snaps, argv[argv.index('-d') + 1]))
        return OK

    def _lxc_attach(self, argv, name, cdir):
        return 0, b'ok\n', b''
