# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import cgroup
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.plan import (
    Current, apply_desired, build_plan, changed_keys)
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import idmap_entries, validate

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
HYBRID = cgroup.CgroupLayout(v1={'memory', 'cpu', 'cpuset', 'pids'}, v2_mount='/sys/fs/cgroup/unified')
V2 = cgroup.CgroupLayout(v2={'memory', 'cpu', 'cpuset', 'pids'}, v2_mount='/sys/fs/cgroup')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def host_kind(path):
    """Bind mount sources as these tests see the host: every path is a directory."""
    return 'dir'


def spec(layout=HYBRID, **params):
    params.setdefault('name', 'vk-a')
    return validate(params, layout, host_kind)


def actions(plan):
    return [a.op for a in plan.actions]


BUSYBOX = fixture('busybox.config')


def test_new_container_plan_writes_config_before_start():
    s = spec(state='started', limits={'memory': 128}, wait_for_ip=True)
    plan = build_plan(s, Current('vk-a'))
    assert actions(plan) == ['create', 'write_config', 'start', 'wait_for_ip']
    assert plan.changed
    assert 'lxc.cgroup.memory.limit_in_bytes = 134217728' in plan.diff()['after']
    assert plan.after['state'] == 'running'


def test_rootfs_tarball_plan_names_the_tarball():
    plan = build_plan(spec(rootfs_tarball='/srv/rootfs.tar.xz', state='started'), Current('vk-a'))
    assert actions(plan) == ['create', 'write_config', 'start']
    assert plan.actions[0].summary == 'create vk-a from the rootfs tarball /srv/rootfs.tar.xz (dir backing store)'


def test_clone_plan():
    plan = build_plan(spec(clone_from='vk-src'), Current('vk-a'))
    assert actions(plan) == ['clone', 'write_config']


def test_existing_unchanged_is_a_noop():
    s = spec(state='started', limits={'memory': 128})
    text = apply_desired(BUSYBOX, s)
    plan = build_plan(s, Current('vk-a', True, 'running', 5, text))
    assert actions(plan) == [] and not plan.changed and plan.pending_restart == []


def test_change_on_running_container_is_pending_until_restart():
    old = apply_desired(BUSYBOX, spec(limits={'memory': 128}))
    s = spec(limits={'memory': 192})
    plan = build_plan(s, Current('vk-a', True, 'running', 5, old))
    assert actions(plan) == ['write_config']
    assert plan.pending_restart == ['lxc.cgroup.memory.limit_in_bytes']
    assert plan.diff()['before'] == 'config:\n  lxc.cgroup.memory.limit_in_bytes = 134217728\nstate: running\n'
    # a rerun: the file has the new value, the running container was started with the old one
    new = apply_desired(old, s)
    again = build_plan(s, Current('vk-a', True, 'running', 5, new, started_config=old))
    assert actions(again) == [] and again.pending_restart == ['lxc.cgroup.memory.limit_in_bytes']
    # with restart_policy if_needed the rerun restarts
    s2 = spec(limits={'memory': 192}, restart_policy='if_needed')
    fix = build_plan(s2, Current('vk-a', True, 'running', 5, new, started_config=old))
    assert actions(fix) == ['restart'] and fix.pending_restart == []


def test_change_on_stopped_container_needs_no_restart():
    old = apply_desired(BUSYBOX, spec(limits={'memory': 128}))
    plan = build_plan(spec(limits={'memory': 192}, restart_policy='if_needed'),
                      Current('vk-a', True, 'stopped', None, old))
    assert actions(plan) == ['write_config'] and plan.pending_restart == []


