# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading guests in bulk (libvirt test driver, captured LXC output) and naming/grouping them."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _inventory as I
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inventory', 'fixtures')
NODE_URI = 'test://' + os.path.join(FIXTURES, 'node.xml')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def by_name(guests):
    return dict((g['name'], g) for g in guests)


# ---------------------------------------------------------------- libvirt

def test_read_libvirt_default_driver_arp_address():
    guests = I.read_libvirt('test:///default', ['lease', 'arp'])
    test = by_name(guests)['test']
    assert test['kind'] == 'kvm' and test['state'] == 'running'
    assert test['vcpus'] == 2 and test['memory_mib'] == 2048
    # the test driver has no DHCP leases: the address comes from the next source
    assert test['addresses'] == [{'address': '192.168.122.3', 'prefix': 24, 'family': 'ipv4',
                                  'interface': 'testnet0', 'mac': 'aa:bb:cc:dd:ee:ff',
                                  'network': 'default', 'source': 'arp'}]


def test_read_libvirt_lease_only_finds_nothing_on_test_driver():
    test = by_name(I.read_libvirt('test:///default', ['lease']))['test']
    assert test['addresses'] == []
    assert test['interfaces'][0]['mac'] == 'aa:bb:cc:dd:ee:ff'


def test_read_libvirt_custom_node_states_metadata():
    guests = by_name(I.read_libvirt(NODE_URI, ['arp']))
    assert sorted(guests) == ['db1', 'web1']
    web1, db1 = guests['web1'], guests['db1']
    assert web1['state'] == 'running' and db1['state'] == 'shutoff'
    assert web1['metadata'] == {'groups': ['web', 'prod'], 'owner': 'team-a'}
    assert db1['metadata'] == {'groups': 'db, prod'}
    assert db1['addresses'] == []  # a stopped guest has no addresses
    assert web1['addresses'][0]['address'].startswith('192.168.122.')
    assert web1['memory_mib'] == 1024 and db1['vcpus'] == 4


def test_read_libvirt_parallel_and_filtered_reads():
    one = I.read_libvirt(NODE_URI, ['arp'])
    assert I.read_libvirt(NODE_URI, ['arp'], workers=8) == one
    seen = []

    def keep(name, state):
        seen.append((name, state))
        return state == 'running'
    assert [g['name'] for g in I.read_libvirt(NODE_URI, ['arp'], workers=4, keep=keep)] == ['web1']
    assert sorted(seen) == [('db1', 'shutoff'), ('web1', 'running')]


def test_read_libvirt_unreachable_is_one_line():
    with pytest.raises(VirtkitError) as err:
        I.read_libvirt('test:///nonexistent/node.xml', ['lease'])
    assert 'test:///nonexistent/node.xml: connect failed' in str(err.value)
    assert '\n' not in str(err.value)


def test_libvirt_guest_prefers_lease_then_agent():
    from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse
    root = parse("""<domain type='kvm'><name>a</name><uuid>u</uuid><memory>1048576</memory><vcpu>1</vcpu>
      <os><type>hvm</type></os><devices>
      <interface type='network'><mac address='52:54:00:AA:00:01'/><source network='default'/><target dev='vnet3'/></interface>
      <interface type='bridge'><mac address='52:54:00:aa:00:02'/><source bridge='br0'/><target dev='vnet4'/></interface>
      <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
      </devices></domain>""", 'test')
    asked = []

    def ask(source):
        asked.append(source)
        return {'52:54:00:aa:00:02': [('10.1.0.5', 16, 'ens4')], '52:54:00:aa:00:01': [('1.1.1.1', 8, 'x')]}
    guest = I.libvirt_guest(root, 'running', True, ['lease', 'agent'],
                            lambda net: {'52:54:00:aa:00:01': [('192.168.122.10', 24)]}, ask)
    assert asked == ['agent']
    assert [(a['address'], a['interface'], a['network'], a['source']) for a in guest['addresses']] == [
        ('192.168.122.10', 'vnet3', 'default', 'lease'), ('10.1.0.5', 'ens4', 'br0', 'agent')]
    assert guest['autostart'] is True
    # shut off: nobody is asked
    asked[:] = []
    assert I.libvirt_guest(root, 'shutoff', False, ['lease', 'agent'], lambda n: {}, ask)['addresses'] == []
    assert asked == []


