# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exact argv ContainerManager gives lxc-create and lxc-copy, and wait_for_ip's conditions.

A recording fake stands in for the tools; /proc and /etc are served from a dict, so the
tests need no LXC and no root. Waits run on a fake clock: no real sleeping.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._wait import poll as real_poll
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import manager as manager_mod
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import Runner
from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import FakeLxc, fixture

NAME = 'vk-h6a'
PID = 4242
DOWNLOAD_OPTIONS = ['--dist', 'debian', '--release', 'bookworm', '--arch', 'amd64']


class Tools(FakeLxc):
    """The shared fake with one fixed PID, only the tools these tests expect, lxc-create's -f file kept."""

    fixed_pid = PID
    copy_refuses_running = False
    only = frozenset(('lxc-info', 'lxc-create', 'lxc-copy', 'lxc-start', 'lxc-stop', 'lxc-freeze',
                      'lxc-unfreeze', 'lxc-wait'))

    def __init__(self, root):
        super().__init__(root)
        self.create_config_file = None  # the text of lxc-create's -f file while it ran

    def extra_config(self, argv):
        if '-f' not in argv:
            return ''
        with open(argv[argv.index('-f') + 1]) as handle:
            self.create_config_file = handle.read()
        # lxc-create keeps the -f file's keys in the new config
        return ''.join(line + '\n' for line in self.create_config_file.splitlines() if line.startswith('lxc.idmap'))

    def argv_of(self, tool):
        found = [c for c in self.calls if c[0] == tool]
        assert len(found) == 1, '%s ran %d times: %s' % (tool, len(found), self.calls)
        return found[0]


class Host:
    """/etc and /proc contents by path; other paths are real files (the lxc path)."""

    def __init__(self):
        self.files = {
            '/etc/subuid': 'root:100000:65536\n',
            '/etc/subgid': 'root:200000:65536\n',
            '/etc/lxc/default.conf': 'lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\nlxc.net.0.flags = up',
            '/proc/%d/stat' % PID: '%d (init) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0' % PID,
            '/proc/%d/net/fib_trie' % PID: fixture('fib_trie.txt'),
            '/proc/%d/net/route' % PID: fixture('route.txt'),
            '/proc/%d/net/if_inet6' % PID: fixture('if_inet6.txt'),
        }
        self.reads = {}

    def __call__(self, path):
        self.reads[path] = self.reads.get(path, 0) + 1
        if path in self.files:
            value = self.files[path]
            return value(self.reads[path]) if callable(value) else value
        if path.startswith(('/proc/', '/sys/', '/etc/')):
            return None
        return cgroup.read_text(path)


@pytest.fixture
def env(tmp_path, monkeypatch):
    root = tmp_path / 'lxc'
    root.mkdir()
    templates = tmp_path / 'templates'
    templates.mkdir()
    for template in ('busybox', 'download'):
        (templates / ('lxc-' + template)).write_text('#!/bin/sh\n')
    monkeypatch.setattr(manager_mod, 'TEMPLATE_DIR', str(templates))
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    def fake_poll(check, timeout, **kwargs):
        return real_poll(check, timeout, sleep=sleep, clock=lambda: clock[0], **kwargs)

    monkeypatch.setattr(manager_mod, 'poll', fake_poll)
    tools, host = Tools(str(root)), Host()
    layout = cgroup.CgroupLayout(v1={'memory', 'cpu', 'cpuset', 'pids'}, v2_mount='/sys/fs/cgroup/unified')
    manager = ContainerManager(runner=Runner(str(root), run=tools), read_file=host, layout=layout)
    return tools, host, manager, clock


def params(**kw):
    kw.setdefault('name', NAME)
    return kw


def head(tools, tool, name=NAME):
    """The argv prefix every call gets: the tool, -n NAME and -P LXC_PATH."""
    return [tool, '-n', name, '-P', tools.root]


# ------------------------------------------------------------------ lxc-create

def test_create_busybox_dir(env):
    tools, _host, m, _clock = env
    m.run(params())
    assert tools.argv_of('lxc-create') == head(tools, 'lxc-create') + ['-t', 'busybox', '-B', 'dir']


def test_create_download_template_passes_options_after_double_dash(env):
    tools, _host, m, _clock = env
    m.run(params(template='download', template_options=DOWNLOAD_OPTIONS))
    argv = tools.argv_of('lxc-create')
    assert argv == head(tools, 'lxc-create') + ['-t', 'download', '-B', 'dir', '--'] + DOWNLOAD_OPTIONS


