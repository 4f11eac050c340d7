# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real lxc-copy killed mid-way, on real LXC in a private lxc path (a few seconds).

Skipped unless root runs it and the LXC tools, the busybox template and rsync are there.
The source is a running busybox container with about 100 MB of files; the module runs in a
forked child; when its lxc-copy's rsync has started, the child and lxc-copy are killed
(SIGKILL) and the rsync is left stopped, as an orphan, the way a killed lxc-copy leaves it.
Everything lives under a fresh directory in /tmp that the test removes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import CLONE_PREFIX, ContainerManager

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ('lxc-create', 'lxc-copy', 'lxc-start', 'rsync'))
    or not os.path.isfile('/usr/share/lxc/templates/lxc-busybox') or not shutil.which('busybox'),
    reason='needs root, the LXC tools, the busybox template and rsync (real LXC)')

SRC, NAME = 'vk-ut-src', 'vk-ut-clone'
FILES, SIZE = 20, 5 << 20  # 100 MB: rsync takes a few tenths of a second, long enough to catch


def children(pid):
    """Direct children of ``pid`` (from /proc/*/stat)."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    fields = handle.read().rsplit(')', 1)[1].split()
            except (IOError, OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace').split('\0')
    except (IOError, OSError):
        return []


def copying_into(path):
    return [int(p) for p in os.listdir('/proc') if p.isdigit() and path in cmdline(int(p))]


def wait_for(what, timeout, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(interval)
    return None


@pytest.fixture
def lxc():
    path = tempfile.mkdtemp(prefix='vk-ut-lxc-', dir='/tmp')
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        for name in (NAME, SRC):
            subprocess.run(['lxc-stop', '-P', path, '-n', name, '-k'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)
            subprocess.run(['lxc-destroy', '-P', path, '-n', name, '-f'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)
        shutil.rmtree(path, ignore_errors=True)


def test_killed_lxc_copy_of_a_running_source_converges(lxc):
    m = ContainerManager(lxc_path=lxc)
    src = m.run({'name': SRC, 'template': 'busybox', 'networks': [], 'state': 'started'})
    assert src['container']['state'] == 'running'
    data = os.path.join(lxc, SRC, 'rootfs', 'data')
    os.mkdir(data)
    for i in range(FILES):
        with open(os.path.join(data, 'f%d' % i), 'wb') as handle:
            handle.write(os.urandom(SIZE))

    p = {'name': NAME, 'clone_from': SRC, 'state': 'present', 'config': {'lxc.signal.halt': 'SIGPWR'}}
    target = os.path.join(lxc, NAME, 'rootfs')
    child = os.fork()
    if child == 0:  # pragma: no cover (the child: killed below, or fails)
        try:
            ContainerManager(lxc_path=lxc).run(p)
        finally:
            os._exit(3)
    rsync = []
    try:
        rsync = wait_for(lambda: copying_into(target), 60)
        assert rsync, 'lxc-copy never started copying'
        copy = [c for c in children(child) if os.path.basename(cmdline(c)[0]) == 'lxc-copy']
        # Stop all, then kill the module and lxc-copy: the rsync goes on (here: stays stopped).
        for pid in [child] + copy + rsync:
            os.kill(pid, signal.SIGSTOP)
        rsync = copying_into(target)
        for pid in [child] + copy:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(child, 0)
        child = None
        assert copy and rsync

        # What LXC left: no partial marker, a config without lxc.rootfs.path, a partial rootfs;
        # the source stopped (by the killed run); our marker.
        cdir = os.path.join(lxc, NAME)
        with open(os.path.join(cdir, 'config')) as handle:
            assert 'lxc.rootfs.path' not in handle.read()
        assert not os.path.exists(os.path.join(cdir, 'partial'))
        assert os.path.isfile(os.path.join(lxc, CLONE_PREFIX + NAME))
        assert m.info(SRC)[0] == 'stopped' and not m.exists(NAME)

        with pytest.raises(VirtkitError, match=r'an earlier lxc-copy is still making this container \(PID \d+ rsync'):
            m.run(p, check_mode=True)
        for pid in rsync:
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not copying_into(target), 10), 'rsync did not go away'
        rsync = []

        check = m.run(p, check_mode=True)
        assert [a['action'] for a in check['actions']] == [
            'restore_source', 'destroy', 'drop_clone_marker', 'clone', 'write_config']
        assert m.info(SRC)[0] == 'stopped'
        result = m.run(p)
        assert result['changed'] and result['container']['state'] == 'stopped'
        assert m.info(SRC)[0] == 'running'
        copied = os.path.join(target, 'data')
        assert sorted(os.listdir(copied)) == sorted(os.listdir(data))
        assert all(os.path.getsize(os.path.join(copied, f)) == SIZE for f in os.listdir(copied))
        assert sorted(os.listdir(lxc)) == sorted([NAME, SRC])
        assert not m.run(p)['changed'] and not m.run(p, check_mode=True)['changed']
    finally:
        for pid in ([child] if child else []) + rsync:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if child:
            os.waitpid(child, 0)