@pytest.mark.parametrize('state,target,expected', [
    ('stopped', 'started', ['start']),
    ('running', 'started', []),
    ('frozen', 'started', ['unfreeze']),
    ('running', 'stopped', ['stop']),
    ('frozen', 'stopped', ['stop']),
    ('stopped', 'stopped', []),
    ('stopped', 'frozen', ['start', 'freeze']),
    ('running', 'frozen', ['freeze']),
    ('frozen', 'frozen', []),
    ('running', 'restarted', ['restart']),
    ('stopped', 'restarted', ['start']),
    ('running', 'present', []),
    ('running', 'absent', ['destroy']),
])
def test_lifecycle(state, target, expected):
    s = spec(state=target)
    plan = build_plan(s, Current('vk-a', True, state, 5 if state != 'stopped' else None, BUSYBOX))
    assert actions(plan) == expected


def test_absent_when_missing_is_a_noop():
    plan = build_plan(spec(state='absent'), Current('vk-a'))
    assert actions(plan) == [] and not plan.changed


def test_apply_keeps_template_lines_and_never_duplicates():
    s = spec(networks=[{'type': 'veth', 'link': 'lxcbr0', 'ipv4': ['10.0.3.5/24'], 'ipv4_gateway': '10.0.3.1'}],
             autostart=True, autostart_order=2, groups=['web'])
    once = apply_desired(BUSYBOX, s)
    twice = apply_desired(once, s)
    assert once == twice
    assert once.count('lxc.net.0.type') == 1 and once.count('lxc.start.auto') == 1
    assert once.startswith(BUSYBOX.split('lxc.net.0.type')[0])
    assert 'lxc.net.0.ipv4.address = 10.0.3.5/24' in once and 'lxc.start.order = 2' in once
    assert changed_keys(BUSYBOX, once) == ['lxc.group', 'lxc.net.0.hwaddr', 'lxc.net.0.ipv4.address',
                                           'lxc.net.0.ipv4.gateway', 'lxc.start.auto', 'lxc.start.order']


def test_a_static_nic_without_a_mac_gets_a_fixed_one():
    # the busybox template writes no MAC: LXC would make up a new one at every start
    static = {'type': 'veth', 'link': 'lxcbr0', 'ipv4': ['10.0.3.5/24']}
    out = apply_desired(BUSYBOX, spec(networks=[static, {'link': 'lxcbr0'}]))
    mac = LxcConfig.parse(out).get('lxc.net.0.hwaddr')
    assert len(mac) == 1 and mac[0].startswith('00:16:3e:') and len(mac[0]) == 17
    assert mac == LxcConfig.parse(apply_desired(BUSYBOX, spec(networks=[static]))).get('lxc.net.0.hwaddr')
    assert LxcConfig.parse(apply_desired(BUSYBOX, spec(name='vk-b', networks=[static]))).get('lxc.net.0.hwaddr') != mac
    assert not LxcConfig.parse(out).get('lxc.net.1.hwaddr')  # a DHCP NIC is left to LXC
    # a MAC the config has already, or the user's, wins
    assert apply_desired(out, spec(networks=[static, {'link': 'lxcbr0'}])) == out
    own = apply_desired(BUSYBOX, spec(networks=[dict(static, hwaddr='00:16:3e:01:02:03')]))
    assert LxcConfig.parse(own).get('lxc.net.0.hwaddr') == ['00:16:3e:01:02:03']


def test_networks_own_lxc_net_but_keep_generated_mac():
    text = fixture('with-includes.config')
    out = apply_desired(text, spec(networks=[{'type': 'veth', 'link': 'br2'}]))
    assert 'lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc' in out
    assert 'lxc.net.1' not in out and 'lxc.net.0.link = br2' in out
    assert 'lxc.include = /usr/share/lxc/config/userns.conf' in out
    none = apply_desired(text, spec(networks=[]))
    assert 'lxc.net.' not in none


def test_limits_replace_the_other_cgroup_version():
    text = fixture('with-includes.config')
    out = apply_desired(text, spec(limits={'memory': '512MiB'}))
    assert 'lxc.cgroup2.memory.max' not in out and 'lxc.cgroup.memory.limit_in_bytes = 536870912' in out
    out2 = apply_desired(out, spec(V2, limits={'memory': '512MiB'}))
    assert 'lxc.cgroup.memory' not in out2 and 'lxc.cgroup2.memory.max = 536870912' in out2


