# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ContainerManager against a fake set of LXC tools working on a temporary lxc path."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import snapshot as snap
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import attach
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import Runner
from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import FakeLxc, fixture

HYBRID = cgroup.CgroupLayout(v1={'memory', 'cpu', 'cpuset', 'pids'}, v2_mount='/sys/fs/cgroup/unified',
                             v1_mounts={c: '/sys/fs/cgroup/' + c for c in ('memory', 'cpu', 'cpuset', 'pids')})


def read_file_with_proc(path):
    if path.startswith('/proc/'):
        if path.endswith('/net/fib_trie'):
            return fixture('fib_trie.txt')
        if path.endswith('/net/route'):
            return fixture('route.txt')
        if path.endswith('/stat'):
            return '1 (init) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0'
        return None
    if path.startswith('/sys/fs/cgroup'):
        return None
    return cgroup.read_text(path)


@pytest.fixture
def env(tmp_path):
    fake = FakeLxc(str(tmp_path))
    manager = ContainerManager(runner=Runner(str(tmp_path), run=fake), read_file=read_file_with_proc, layout=HYBRID)
    return fake, manager


def params(**kw):
    kw.setdefault('name', 'vk-a')
    return kw


def test_create_start_noop_and_remove(env):
    fake, m = env
    p = params(state='started', limits={'memory': 128}, wait_for_ip=True,
               networks=[{'link': 'lxcbr0', 'ipv4': ['10.0.3.157/24']}])
    check = m.run(p, check_mode=True)
    assert check['changed'] and fake.calls == [] and check['container'] == {}
    result = m.run(p)
    assert [a['action'] for a in result['actions']] == ['create', 'write_config', 'edit_rootfs', 'start']
    assert 'warnings' not in result
    rcs = open(os.path.join(m.container_dir('vk-a'), 'rootfs', 'etc', 'init.d', 'rcS')).read()
    assert '\n/bin/udhcpc' not in rcs and '# virtkit.guests: eth0 has a static ipv4 address' in rcs
    tools = [c[0] for c in fake.calls]
    # the config is complete before lxc-start runs
    assert tools.index('lxc-create') < tools.index('lxc-start')
    assert result['container']['state'] == 'running'
    assert result['container']['ipv4'] == ['10.0.3.157']
    assert result['container']['managed_config']['lxc.cgroup.memory.limit_in_bytes'] == ['134217728']
    config = open(m.r.config_path('vk-a')).read()
    assert config.startswith('# Template used to create this container')
    fake.calls[:] = []
    again = m.run(p)
    assert not again['changed'] and [c[0] for c in fake.calls] == ['lxc-info']
    assert m.run(p, check_mode=True)['changed'] is False
    gone = m.run(params(state='absent'))
    assert gone['changed'] and gone['container'] == {}
    assert m.run(params(state='absent'))['changed'] is False


def test_pending_restart_survives_reruns_until_restart(env):
    fake, m = env
    m.run(params(state='started', limits={'memory': 128}))
    changed = m.run(params(limits={'memory': 256}))
    assert changed['changed'] and changed['pending_restart_fields'] == ['lxc.cgroup.memory.limit_in_bytes']
    rerun = m.run(params(limits={'memory': 256}))
    assert not rerun['changed'] and rerun['pending_restart']
    fixed = m.run(params(limits={'memory': 256}, restart_policy='if_needed'))
    assert [a['action'] for a in fixed['actions']] == ['restart'] and not fixed['pending_restart']
    assert not m.run(params(limits={'memory': 256}))['pending_restart']


def test_clone_of_a_running_source_restarts_the_source(env):
    fake, m = env
    m.run(params(name='vk-src', state='started'))
    result = m.run(params(name='vk-b', clone_from='vk-src', state='started'))
    assert result['changed'] and fake.state['vk-src'] == 'RUNNING' and fake.state['vk-b'] == 'RUNNING'
    tools = [c[0] for c in fake.calls[-8:]]
    assert tools.count('lxc-copy') == 1


def test_clone_source_missing(env):
    _fake, m = env
    with pytest.raises(VirtkitError, match='clone_from vk-nope does not exist'):
        m.run(params(clone_from='vk-nope'))


def test_tool_failure_is_one_line(env):
    fake, m = env
    fake.fail['lxc-create'] = 'lxc-create: vk-a: ../src/lxc/tools/lxc_create.c: main: 264 Container already exists\n'
    with pytest.raises(VirtkitError) as err:
        m.run(params())
    assert str(err.value) == 'vk-a: create from template busybox failed: Container already exists'


