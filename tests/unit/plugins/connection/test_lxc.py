# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import shlex

import pytest

from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible_collections.virtkit.guests.plugins.connection.lxc import Connection

DEFAULTS = {'remote_addr': 'vk-a', 'lxc_path': None, 'lxc_host': None, 'lxc_host_user': None,
            'lxc_host_port': None, 'lxc_ssh_args': [], 'lxc_ssh_executable': 'ssh',
            'lxc_executable': 'lxc-attach', 'timeout': 3600}


def make(**options):
    # Options are given directly: the test needs no plugin loader or collection finder.
    conn = Connection(PlayContext())
    conn._options = dict(DEFAULTS, **options)
    conn._connect()
    return conn


def test_local_argv():
    conn = make(lxc_path='/srv/lxc')
    argv = conn.attach_argv(['/bin/sh', '-c', 'echo "$HOME"'])
    assert argv == ['lxc-attach', '-n', 'vk-a', '-P', '/srv/lxc', '--clear-env', '-v',
                    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '-v', 'HOME=/root',
                    '--', '/bin/sh', '-c', 'echo "$HOME"']


def test_remote_argv_quotes_every_word():
    conn = make(lxc_host='hv1', lxc_host_user='root', lxc_host_port=2222, lxc_ssh_args=['-i', '/k'])
    argv = conn.attach_argv(['/bin/sh', '-c', "echo 'a b' $x; rm -rf /"])
    assert argv[:9] == ['ssh', '-o', 'BatchMode=yes', '-p', '2222', '-l', 'root', '-i', '/k']
    assert argv[9:11] == ['hv1', '--']
    remote = shlex.split(argv[11])
    assert remote[-3:] == ['/bin/sh', '-c', "echo 'a b' $x; rm -rf /"]
    assert remote[:3] == ['lxc-attach', '-n', 'vk-a']


def test_not_running_is_unreachable():
    conn = make()
    with pytest.raises(AnsibleConnectionFailure, match='is not running'):
        conn._failure(1, b'lxc-attach: vk-a: ../src/lxc/attach.c: get_attach_context: 406 Connection refused - '
                         b'Failed to get init pid\n', 'exec')
    remote = make(lxc_host='hv1')
    with pytest.raises(AnsibleConnectionFailure, match='ssh to the LXC host failed'):
        remote._failure(255, b'ssh: connect to host hv1 port 22: Connection refused', 'exec')


def test_documented_options_match():
    import yaml
    from ansible_collections.virtkit.guests.plugins.connection import lxc
    assert set(yaml.safe_load(lxc.DOCUMENTATION)['options']) == set(DEFAULTS)


@pytest.fixture
def fake_attach(tmp_path):
    """An 'lxc-attach' that drops its options and runs the command on this host."""
    script = tmp_path / 'fake-attach'
    script.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    script.chmod(0o755)
    return str(script)


def test_exec_put_fetch_stream_binary_data(tmp_path, fake_attach):
    conn = make(lxc_executable=fake_attach)
    rc, out, err = conn.exec_command('printf "%s" "$HOME"; cat', in_data=b'\x00\xff in')
    assert (rc, out, err) == (0, b'/root\x00\xff in', b'')
    blob = tmp_path / 'blob.bin'
    blob.write_bytes(bytes(range(256)) * 4096)
    blob.chmod(0o640)
    inside = tmp_path / 'dir with space' / "it's.bin"
    inside.parent.mkdir()
    conn.put_file(str(blob), str(inside))
    assert inside.read_bytes() == blob.read_bytes()
    assert inside.stat().st_mode & 0o777 == 0o640
    back = tmp_path / 'back.bin'
    conn.fetch_file(str(inside), str(back))
    assert back.read_bytes() == blob.read_bytes()


def test_fetch_of_a_missing_file_fails_and_leaves_nothing(tmp_path, fake_attach):
    from ansible.errors import AnsibleError
    conn = make(lxc_executable=fake_attach)
    with pytest.raises(AnsibleError, match='fetch /nonexistent failed'):
        conn.fetch_file('/nonexistent', str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'out.part').exists()
