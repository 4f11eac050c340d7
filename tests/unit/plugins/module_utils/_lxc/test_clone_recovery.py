# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""clone_from after a killed run: the half-made clone goes, the source comes back.

The lxc tools are the shared fake on ``tmp_path/lxc``. A kill is a real one: the run happens
in a forked child that the fake ends with ``os._exit`` at the chosen tool, so no ``finally``
of the module runs, as under SIGKILL. The fake keeps container states in a file, so the
parent sees what the killed child left.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import CLONE_PREFIX, ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.plan import Current, build_plan, source_to_restore
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import Runner
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import validate
from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import FakeLxc, read_host_file

SRC, NAME = 'vk-src', 'vk-b'
KILLED = 137
# What a killed lxc-copy leaves (LXC 5.0, seen here): the config without lxc.rootfs.path and
# with the source's name, a partly copied rootfs.
HALF_CONFIG = 'lxc.net.0.type = empty\nlxc.uts.name = "%s"\nlxc.signal.halt = SIGUSR1\n' % SRC


class FileState(dict):
    """The fake's container states, written through to a file (shared with a forked child)."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        if os.path.exists(path):
            with open(path) as handle:
                self.update(json.load(handle))

    def _save(self):
        with open(self.path, 'w') as handle:
            json.dump(dict(self), handle)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._save()

    def pop(self, *args):
        value = super().pop(*args)
        self._save()
        return value

    def reload(self):
        self.clear()
        with open(self.path) as handle:
            self.update(json.load(handle))


class Tools(FakeLxc):
    """lxc-copy writes a real clone (config with lxc.rootfs.path, a new uts name) and records the
    clone marker as it saw it; ``kill_at`` (tool, when) ends the process there like SIGKILL:
    'before' the tool ran, 'during' (lxc-copy only: the half-made clone is on disk) or 'after'."""

    fixed_pid = 4242

    def __init__(self, root):
        super().__init__(root)
        self.state = FileState(os.path.join(os.path.dirname(root), 'states.json'))
        self.kill_at = None
        self.marker_seen = []

    def __call__(self, argv, data=None, timeout=None):
        tool = argv[0]
        if self.kill_at and self.kill_at[0] == tool and self.kill_at[1] == 'before':
            os._exit(KILLED)
        result = super().__call__(argv, data, timeout)
        if self.kill_at and self.kill_at[0] == tool and self.kill_at[1] == 'after':
            os._exit(KILLED)
        return result

    def _lxc_copy(self, argv, name, cdir):
        new = argv[argv.index('-N') + 1]
        path = os.path.join(self.root, CLONE_PREFIX + new)
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                locked = False
            except OSError:
                locked = True
        finally:
            os.close(fd)
        with open(path) as handle:
            self.marker_seen.append((locked, json.load(handle)))
        target = os.path.join(self.root, new)
        if self.kill_at == ('lxc-copy', 'during'):
            os.makedirs(os.path.join(target, 'rootfs', 'bin'))
            with open(os.path.join(target, 'config'), 'w') as handle:
                handle.write(HALF_CONFIG)
            os._exit(KILLED)
        if self.copy_refuses_running and self.state.get(name, 'STOPPED') != 'STOPPED' and '-s' not in argv:
            return 1, b'', b'lxc-copy: x: tools/lxc_copy.c: main: 1 Cannot clone a running container'
        if os.path.exists(os.path.join(target, 'config')):
            return 1, b'', b'lxc-copy: %s: lxccontainer.c: do_lxcapi_clone: 1 Container already exists' % new.encode()
        shutil.copytree(cdir, target)
        with open(os.path.join(target, 'config'), 'w') as handle:
            handle.write(HALF_CONFIG.replace('"%s"' % SRC, new) + 'lxc.rootfs.path = dir:%s/rootfs\n' % target)
        return 0, b'', b''


@pytest.fixture
def env(tmp_path):
    lxc = tmp_path / 'lxc'
    lxc.mkdir()
    (tmp_path / 'proc').mkdir()
    fake = Tools(str(lxc))
    m = manager(fake, tmp_path)
    m.run({'name': SRC, 'networks': [], 'state': 'started'})
    fake.calls[:] = []
    return fake, m, str(lxc)


def manager(fake, tmp_path):
    m = ContainerManager(runner=Runner(fake.root, run=fake), read_file=read_host_file, layout=cgroup.CgroupLayout())
    m.proc = str(tmp_path / 'proc')  # no real process works on these paths; tests add fake ones
    return m


def clone_params(**kw):
    p = {'name': NAME, 'clone_from': SRC, 'state': 'started', 'config': {'lxc.signal.halt': 'SIGPWR'}}
    p.update(kw)
    return p


def killed_run(fake, tmp_path, params, kill_at):
    """Run the module in a child killed at ``kill_at``; return a fresh manager for the rerun."""
    fake.kill_at = kill_at
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            manager(fake, tmp_path).run(params)
            code = 0
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == KILLED, 'the run was not killed at %s' % (kill_at,)
    fake.kill_at = None
    fake.state.reload()
    fake.calls[:] = []
    return manager(fake, tmp_path)


def actions(result):
    return [a['action'] for a in result['actions']]


def marker_of(lxc, name=NAME):
    with open(os.path.join(lxc, CLONE_PREFIX + name)) as handle:
        return json.load(handle)


def converges(m, params):
    assert not m.run(params)['changed'] and not m.run(params, check_mode=True)['changed']


# ---------------------------------------------------------------- a clone that is not interrupted

def test_clone_runs_under_a_locked_marker_that_is_removed(env):
    fake, m, lxc = env
    result = m.run(clone_params())
    assert actions(result) == ['clone', 'write_config', 'start'] and result['container']['state'] == 'running'
    locked, seen = fake.marker_seen[0]
    assert locked and seen == {'clone': NAME, 'source': SRC, 'source_state': 'running', 'source_stopped': True,
                               'phase': 'copying', 'backing_store': 'dir'}
    tools = [c[0] for c in fake.calls]
    assert tools.index('lxc-stop') < tools.index('lxc-copy') < tools.index('lxc-start')
    assert fake.state[SRC] == 'RUNNING' and sorted(os.listdir(lxc)) == [NAME, SRC]
    converges(m, clone_params())


def test_snapshot_clone_of_a_running_source_never_stops_it(env):
    fake, m, lxc = env
    m.run(clone_params(clone_snapshot=True))
    assert fake.marker_seen[0][1]['source_stopped'] is False and 'lxc-stop' not in [c[0] for c in fake.calls]
    assert sorted(os.listdir(lxc)) == [NAME, SRC]


def test_failed_copy_removes_the_marker_and_restarts_the_source(env):
    fake, m, lxc = env
    fake.fail['lxc-copy'] = 'lxc-copy: vk-src: lxccontainer.c: do_lxcapi_clone: 1 No space left on device'
    with pytest.raises(VirtkitError) as err:
        m.run(clone_params())
    assert str(err.value) == 'vk-src: clone vk-src to vk-b failed: No space left on device'
    assert fake.state[SRC] == 'RUNNING' and os.listdir(lxc) == [SRC]


# ---------------------------------------------------------------- killed runs converge

def test_killed_during_the_copy_of_a_running_source(env, tmp_path):
    fake, m, lxc = env
    p = clone_params()
    m = killed_run(fake, tmp_path, p, ('lxc-copy', 'during'))
    # what the kill left: the source stopped, a half-made clone LXC itself reports as existing
    assert fake.state[SRC] == 'STOPPED' and marker_of(lxc)['source_stopped'] is True
    assert os.path.isfile(os.path.join(lxc, NAME, 'config')) and not m.exists(NAME)
    check = m.run(p, check_mode=True)
    assert actions(check) == ['restore_source', 'destroy', 'drop_clone_marker', 'clone', 'write_config', 'start']
    assert [a['summary'] for a in check['actions'][:3]] == [
        'start the clone source vk-src again (an interrupted clone of vk-b left it stopped)',
        'destroy the half-made clone vk-b (an earlier lxc-copy from vk-src was interrupted) to create it again',
        'remove the clone marker %s/.virtkit-clone-vk-b of an interrupted run' % lxc]
    assert check['changed'] and check['container'] == {}
    assert [c[0] for c in fake.calls] == ['lxc-info'] and fake.state[SRC] == 'STOPPED'
    result = m.run(p)
    tools = [c[0] for c in fake.calls]
    assert tools.index('lxc-start') < tools.index('lxc-destroy') < tools.index('lxc-copy')
    assert result['container']['state'] == 'running' and fake.state[SRC] == 'RUNNING'
    config = open(os.path.join(lxc, NAME, 'config')).read()
    assert 'lxc.rootfs.path = dir:%s/%s/rootfs' % (lxc, NAME) in config and 'lxc.signal.halt = SIGPWR' in config
    assert sorted(os.listdir(lxc)) == [NAME, SRC]
    converges(m, p)


@pytest.mark.parametrize('kill_at, source_stopped', [
    (('lxc-stop', 'before'), True),  # the marker says so before the source is touched
    (('lxc-stop', 'after'), True),
    (('lxc-copy', 'before'), True),
    (('lxc-info', 'before'), None),  # before the marker: nothing to recover
], ids=['stopping', 'stopped', 'copy-not-started', 'before-marker'])
def test_killed_before_lxc_copy_made_anything(env, tmp_path, kill_at, source_stopped):
    fake, m, lxc = env
    p = clone_params()
    m = killed_run(fake, tmp_path, p, kill_at)
    assert not os.path.exists(os.path.join(lxc, NAME))
    expected = ['clone', 'write_config', 'start']
    if source_stopped is not None:
        assert marker_of(lxc)['source_stopped'] is source_stopped and marker_of(lxc)['phase'] == 'copying'
        expected[:0] = ['drop_clone_marker']
        if fake.state[SRC] == 'STOPPED':
            expected[:0] = ['restore_source']
    assert actions(m.run(p, check_mode=True)) == expected
    result = m.run(p)
    assert actions(result) == expected and fake.state[SRC] == 'RUNNING'
    assert sorted(os.listdir(lxc)) == [NAME, SRC]
    converges(m, p)


@pytest.mark.parametrize('kill_at, phase', [
    (('lxc-copy', 'after'), 'copying'),  # before the run could record it: the final config tells
    (('lxc-start', 'before'), 'copied'),
], ids=['unrecorded', 'recorded'])
def test_killed_after_the_copy_before_restarting_the_source(env, tmp_path, kill_at, phase):
    """lxc-copy succeeded: the clone is complete and kept; the source is started again."""
    fake, m, lxc = env
    p = clone_params()
    m = killed_run(fake, tmp_path, p, kill_at)
    assert marker_of(lxc)['phase'] == phase and fake.state[SRC] == 'STOPPED' and m.exists(NAME)
    inode = os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino
    result = m.run(p)
    assert actions(result) == ['restore_source', 'drop_clone_marker', 'write_config', 'start']
    assert 'lxc-destroy' not in [c[0] for c in fake.calls] and 'lxc-copy' not in [c[0] for c in fake.calls]
    assert os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino == inode and fake.state[SRC] == 'RUNNING'
    converges(m, p)


def test_killed_after_restarting_the_source(env, tmp_path):
    """Only the marker is left: it goes, nothing else happens to source or clone."""
    fake, m, lxc = env
    p = clone_params(state='stopped')
    m = killed_run(fake, tmp_path, p, ('lxc-wait', 'after'))
    assert fake.state[SRC] == 'RUNNING' and marker_of(lxc)['phase'] == 'copied'
    result = m.run(p)
    assert actions(result) == ['drop_clone_marker', 'write_config']
    assert set(c[0] for c in fake.calls) == {'lxc-info'}
    converges(m, p)


def test_frozen_source_is_thawed_started_and_frozen_again(env, tmp_path):
    fake, m, lxc = env
    m.run({'name': SRC, 'state': 'frozen', 'networks': []})
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    assert fake.state[SRC] == 'STOPPED' and marker_of(lxc)['source_state'] == 'frozen'
    check = m.run(clone_params(), check_mode=True)
    assert check['actions'][0]['summary'] == \
        'start and freeze the clone source vk-src again (an interrupted clone of vk-b left it stopped)'
    m.run(clone_params())
    assert fake.state[SRC] == 'FROZEN'
    # killed between starting it and freezing it: it is frozen again, no more
    m = killed_run(fake, tmp_path, clone_params(name='vk-c'), ('lxc-freeze', 'before'))
    assert fake.state[SRC] == 'RUNNING'
    result = m.run(clone_params(name='vk-c'))
    assert actions(result) == ['restore_source', 'drop_clone_marker', 'write_config', 'start']
    assert result['actions'][0]['summary'].startswith('freeze the clone source vk-src again')
    assert fake.state[SRC] == 'FROZEN'
    converges(m, clone_params(name='vk-c'))


def test_source_started_by_someone_else_meanwhile_is_left_alone(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    m.run({'name': SRC, 'state': 'started', 'networks': []})
    assert actions(m.run(clone_params(), check_mode=True))[0] == 'destroy'


def test_killed_snapshot_clone(env, tmp_path):
    fake, m, lxc = env
    p = clone_params(clone_snapshot=True)
    m = killed_run(fake, tmp_path, p, ('lxc-copy', 'during'))
    assert fake.state[SRC] == 'RUNNING' and marker_of(lxc)['source_stopped'] is False
    result = m.run(p)
    assert actions(result) == ['destroy', 'drop_clone_marker', 'clone', 'write_config', 'start']
    assert 'lxc-stop' not in [c[0] for c in fake.calls]
    converges(m, p)


def test_half_made_clone_removed_by_absent(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    gone = {'name': NAME, 'state': 'absent'}
    assert actions(m.run(gone, check_mode=True)) == ['restore_source', 'destroy', 'drop_clone_marker']
    assert actions(m.run(gone)) == ['restore_source', 'destroy', 'drop_clone_marker']
    assert os.listdir(lxc) == [SRC] and fake.state[SRC] == 'RUNNING'
    converges(m, gone)


def test_half_made_clone_recreated_from_a_template(env, tmp_path):
    """The task now asks for a template container under that name: the half clone still goes."""
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(clone_snapshot=True), ('lxc-copy', 'during'))
    result = m.run({'name': NAME, 'template': 'busybox'})
    assert actions(result) == ['destroy', 'drop_clone_marker', 'create', 'write_config']
    assert sorted(os.listdir(lxc)) == [NAME, SRC]


def test_half_made_clone_is_no_clone_source(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    with pytest.raises(VirtkitError, match='clone_from vk-b does not exist'):
        m.run({'name': 'vk-c', 'clone_from': NAME})


def test_copy_killed_before_its_config_leaves_an_empty_directory(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(clone_snapshot=True), ('lxc-copy', 'before'))
    os.makedirs(os.path.join(lxc, NAME, 'rootfs'))
    result = m.run(clone_params(clone_snapshot=True))
    assert actions(result) == ['destroy', 'drop_clone_marker', 'clone', 'write_config', 'start']
    assert 'lxc-destroy' not in [c[0] for c in fake.calls]  # rmdir of the empty directories
    converges(m, clone_params(clone_snapshot=True))


def test_directory_without_config_that_holds_files_is_left_alone(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(clone_snapshot=True), ('lxc-copy', 'before'))
    os.makedirs(os.path.join(lxc, NAME, 'rootfs', 'bin'))
    with pytest.raises(VirtkitError, match='an interrupted lxc-copy left %s/vk-b without a config' % lxc):
        m.run(clone_params(clone_snapshot=True), check_mode=True)
    assert fake.calls == [] and os.path.isdir(os.path.join(lxc, NAME, 'rootfs', 'bin'))


# ---------------------------------------------------------------- never a complete container

def test_complete_container_under_an_old_marker_is_kept(env, tmp_path):
    """A marker still 'copying' but the config names a rootfs (lxc-copy wrote its final config,
    or the container was made otherwise since): never destroyed, only the marker goes."""
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(clone_snapshot=True), ('lxc-copy', 'before'))
    fake(['lxc-create', '-n', NAME, '-P', lxc, '-t', 'busybox'])  # made by hand after the killed run
    inode = os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino
    assert actions(m.run(clone_params(clone_snapshot=True), check_mode=True))[0] == 'drop_clone_marker'
    gone = m.run({'name': NAME, 'state': 'absent'}, check_mode=True)
    assert actions(gone) == ['destroy', 'drop_clone_marker'] and gone['actions'][0]['summary'].startswith('destroy vk-b ')
    result = m.run({'name': NAME})
    assert actions(result) == ['drop_clone_marker'] and os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino == inode
    converges(m, {'name': NAME})


def test_empty_marker_is_a_run_killed_before_it_did_anything(env, tmp_path):
    fake, m, lxc = env
    m.run({'name': NAME, 'networks': []})
    open(os.path.join(lxc, CLONE_PREFIX + NAME), 'w').close()
    fake.calls[:] = []
    result = m.run({'name': NAME, 'networks': []})
    assert actions(result) == ['drop_clone_marker'] and set(c[0] for c in fake.calls) == {'lxc-info'}


# ---------------------------------------------------------------- busy or foreign markers

def test_marker_held_by_a_live_run_is_left_alone(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    fd = os.open(os.path.join(lxc, CLONE_PREFIX + NAME), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        for p in (clone_params(), {'name': NAME, 'state': 'absent'}):
            for check_mode in (True, False):
                with pytest.raises(VirtkitError) as err:
                    m.run(p, check_mode=check_mode)
                assert str(err.value) == ('vk-b: another run is cloning this container right now (it holds '
                                          '%s/.virtkit-clone-vk-b); run again when it has finished' % lxc)
    finally:
        os.close(fd)
    assert fake.calls == [] and fake.state[SRC] == 'STOPPED' and os.path.isdir(os.path.join(lxc, NAME))


def test_rsync_left_by_a_killed_lxc_copy_is_waited_for(env, tmp_path):
    """lxc-copy killed alone: its rsync goes on copying into the clone (seen on LXC 5.0)."""
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    proc = tmp_path / 'proc' / '31337'
    proc.mkdir()
    (proc / 'cmdline').write_bytes(b'rsync\0-aHXS\0--delete\0/usr/lib/x86_64-linux-gnu/lxc/rootfs/\0'
                                   + ('%s/%s/rootfs\0' % (lxc, NAME)).encode())
    other = tmp_path / 'proc' / '31338'  # a copy into another container is no concern
    other.mkdir()
    (other / 'cmdline').write_bytes(('rsync\0-aHXS\0/x/\0%s/%s-2/rootfs\0' % (lxc, NAME)).encode())
    with pytest.raises(VirtkitError) as err:
        m.run(clone_params())
    assert str(err.value) == ('vk-b: an earlier lxc-copy is still making this container (PID 31337 rsync works '
                              'on %s/vk-b); run again when it has finished' % lxc)
    assert fake.calls == []
    shutil.rmtree(str(proc))
    (other / 'cmdline').write_bytes(('lxc-copy\0-n\0vk-src\0-P\0%s\0-N\0%s\0' % (lxc, NAME)).encode())
    with pytest.raises(VirtkitError, match=r'PID 31338 lxc-copy works on'):
        m.run(clone_params())
    shutil.rmtree(str(other))
    assert m.run(clone_params())['changed']
    converges(m, clone_params())


@pytest.mark.parametrize('spoil, message', [
    (lambda path: open(path, 'w').write('{"clone": "vk-b"}'), 'is not a clone marker of this module for vk-b'),
    (lambda path: open(path, 'w').write('notes'), 'is not a clone marker of this module for vk-b'),
    (lambda path: open(path, 'w').write(json.dumps({'clone': 'other', 'source': 'vk-src', 'source_state': 'stopped',
                                                    'source_stopped': False, 'phase': 'copied'})),
     'is not a clone marker of this module for vk-b'),
    (os.mkdir, 'is not a clone marker of this module (not a regular file); remove it by hand'),
], ids=['fields-missing', 'not-json', 'other-clone', 'directory'])
def test_foreign_marker_is_refused_before_any_change(env, spoil, message):
    fake, m, lxc = env
    m.run({'name': NAME, 'networks': []})
    fake.calls[:] = []
    path = os.path.join(lxc, CLONE_PREFIX + NAME)
    spoil(path)
    for p in ({'name': NAME}, {'name': NAME, 'state': 'absent'}):
        for check_mode in (True, False):
            with pytest.raises(VirtkitError) as err:
                m.run(p, check_mode=check_mode)
            assert str(err.value).startswith('vk-b: %s %s' % (path, message)) and '\n' not in str(err.value)
    assert set(c[0] for c in fake.calls) == {'lxc-info'} and os.path.lexists(path) and m.exists(NAME)


# ---------------------------------------------------------------- the pure part

@pytest.mark.parametrize('before, stopped, now, expected', [
    ('running', True, 'stopped', (True, False)),
    ('frozen', True, 'stopped', (True, True)),
    ('frozen', True, 'running', (False, True)),  # killed between its start and its freeze
    ('running', True, 'running', None),
    ('frozen', True, 'frozen', None),
    ('running', False, 'stopped', None),  # a snapshot clone never stopped it: someone else did
    ('stopped', True, 'stopped', None),  # it was stopped before the run
    ('running', True, 'absent', None),  # gone since
], ids=['running', 'frozen', 'frozen-started', 'running-again', 'frozen-again', 'not-ours', 'was-stopped',
        'gone'])
def test_source_to_restore(before, stopped, now, expected):
    marker = {'source': SRC, 'source_state': before, 'source_stopped': stopped, 'source_now': now,
              'path': '/x/' + CLONE_PREFIX + NAME, 'phase': 'copying'}
    assert source_to_restore(marker) == expected
    plan = build_plan(validate({'name': NAME, 'clone_from': SRC}), Current(NAME, clone=marker))
    assert [a.op for a in plan.actions] == ['restore_source'] * (expected is not None) + [
        'drop_clone_marker', 'clone', 'write_config']


# ---------------------------------------------------------------- two reruns of the same task

def test_stale_plan_never_destroys_the_clone_another_run_completed(env, tmp_path):
    """Runs B and C both read the half-made clone; B recovers and clones while C has planned
    but not yet applied: C must not run its stale destroy on B's complete clone."""
    fake, m, lxc = env
    killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    b, c = manager(fake, tmp_path), manager(fake, tmp_path)
    planned = c.leftover_workdir
    seen = []

    def between_plan_and_apply(name, **kw):
        if not seen:
            seen.append(actions(b.run(clone_params())))
            seen.append(os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino)
            fake.calls[:] = []
        return planned(name, **kw)
    c.leftover_workdir = between_plan_and_apply
    with pytest.raises(VirtkitError) as err:
        c.run(clone_params())
    assert seen[0] == ['restore_source', 'destroy', 'drop_clone_marker', 'clone', 'write_config', 'start']
    assert str(err.value) == ('vk-b: another run is cloning this container right now (it holds, removed or '
                              'replaced %s/.virtkit-clone-vk-b since this run read it); run again when it has '
                              'finished' % lxc)
    assert [x[0] for x in fake.calls] == [] and os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino == seen[1]
    assert sorted(os.listdir(lxc)) == [NAME, SRC] and fake.state[SRC] == 'RUNNING'
    converges(c, clone_params())