def test_stop_timeout_without_force(env, monkeypatch):
    fake, m = env
    m.run(params(state='started'))
    original = fake.__call__

    def refuse_stop(argv, data=None, timeout=None):
        if argv[0] == 'lxc-stop' and '-k' not in argv:
            fake.calls.append(argv)
            return 1, b'', b''
        return original(argv, data, timeout)

    m.r._run = refuse_stop
    with pytest.raises(VirtkitError, match='did not shut down within 5s'):
        m.run(params(state='stopped', stop_timeout=5))
    result = m.run(params(state='stopped', stop_timeout=5, force_stop=True))
    assert result['container']['state'] == 'stopped'
    assert fake.calls[-2][-1] == '-k' or ['-k'] == fake.calls[-2][-1:]


def test_snapshots_by_name(env):
    fake, m = env
    m.run(params())
    r1 = snap.run(m, {'name': 'vk-a', 'snapshot': 'base', 'state': 'present', 'comment': 'first'})
    assert r1['changed'] and r1['snapshot']['lxc_name'] == 'snap0' and r1['snapshot']['comment'] == 'first'
    assert not snap.run(m, {'name': 'vk-a', 'snapshot': 'base', 'state': 'present'})['changed']
    r2 = snap.run(m, {'name': 'vk-a', 'snapshot': 'second', 'state': 'present'}, check_mode=True)
    assert r2['changed'] and len(r2['snapshots']) == 1
    d = snap.run(m, {'name': 'vk-a', 'snapshot': 'base', 'state': 'absent'})
    assert d['changed'] and d['snapshots'] == []
    assert not snap.run(m, {'name': 'vk-a', 'snapshot': 'base', 'state': 'absent'})['changed']
    with pytest.raises(VirtkitError, match='there is no snapshot base'):
        snap.run(m, {'name': 'vk-a', 'snapshot': 'base', 'state': 'restored'})
    m.run(params(state='started'))
    with pytest.raises(VirtkitError, match='need it stopped'):
        snap.run(m, {'name': 'vk-a', 'snapshot': 'x', 'state': 'present'})
    with pytest.raises(VirtkitError, match='not a valid snapshot name'):
        snap.run(m, {'name': 'vk-a', 'snapshot': '../x'})


