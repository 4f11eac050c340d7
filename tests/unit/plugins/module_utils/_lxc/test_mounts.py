# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bind mounts: create by default, the missing-source refusals, restarts, and the start-failure
message read from real LXC 5.0.2 start logs (fixtures lxc-start-mount-*.log, captured here from
failing starts of a busybox container)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import (
    ContainerManager, mount_failures, mount_start_error, start_errors)
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.plan import (
    Current, apply_desired, build_plan, restart_keys)
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import Runner
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import (
    ARGUMENT_SPEC, host_path_kind, mount_create, validate)
from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import FakeLxc, fixture, read_host_file

BUSYBOX = fixture('busybox.config')
# The host of the captured logs: /srv/vk-mnt-probe/{dir,file} existed, .../nope did not.
HOST = {'/srv/vk-mnt-probe/dir': 'dir', '/srv/vk-mnt-probe/file': 'file', '/srv/share': 'dir',
        '/etc/app.conf': 'file', '/dev/fuse': 'file'}


def kind(path):
    return HOST.get(path)


def spec(*mounts, **params):
    params.setdefault('name', 'vk-a')
    return validate(dict(params, mounts=list(mounts)), None, kind)


def entries(s):
    return list(s.mount_targets.values())


# ---------------------------------------------------------------- the option and its rendering

def test_create_is_typed_raw_so_false_dir_file_and_omitted_all_work():
    assert ARGUMENT_SPEC['mounts']['options']['create'] == {'type': 'raw'}
    for value, want in ((None, 'auto'), (True, 'auto'), ('true', 'auto'), ('yes', 'auto'), ('dir', 'dir'),
                        ('file', 'file'), (' Dir ', 'dir'), (False, None), ('false', None), ('no', None),
                        ('off', None), ('False', None)):
        assert mount_create(value, 'mounts[0]') == want, value
    for bad in ('directory', 'auto', 0, 1, ['dir'], {}):
        with pytest.raises(VirtkitError, match=r'^mounts\[2\]\.create: .* must be dir, file, true'):
            mount_create(bad, 'mounts[2]')


@pytest.mark.parametrize('mount,entry', [
    # the default: what the source is
    ({'source': '/srv/share', 'target': '/mnt/share'}, '/srv/share mnt/share none bind,create=dir 0 0'),
    ({'source': '/etc/app.conf', 'target': '/etc/app.conf'}, '/etc/app.conf etc/app.conf none bind,create=file 0 0'),
    ({'source': '/dev/fuse', 'target': 'dev/fuse'}, '/dev/fuse dev/fuse none bind,create=file 0 0'),
    ({'source': '/srv/share', 'target': '/mnt/share', 'create': True},
     '/srv/share mnt/share none bind,create=dir 0 0'),
    # readonly and optional around it, in LXC's option order
    ({'source': '/srv/share', 'target': '/mnt/share', 'readonly': True},
     '/srv/share mnt/share none bind,ro,create=dir 0 0'),
    ({'source': '/etc/app.conf', 'target': '/etc/app.conf', 'readonly': True, 'optional': True},
     '/etc/app.conf etc/app.conf none bind,ro,create=file,optional 0 0'),
    # explicit
    ({'source': '/srv/share', 'target': '/mnt/share', 'create': 'dir'}, '/srv/share mnt/share none bind,create=dir 0 0'),
    ({'source': '/etc/app.conf', 'target': '/etc/x', 'create': 'file'}, '/etc/app.conf etc/x none bind,create=file 0 0'),
    # create: false opts out
    ({'source': '/srv/share', 'target': '/mnt/share', 'create': False}, '/srv/share mnt/share none bind 0 0'),
    ({'source': '/srv/share', 'target': '/mnt/share', 'create': False, 'readonly': True},
     '/srv/share mnt/share none bind,ro 0 0'),
    ({'source': '/srv/share', 'target': '/mnt/share', 'create': 'false', 'optional': True},
     '/srv/share mnt/share none bind,optional 0 0'),
    # an optional mount of a missing source with an explicit create (or none)
    ({'source': '/media/usb', 'target': '/mnt/usb', 'optional': True, 'create': 'dir'},
     '/media/usb mnt/usb none bind,create=dir,optional 0 0'),
    ({'source': '/media/usb', 'target': '/mnt/usb', 'optional': True, 'create': False},
     '/media/usb mnt/usb none bind,optional 0 0'),
])
def test_entry_for_each_combination(mount, entry):
    s = spec(mount)
    assert entries(s) == [entry]
    assert 'lxc.mount.entry = %s\n' % entry in apply_desired(BUSYBOX, s)