# ---------------------------------------------------------------- LXC

def _remote():
    ls_text, configs, proc, _path = I.parse_remote(fixture('remote-lxc.txt'))
    return I.lxc_guests(ls_text, configs.get, lambda n, f: proc.get(n, {}).get(f), '/var/lib/lxc')


def test_lxc_guests_from_captured_output():
    guests = by_name(_remote())
    web = guests['vk-web1']
    assert web['state'] == 'running' and web['autostart'] is True
    assert web['addresses'] == [{'address': '10.0.3.99', 'prefix': None, 'family': 'ipv4', 'interface': 'eth0',
                                 'mac': None, 'network': 'lxcbr0', 'source': 'proc'}]
    assert web['lxc_groups'] == ['web', 'edge']
    assert web['memory_mib'] == 256 and web['vcpus'] == 0.5
    assert 'lxc.mount.entry' not in web['lxc_config'] and web['lxc_config']['lxc.group'] == ['web', 'edge']
    cache = guests['vk-cache-debian']
    assert cache['state'] == 'shutoff' and cache['addresses'] == []
    assert cache['interfaces'] == [{'mac': '00:16:3e:f7:7f:94', 'target': 'eth0', 'network': 'lxcbr0'}]


def test_lxc_guests_fall_back_to_lxc_ls_addresses():
    ls_text = ('NAME STATE   PID AUTOSTART GROUPS IPV4      IPV6 \n'
               'c1   FROZEN  77  0         a,b    10.0.3.7  -    \n')
    guest = I.lxc_guests(ls_text, lambda n: None, lambda n, f: None, '/srv/lxc')[0]
    assert guest['state'] == 'paused' and guest['lxc_groups'] == ['a', 'b']
    assert [(a['address'], a['interface'], a['source']) for a in guest['addresses']] == [('10.0.3.7', None, 'lxc-ls')]


def test_parse_remote_error():
    with pytest.raises(VirtkitError, match='lxc-ls failed: .*not found'):
        I.parse_remote('@@virtkit@@ error\nsh: 1: lxc-ls: not found\n')