def test_mounts_by_target():
    text = fixture('with-includes.config')
    s = spec(mounts=[{'source': '/srv/new', 'target': '/srv/data', 'readonly': True},
                     {'source': '/opt/x', 'target': 'opt/x', 'create': 'dir'}])
    out = apply_desired(text, s)
    assert 'lxc.mount.entry = /srv/new srv/data none bind,ro,create=dir 0 0' in out
    assert out.count('srv/data') == 1
    assert 'lxc.mount.entry = /opt/x opt/x none bind,create=dir 0 0' in out
    gone = apply_desired(out, spec(mounts=[{'target': '/opt/x', 'state': 'absent'}]))
    assert 'opt/x' not in gone and 'srv/data' in gone


def test_raw_config_and_exclusive():
    out = apply_desired(BUSYBOX, spec(config={'lxc.environment': ['A=1', 'B=2'], 'lxc.start.delay': 3}))
    assert 'lxc.environment = A=1\nlxc.environment = B=2' in out and 'lxc.start.delay = 3' in out
    exclusive = apply_desired(out, spec(config={'lxc.start.delay': 3}, config_exclusive=True))
    assert 'lxc.environment' not in exclusive
    assert 'lxc.net.0.type' not in exclusive  # not protected: owned by nobody here
    assert 'lxc.rootfs.path' in exclusive and 'lxc.mount.entry = /lib lib none ro,bind 0 0' in exclusive


def test_unprivileged_cannot_be_switched_on_an_existing_container():
    with pytest.raises(VirtkitError, match='create a new container instead'):
        build_plan(spec(unprivileged=True), Current('vk-a', True, 'stopped', None, BUSYBOX))


@pytest.mark.parametrize('params,message', [
    ({'name': 'bad/name'}, 'not a valid container name'),
    ({'clone_from': 'vk-a'}, 'cannot be cloned from itself'),
    ({'limits': {'memory': '1KiB'}}, 'below 1 MiB'),
    ({'limits': {'memory_swap': '1GiB'}}, 'needs limits.memory'),
    ({'limits': {'memory': '1GiB', 'memory_swap': '512MiB'}}, 'below limits.memory'),
    ({'limits': {'cpu_shares': 1}}, 'between 2 and 262144'),
    ({'limits': {'cpus': 0}}, 'between 0.01'),
    ({'limits': {'cpuset': '0-1;reboot'}}, 'not a CPU list'),
    ({'limits': {'pids': 0}}, 'at least 1'),
    ({'networks': [{'type': 'macvlan'}]}, 'needs link'),
    ({'networks': [{'link': 'br0 x'}]}, 'not an interface name'),
    ({'networks': [{'ipv4': ['10.0.0.1']}]}, 'needs a prefix length'),
    ({'networks': [{'ipv4': ['fd00::1/64']}]}, 'not an IPv4 address'),
    ({'networks': [{'ipv4_gateway': 'x'}]}, 'not an address'),
    ({'networks': [{'hwaddr': 'zz'}]}, 'not a MAC address'),
    ({'networks': [{'type': 'none', 'link': 'br0'}]}, 'takes no link'),
    ({'networks': [{'mtu': 20}]}, 'between 68'),
    ({'networks': [{'macvlan_mode': 'bridge'}]}, 'only for type macvlan'),
    ({'mounts': [{'source': 'rel', 'target': '/x'}]}, 'absolute host path'),
    ({'mounts': [{'source': '/a b', 'target': '/x'}]}, 'absolute host path'),
    ({'mounts': [{'source': '/a', 'target': '../etc'}]}, 'without blanks or ".."'),
    ({'mounts': [{'source': '/a', 'target': '/x'}, {'source': '/b', 'target': 'x'}]}, 'listed twice'),
    ({'config': {'lxc.net.0.link': 'br0'}, 'networks': []}, 'also set by a typed option'),
    ({'config': {'lxc.mount.entry': '/a b none bind 0 0'}}, 'use the mounts option'),
    ({'config': {'lxc.x': 'a\nlxc.y = b'}}, 'newline'),
    ({'config': {'not.lxc': '1'}}, 'not an LXC config key'),
    ({'groups': ['a b']}, 'not a group name'),
    ({'template': 'a b'}, 'not a template name'),
    ({'template_options': ['--x\n']}, 'newline'),
    ({'wait_for_ip_interfaces': ['eth0;x']}, 'not an interface name'),
    ({'stop_timeout': -1}, 'must not be negative'),
])
def test_bad_input_messages(params, message):
    params.setdefault('name', 'vk-a')
    with pytest.raises(VirtkitError, match=message.replace('(', r'\(').replace('.', r'\.')):
        validate(params, HYBRID, host_kind)