def test_spec_mounts_record_what_the_message_needs():
    s = spec({'source': '/srv/share', 'target': '/mnt/share'}, {'target': '/gone', 'state': 'absent'},
             {'source': '/etc/app.conf', 'target': 'etc/app.conf', 'create': False})
    assert [(m['index'], m['path'], m['create'], m['creates']) for m in s.mounts] == [
        (0, 'mnt/share', 'auto', 'dir'), (2, 'etc/app.conf', None, None)]
    assert s.mount_targets['gone'] is None


# ---------------------------------------------------------------- refused before anything changes

@pytest.mark.parametrize('mounts,message', [
    ([{'source': '/srv/missing', 'target': '/mnt/x'}],
     'mounts[0].source: /srv/missing does not exist on the LXC host (create it, or set mounts[0].optional: true '
     'to start the container without this mount)'),
    ([{'source': '/srv/share', 'target': '/a'}, {'source': '/srv/missing', 'target': '/b', 'create': 'dir'}],
     'mounts[1].source: /srv/missing does not exist on the LXC host'),
    ([{'source': '/srv/missing', 'target': '/mnt/x', 'optional': True}],
     'mounts[0].source: /srv/missing does not exist on the LXC host, so the type of the target cannot be told '
     'from it; set mounts[0].create: dir or file (or false)'),
    ([{'source': '/etc/app.conf', 'target': '/mnt/x', 'create': 'dir'}],
     'mounts[0].create: dir, but the source /etc/app.conf is a file, so LXC cannot mount it there; '
     'set mounts[0].create: file or leave create out'),
    ([{'source': '/srv/share', 'target': '/mnt/x', 'create': 'file'}],
     'mounts[0].create: file, but the source /srv/share is a directory'),
    ([{'source': '/srv/share', 'target': '/mnt/x', 'create': 'dirs'}], 'mounts[0].create: \'dirs\' must be dir'),
])
def test_bad_mounts_are_refused_in_one_line(mounts, message):
    with pytest.raises(VirtkitError) as err:
        spec(*mounts)
    assert str(err.value).startswith(message) and '\n' not in str(err.value)


def test_a_missing_source_is_refused_before_anything_runs_also_in_check_mode(tmp_path):
    fake = FakeLxc(str(tmp_path))
    m = ContainerManager(runner=Runner(str(tmp_path), run=fake), layout=cgroup.CgroupLayout(), path_kind=kind)
    p = {'name': 'vk-a', 'state': 'started', 'mounts': [{'source': '/srv/missing', 'target': '/mnt/x'}]}
    for check in (True, False):
        with pytest.raises(VirtkitError, match=r'^mounts\[0\]\.source: /srv/missing does not exist'):
            m.run(dict(p), check_mode=check)
    assert fake.calls == [] and os.listdir(str(tmp_path)) == []


def test_host_path_kind(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'f').write_text('x')
    os.symlink(str(tmp_path / 'd'), str(tmp_path / 'link'))
    assert host_path_kind(str(tmp_path / 'd')) == 'dir'
    assert host_path_kind(str(tmp_path / 'f')) == 'file'
    assert host_path_kind(str(tmp_path / 'link')) == 'dir'
    assert host_path_kind('/dev/null') == 'file'
    assert host_path_kind(str(tmp_path / 'none')) is None