def test_exec_argv_and_guards(env, tmp_path):
    fake, m = env
    m.run(params(state='started'))
    argv = attach.attach_argv(m.r, 'vk-a', ['ls', '-l'], env={'A': 'b c'}, chdir='/srv')
    assert argv[:5] == ['lxc-attach', '-n', 'vk-a', '-P', str(tmp_path)]
    assert argv[argv.index('--') + 1:] == ['/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'sh', '/srv', 'ls', '-l']
    assert '-v' in argv and 'A=b c' in argv
    out = attach.run(m, {'name': 'vk-a', 'command': 'echo ok', 'shell': '/bin/sh'})
    assert out['changed'] and out['rc'] == 0 and out['stdout'] == 'ok'
    assert fake.calls[-1][-3:] == ['/bin/sh', '-c', 'echo ok']
    dry = attach.run(m, {'name': 'vk-a', 'argv': ['true']}, check_mode=True)
    assert dry['changed'] and 'rc' not in dry
    with pytest.raises(VirtkitError, match='exactly one of argv'):
        attach.run(m, {'name': 'vk-a', 'argv': ['a'], 'command': 'b'})
    with pytest.raises(VirtkitError, match='absolute path'):
        attach.run(m, {'name': 'vk-a', 'argv': ['a'], 'creates': 'rel'})
    with pytest.raises(VirtkitError, match='not a variable name'):
        attach.run(m, {'name': 'vk-a', 'argv': ['a'], 'env': {'A-B': '1'}})
    m.run(params(state='stopped'))
    with pytest.raises(VirtkitError, match='the container is stopped'):
        attach.run(m, {'name': 'vk-a', 'argv': ['a']})


def test_state_from_proc_needs_no_subprocess(tmp_path):
    fake = FakeLxc(str(tmp_path))
    files = {}

    def read(path):
        return files.get(path, read_file_with_proc(path) if not path.startswith('/proc/') else None)

    m = ContainerManager(runner=Runner(str(tmp_path), run=fake), read_file=read, layout=cgroup.CgroupLayout(
        v1={'freezer'}, v1_mounts={'freezer': '/sys/fs/cgroup/freezer'}))
    m.run(params())
    files['/proc/net/unix'] = 'Num RefCount Protocol Flags Type St Inode Path\n'
    fake.calls[:] = []
    assert m.state_from_proc('vk-a', None) == ('stopped', None)
    sock = '0000: 00000002 00000000 00010000 0001 01 1 @%s/vk-a/command\n' % tmp_path
    files['/proc/net/unix'] += sock
    assert m.state_from_proc('vk-a', None) is None  # running, but no recorded init pid
    stamp = {'pid': 77, 'ticks': 777, 'config': '', 'path': m.r.config_path('vk-a')}
    files['/proc/77/stat'] = '77 (init) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0'
    files['/proc/77/cgroup'] = '6:freezer:/lxc.payload.vk-a\n0::/lxc.payload.vk-a\n'
    files['/sys/fs/cgroup/freezer/lxc.payload.vk-a/freezer.state'] = 'THAWED\n'
    assert m.state_from_proc('vk-a', stamp) == ('running', 77)
    files['/sys/fs/cgroup/freezer/lxc.payload.vk-a/freezer.state'] = 'FROZEN\n'
    assert m.state_from_proc('vk-a', stamp) == ('frozen', 77)
    # a reused pid (other start time) is not trusted
    assert m.state_from_proc('vk-a', dict(stamp, ticks=1)) is None
    assert fake.calls == []


def test_start_errors_name_the_cause():
    from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import start_errors
    assert start_errors(fixture('lxc-start-error.log')) == (
        'No such file or directory - Failed to open "/nonexistent-rootfs"; '
        'Failed to handle rootfs pinning for container "vk-fail"')


# ---------------------------------------------------------------- rootfs_tarball

def make_rootfs(path, mode='w:gz'):
    with tarfile.open(str(path), mode) as archive:
        for name, data in (('./bin/busybox', b'\x7fELF fake'), ('./etc/inittab', b'::sysinit:/etc/init.d/rcS\n')):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo('./bin/sh')
        link.type, link.linkname = tarfile.SYMTYPE, 'busybox'
        archive.addfile(link)
    return str(path)


def test_rootfs_tarball_create_through_the_local_template(env, tmp_path):
    fake, m = env
    tarball = make_rootfs(tmp_path / 'rootfs.tar.gz')
    p = params(rootfs_tarball=tarball, state='started', config={'lxc.signal.halt': 'SIGUSR1'})
    check = m.run(p, check_mode=True)
    assert check['changed'] and fake.calls == []
    assert [a['action'] for a in check['actions']] == ['create', 'write_config', 'start']
    result = m.run(p)
    create = [c for c in fake.calls if c[0] == 'lxc-create'][0]
    assert create[create.index('-t') + 1] == 'local'
    assert create[create.index('--') + 1:create.index('--') + 2] == ['--metadata']
    members, fstree, names = fake.local[0]
    assert 'lxc.include = LXC_TEMPLATE_CONFIG/common.conf' in members['config']
    assert 'LXC_TEMPLATE_CONFIG/userns.conf' in members['config-user']
    # a gzip tarball reaches lxc-local recompressed as xz, with the same members
    assert fstree != tarball and names == ['./bin/busybox', './bin/sh', './etc/inittab']
    # the written config holds the options before the first start
    tools = [c[0] for c in fake.calls]
    assert tools.index('lxc-create') < tools.index('lxc-start')
    assert 'lxc.signal.halt = SIGUSR1' in open(m.r.config_path('vk-a')).read()
    assert result['container']['state'] == 'running'
    # the scratch files are gone
    assert [n for n in os.listdir(str(tmp_path)) if n.startswith('.virtkit-create-')] == []
    # an existing container is not recreated, even when the tarball changed or is gone
    os.unlink(tarball)
    fake.calls[:] = []
    assert not m.run(p)['changed'] and [c[0] for c in fake.calls] == ['lxc-info']
    assert not m.run(p, check_mode=True)['changed']


def test_rootfs_tarball_xz_is_passed_as_is(env, tmp_path):
    fake, m = env
    tarball = make_rootfs(tmp_path / 'rootfs.tar.xz', 'w:xz')
    # template's argument-spec default (busybox) does not get in the way
    result = m.run(params(rootfs_tarball=tarball, template='busybox'))
    assert fake.local[0][1] == tarball
    assert [a['action'] for a in result['actions']] == ['create', 'write_config']


@pytest.mark.parametrize('content, message', [
    (None, 'rootfs_tarball: {path} does not exist on the LXC host'),
    (b'', 'is not a tar archive (.tar, .tar.gz, .tar.bz2 or .tar.xz) (or it is empty)'),
    (b'just text, no tar header' * 40, 'is not a tar archive'),
    (b'\x1f\x8bnot really gzip', 'cannot be read'),
    (b'\x28\xb5\x2f\xfd' + b'\x00' * 600, 'is zstd-compressed'),
], ids=['missing', 'empty', 'text', 'bad-gzip', 'zstd'])
def test_rootfs_tarball_refused_before_any_change(env, tmp_path, content, message):
    fake, m = env
    path = str(tmp_path / 'rootfs.tar.gz')
    if content is not None:
        with open(path, 'wb') as handle:
            handle.write(content)
    for check_mode in (True, False):
        with pytest.raises(VirtkitError) as err:
            m.run(params(rootfs_tarball=path, state='started'), check_mode=check_mode)
        assert str(err.value).startswith('vk-a: ') and message.format(path=path) in str(err.value)
        assert '\n' not in str(err.value)
    assert fake.calls == []


@pytest.mark.parametrize('extra, message', [
    ({'template': 'debian'}, 'rootfs_tarball: cannot be combined with template'),
    ({'clone_from': 'vk-src'}, 'rootfs_tarball: cannot be combined with clone_from'),
    ({'template_options': ['--release', 'x']}, 'rootfs_tarball: cannot be combined with template_options'),
], ids=['template', 'clone_from', 'template_options'])
def test_rootfs_tarball_is_one_source(env, extra, message):
    fake, m = env
    with pytest.raises(VirtkitError, match=message):
        m.run(params(rootfs_tarball='/tmp/rootfs.tar.xz', **extra))
    assert fake.calls == []


def test_rootfs_tarball_needs_an_absolute_path(env):
    _fake, m = env
    with pytest.raises(VirtkitError, match='must be an absolute path on the LXC host'):
        m.run(params(rootfs_tarball='rootfs.tar.xz'))


# ---------------------------------------------------------------- clone backing store options

def test_clone_passes_backing_store_and_fssize_to_lxc_copy(env):
    fake, m = env
    m.run(params(name='vk-src'))
    m.run(params(name='vk-b', clone_from='vk-src', backing_store='loop',
                 backing_store_options={'fssize': '2G', 'dir': None, 'vgname': None}))
    copy = [c for c in fake.calls if c[0] == 'lxc-copy'][0]
    assert copy[copy.index('-B') + 1] == 'loop'
    assert copy[copy.index('-L') + 1] == '2G'


def test_clone_without_options_keeps_lxc_copy_defaults(env):
    fake, m = env
    m.run(params(name='vk-src'))
    m.run(params(name='vk-b', clone_from='vk-src', backing_store_options={'fssize': None}))
    copy = [c for c in fake.calls if c[0] == 'lxc-copy'][0]
    assert '-B' not in copy and '-L' not in copy


@pytest.mark.parametrize('options, message', [
    ({'vgname': 'vg0', 'fssize': '1G'}, 'lxc-copy cannot set vgname for a clone'),
    ({'fssize': 'two gigs'}, "backing_store_options.fssize: 'two gigs' is not a size"),
], ids=['vgname', 'bad-fssize'])
def test_clone_backing_store_options_refused(env, options, message):
    fake, m = env
    m.run(params(name='vk-src'))
    fake.calls[:] = []
    with pytest.raises(VirtkitError, match=message):
        m.run(params(name='vk-b', clone_from='vk-src', backing_store='lvm', backing_store_options=options))
    assert fake.calls == []


# ---------------------------------------------------------------- static addresses that stick

STATIC_157 = [{'link': 'lxcbr0', 'ipv4': ['10.0.3.157/24'], 'ipv4_gateway': '10.0.3.1'}]


def rootfs_file(m, name, path):
    with open(os.path.join(m.container_dir(name), 'rootfs', path)) as handle:
        return handle.read()


def test_static_address_edits_are_planned_applied_and_undone(env):
    fake, m = env
    m.run(params(state='started', networks=STATIC_157))
    assert '\n/bin/udhcpc' not in rootfs_file(m, 'vk-a', 'etc/init.d/rcS')
    assert not m.run(params(state='started', networks=STATIC_157))['changed']
    # back to DHCP: check mode shows the edit in the diff and writes nothing
    dhcp = params(state='started', networks=[{'link': 'lxcbr0'}])
    check = m.run(dhcp, check_mode=True)
    assert 'edit_rootfs' in [a['action'] for a in check['actions']]
    assert '/bin/udhcpc' in check['diff']['after'] and 'rootfs /etc/init.d/rcS' in check['diff']['before']
    assert '\n/bin/udhcpc' not in rootfs_file(m, 'vk-a', 'etc/init.d/rcS')
    result = m.run(dhcp)
    assert rootfs_file(m, 'vk-a', 'etc/init.d/rcS') == fake_rcs()
    # the running guest reads it when it boots again
    assert 'rootfs /etc/init.d/rcS' in result['pending_restart_fields']
    assert not m.run(dhcp)['changed'] and not m.run(dhcp, check_mode=True)['changed']


def test_a_rootfs_edit_of_a_running_container_stays_pending_until_a_restart(env):
    fake, m = env
    m.run(params(state='started', networks=STATIC_157))
    path = os.path.join(m.container_dir('vk-a'), 'rootfs', 'etc', 'init.d', 'rcS')
    with open(path, 'w') as handle:  # the guest's rcS got its udhcpc line back
        handle.write(fake_rcs())
    first = m.run(params(state='started', networks=STATIC_157))
    assert first['changed'] and first['pending_restart_fields'] == ['rootfs /etc/init.d/rcS']
    for check_mode in (False, True):
        again = m.run(params(state='started', networks=STATIC_157), check_mode=check_mode)
        assert not again['changed'] and 'rootfs /etc/init.d/rcS' in again['pending_restart_fields']
    fixed = m.run(params(state='started', networks=STATIC_157, restart_policy='if_needed'))
    assert [a['action'] for a in fixed['actions']] == ['restart'] and not fixed['pending_restart']
    assert not m.run(params(state='started', networks=STATIC_157))['pending_restart']
    # an edit that brings the file back to the text the guest booted with is none to restart for
    with open(path, 'w') as handle:
        handle.write(fake_rcs())
    assert m.run(params(state='started', networks=STATIC_157))['pending_restart_fields'] == ['rootfs /etc/init.d/rcS']
    back = m.run(params(state='started', networks=[{'link': 'lxcbr0'}]))
    assert back['changed'] and 'rootfs /etc/init.d/rcS' not in back['pending_restart_fields']


def test_a_running_overlay_rootfs_is_edited_only_while_stopped(env):
    fake, m = env
    dhcp = [{'link': 'lxcbr0'}]
    m.run(params(networks=dhcp))
    cdir = m.container_dir('vk-a')
    lower, upper = os.path.join(cdir, 'rootfs'), os.path.join(cdir, 'delta')
    os.mkdir(upper)
    config = os.path.join(cdir, 'config')
    with open(config) as handle:
        text = handle.read()
    with open(config, 'w') as handle:  # as a snapshot clone's (lxc-copy -s)
        handle.write(text.replace('lxc.rootfs.path = dir:' + lower, 'lxc.rootfs.path = overlay:%s:%s' % (lower, upper)))
    m.run(params(state='started', networks=dhcp))
    # running: the mounted overlay is not edited, the edit waits for a restart (and says so)
    for check_mode in (True, False):
        result = m.run(params(state='started', networks=STATIC_157), check_mode=check_mode)
        assert 'edit_rootfs' not in [a['action'] for a in result['actions']]
        assert 'rootfs /etc/init.d/rcS' in result['pending_restart_fields']
        assert len(result['warnings']) == 1 and 'its rootfs is an overlay, not edited while the container runs: ' \
            '/etc/init.d/rcS is edited when this module next stops or restarts it' in result['warnings'][0]
    assert os.listdir(upper) == [] and rootfs_file(m, 'vk-a', 'etc/init.d/rcS') == fake_rcs()
    again = m.run(params(state='started', networks=STATIC_157))
    assert not again['changed'] and 'rootfs /etc/init.d/rcS' in again['pending_restart_fields']
    # a restart edits it between the stop and the start, in the upper directory
    fixed = m.run(params(state='started', networks=STATIC_157, restart_policy='if_needed'))
    assert [a['action'] for a in fixed['actions']] == ['restart'] and 'warnings' not in fixed
    with open(os.path.join(upper, 'etc', 'init.d', 'rcS')) as handle:
        assert '\n/bin/udhcpc' not in handle.read()
    assert rootfs_file(m, 'vk-a', 'etc/init.d/rcS') == fake_rcs()
    assert not m.run(params(state='started', networks=STATIC_157))['changed']
    # a stop: edited after it
    stopped = m.run(params(state='stopped', networks=dhcp))
    assert [a['action'] for a in stopped['actions']] == ['write_config', 'stop', 'edit_rootfs']
    with open(os.path.join(upper, 'etc', 'init.d', 'rcS')) as handle:
        assert handle.read() == fake_rcs()


def test_a_rootfs_file_that_grew_over_the_limit_is_a_one_line_error(env, monkeypatch):
    fake, m = env
    m.run(params(networks=[{'link': 'lxcbr0'}]))
    path = os.path.join(m.container_dir('vk-a'), 'rootfs', 'etc', 'init.d', 'rcS')
    planned = m.guest_network

    def grows(spec, config_text):  # the rcS grows between the survey and the edit
        found = planned(spec, config_text)
        with open(path, 'a') as handle:
            handle.write('#' * (1024 * 1024))
        return found
    monkeypatch.setattr(m, 'guest_network', grows)
    with pytest.raises(VirtkitError) as err:
        m.run(params(networks=STATIC_157))
    assert str(err.value) == 'vk-a: /etc/init.d/rcS in the rootfs changed since this run read it; run again'


def fake_rcs():
    from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import BUSYBOX_RCS
    return BUSYBOX_RCS


def test_a_clone_gets_the_edits_for_its_own_networks(env):
    fake, m = env
    m.run(params(name='vk-src', networks=STATIC_157))
    result = m.run(params(name='vk-b', clone_from='vk-src', networks=[{'link': 'lxcbr0'}]))
    assert [a['action'] for a in result['actions']] == ['clone', 'write_config']
    assert rootfs_file(m, 'vk-b', 'etc/init.d/rcS') == fake_rcs()
    assert '\n/bin/udhcpc' not in rootfs_file(m, 'vk-src', 'etc/init.d/rcS')


def test_an_unknown_rootfs_gets_one_warning_after_a_bounded_watch(env, tmp_path):
    fake, m = env
    now = [0.0]
    m.clock = lambda: now[0]
    m.sleep = lambda s: now.__setitem__(0, now[0] + s)
    tarball = make_rootfs(tmp_path / 'rootfs.tar.gz')
    result = m.run(params(rootfs_tarball=tarball, state='started', networks=STATIC_157))
    assert result['warnings'] == [
        "vk-a: eth0 (networks[0]) may lose its static address: the rootfs has no network setup this module knows "
        "(busybox's /etc/init.d/rcS, ifupdown's /etc/network/interfaces); the guest's own network setup is not made "
        "to keep the address here: configure it inside the guest (or declare no static address and use DHCP)"]
    assert 10 <= now[0] < 12  # watched for SETTLE_TIMEOUT, then it read what the guest has
    assert result['container']['ipv4'] == ['10.0.3.157']
    # the rerun warns again (check mode too) but changes nothing
    again = m.run(params(rootfs_tarball=tarball, state='started', networks=STATIC_157), check_mode=True)
    assert not again['changed'] and len(again['warnings']) == 1


def test_an_address_other_than_the_declared_one_is_warned_about(env):
    fake, m = env
    now = [0.0]
    m.clock = lambda: now[0]
    m.sleep = lambda s: now.__setitem__(0, now[0] + s)
    # the fake guest has 10.0.3.157 (fixtures/fib_trie.txt) whatever is declared
    result = m.run(params(state='started', networks=[{'link': 'lxcbr0', 'ipv4': ['10.0.3.158/24']}]))
    assert result['container']['ipv4'] == ['10.0.3.157']
    assert len(result['warnings']) == 1 and result['warnings'][0].startswith(
        'vk-a: eth0 (networks[0]) has 10.0.3.157 instead of the declared 10.0.3.158;')
    assert now[0] >= 10  # it waited (bounded) for the declared address to show
    ok = m.run(params(name='vk-b', state='started', networks=STATIC_157))
    assert 'warnings' not in ok


def test_no_address_warning_while_the_new_address_waits_for_a_restart(env):
    fake, m = env
    m.run(params(state='started', networks=STATIC_157))
    moved = m.run(params(state='started', networks=[{'link': 'lxcbr0', 'ipv4': ['10.0.3.158/24']}]))
    assert moved['pending_restart'] and 'warnings' not in moved