def test_idmap_from_subuid():
    assert idmap_entries('root:100000:65536\n', 'root:200000:65536\n') == ['u 0 100000 65536', 'g 0 200000 65536']
    with pytest.raises(VirtkitError, match='/etc/subuid has no range for root'):
        idmap_entries('', '')
    with pytest.raises(VirtkitError, match='needs 65536'):
        idmap_entries('root:100000:1000\n', 'root:100000:65536\n')


DEBIAN = fixture('debian.config')
NESTING = '/usr/share/lxc/config/nesting.conf'
COMMON = '/usr/share/lxc/config/debian.common.conf'


@pytest.mark.parametrize('params', [
    {'autostart': True},
    {'groups': ['web']},
    {'autostart': True, 'autostart_order': 3, 'autostart_delay': 5, 'groups': ['web', 'onboot']},
    {'config': {'lxc.group': 'db'}},
])
@pytest.mark.parametrize('policy', ['never', 'if_needed'])
@pytest.mark.parametrize('state', ['running', 'frozen'])
def test_autostart_keys_need_no_restart(params, policy, state):
    s = spec(state='started' if state == 'running' else 'frozen', restart_policy=policy, **params)
    plan = build_plan(s, Current('vk-a', True, state, 5, BUSYBOX))
    assert actions(plan) == ['write_config']
    assert plan.changed and plan.pending_restart == [] and not plan.restarting
    assert plan.result()['pending_restart'] is False
    assert plan.after['state'] == state
    # a rerun (file written, the container still runs with the old config) is a no-op
    new = apply_desired(BUSYBOX, s)
    again = build_plan(s, Current('vk-a', True, state, 5, new, started_config=BUSYBOX))
    assert actions(again) == [] and not again.changed and again.pending_restart == []


def test_autostart_with_a_limit_reports_only_the_limit():
    s = spec(autostart=True, groups=['web'], limits={'memory': 128})
    plan = build_plan(s, Current('vk-a', True, 'running', 5, BUSYBOX))
    assert actions(plan) == ['write_config']
    assert plan.pending_restart == ['lxc.cgroup.memory.limit_in_bytes']
    fix = build_plan(spec(autostart=True, groups=['web'], limits={'memory': 128}, restart_policy='if_needed'),
                     Current('vk-a', True, 'running', 5, BUSYBOX))
    assert actions(fix) == ['write_config', 'restart']


def test_raw_config_on_a_running_container_still_needs_a_restart():
    plan = build_plan(spec(config={'lxc.apparmor.profile': 'unconfined'}),
                      Current('vk-a', True, 'running', 5, DEBIAN))
    assert actions(plan) == ['write_config'] and plan.pending_restart == ['lxc.apparmor.profile']


def test_config_include_adds_and_keeps_the_template_include():
    s = spec(config={'lxc.include': NESTING})
    out = apply_desired(DEBIAN, s)
    conf = LxcConfig.parse(out)
    assert conf.get('lxc.include') == [COMMON, NESTING]
    # only the new line is added, right after the template's include; all else byte for byte
    assert out == DEBIAN.replace('lxc.include = %s\n' % COMMON,
                                 'lxc.include = %s\nlxc.include = %s\n' % (COMMON, NESTING))
    assert '#lxc.include = %s' % NESTING in out  # the template's comment stays a comment
    assert apply_desired(out, s) == out
    plan = build_plan(s, Current('vk-a', True, 'stopped', None, DEBIAN))
    assert actions(plan) == ['write_config'] and plan.diff()['after'].count(COMMON) == 1
    assert actions(build_plan(s, Current('vk-a', True, 'stopped', None, out))) == []


