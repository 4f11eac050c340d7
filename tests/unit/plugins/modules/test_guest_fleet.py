# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_fleet's main() through AnsibleModule, against test:///default."""

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.modules import guest_fleet
from ansible_collections.virtkit.guests.tests.unit.module_main import guest_fixtures, run_main_json

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'
PREFIX = 'virtkit-unit-fleet-'
keeper, name = guest_fixtures(Connection, URI, PREFIX)


def run_module(capsys, **args):
    return run_main_json(guest_fleet.main, capsys, args, uri=URI, pool='default-pool')


def test_bad_guests_fail_with_one_line_each_before_anything_is_touched(capsys, keeper, name):
    code, result = run_module(capsys, guests=[
        {'name': name, 'kind': 'kvm', 'memory': 'lots'},
        {'name': name + 'c', 'kind': 'lxc', 'limits': {'pids': 0}},
        {'name': name + 'ok', 'kind': 'kvm'},
    ])
    assert code == 1
    assert result['errors'] == [
        "guests[0] (%s): memory: cannot read 'lots' as a size; use an integer (MiB) or a string such as 512MiB "
        "or 2GiB" % name,
        'guests[1] (%sc): limits.pids: must be at least 1, got 0' % name,
    ]
    assert result['msg'] == '\n'.join(result['errors'])
    assert result['changed'] is False
    assert keeper.domain(name + 'ok') is None


def test_create_rerun_and_diff(capsys, keeper, name):
    guests = [{'name': name, 'kind': 'kvm', 'memory': 128, 'wait_for_ip': False, 'groups': ['g'],
               'networks': [{'network': 'default'}]}]
    code, result = run_module(capsys, guests=guests, _ansible_check_mode=True, _ansible_diff=True)
    assert code == 0 and result['changed'] is True
    assert result['diff']['before'].startswith('[%s] domain\n  state: absent' % name)
    assert '<name>%s</name>' % name in result['diff']['after']
    assert keeper.domain(name) is None

    code, result = run_module(capsys, guests=guests)
    assert code == 0 and result['changed'] is True and 'diff' not in result
    guest = result['guests'][0]
    assert guest['state'] == 'running' and guest['groups'] == ['g'] and guest['kind'] == 'kvm'
    assert guest['domain']['memory_mib'] == 128
    assert result['summary']['created'] == 1
    assert set(result['timings']) == {'images', 'guests', 'converged', 'wait'}
    assert set(result['timings']['converged']) == {name}

    code, result = run_module(capsys, guests=guests)
    assert code == 0 and result['changed'] is False and result['summary']['unchanged'] == 1


def test_a_failed_guest_fails_the_module_and_every_result_is_returned(capsys, keeper, name):
    code, result = run_module(capsys, guests=[
        {'name': name + 'a', 'kind': 'kvm', 'networks': [{'network': 'nonet'}]},
        {'name': name + 'b', 'kind': 'kvm', 'wait_for_ip': False},
    ])
    assert code == 1
    assert result['failed_guests'] == [name + 'a']
    assert result['msg'] == result['errors'][0]
    assert result['msg'].startswith('guests[0] (%sa): network nonet does not exist' % name)
    assert [g['name'] for g in result['guests']] == [name + 'a', name + 'b']
    assert result['guests'][1]['state'] == 'running'
    assert result['changed'] is True


def test_an_unreachable_libvirt_is_one_line(capsys):
    code, result = run_module(capsys, uri='qemu+unix:///system?socket=/nonexistent/sock',
                              guests=[{'name': 'x', 'kind': 'kvm'}])
    assert code == 1
    assert 'connect failed' in result['msg'] and '\n' not in result['msg']