def test_rerun_while_another_run_recovers_is_refused(env, tmp_path):
    """The other order: B reads while C applies the recovery (C holds the marker): B refuses."""
    fake, m, lxc = env
    killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    b, c = manager(fake, tmp_path), manager(fake, tmp_path)
    orig = c.r._run
    errors = []

    def hooked(argv, data=None, timeout=None):
        if not errors and argv[0] != 'lxc-info':
            with pytest.raises(VirtkitError) as err:
                b.run(clone_params())
            errors.append(str(err.value))
        return orig(argv, data, timeout)
    c.r._run = hooked
    assert actions(c.run(clone_params())) == ['restore_source', 'destroy', 'drop_clone_marker', 'clone',
                                              'write_config', 'start']
    assert errors == ['vk-b: another run is cloning this container right now (it holds %s/.virtkit-clone-vk-b); '
                      'run again when it has finished' % lxc]
    assert [x[0] for x in fake.calls].count('lxc-destroy') == 1 and sorted(os.listdir(lxc)) == [NAME, SRC]
    converges(c, clone_params())


# ---------------------------------------------------------------- storage lxc-destroy leaves behind

@pytest.mark.parametrize('store, what', [
    ('lvm', 'the logical volume /dev/lxc/vk-b (lvremove lxc/vk-b)'),
    ('zfs', 'the ZFS dataset lxc/vk-b (zfs destroy -r)'),
    ('btrfs', 'the btrfs subvolume {lxc}/vk-b/rootfs (btrfs subvolume delete)'),
    ('loop', 'the image {lxc}/vk-b/rootdev (and a loop device still attached to it: losetup -j)'),
])
def test_half_clone_on_other_storage_is_refused_naming_what_to_remove(env, tmp_path, store, what):
    fake, m, lxc = env
    p = clone_params(backing_store=store)
    m = killed_run(fake, tmp_path, p, ('lxc-copy', 'during'))
    assert marker_of(lxc)['backing_store'] == store
    for params in (p, {'name': NAME, 'state': 'absent'}, clone_params()):
        for check_mode in (True, False):
            with pytest.raises(VirtkitError) as err:
                m.run(params, check_mode=check_mode)
            assert str(err.value) == (
                'vk-b: an interrupted lxc-copy from vk-src left a half-made clone on the %s backing store, whose '
                'storage lxc-destroy does not remove; remove by hand %s if it exists and the directory %s/vk-b, '
                'then run again (keep %s/.virtkit-clone-vk-b: it tells the next run what to restore)'
                % (store, what.format(lxc=lxc), lxc, lxc))
    assert 'lxc-destroy' not in [x[0] for x in fake.calls] and os.path.isdir(os.path.join(lxc, NAME, 'rootfs'))
    # done by hand as told: the next run starts the source again and clones
    shutil.rmtree(os.path.join(lxc, NAME))
    result = m.run(p)
    assert actions(result) == ['restore_source', 'drop_clone_marker', 'clone', 'write_config', 'start']
    assert fake.state[SRC] == 'RUNNING' and sorted(os.listdir(lxc)) == [NAME, SRC]