def test_config_repeatable_keys_are_add_only_and_values_compare_folded():
    text = fixture('with-includes.config')
    s = spec(config={'lxc.idmap': ['u  0 100000 65536', 'u 1000 1000 1'], 'lxc.cap.drop': ['sys_time', 'sys_time']})
    out = apply_desired(text, s)
    conf = LxcConfig.parse(out)
    assert conf.get('lxc.idmap') == ['u 0 100000 65536', 'g 0 100000 65536', 'u 1000 1000 1']
    assert conf.get('lxc.cap.drop') == ['sys_time']
    assert conf.get('lxc.include') == ['/usr/share/lxc/config/common.conf', '/usr/share/lxc/config/userns.conf']
    assert changed_keys(text, out) == ['lxc.cap.drop', 'lxc.idmap']
    assert apply_desired(out, s) == out


def test_config_single_value_key_is_replaced():
    out = apply_desired(DEBIAN, spec(config={'lxc.apparmor.profile': 'unconfined', 'lxc.tty.max': 2}))
    conf = LxcConfig.parse(out)
    assert conf.get('lxc.apparmor.profile') == ['unconfined'] and conf.get('lxc.tty.max') == ['2']


def test_config_exclusive_makes_a_repeatable_key_exact():
    with_nesting = apply_desired(DEBIAN, spec(config={'lxc.include': NESTING}))
    exact = apply_desired(with_nesting, spec(config={'lxc.include': [COMMON]}, config_exclusive=True))
    assert LxcConfig.parse(exact).get('lxc.include') == [COMMON]
    # without config_exclusive a shorter list removes nothing
    kept = apply_desired(with_nesting, spec(config={'lxc.include': [COMMON]}))
    assert kept == with_nesting


def test_typed_options_applied_twice_to_debian_config_give_the_same_text():
    s = spec(limits={'memory': '256MiB', 'cpus': 0.5, 'pids': 100},
             networks=[{'link': 'lxcbr0', 'ipv4': ['10.0.3.50/24'], 'ipv4_gateway': '10.0.3.1', 'mtu': 1450}],
             mounts=[{'source': '/srv', 'target': '/srv/host', 'readonly': True, 'create': 'dir'}],
             autostart=True, autostart_order=1, autostart_delay=2, groups=['onboot'],
             config={'lxc.include': NESTING, 'lxc.environment': ['A=1']})
    once = apply_desired(DEBIAN, s)
    twice = apply_desired(once, s)
    assert once == twice
    assert changed_keys(once, twice) == []
    assert actions(build_plan(s, Current('vk-a', True, 'stopped', None, once))) == []


def test_typed_options_keep_every_untouched_entry_in_order():
    """Structural round trip: the debian template's entries we do not own survive, in order."""
    s = spec(limits={'memory': 128}, autostart=True, networks=[{'link': 'lxcbr0', 'ipv4': ['10.0.3.50/24']}])
    before = LxcConfig.parse(DEBIAN)
    after = LxcConfig.parse(apply_desired(DEBIAN, s))
    ours = set(s.keys) | {'lxc.net.0.hwaddr'}
    untouched = [e for e in before.entries() if e[0] not in ours]
    assert [e for e in after.entries() if e[0] not in ours] == untouched
    # comments and blank lines are kept verbatim and in order
    raw = [line.raw for line in before.lines if line.key is None]
    assert [line.raw for line in after.lines if line.key is None] == raw
    # the new entries are exactly the typed keys (values as rendered)
    added = after.as_dict(set(s.keys))
    assert added == dict(s.keys)
    # and the rendered text parses back to the same entries
    assert LxcConfig.parse(after.render()).entries() == after.entries()
