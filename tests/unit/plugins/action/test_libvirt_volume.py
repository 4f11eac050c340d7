# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt_volume action plugin: controller files are planned first, sent only when
imported, and the module is told the controller path to record (``_original_source``)."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from ansible.plugins.action import ActionBase

from ansible_collections.virtkit.guests.plugins.action import libvirt_volume as A


class FakeShell:
    tmpdir = '/remote/tmp/ansible-tmp-1'

    @staticmethod
    def join_path(*parts):
        return '/'.join(parts)


def make(args, plan_actions, check_mode=False, found=None):
    """(action plugin, list of module calls) with _execute_module answering ``plan_actions``."""
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    connection = mock.MagicMock()
    connection._shell = FakeShell()
    plugin = A.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
    calls = []

    def execute(name, module_args, task_vars):
        calls.append({'args': dict(module_args), 'check_mode': plugin._task.check_mode})
        if plugin._task.check_mode:
            return {'changed': bool(plan_actions), 'actions': [{'action': a} for a in plan_actions]}
        return {'changed': bool(plan_actions), 'volume': {'source': module_args.get('_original_source')}}

    plugin._execute_module = execute
    plugin._find_needle = mock.MagicMock(return_value=found or '/ctl/files/base.qcow2')
    plugin._transfer_file = mock.MagicMock()
    plugin._fixup_perms2 = mock.MagicMock()
    plugin._remove_tmp_path = mock.MagicMock()
    return plugin, calls


@pytest.fixture(autouse=True)
def no_base_run():
    with mock.patch.object(ActionBase, 'run', return_value={}):
        yield


BASE = {'pool': 'p', 'name': 'v.qcow2', 'import_from': 'base.qcow2', 'remote_src': False,
        'checksum': 'sha256:' + 'a' * 64}


@pytest.mark.parametrize('plan', [['import_image'], ['drop_incomplete', 'import_image'], ['import_temp', 'replace']],
                         ids=['import', 'import after a killed run', 'reimport'])
def test_import_sends_the_file_and_names_the_controller_path(plan):
    plugin, calls = make(dict(BASE), plan)
    result = plugin.run(task_vars={})
    assert [c['check_mode'] for c in calls] == [True, False]
    probe, real = calls[0]['args'], calls[1]['args']
    assert probe['import_from'] == '/ctl/files/base.qcow2' and probe['_original_source'] == '/ctl/files/base.qcow2'
    assert real['import_from'] == '/remote/tmp/ansible-tmp-1/base.qcow2'
    assert real['_original_source'] == '/ctl/files/base.qcow2' and real['remote_src'] is True
    plugin._transfer_file.assert_called_once_with('/ctl/files/base.qcow2', '/remote/tmp/ansible-tmp-1/base.qcow2')
    assert result['volume']['source'] == '/ctl/files/base.qcow2'


@pytest.mark.parametrize('plan', [[], ['replace'], ['restore'], ['drop_temp']])
def test_volume_needing_no_upload_sends_nothing(plan):
    plugin, calls = make(dict(BASE), plan)
    plugin.run(task_vars={})
    assert [c['check_mode'] for c in calls] == [True, False]
    assert calls[1]['args']['import_from'] == '/ctl/files/base.qcow2'
    assert calls[1]['args']['_original_source'] == '/ctl/files/base.qcow2'
    plugin._transfer_file.assert_not_called()


def test_check_mode_only_plans():
    plugin, calls = make(dict(BASE), ['import_image'], check_mode=True)
    result = plugin.run(task_vars={})
    assert len(calls) == 1 and calls[0]['check_mode'] and result['changed']
    assert plugin._task.check_mode is True
    plugin._transfer_file.assert_not_called()


def test_relative_controller_paths_are_made_absolute():
    plugin, calls = make(dict(BASE), [], found='files/base.qcow2')
    plugin.run(task_vars={})
    assert calls[0]['args']['_original_source'] == os.path.abspath('files/base.qcow2')


@pytest.mark.parametrize('args', [
    dict(BASE, remote_src=True),
    dict(BASE, import_from='https://example.com/base.qcow2'),
    {'pool': 'p', 'name': 'v', 'capacity': 1},
])
def test_other_requests_go_straight_to_the_module(args):
    plugin, calls = make(dict(args, _original_source='/forged'), ['create'])
    plugin.run(task_vars={})
    assert len(calls) == 1 and not calls[0]['check_mode']
    assert '_original_source' not in calls[0]['args'], 'only the plugin sets the private option'
    plugin._find_needle.assert_not_called()


def test_missing_controller_file_is_one_line():
    from ansible.errors import AnsibleError
    plugin, calls = make(dict(BASE), [])
    plugin._find_needle.side_effect = AnsibleError('Could not find or access base.qcow2')
    result = plugin.run(task_vars={})
    assert result['failed'] and not calls
    assert result['msg'].startswith('import_from: base.qcow2 is not a file on the controller')
