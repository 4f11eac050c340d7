# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin end to end: ansible-inventory on libvirt's test driver.

ansible-inventory runs as a subprocess with this collection on ANSIBLE_COLLECTIONS_PATH
(the plugin is found through the ``auto`` plugin, as users run it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.virtkit.guests.tests.unit.helpers import render, trusted

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
NODE_URI = 'test://' + os.path.join(FIXTURES, 'node.xml')


def _collections_root():
    import ansible_collections.virtkit.guests as pkg
    path = list(pkg.__path__)[0]
    return os.path.dirname(os.path.dirname(os.path.dirname(path)))


def run_inventory(tmp_path, config, *args):
    path = tmp_path / 'fleet.virtkit.yml'
    path.write_text(config)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_root(), ANSIBLE_NOCOLOR='1',
               ANSIBLE_INVENTORY_UNPARSED_FAILED='1', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'),
               ANSIBLE_HOME=str(tmp_path / 'home'))
    exe = os.path.join(os.path.dirname(sys.executable), 'ansible-inventory')
    proc = subprocess.run([exe, '-i', str(path)] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def plain(value):
    """ansible-inventory --list marks strings a plugin made as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def listing(tmp_path, config):
    rc, out, err = run_inventory(tmp_path, config, '--list')
    assert rc == 0, err
    return plain(json.loads(out)), err


BASE = '''plugin: virtkit.guests.guest_inventory
hypervisors:
  - {name: hv1, uri: "%s"}
  - {uri: "test:///default"}
address_sources: [lease, arp]
''' % NODE_URI


def test_list_groups_and_vars(tmp_path):
    data, err = listing(tmp_path, BASE + '''keyed_groups:
  - {key: virtkit_metadata.owner | default('none'), prefix: owner}
compose:
  big: virtkit_memory_mib >= 2048
groups:
  running_web: "'web' in virtkit_groups and virtkit_state == 'running'"
''')
    hv = data['_meta']['hostvars']
    assert sorted(hv) == ['db1', 'test', 'web1']
    assert sorted(data['kvm']['hosts']) == ['db1', 'test', 'web1']
    assert sorted(data['hypervisor_hv1']['hosts']) == ['db1', 'web1']
    assert data['hypervisor_localhost']['hosts'] == ['test']
    assert sorted(data['state_running']['hosts']) == ['test', 'web1']
    assert data['state_shutoff']['hosts'] == ['db1']
    assert sorted(data['prod']['hosts']) == ['db1', 'web1'] and data['web']['hosts'] == ['web1']
    assert data['owner_team_a']['hosts'] == ['web1'] and data['running_web']['hosts'] == ['web1']
    web1 = hv['web1']
    assert web1['ansible_connection'] == 'ssh' and web1['ansible_host'].startswith('192.168.122.')
    assert web1['virtkit_kind'] == 'kvm' and web1['virtkit_hypervisor'] == 'hv1' and web1['virtkit_vcpus'] == 2
    assert web1['virtkit_addresses'][0]['source'] == 'arp' and web1['big'] is False
    assert hv['db1']['big'] is True and 'ansible_host' not in hv['db1']
    assert 'WARNING' not in err


def test_unreachable_hypervisor_warns_and_lists_the_others(tmp_path):
    config = BASE.replace('address_sources', '  - {name: gone, uri: "test:///nonexistent/node.xml"}\n'
                          'address_sources')
    data, err = listing(tmp_path, config + 'states: [running]\n')
    assert sorted(data['_meta']['hostvars']) == ['test', 'web1']
    assert 'hypervisor gone (libvirt) skipped: test:///nonexistent/node.xml: connect failed' in ' '.join(err.split())
    rc, _out, err = run_inventory(tmp_path, config + 'fail_on_unreachable: true\n', '--list')
    assert rc != 0 and 'hypervisor gone (libvirt) skipped' in ' '.join(err.split())


def test_clashing_names_and_filters(tmp_path):
    config = '''plugin: virtkit.guests.guest_inventory
hypervisors:
  - {name: a, uri: "%s"}
  - {name: b, uri: "%s", vars: {ansible_user: ops}}
exclude: [db*]
kvm_connection: paramiko
''' % (NODE_URI, NODE_URI)
    data, err = listing(tmp_path, config)
    hv = data['_meta']['hostvars']
    assert sorted(hv) == ['web1', 'web1.b']
    assert hv['web1.b']['ansible_user'] == 'ops' and hv['web1']['ansible_connection'] == 'paramiko'
    assert 'more than one guest is named web1' in ' '.join(err.split())


@pytest.mark.parametrize('bad, message', [
    ('hypervisors: [{uri: "test:///default", colour: red}]', 'hypervisors[0]: unknown key(s) colour'),
    ('hypervisors: [{name: x}]', 'hypervisors[0] has neither uri nor lxc: true'),
    ('hypervisors: [{uri: "test:///default"}, {uri: "test:///default"}]', 'two hypervisors are named localhost'),
])
def test_bad_config(tmp_path, bad, message):
    rc, _out, err = run_inventory(tmp_path, 'plugin: virtkit.guests.guest_inventory\n' + bad + '\n', '--list')
    assert rc != 0 and message in ' '.join(err.split())


def test_cache_serves_the_second_run(tmp_path):
    node = tmp_path / 'node.xml'
    with open(os.path.join(FIXTURES, 'node.xml')) as handle:
        node.write_text(handle.read())
    config = '''plugin: virtkit.guests.guest_inventory
hypervisors: [{name: hv1, uri: "test://%s"}]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: %s
cache_timeout: 600
''' % (node, tmp_path / 'cache')
    first, _err = listing(tmp_path, config)
    node.write_text(node.read_text().replace('<name>web1</name>', '<name>web9</name>'))
    second, _err = listing(tmp_path, config)
    assert sorted(first['_meta']['hostvars']) == sorted(second['_meta']['hostvars']) == ['db1', 'web1']
    _rc, usage, _err = run_inventory(tmp_path, config, '--help')
    if '--flush-cache' not in usage:  # ansible-inventory has it from ansible-core 2.19 on
        return
    rc, out, err = run_inventory(tmp_path, config, '--list', '--flush-cache')
    assert rc == 0, err
    assert sorted(plain(json.loads(out))['_meta']['hostvars']) == ['db1', 'web9']


# ---------------------------------------------------------------- strings from guests are data

TEMPLATE = "{{ 'INJECTED-' ~ (6 * 7) }}"
IFNAME = '{{7*6}}'  # fits an interface name (no blanks, 15 characters at most)
# dom.interfaceAddresses(VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT) of a guest whose agent
# reports a renamed NIC (captured shape: qemu-guest-agent on Debian 12, names replaced).
AGENT_OUTPUT = {
    'lo': {'hwaddr': '00:00:00:00:00:00', 'addrs': [{'type': 0, 'addr': '127.0.0.1', 'prefix': 8}]},
    IFNAME: {'hwaddr': '52:54:00:aa:00:01', 'addrs': [
        {'type': 0, 'addr': '10.1.0.5', 'prefix': 16},
        {'type': 1, 'addr': 'fe80::5054:ff:feaa:1', 'prefix': 64}]},
}
DOMAIN_XML = """<domain type='kvm'><name>vk-{{'INJECTED-'~6*7}}</name><uuid>u1</uuid>
  <title>%(t)s</title><description>%(t)s</description>
  <memory>1048576</memory><vcpu>1</vcpu>
  <metadata><virtkit:guest xmlns:virtkit='https://virtkit.dev/xmlns/guests/1'>
    <virtkit:var name='owner'>%(t)s</virtkit:var>
    <virtkit:var name='note'>%(t)s</virtkit:var>
    <virtkit:var name='groups' type='list'><virtkit:item>g%(t)s</virtkit:item><virtkit:item>web</virtkit:item></virtkit:var>
  </virtkit:guest></metadata>
  <os><type>hvm</type></os><devices>
  <interface type='bridge'><mac address='52:54:00:aa:00:01'/><source bridge='br0'/><target dev='vnet4'/></interface>
  <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
  </devices></domain>""" % {'t': TEMPLATE.replace("'", '&apos;')}


class AgentDomain:
    """A running domain whose guest agent answers with AGENT_OUTPUT."""

    def interfaceAddresses(self, source, flags):  # pylint: disable=invalid-name,unused-argument
        return AGENT_OUTPUT


def _guest_records():
    """A VM record read through the agent path and a container record from captured LXC output
    (lxc.group, lxc.uts.name and the interface name in /proc/<pid>/net hold templates)."""
    from ansible_collections.virtkit.guests.plugins.module_utils import _inventory
    from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse
    dom = AgentDomain()
    vm = _inventory.libvirt_guest(parse(DOMAIN_XML, 'test'), 'running', False, ['lease', 'agent'],
                                  lambda network: {}, lambda source: _inventory._domain_addresses(dom, source))
    with open(os.path.join(FIXTURES, 'remote-lxc.txt')) as handle:
        text = handle.read()
    head, proc = text.split('@@virtkit@@ proc vk-web1 route', 1)
    head = head.replace('lxc.group = edge', 'lxc.group = vk_%s' % IFNAME).replace(
        'lxc.uts.name = "vk-web1"', 'lxc.uts.name = %s' % TEMPLATE)
    text = head + '@@virtkit@@ proc vk-web1 route' + proc.replace('eth0', IFNAME)
    ls_text, configs, procs, _path = _inventory.parse_remote(text)
    containers = _inventory.lxc_guests(ls_text, configs.get, lambda n, f: procs.get(n, {}).get(f), '/var/lib/lxc')
    return vm, [c for c in containers if c['name'] == 'vk-web1'][0]


def _populated(guests, compose=None, keyed_groups=None):
    """The plugin's _populate with its options set directly (no plugin loader needed)."""
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible_collections.virtkit.guests.plugins.inventory.guest_inventory import InventoryModule
    plugin = InventoryModule()
    plugin.inventory = InventoryData()
    plugin.loader = DataLoader()
    plugin.templar = Templar(loader=plugin.loader)
    plugin._options = {  # pylint: disable=protected-access
        'preferred_networks': [], 'host_name': 'name', 'include': [], 'exclude': [], 'states': [],
        'kvm_connection': 'ssh', 'lxc_connection': 'virtkit.guests.lxc', 'strict': False,
        'compose': compose or {}, 'groups': {}, 'keyed_groups': keyed_groups or [],
        'use_extra_vars': False, 'leading_separator': True}
    source = {'uri': 'qemu:///system', 'lxc': True, 'vars': {'ansible_user': 'ops'}}
    plugin._populate([('hv1', dict(source), guests)], {'hv1': source})  # pylint: disable=protected-access
    return plugin.inventory


def test_the_records_hold_the_templates_read_from_the_guest():
    vm, ct = _guest_records()
    assert [(a['address'], a['interface'], a['source']) for a in vm['addresses']] == [('10.1.0.5', IFNAME, 'agent')]
    assert vm['name'] == "vk-{{'INJECTED-'~6*7}}" and vm['metadata']['owner'] == TEMPLATE
    assert ct['addresses'][0]['interface'] == IFNAME and ct['lxc_config']['lxc.uts.name'] == [TEMPLATE]


def test_host_vars_from_agent_output_and_container_config_stay_literal():
    vm, ct = _guest_records()
    inventory = _populated([vm, ct], compose={'owner_copy': trusted('virtkit_metadata.owner')},
                           keyed_groups=[{'key': trusted('virtkit_metadata.owner'), 'prefix': 'owner'}])
    name = "vk-{{'INJECTED-'~6*7}}"
    assert sorted(inventory.hosts) == sorted([name, 'vk-web1'])
    host = inventory.get_host(name)
    hv = dict(host.get_vars(), **host.get_magic_vars())
    assert render('inventory_hostname', hv) == name
    assert render('inventory_hostname_short', hv) == name
    assert render('virtkit_name', hv) == name
    assert render('virtkit_metadata.owner', hv) == TEMPLATE
    assert render('virtkit_metadata', hv)['note'] == TEMPLATE
    assert render('virtkit_groups', hv) == ['g' + TEMPLATE, 'web']
    assert render('owner_copy', hv) == TEMPLATE
    assert render('virtkit_addresses[0].interface', hv) == IFNAME
    assert render('virtkit_addresses', hv)[0]['interface'] == IFNAME
    assert render('ansible_user', hv) == 'ops'
    ct_vars = inventory.get_host('vk-web1').get_vars()
    assert render("virtkit_lxc_config['lxc.uts.name'] | first", ct_vars) == TEMPLATE
    assert render("virtkit_lxc_config['lxc.group']", ct_vars) == ['web', 'vk_' + IFNAME]
    assert render('virtkit_groups', ct_vars) == ['web', 'vk_' + IFNAME]
    assert render('virtkit_addresses[0].interface', ct_vars) == IFNAME
    assert render('virtkit_interfaces[0].target', ct_vars) == 'eth0'  # config, not /proc
    # Group names are sanitized by core: nothing of a template is left in them.
    assert all('{' not in group for group in inventory.groups)


def test_the_hypervisors_own_vars_keep_their_templates():
    """hypervisors[].vars come from the inventory file (the user's): they are not made literal."""
    vm, _ct = _guest_records()
    inventory = _populated([vm])
    host = inventory.get_host("vk-{{'INJECTED-'~6*7}}")
    value = host.get_vars()['ansible_user']
    from ansible_collections.virtkit.guests.plugins.plugin_utils import _untrusted
    if not _untrusted.DATA_TAGGING:
        from ansible.utils.unsafe_proxy import AnsibleUnsafe
        assert not isinstance(value, AnsibleUnsafe)
        assert isinstance(host.get_vars()['virtkit_metadata']['owner'], AnsibleUnsafe)
