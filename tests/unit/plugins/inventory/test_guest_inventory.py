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
    rc, out, err = run_inventory(tmp_path, config, '--list', '--flush-cache')
    assert rc == 0, err
    assert sorted(plain(json.loads(out))['_meta']['hostvars']) == ['db1', 'web9']