def test_half_clone_on_overlay_is_destroyed_as_before(env, tmp_path):
    fake, m, lxc = env
    p = clone_params(backing_store='overlayfs')
    m = killed_run(fake, tmp_path, p, ('lxc-copy', 'during'))
    assert actions(m.run(p))[:3] == ['restore_source', 'destroy', 'drop_clone_marker']
    assert sorted(os.listdir(lxc)) == [NAME, SRC]


# ---------------------------------------------------------------- a config that includes another

def test_config_with_an_include_under_a_stale_marker_is_kept(env, tmp_path):
    """lxc.rootfs.path may come from an included file: refuse rather than destroy."""
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'before'))
    os.makedirs(os.path.join(lxc, NAME, 'rootfs', 'bin'))
    with open(os.path.join(tmp_path, 'rootfs.conf'), 'w') as handle:
        handle.write('lxc.rootfs.path = dir:%s/%s/rootfs\n' % (lxc, NAME))
    with open(os.path.join(lxc, NAME, 'config'), 'w') as handle:
        handle.write('lxc.include = %s/rootfs.conf\nlxc.uts.name = vk-b\n' % tmp_path)
    inode = os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino
    assert m.exists(NAME) and m.read(NAME).incomplete is None
    for params in (clone_params(), {'name': NAME, 'networks': []}):
        assert 'destroy' not in actions(m.run(params, check_mode=True))
    result = m.run({'name': NAME, 'networks': []})
    assert 'destroy' not in actions(result) and 'lxc-destroy' not in [x[0] for x in fake.calls]
    assert os.stat(os.path.join(lxc, NAME, 'rootfs')).st_ino == inode


