# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
LIMITS = {'memory': 256 * 1024 ** 2, 'memory_swap': 512 * 1024 ** 2, 'cpu_shares': 512, 'cpus': 0.5,
          'cpuset': '0-1', 'pids': 100}


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def files(mapping):
    return mapping.get


def hybrid():
    return cgroup.parse_mounts(fixture('mounts-hybrid.txt'), files({
        '/sys/fs/cgroup/unified/cgroup.controllers': '',
        '/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes': '9223372036854771712\n'}))


def v2():
    return cgroup.parse_mounts(fixture('mounts-v2.txt'), files({
        '/sys/fs/cgroup/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n'}))


def v1():
    return cgroup.parse_mounts(fixture('mounts-v1.txt'), files({}))


def test_detect_hybrid_v2_v1():
    h = hybrid()
    assert h.kind == 'hybrid'
    assert h.describe()['controllers'] == {'memory': 'v1', 'cpu': 'v1', 'cpuset': 'v1', 'pids': 'v1'}
    assert h.v1_mounts['memory'] == '/sys/fs/cgroup/memory'
    assert h.memsw
    assert v2().kind == 'v2' and v2().version('memory') == 'v2'
    layout = v1()
    assert layout.kind == 'v1' and layout.v1_mounts['cpu'] == '/sys/fs/cgroup/cpu,cpuacct'
    assert not layout.memsw


def test_hybrid_with_a_controller_in_v2():
    layout = cgroup.parse_mounts(fixture('mounts-hybrid.txt').replace(
        'cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n', ''), files({
            '/sys/fs/cgroup/unified/cgroup.controllers': 'pids memory'}))
    # memory is bound to v1, so only pids is usable in the unified tree
    assert layout.version('pids') == 'v2' and layout.version('memory') == 'v1'
    keys, _owned = cgroup.render_limits({'pids': 10, 'memory': 1048576}, layout)
    assert keys == {'lxc.cgroup2.pids.max': ['10'], 'lxc.cgroup.memory.limit_in_bytes': ['1048576']}


def test_render_v1():
    keys, owned = cgroup.render_limits(LIMITS, hybrid())
    assert keys == {
        'lxc.cgroup.memory.limit_in_bytes': ['268435456'],
        'lxc.cgroup.memory.memsw.limit_in_bytes': ['536870912'],
        'lxc.cgroup.cpu.shares': ['512'],
        'lxc.cgroup.cpu.cfs_quota_us': ['50000'],
        'lxc.cgroup.cpu.cfs_period_us': ['100000'],
        'lxc.cgroup.cpuset.cpus': ['0-1'],
        'lxc.cgroup.pids.max': ['100'],
    }
    assert 'lxc.cgroup2.memory.max' in owned and 'lxc.cgroup2.cpu.max' in owned


def test_render_v2():
    keys, owned = cgroup.render_limits(LIMITS, v2())
    assert keys == {
        'lxc.cgroup2.memory.max': ['268435456'],
        'lxc.cgroup2.memory.swap.max': ['268435456'],
        'lxc.cgroup2.cpu.weight': ['20'],
        'lxc.cgroup2.cpu.max': ['50000 100000'],
        'lxc.cgroup2.cpuset.cpus': ['0-1'],
        'lxc.cgroup2.pids.max': ['100'],
    }
    assert 'lxc.cgroup.memory.limit_in_bytes' in owned


def test_weight_mapping_matches_runc():
    assert cgroup.weight_from_shares(1024) == 39
    assert cgroup.weight_from_shares(2) == 1
    assert cgroup.weight_from_shares(262144) == 10000


def test_swap_without_accounting_and_missing_controller():
    with pytest.raises(VirtkitError, match='no swap accounting'):
        cgroup.render_limits({'memory': 1 << 20, 'memory_swap': 2 << 20}, v1())
    with pytest.raises(VirtkitError, match='no pids cgroup controller'):
        cgroup.render_limits({'pids': 5}, cgroup.CgroupLayout(v1={'memory'}))


def test_read_limits_hybrid():
    base = '/sys/fs/cgroup/%s/lxc.payload.vk-fx/'
    read = files({
        '/proc/42/cgroup': fixture('proc-cgroup-hybrid.txt'),
        base % 'memory' + 'memory.limit_in_bytes': '134217728\n',
        base % 'memory' + 'memory.memsw.limit_in_bytes': '268435456\n',
        base % 'cpu' + 'cpu.shares': '512\n',
        base % 'cpu' + 'cpu.cfs_quota_us': '50000\n',
        base % 'cpu' + 'cpu.cfs_period_us': '100000\n',
        base % 'cpuset' + 'cpuset.cpus': '0\n',
        base % 'pids' + 'pids.max': '64\n',
    })
    out = cgroup.read_limits(42, hybrid(), read)
    assert out['memory'] == 134217728 and out['memory_swap'] == 268435456
    assert out['cpu_shares'] == 512 and out['cpus'] == 0.5 and out['cpuset'] == '0' and out['pids'] == 64
    assert out['cgroups']['memory'] == '/sys/fs/cgroup/memory/lxc.payload.vk-fx'


def test_read_limits_v2():
    base = '/sys/fs/cgroup/lxc.payload.a/'
    read = files({
        '/proc/7/cgroup': '0::/lxc.payload.a\n',
        base + 'memory.max': '268435456\n', base + 'memory.swap.max': 'max\n',
        base + 'cpu.max': 'max 100000\n', base + 'cpu.weight': '100\n',
        base + 'cpuset.cpus.effective': '0-1\n', base + 'pids.max': 'max\n',
    })
    out = cgroup.read_limits(7, v2(), read)
    assert out['memory'] == 268435456 and out['memory_swap'] == 'max'
    assert 'cpus' not in out and out['cpu_weight'] == 100 and out['pids'] == 'max' and out['cpuset'] == '0-1'