# ---------------------------------------------------------------- upgrades and restarts

OLD = BUSYBOX + 'lxc.mount.entry = /srv/share mnt/share none bind,ro 0 0\n'


def test_an_entry_without_create_gets_it_without_a_pending_restart():
    """A config written before create became the default: the entry is rewritten (changed), and a
    running container needs no restart for it (its mount worked, so the target exists)."""
    s = spec({'source': '/srv/share', 'target': '/mnt/share', 'readonly': True})
    plan = build_plan(s, Current('vk-a', True, 'running', 5, OLD))
    assert [a.op for a in plan.actions] == ['write_config'] and plan.changed
    assert 'lxc.mount.entry = /srv/share mnt/share none bind,ro,create=dir 0 0\n' in plan.diff()['after']
    assert plan.pending_restart == []
    new = apply_desired(OLD, s)
    rerun = build_plan(s, Current('vk-a', True, 'running', 5, new, started_config=OLD))
    assert rerun.actions == [] and not rerun.changed and rerun.pending_restart == []
    # restart_policy if_needed does not restart for it either
    s2 = spec({'source': '/srv/share', 'target': '/mnt/share', 'readonly': True}, restart_policy='if_needed',
              state='started')
    assert [a.op for a in build_plan(s2, Current('vk-a', True, 'running', 5, OLD)).actions] == ['write_config']


def test_other_mount_changes_stay_pending_restart():
    for mount in ({'source': '/srv/share', 'target': '/mnt/share'},                      # rw now
                  {'source': '/srv/share', 'target': '/mnt/other', 'readonly': True},   # a new target
                  {'source': '/srv/share', 'target': '/mnt/share', 'readonly': True, 'optional': True}):
        plan = build_plan(spec(mount), Current('vk-a', True, 'running', 5, OLD))
        assert plan.pending_restart == ['lxc.mount.entry'], mount
    # on an optional mount create= matters: the running container may lack the mount
    old = BUSYBOX + 'lxc.mount.entry = /srv/share mnt/share none bind,optional 0 0\n'
    plan = build_plan(spec({'source': '/srv/share', 'target': '/mnt/share', 'optional': True}),
                      Current('vk-a', True, 'running', 5, old))
    assert plan.pending_restart == ['lxc.mount.entry']
    assert restart_keys(old, old.replace('bind,optional', 'bind,create=dir,optional')) == ['lxc.mount.entry']


def test_create_false_on_an_entry_with_create_is_a_config_change_only():
    s = spec({'source': '/srv/share', 'target': '/mnt/share', 'create': False})
    old = BUSYBOX + 'lxc.mount.entry = /srv/share mnt/share none bind,create=dir 0 0\n'
    plan = build_plan(s, Current('vk-a', True, 'running', 5, old))
    assert plan.changed and plan.pending_restart == []
    assert 'lxc.mount.entry = /srv/share mnt/share none bind 0 0' in plan.new_config


# ---------------------------------------------------------------- start failures (real LXC 5.0.2 logs)

def test_parser_reads_the_captured_lines():
    assert mount_failures(fixture('lxc-start-mount-dir-missing-target.log')) == [
        ('mount', 'No such file or directory - Failed to mount "/srv/vk-mnt-probe/dir" on '
                  '"/usr/lib/x86_64-linux-gnu/lxc/rootfs/mnt/share"',
         'No such file or directory', '/srv/vk-mnt-probe/dir', '/usr/lib/x86_64-linux-gnu/lxc/rootfs/mnt/share')]
    # safe_mount ("onto") and mount_entry ("on") report the same failure: one item
    assert [f[2] for f in mount_failures(fixture('lxc-start-mount-file-into-dir.log'))] == ['Not a directory']
    assert mount_failures(fixture('lxc-start-mount-create-under-ro.log')) == [
        ('create', 'Read-only file system - Failed to create directory '
                   '"/usr/lib/x86_64-linux-gnu/lxc/rootfs/lib/vk-new"',
         'Read-only file system', None, '/usr/lib/x86_64-linux-gnu/lxc/rootfs/lib/vk-new')]
    # a start that failed on something else names no mount
    assert mount_failures(fixture('lxc-start-error.log')) == []