# ---------------------------------------------------------------- file systems without locks

def test_marker_on_a_file_system_without_flock_is_not_busy(env, tmp_path, monkeypatch):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))

    def no_locks(fd, flags):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(fcntl, 'flock', no_locks)
    with pytest.raises(VirtkitError) as err:
        m.run(clone_params(), check_mode=True)
    assert str(err.value) == ('vk-b: cannot lock %s/.virtkit-clone-vk-b: No locks available (does the filesystem '
                              'of lxc_path support flock?)' % lxc)


def test_clone_marker_lock_and_write_failures_are_one_line(env, monkeypatch):
    fake, m, lxc = env
    real = fcntl.flock

    def blocking_fails(fd, flags):
        if flags == fcntl.LOCK_EX:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real(fd, flags)
    monkeypatch.setattr(fcntl, 'flock', blocking_fails)
    with pytest.raises(VirtkitError) as err:
        m.run(clone_params())
    assert str(err.value) == ('vk-b: cannot lock %s/.virtkit-clone-vk-b: %s (does the filesystem of lxc_path '
                              'support flock?)' % (lxc, os.strerror(errno.EOPNOTSUPP)))
    assert os.listdir(lxc) == [SRC] and 'lxc-copy' not in [x[0] for x in fake.calls]
    monkeypatch.setattr(fcntl, 'flock', real)

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, 'pwrite', full)
    with pytest.raises(VirtkitError) as err:
        m.run(clone_params())
    assert str(err.value) == 'vk-b: cannot write the clone marker %s/.virtkit-clone-vk-b: No space left on device' % lxc
    assert os.listdir(lxc) == [SRC] and 'lxc-copy' not in [x[0] for x in fake.calls]


