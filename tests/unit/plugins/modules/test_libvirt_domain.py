# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_domain's main() through AnsibleModule, against test:///default."""

from __future__ import annotations

import json

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.modules import libvirt_domain
from ansible_collections.virtkit.guests.tests.unit.module_main import guest_fixtures, run_main_json

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'
PREFIX = 'virtkit-unit-module-'
keeper, name = guest_fixtures(Connection, URI, PREFIX)


def run_module(capsys, **args):
    return run_main_json(libvirt_domain.main, capsys, args, uri=URI)


def test_define_rerun_and_absent(capsys, keeper, name):
    rc, result = run_module(capsys, name=name, memory=64, vcpus=1, interfaces=[{'network': 'default'}])
    assert rc == 0 and not result.get('failed')
    assert result['changed'] is True
    assert result['actions'] == [{'action': 'define', 'summary': 'define %s' % name}]
    assert result['pending_restart'] is False and result['pending_restart_fields'] == []
    assert result['domain']['name'] == name and result['domain']['state'] == 'shutoff'
    assert result['domain']['memory_mib'] == 64
    assert 'diff' not in result  # diff mode is off
    assert keeper.domain(name) is not None

    rc, result = run_module(capsys, name=name, memory=64, vcpus=1, interfaces=[{'network': 'default'}])
    assert rc == 0 and result['changed'] is False and result['actions'] == []

    rc, result = run_module(capsys, name=name, state='running')
    assert rc == 0 and result['changed'] and result['domain']['state'] == 'running'

    rc, result = run_module(capsys, name=name, state='absent')
    assert rc == 0 and result['changed'] and result['domain'] == {}
    rc, result = run_module(capsys, name=name, state='absent')
    assert rc == 0 and result['changed'] is False


def test_check_mode_and_diff_mode(capsys, keeper, name):
    rc, result = run_module(capsys, name=name, memory=64, _ansible_check_mode=True, _ansible_diff=True)
    assert rc == 0 and result['changed'] is True
    assert result['actions'] == [{'action': 'define', 'summary': 'define %s' % name}]
    assert result['diff']['before'] == 'state: absent\n'
    assert result['diff']['after'].startswith('state: shutoff\nxml:\n  <domain type="test">')
    assert keeper.domain(name) is None  # nothing was defined

    rc, real = run_module(capsys, name=name, memory=64, _ansible_diff=True)
    assert real['actions'] == result['actions'] and real['diff'] == result['diff']


def test_passwords_stay_out_of_the_output(capsys, keeper, name):
    rc, result = run_module(capsys, name=name, graphics={'type': 'vnc', 'password': 'hunter2'}, _ansible_diff=True)
    assert rc == 0 and result['changed']
    assert 'hunter2' not in json.dumps(result)


@pytest.mark.parametrize('args, message', [
    ({'memory': '1 parsec'}, "memory: unknown unit 'parsec' in '1 parsec'; use B, KiB, MiB, GiB, TiB "
                             "(or K, M, G, T; KB, MB, GB, TB are decimal)"),
    ({'vcpus': 4, 'max_vcpus': 2}, 'vcpus (4) is above max_vcpus (2)'),
    ({'interfaces': [{'network': 'default', 'mac': 'nope'}]},
     "interfaces[0]: mac 'nope' is not a MAC address such as 52:54:00:12:34:56"),
    ({'interfaces': [{'network': 'no-such-net'}]},
     '{name}: network no-such-net does not exist (define it first, for example with virtkit.guests.libvirt_network)'),
    ({'disks': [{'path': '/nonexistent/virtkit.qcow2'}]}, '{name}: disk vda: /nonexistent/virtkit.qcow2 does not exist'),
])
def test_bad_input_fails_with_one_line_and_no_traceback(capsys, keeper, name, args, message):
    rc, result = run_module(capsys, name=name, **args)
    assert rc == 1
    assert result['failed'] is True
    assert result['msg'] == message.format(name=name)
    assert '\n' not in result['msg']
    assert 'exception' not in result and 'Traceback' not in json.dumps(result)
    assert keeper.domain(name) is None


def test_argument_spec_errors_come_from_ansible(capsys, keeper, name):
    rc, result = run_module(capsys, name=name, interfaces=[{'network': 'default', 'bridge': 'br0'}])
    assert rc == 1 and result['failed']
    assert 'mutually exclusive' in result['msg'] and '\n' not in result['msg']
    rc, result = run_module(capsys, name=name, state='sideways')
    assert rc == 1 and 'state' in result['msg']


def test_connection_failure_is_one_line(capsys):
    rc, result = run_module(capsys, name='x', uri='test:///nonexistent/virtkit.xml')
    assert rc == 1 and result['failed']
    assert result['msg'].startswith('test:///nonexistent/virtkit.xml: connect failed: ')
    assert '\n' not in result['msg'] and 'exception' not in result