def failing(*mounts):
    return spec(*mounts).mounts


def test_message_for_a_missing_directory_target_with_create_false():
    mounts = failing({'source': '/srv/share', 'target': '/srv/other', 'create': 'dir'},
                     {'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/share', 'create': False, 'readonly': True})
    assert mount_start_error(fixture('lxc-start-mount-dir-missing-target.log'), mounts, kind) == (
        'mounts[1] (target /mnt/share): No such file or directory - Failed to mount "/srv/vk-mnt-probe/dir" on '
        '"/usr/lib/x86_64-linux-gnu/lxc/rootfs/mnt/share"; /mnt/share does not exist in the container and '
        'mounts[1].create is false; set mounts[1].create: dir (or leave create out, the default), or make '
        '/mnt/share in the root file system, or set mounts[1].optional: true to start without this mount')


def test_message_for_a_missing_file_target_names_create_file():
    mounts = failing({'source': '/srv/vk-mnt-probe/file', 'target': 'etc/vk-file.conf', 'create': 'no'})
    message = mount_start_error(fixture('lxc-start-mount-file-missing-target.log'), mounts, kind)
    assert message.startswith('mounts[0] (target /etc/vk-file.conf): No such file or directory - Failed to mount')
    assert 'set mounts[0].create: file (or leave create out' in message


def test_message_for_a_source_gone_since_validation():
    mounts = failing({'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/nope'})
    mounts[0]['source'] = '/srv/vk-mnt-probe/nope'  # removed between the check and the start
    message = mount_start_error(fixture('lxc-start-mount-missing-source.log'), mounts, kind)
    assert message.endswith('; the source /srv/vk-mnt-probe/nope does not exist on the LXC host; fix '
                            'mounts[0].source (or create it), or set mounts[0].optional: true to start without '
                            'this mount')


def test_message_for_a_target_of_the_other_type():
    # create=file left an empty file at mnt/d earlier; the directory source cannot go there
    mounts = failing({'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/d'})
    message = mount_start_error(fixture('lxc-start-mount-dir-into-createfile.log'), mounts, kind)
    assert message.startswith('mounts[0] (target /mnt/d): Not a directory - Failed to mount "/srv/vk-mnt-probe/dir"')
    assert 'the source is a directory and /mnt/d in the container is not' in message
    assert 'choose a mounts[0].target that is free or a directory' in message


def test_message_for_a_target_lxc_could_not_create():
    mounts = failing({'source': '/srv/vk-mnt-probe/dir', 'target': '/lib/vk-new'})
    message = mount_start_error(fixture('lxc-start-mount-create-under-ro.log'), mounts, kind)
    assert message == (
        'mounts[0] (target /lib/vk-new): Read-only file system - Failed to create directory '
        '"/usr/lib/x86_64-linux-gnu/lxc/rootfs/lib/vk-new"; LXC could not create the target (create=dir) in the '
        'container; choose a mounts[0].target on a writable path, or set mounts[0].create: false and make '
        '/lib/vk-new in the root file system, or set mounts[0].optional: true to start without this mount')


def test_no_message_for_mounts_the_user_did_not_list():
    # the same log, but the failing entry is not one of ours (a template's or another target)
    assert mount_start_error(fixture('lxc-start-mount-dir-missing-target.log'),
                             failing({'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/sharex'}), kind) is None
    assert mount_start_error(fixture('lxc-start-mount-dir-missing-target.log'),
                             failing({'source': '/srv/share', 'target': '/mnt/share'}), kind) is None
    assert mount_start_error(fixture('lxc-start-error.log'),
                             failing({'source': '/srv/share', 'target': '/mnt/share'}), kind) is None