def test_template_options_stay_single_arguments(env):
    tools, _host, m, _clock = env
    odd = ['--packages=python3;touch /tmp/x', '$(id)', 'a b']
    m.run(params(template='download', template_options=odd))
    assert tools.argv_of('lxc-create')[-4:] == ['--'] + odd


@pytest.mark.parametrize('store,options,expected', [
    ('lvm', {'vgname': 'vg0', 'lvname': 'lv-h6a', 'fssize': '2G', 'fstype': 'ext4'},
     ['-B', 'lvm', '--vgname', 'vg0', '--lvname', 'lv-h6a', '--fstype', 'ext4', '--fssize', '2G']),
    ('lvm', {'vgname': 'vg0', 'thinpool': 'pool0'}, ['-B', 'lvm', '--vgname', 'vg0', '--thinpool', 'pool0']),
    ('zfs', {'zfsroot': 'tank/lxc'}, ['-B', 'zfs', '--zfsroot', 'tank/lxc']),
    ('loop', {'fssize': '512M', 'fstype': 'xfs'}, ['-B', 'loop', '--fstype', 'xfs', '--fssize', '512M']),
    ('btrfs', {}, ['-B', 'btrfs']),
    ('dir', {'dir': '/srv/rootfs-h6a'}, ['-B', 'dir', '--dir', '/srv/rootfs-h6a']),
])
def test_create_backing_store_options(env, store, options, expected):
    tools, _host, m, _clock = env
    m.run(params(backing_store=store, backing_store_options=options, template='download',
                 template_options=DOWNLOAD_OPTIONS))
    argv = tools.argv_of('lxc-create')
    assert argv == head(tools, 'lxc-create') + ['-t', 'download'] + expected + ['--'] + DOWNLOAD_OPTIONS


def test_create_unprivileged_passes_an_idmap_file(env):
    tools, host, m, _clock = env
    result = m.run(params(unprivileged=True, template='download', template_options=DOWNLOAD_OPTIONS))
    argv = tools.argv_of('lxc-create')
    assert argv[:len(head(tools, 'lxc-create'))] == head(tools, 'lxc-create')
    f_index = argv.index('-f')
    assert f_index < argv.index('--')  # an lxc-create option, not a template option
    assert argv[argv.index('--') + 1:] == DOWNLOAD_OPTIONS
    # the system default config (newline added) and root's ranges from /etc/subuid and /etc/subgid
    idmap = 'lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 200000 65536\n'
    assert tools.create_config_file == host.files['/etc/lxc/default.conf'] + '\n' + idmap
    assert not os.path.exists(argv[f_index + 1])  # removed after the call
    assert result['container']['unprivileged'] is True


def test_create_unprivileged_without_a_subuid_range_touches_nothing(env):
    tools, host, m, _clock = env
    host.files['/etc/subuid'] = 'someone:100000:65536\n'
    with pytest.raises(VirtkitError, match='^vk-h6a: unprivileged: /etc/subuid has no range for root'):
        m.run(params(unprivileged=True))
    assert [c[0] for c in tools.calls] == []


# ------------------------------------------------------------------ lxc-copy

def test_clone_of_a_stopped_source(env):
    tools, _host, m, _clock = env
    m.run(params(name='vk-h6a-src'))
    tools.calls[:] = []
    m.run(params(clone_from='vk-h6a-src'))
    assert tools.argv_of('lxc-copy') == head(tools, 'lxc-copy', 'vk-h6a-src') + ['-N', NAME]
    assert not [c for c in tools.calls if c[0] in ('lxc-stop', 'lxc-start')]


def test_snapshot_clone_of_a_running_source_keeps_it_running(env):
    tools, _host, m, _clock = env
    m.run(params(name='vk-h6a-src', state='started'))
    tools.calls[:] = []
    m.run(params(clone_from='vk-h6a-src', clone_snapshot=True, backing_store='overlayfs'))
    assert tools.argv_of('lxc-copy') == head(tools, 'lxc-copy', 'vk-h6a-src') + [
        '-N', NAME, '-B', 'overlayfs', '-s', '-a']
    assert not [c for c in tools.calls if c[0] == 'lxc-stop']
    assert tools.state['vk-h6a-src'] == 'RUNNING'