def _fake_tools(tmp_path):
    """A fake ssh that runs the remote command with sh, and a fake lxc-ls."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    ssh = bindir / 'fake-ssh'
    # ssh -o BatchMode=yes [-p P] [-l U] [args] HOST -- COMMAND: run COMMAND like sshd would
    ssh.write_text('#!/bin/sh\necho "$@" > "%s/ssh-args"\nwhile [ "$1" != "--" ]; do shift; done\nshift\n'
                   'exec sh -c "$1"\n' % tmp_path)
    lxc_ls = bindir / 'lxc-ls'
    lxc_ls.write_text('#!/bin/sh\nprintf "%%s\\n" "$@" > "%s/lxc-ls-args"\n'
                      'printf "NAME STATE   PID AUTOSTART GROUPS IPV4 IPV6 \\n'
                      'c1   STOPPED -   0         -      -    -    \\n"\n' % tmp_path)
    for path in (ssh, lxc_ls):
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_read_lxc_remote_through_ssh_quotes_the_path(tmp_path, monkeypatch):
    bindir = _fake_tools(tmp_path)
    monkeypatch.setenv('PATH', '%s:%s' % (bindir, os.environ['PATH']))
    weird = tmp_path / "lxc dir; touch 'pwned'"
    (weird / 'c1').mkdir(parents=True)
    (weird / 'c1' / 'config').write_text('lxc.group = g1\nlxc.net.0.type = veth\n')
    source = {'lxc_host': 'hv1', 'lxc_host_user': 'root', 'lxc_host_port': 2222,
              'lxc_ssh_executable': str(bindir / 'fake-ssh'), 'lxc_path': str(weird)}
    guests = I.read_lxc(source)
    assert [(g['name'], g['state'], g['lxc_groups'], g['lxc_path']) for g in guests] == [
        ('c1', 'shutoff', ['g1'], str(weird))]
    assert (tmp_path / 'lxc-ls-args').read_text().splitlines()[:2] == ['-P', str(weird)]
    assert not (tmp_path / 'pwned').exists() and not os.path.exists('pwned')
    assert (tmp_path / 'ssh-args').read_text().startswith('-o BatchMode=yes -p 2222 -l root hv1 -- sh -c ')


def test_read_lxc_remote_default_path_from_lxc_config(tmp_path, monkeypatch):
    bindir = _fake_tools(tmp_path)
    lxc_config = bindir / 'lxc-config'
    lxc_config.write_text('#!/bin/sh\n[ "$1" = lxc.lxcpath ] && echo "%s"\n' % (tmp_path / 'store'))
    lxc_config.chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (bindir, os.environ['PATH']))
    guests = I.read_lxc({'lxc_host': 'hv1', 'lxc_ssh_executable': str(bindir / 'fake-ssh')})
    assert guests[0]['lxc_path'] == str(tmp_path / 'store')
    assert (tmp_path / 'lxc-ls-args').read_text().splitlines()[:2] == ['-P', str(tmp_path / 'store')]


def test_read_lxc_remote_ssh_failure(tmp_path):
    source = {'lxc_host': 'hv1', 'lxc_ssh_executable': 'false'}
    with pytest.raises(VirtkitError, match=r'^ssh hv1 failed \(rc 1\)'):
        I.read_lxc(source)


def test_remote_script_runs_locally_on_real_lxc_layout(tmp_path, monkeypatch):
    """The script itself, with sh and a fake lxc-ls: sections come back in order."""
    bindir = _fake_tools(tmp_path)
    monkeypatch.setenv('PATH', '%s:%s' % (bindir, os.environ['PATH']))
    (tmp_path / 'c1').mkdir()
    (tmp_path / 'c1' / 'config').write_text('lxc.uts.name = c1\n')
    out = subprocess.run(['sh', '-c', I.REMOTE_SCRIPT, 'sh', str(tmp_path)], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    ls_text, configs, proc, path = I.parse_remote(out)
    assert ls_text.startswith('NAME') and configs == {'c1': 'lxc.uts.name = c1\n'} and proc == {}
    assert path == str(tmp_path)


# ---------------------------------------------------------------- names, vars, groups

OPTIONS = {'preferred_networks': [], 'host_name': 'name', 'include': [], 'exclude': [], 'states': [],
           'kvm_connection': 'ssh', 'lxc_connection': 'virtkit.guests.lxc'}


def _kvm(name, state='running', addresses=(), metadata=None):
    return {'kind': 'kvm', 'name': name, 'uuid': 'u-' + name, 'state': state, 'autostart': False, 'vcpus': 1,
            'memory_mib': 512, 'metadata': metadata or {}, 'title': None, 'interfaces': [],
            'addresses': list(addresses), 'lxc_groups': []}


def _addr(ip, network=None, interface=None):
    return I._address(ip, 24, interface, None, network, 'lease')


def test_plan_hosts_names_clashes_and_groups():
    lxc = _remote()
    collected = [
        ('hv1', {'uri': 'qemu:///system'}, [_kvm('web1', metadata={'groups': ['web', 'prod']}),
                                            _kvm('vk-web1')]),
        ('hv2', {'uri': 'qemu+ssh://hv2/system', 'lxc': True, 'lxc_host': 'hv2', 'lxc_host_user': 'root'},
         [_kvm('web1', state='shutoff')] + lxc),
    ]
    hosts, clashes = I.plan_hosts(collected, OPTIONS)
    names = [h[0] for h in hosts]
    assert names == ['web1', 'vk-web1', 'web1.hv2', 'vk-cache-debian', 'vk-web1.hv2']
    assert clashes == [('web1', 'hv2'), ('vk-web1', 'hv2')]
    hosts = dict((h[0], h) for h in hosts)
    assert hosts['web1'][2] == ['kvm', 'hypervisor_hv1', 'state_running', 'web', 'prod']
    assert hosts['web1.hv2'][2] == ['kvm', 'hypervisor_hv2', 'state_shutoff']
    assert hosts['vk-web1.hv2'][2] == ['lxc', 'hypervisor_hv2', 'state_running', 'web', 'edge']
    lvars = hosts['vk-web1.hv2'][1]
    assert lvars['ansible_connection'] == 'virtkit.guests.lxc' and lvars['ansible_lxc_name'] == 'vk-web1'
    assert lvars['ansible_lxc_host'] == 'hv2' and lvars['ansible_lxc_host_user'] == 'root'
    assert lvars['ansible_host'] == '10.0.3.99' and lvars['virtkit_hypervisor'] == 'hv2'
    assert hosts['web1'][1]['ansible_connection'] == 'ssh' and 'ansible_host' not in hosts['web1'][1]


def test_plan_hosts_same_name_kvm_and_lxc_on_one_hypervisor():
    guest = _remote()[1]
    collected = [('a', {}, [_kvm('x')]), ('b', {}, [_kvm('vk-web1'), guest])]
    names = [h[0] for h in I.plan_hosts(collected, dict(OPTIONS, host_name='name_hypervisor'))[0]]
    assert names == ['x.a', 'vk-web1.b', 'vk-web1.lxc.b']


def test_filters_and_source_vars_override():
    collected = [('hv', {'vars': {'ansible_connection': 'paramiko', 'ansible_user': 'ops'}},
                  [_kvm('web1'), _kvm('web2', state='shutoff'), _kvm('db1')])]
    hosts, _c = I.plan_hosts(collected, dict(OPTIONS, include=['web*', 'db*'], exclude=['db*'],
                                             states=['running']))
    assert [h[0] for h in hosts] == ['web1']
    assert hosts[0][1]['ansible_connection'] == 'paramiko' and hosts[0][1]['ansible_user'] == 'ops'
    hosts, _c = I.plan_hosts([('hv', {}, [_kvm('web1')])], dict(OPTIONS, kvm_connection=''))
    assert 'ansible_connection' not in hosts[0][1]


def test_choose_address():
    addrs = [_addr('fd00::5', 'default', 'vnet0'), _addr('192.168.122.5', 'default', 'vnet0'),
             _addr('10.0.0.5', 'lan', 'vnet1')]
    assert I.choose_address(addrs, []) == '192.168.122.5'
    assert I.choose_address(addrs, ['10.0.0.0/8']) == '10.0.0.5'
    assert I.choose_address(addrs, ['172.16.0.0/12', 'lan']) == '10.0.0.5'
    assert I.choose_address(addrs, ['vnet0']) == 'fd00::5'
    assert I.choose_address(addrs[:1], []) == 'fd00::5'
    assert I.choose_address([], ['lan']) is None


def test_declared_groups_and_labels():
    assert I.declared_groups({'metadata': {'groups': 'a, b,,a'}, 'lxc_groups': ['c', 'b']}) == ['a', 'b', 'c']
    assert I.hypervisor_label({'uri': 'qemu+ssh://root@hv1.example.com:22/system'}) == 'hv1.example.com'
    assert I.hypervisor_label({'uri': 'qemu:///system'}) == 'localhost'
    assert I.hypervisor_label({'lxc': True, 'lxc_host': 'ops@hv3'}) == 'hv3'
    assert I.hypervisor_label({'name': 'x', 'uri': 'qemu+ssh://hv1/system'}) == 'x'