class FailingStart(FakeLxc):
    """lxc-start writes a captured LXC log to its -o file and fails, as LXC does."""

    log = None

    def __call__(self, argv, data=None, timeout=None):
        if argv[0] != 'lxc-start':
            return FakeLxc.__call__(self, argv, data, timeout)
        self.calls.append(list(argv))
        with open(argv[argv.index('-o') + 1], 'a') as handle:
            handle.write(fixture(self.log))
        return 1, b'', b'lxc-start: vk-a: ../src/lxc/tools/lxc_start.c: main: 306 The container failed to start\n'


def test_a_failed_start_through_the_manager_names_the_mount(tmp_path):
    fake = FailingStart(str(tmp_path))
    fake.log = 'lxc-start-mount-dir-missing-target.log'
    m = ContainerManager(runner=Runner(str(tmp_path), run=fake), read_file=read_host_file,
                         layout=cgroup.CgroupLayout(), path_kind=kind)
    p = {'name': 'vk-a', 'state': 'started',
         'mounts': [{'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/share', 'create': False}]}
    with pytest.raises(VirtkitError) as err:
        m.run(p)
    message = str(err.value)
    assert message.startswith('vk-a: start failed: mounts[0] (target /mnt/share): No such file or directory - '
                              'Failed to mount "/srv/vk-mnt-probe/dir"')
    assert 'set mounts[0].create: dir' in message and '\n' not in message
    # the config was written before the start and holds the entry as asked
    with open(os.path.join(str(tmp_path), 'vk-a', 'config')) as handle:
        assert 'lxc.mount.entry = /srv/vk-mnt-probe/dir mnt/share none bind 0 0\n' in handle.read()
    # fixed (create left out): the rerun writes the entry and starts (the fake now succeeds)
    fake.__class__ = FakeLxc
    p['mounts'][0].pop('create')
    result = m.run(p)
    assert [a['action'] for a in result['actions']] == ['write_config', 'start']
    again = m.run(p)
    assert not again['changed']


def test_other_start_failures_keep_lxcs_causes():
    text = fixture('lxc-start-error.log')
    assert mount_start_error(text, [], kind) is None
    assert start_errors(text).startswith('No such file or directory - Failed to open "/nonexistent-rootfs"')


# ---------------------------------------------------------------- targets checked in the rootfs before a start


def existing(tmp_path, state='STOPPED'):
    """vk-a in a fake lxc path, its rootfs a real directory with /mnt and /etc/hostname."""
    fake = FakeLxc(str(tmp_path))
    cdir = tmp_path / 'vk-a'
    (cdir / 'rootfs' / 'mnt').mkdir(parents=True)
    (cdir / 'rootfs' / 'etc').mkdir()
    (cdir / 'rootfs' / 'etc' / 'hostname').write_text('vk-a\n')
    config = BUSYBOX.replace('lxc.rootfs.path = ', 'lxc.rootfs.path = dir:%s/rootfs\n#' % cdir)
    (cdir / 'config').write_text(config)
    fake.state['vk-a'] = state
    m = ContainerManager(runner=Runner(str(tmp_path), run=fake), read_file=read_host_file,
                         layout=cgroup.CgroupLayout(), path_kind=kind)
    return fake, m, cdir, config