def test_full_clone_of_a_frozen_source_stops_copies_and_restores_it(env):
    tools, _host, m, _clock = env
    m.run(params(name='vk-h6a-src', state='frozen'))
    tools.calls[:] = []
    m.run(params(clone_from='vk-h6a-src', backing_store='lvm', backing_store_options={'fssize': '1G'}))
    src = [c for c in tools.calls if c[0] != 'lxc-info' and 'vk-h6a-src' in c]
    assert [c[0] for c in src] == ['lxc-unfreeze', 'lxc-stop', 'lxc-copy', 'lxc-start', 'lxc-wait', 'lxc-freeze']
    assert tools.argv_of('lxc-copy')[5:] == ['-N', NAME, '-B', 'lvm', '-L', '1G']
    assert tools.state['vk-h6a-src'] == 'FROZEN'


# ------------------------------------------------------------------ wait_for_ip

def test_wait_for_ip_on_an_interface_that_is_up(env):
    _tools, host, m, clock = env
    result = m.run(params(state='started', wait_for_ip_interfaces=['eth0'], wait_for_ip_timeout=5))
    assert result['container']['interfaces']['eth0']['ipv4'] == ['10.0.3.157']
    assert clock[0] == 0  # answered at the first look


def test_wait_for_ip_waits_for_every_listed_interface(env):
    _tools, host, m, clock = env
    base = host.files['/proc/%d/net/if_inet6' % PID]
    eth1 = 'fd000000000000000000000000000020 03 40 00 80     eth1\n'
    # eth1 gets its address at the 4th look
    host.files['/proc/%d/net/if_inet6' % PID] = lambda n: base + (eth1 if n >= 4 else '')
    result = m.run(params(state='started', wait_for_ip_interfaces=['eth0', 'eth1'], wait_for_ip_timeout=30))
    assert result['container']['interfaces']['eth1']['ipv6'] == ['fd00::20']
    assert 0 < clock[0] < 30
    assert host.reads['/proc/%d/net/if_inet6' % PID] >= 4


def test_wait_for_ip_times_out_when_only_some_interfaces_are_up(env):
    _tools, _host, m, clock = env
    with pytest.raises(VirtkitError) as err:
        m.run(params(state='started', wait_for_ip_interfaces=['eth0', 'eth1'], wait_for_ip_timeout=5))
    message = str(err.value)
    assert message.startswith('vk-h6a: wait_for_ip: no address on eth0, eth1 within 5s (seen: eth0=')
    assert '10.0.3.157' in message and 'fd00::10' in message and 'eth1' not in message.split('seen:')[1]
    assert '\n' not in message
    assert 5 <= clock[0] < 7  # bounded by the timeout, not a blind sleep


def test_wait_for_ip_without_interfaces_times_out_with_none_seen(env):
    _tools, host, m, clock = env
    host.files['/proc/%d/net/fib_trie' % PID] = 'Main:\n  |-- 127.0.0.1\n     /32 host LOCAL\n'
    host.files['/proc/%d/net/if_inet6' % PID] = '00000000000000000000000000000001 01 80 10 80       lo\n'
    with pytest.raises(VirtkitError, match=r'^vk-h6a: wait_for_ip: no address within 3s \(seen: none\)$'):
        m.run(params(state='started', wait_for_ip=True, wait_for_ip_timeout=3))
    assert 3 <= clock[0] < 5


def test_wait_for_ip_is_planned_only_for_a_running_container(env):
    tools, _host, m, _clock = env
    result = m.run(params(state='stopped', wait_for_ip=True))
    assert 'wait_for_ip' not in [a['action'] for a in result['actions']]
    assert not [c for c in tools.calls if c[0] == 'lxc-start']


# ------------------------------------------------------------------ restart-free keys, end to end

def test_autostart_on_a_running_container_is_written_without_a_restart(env):
    tools, _host, m, _clock = env
    m.run(params(state='started'))
    tools.calls[:] = []
    p = params(state='started', autostart=True, autostart_order=2, groups=['web'], restart_policy='if_needed')
    result = m.run(p)
    assert result['changed'] and [a['action'] for a in result['actions']] == ['write_config']
    assert result['pending_restart'] is False and result['pending_restart_fields'] == []
    assert not [c for c in tools.calls if c[0] in ('lxc-stop', 'lxc-start')]
    assert result['container']['autostart'] is True
    # the rerun compares with the config the container was started with (the stamp): still nothing
    started = m.read(NAME).started_config
    assert started is not None and 'lxc.start.auto' not in started
    again = m.run(dict(p, restart_policy='never'))
    assert not again['changed'] and again['pending_restart'] is False
