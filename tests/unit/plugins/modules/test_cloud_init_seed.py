# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cloud_init_seed's main() through AnsibleModule: contents stay out of every result,
and the no_log masking does not mangle digests or paths."""

from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _seed
from ansible_collections.virtkit.guests.plugins.modules import cloud_init_seed
from ansible_collections.virtkit.guests.tests.unit.module_main import run_main

pytestmark = pytest.mark.skipif(_seed.pycdlib is None or _seed.yaml is None,
                                reason='pycdlib or PyYAML is not installed')


SECRET = 'hunter2-Very-Secret'
# Short, common leaves ('2', 'True', '0', 'a') would be masked everywhere by plain no_log.
USER_DATA = {'password': SECRET, 'chpasswd': {'expire': True}, 'x': 2, 'y': 0, 'z': 'a', 'w': 'seed'}
NETWORK = {'version': 2, 'ethernets': {'eth0': {'dhcp4': True}}}


def run_module(capsys, **args):
    return run_main(cloud_init_seed.main, capsys, args)


def test_result_has_digests_not_contents(capsys, tmp_path):
    path = str(tmp_path / 'seed.iso')
    code, out = run_module(capsys, path=path, user_data=USER_DATA, network_config=NETWORK, _ansible_diff=True)
    assert code == 0
    assert SECRET not in out and 'dhcp4' not in out and '********' not in out
    result = json.loads(out)
    with open(path, 'rb') as handle:
        assert result['sha256'] == hashlib.sha256(handle.read()).hexdigest()
    assert result['path'] == path
    assert 'sha256: %s' % result['sha256'] in result['diff']['after']
    args = result['invocation']['module_args']
    assert args['user_data'] == args['network_config'] == _seed.MASK
    assert args['vendor_data'] is None


def test_failure_does_not_show_contents(capsys, tmp_path):
    code, out = run_module(capsys, path=str(tmp_path / 'seed.iso'), user_data=USER_DATA,
                           network_config={'ethernets': {'eth0': {'password': SECRET}}})
    result = json.loads(out)
    assert code == 1 and result['failed']
    assert result['msg'] == 'network_config: needs a "version" key (1 or 2) or a top-level "network" key'
    assert SECRET not in out
    assert result['invocation']['module_args']['user_data'] == _seed.MASK


def test_path_and_pool_exclusive(capsys):
    code, out = run_module(capsys, path='/tmp/x.iso', pool='default', name='x', user_data={})
    assert code == 1 and 'mutually exclusive' in json.loads(out)['msg']
