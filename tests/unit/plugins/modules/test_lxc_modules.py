# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thin LXC modules: argument specs load, bad input fails in one line, results pass through."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.virtkit.guests.plugins.modules import lxc_container, lxc_container_info, lxc_exec, lxc_snapshot


def run(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('args,message', [
    ({'name': 'bad/name'}, 'not a valid container name'),
    ({'name': 'vk-a', 'config': {'lxc.environment': 'A=1\nlxc.x = y'}}, 'newline'),
    ({'name': 'vk-a', 'limits': {'memory': 'lots'}}, 'limits.memory'),
    ({'name': 'vk-a', 'state': 'absent', 'clone_from': 'vk-a'}, 'cannot be cloned from itself'),
])
def test_lxc_container_bad_input_is_one_line(args, message, capsys, tmp_path):
    args = dict(args, lxc_path=str(tmp_path))
    out = run(lxc_container, args, capsys)
    assert out['failed'] and message in out['msg'] and '\n' not in out['msg']


def test_lxc_container_absent_missing_is_ok(capsys, tmp_path):
    out = run(lxc_container, {'name': 'vk-none', 'state': 'absent', 'lxc_path': str(tmp_path)}, capsys)
    assert out['changed'] is False and out['container'] == {} and 'diff' not in out


def test_lxc_container_info_empty_and_absent(capsys, tmp_path):
    out = run(lxc_container_info, {'lxc_path': str(tmp_path)}, capsys)
    assert out['containers'] == []
    out = run(lxc_container_info, {'lxc_path': str(tmp_path), 'names': ['vk-x']}, capsys)
    assert out['containers'] == [{'name': 'vk-x', 'state': 'absent'}]


def test_lxc_exec_and_snapshot_missing_container(capsys, tmp_path):
    out = run(lxc_exec, {'name': 'vk-x', 'argv': ['true'], 'lxc_path': str(tmp_path)}, capsys)
    assert out['failed'] and 'does not exist' in out['msg']
    out = run(lxc_exec, {'name': 'vk-x', 'argv': ['true'], 'command': 'x', 'lxc_path': str(tmp_path)}, capsys)
    assert out['failed'] and 'mutually exclusive' in out['msg']
    out = run(lxc_snapshot, {'name': 'vk-x', 'snapshot': 's', 'lxc_path': str(tmp_path)}, capsys)
    assert out['failed'] and out['msg'] == 'vk-x: the container does not exist in %s' % tmp_path