def test_half_clone_whose_config_includes_the_sources_includes_is_still_recovered(env, tmp_path):
    """lxc-copy writes the source's config, includes and all (a template's debian.common.conf),
    before the rootfs: an include that names no rootfs leaves it a half-made clone."""
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    common = os.path.join(str(tmp_path), 'common.conf')
    with open(common, 'w') as handle:
        handle.write('lxc.cap.drop = sys_module\n')
    with open(os.path.join(lxc, NAME, 'config'), 'a') as handle:
        handle.write('lxc.include = %s\n' % common)
    assert not m.exists(NAME) and m.read(NAME).incomplete == 'interrupted'
    assert actions(m.run(clone_params()))[:3] == ['restore_source', 'destroy', 'drop_clone_marker']
    converges(m, clone_params())


def test_half_clone_with_an_unreadable_include_is_refused_not_destroyed(env, tmp_path):
    fake, m, lxc = env
    m = killed_run(fake, tmp_path, clone_params(), ('lxc-copy', 'during'))
    with open(os.path.join(lxc, NAME, 'config'), 'a') as handle:
        handle.write('lxc.include = %s/gone.conf\n' % tmp_path)
    for params in (clone_params(), {'name': NAME, 'state': 'absent'}):
        with pytest.raises(VirtkitError) as err:
            m.run(params)
        assert str(err.value) == (
            'vk-b: %s/.virtkit-clone-vk-b is the marker of an interrupted clone, but the config of vk-b includes a '
            'file that cannot be read, so this run cannot tell a half-made clone from a complete container; check '
            '%s/vk-b and remove the marker by hand' % (lxc, lxc))
    assert 'lxc-destroy' not in [x[0] for x in fake.calls] and os.path.isdir(os.path.join(lxc, NAME, 'rootfs', 'bin'))
