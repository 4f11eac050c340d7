# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import runner as R
from ansible_collections.virtkit.guests.tests.unit.plugins.module_utils._lxc.fake_lxc import fixture


def test_parse_info_running_and_stopped():
    assert R.parse_info(fixture('lxc-info-running.txt'))['state'] == 'running'
    assert isinstance(R.parse_info(fixture('lxc-info-running.txt'))['pid'], int)
    stopped = R.parse_info(fixture('lxc-info-stopped.txt'))
    assert stopped == {'state': 'stopped', 'pid': None, 'ips': []}
    full = R.parse_info('Name: a\nState: RUNNING\nPID: 12\nIP: 10.0.3.5\nIP: fd00::5\nCPU use: 1 s\n')
    assert full['ips'] == ['10.0.3.5', 'fd00::5'] and full['pid'] == 12 and full['name'] == 'a'


def test_parse_ls_fancy_default_and_columns():
    rows = R.parse_ls_fancy(fixture('lxc-ls-fancy.txt'))
    assert rows[0]['name'] == 'vk-cache-debian' and rows[0]['state'] == 'stopped'
    assert rows[1]['groups'] == [] and rows[1]['autostart'] is False
    rows = R.parse_ls_fancy(fixture('lxc-ls-fancy-columns.txt'))
    assert rows[1]['interface'] == ['eth0', 'lo']
    assert rows[0]['pid'] is None
    text = ('NAME STATE   AUTOSTART GROUPS IPV4               IPV6 UNPRIVILEGED \n'
            'a    RUNNING 1         web,db 10.0.3.5, 10.0.3.6 -    true         \n')
    row = R.parse_ls_fancy(text)[0]
    assert row['ipv4'] == ['10.0.3.5', '10.0.3.6'] and row['groups'] == ['web', 'db']
    assert row['autostart'] is True and row['unprivileged'] is True
    assert R.parse_ls_fancy('') == []


def test_parse_lxc_config_and_snapshots():
    assert 'lxc.lxcpath' in R.parse_lxc_config(fixture('lxc-config-l.txt'))
    snaps = R.parse_snapshots('snap0 (/var/lib/lxc/a/snaps) 2026:11:26 07:09:05\nNo snapshots\n')
    assert snaps == [{'name': 'snap0', 'path': '/var/lib/lxc/a/snaps', 'timestamp': '2026:11:26 07:09:05'}]


def test_clean_error_strips_source_locations():
    assert R.clean_error(fixture('lxc-create-exists.stderr')) == 'Container already exists'
    noisy = ('lxc-start: a: lxccontainer.c: wait_on_daemonized_start: 870 Received container state "ABORTING"\n'
             'lxc-start: a: tools/lxc_start.c: main: 306 The container failed to start\n'
             'lxc-start: a: tools/lxc_start.c: main: 309 To get more details, run the container in foreground mode\n')
    assert R.clean_error(noisy) == 'Received container state "ABORTING"; The container failed to start'


def test_runner_builds_argv_with_lxc_path_and_raises_one_line():
    seen = []

    def fake(argv, data=None, timeout=None):
        seen.append(argv)
        return 1, b'', fixture('lxc-create-exists.stderr').encode()

    runner = R.Runner('/srv/lxc', run=fake)
    with pytest.raises(VirtkitError) as err:
        runner.run('lxc-create', 'vk-a', ['-t', 'busybox'], 'create')
    assert str(err.value) == 'vk-a: create failed: Container already exists'
    assert seen == [['lxc-create', '-n', 'vk-a', '-P', '/srv/lxc', '-t', 'busybox']]
    rc, _out, _err = runner.run('lxc-info', 'vk-a', ['-s'], check=False)
    assert rc == 1


def test_missing_tool_is_one_line():
    with pytest.raises(VirtkitError, match='lxc-nonexistent-tool is not installed'):
        R._subprocess_run(['lxc-nonexistent-tool'])


def test_default_lxc_path(tmp_path):
    conf = tmp_path / 'lxc.conf'
    conf.write_text('# c\nlxc.lxcpath = /srv/containers\n')
    assert R.default_lxc_path(str(conf)) == '/srv/containers'
    assert R.default_lxc_path(str(tmp_path / 'missing')) == '/var/lib/lxc'