@pytest.mark.parametrize('mount,message', [
    ({'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/share', 'create': False},
     "vk-a: mounts[1].target: /mnt/share does not exist in the container's root file system and mounts[1].create is "
     "false, so the container cannot start; set mounts[1].create: dir (or leave create out), make /mnt/share in "),
    ({'source': '/srv/vk-mnt-probe/file', 'target': '/etc/app.conf', 'create': 'false'},
     "vk-a: mounts[1].target: /etc/app.conf does not exist in the container's root file system and mounts[1].create "
     "is false, so the container cannot start; set mounts[1].create: file (or leave create out)"),
    ({'source': '/srv/vk-mnt-probe/dir', 'target': '/etc/hostname'},
     'vk-a: mounts[1].target: /etc/hostname is a file in the container but the source /srv/vk-mnt-probe/dir is a '
     'directory, so the container cannot start; choose a mounts[1].target that is free or a directory, or set '
     'mounts[1].optional: true'),
    ({'source': '/srv/vk-mnt-probe/file', 'target': '/mnt'},
     'vk-a: mounts[1].target: /mnt is a directory in the container but the source /srv/vk-mnt-probe/file is a file'),
])
def test_a_start_the_mounts_would_fail_is_refused_before_anything_changes(tmp_path, mount, message):
    fake, m, cdir, config = existing(tmp_path)
    p = {'name': 'vk-a', 'state': 'started', 'mounts': [{'source': '/srv/share', 'target': '/mnt/ok'}, mount]}
    for check in (True, False):
        with pytest.raises(VirtkitError) as err:
            m.run(dict(p), check_mode=check)
        assert str(err.value).startswith(message) and '\n' not in str(err.value)
    assert (cdir / 'config').read_text() == config
    assert [c[0] for c in fake.calls if c[0] != 'lxc-info'] == []
    # optional: true starts without it (LXC skips a failing optional mount): not refused
    p['mounts'][1] = dict(mount, optional=True)
    assert [a['action'] for a in m.run(p, check_mode=True)['actions']] == ['write_config', 'start']
    # state present does not start the container: the entry is written, nothing refused
    p['mounts'][1], p['state'] = mount, 'present'
    assert [a['action'] for a in m.run(p, check_mode=True)['actions']] == ['write_config']


def test_a_running_container_is_not_refused_when_no_start_is_planned(tmp_path):
    # its target may be visible only under a mount the check does not see (lxc.include, lxc.mount.fstab)
    fake, m, cdir, config = existing(tmp_path, state='RUNNING')
    mount = {'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/share', 'create': False}
    p = {'name': 'vk-a', 'state': 'started', 'mounts': [mount]}
    # a restart is a start: refused before anything changes
    for extra in ({'state': 'restarted'}, {'restart_policy': 'if_needed'}):
        for check in (True, False):
            with pytest.raises(VirtkitError, match='mounts\\[0\\].target: /mnt/share does not exist'):
                m.run(dict(p, **extra), check_mode=check)
    assert (cdir / 'config').read_text() == config
    for check in (True, False):
        result = m.run(dict(p), check_mode=check)
        assert [a['action'] for a in result['actions']] == ['write_config'] and result['pending_restart']
    assert not m.run(dict(p))['changed']
    assert fake.state['vk-a'] == 'RUNNING'


def test_existing_targets_and_create_pass_the_check(tmp_path):
    fake, m, cdir, config = existing(tmp_path)
    p = {'name': 'vk-a', 'state': 'started',
         'mounts': [{'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt', 'create': False},
                    {'source': '/srv/vk-mnt-probe/file', 'target': '/etc/hostname', 'create': False},
                    {'source': '/srv/vk-mnt-probe/file', 'target': '/etc/new.conf'},
                    # under another mount: in what is mounted there, not in the rootfs directory
                    {'source': '/srv/vk-mnt-probe/dir', 'target': '/mnt/sub', 'create': False},
                    {'source': '/srv/vk-mnt-probe/dir', 'target': '/lib/x', 'create': False},  # the template's /lib
                    {'source': '/srv/vk-mnt-probe/file', 'target': '/dev/x', 'create': False}]}
    result = m.run(p)
    assert [a['action'] for a in result['actions']] == ['write_config', 'start']
    assert 'lxc.mount.entry = /srv/vk-mnt-probe/file etc/new.conf none bind,create=file 0 0\n' in \
        (cdir / 'config').read_text()
