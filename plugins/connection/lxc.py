# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: lxc
short_description: Run tasks in LXC containers through lxc-attach, on this host or over SSH
version_added: 0.1.0
description:
  - Runs commands and transfers files in an LXC system container with C(lxc-attach); the
    container needs no sshd and the controller needs no python3-lxc.
  - When O(lxc_host) is empty, C(lxc-attach) runs on the controller (the controller is the LXC
    host). Otherwise it runs on O(lxc_host) over SSH, so an AWX/Tower execution environment
    can reach containers on a remote hypervisor.
  - File transfers stream through C(lxc-attach) (binary-safe, any size, not held in memory);
    uploads keep the local file's permission bits.
  - Become works inside the container for methods that need no password (the container's
    root switching to another user with C(su) or C(sudo)).
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description: The container's name.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_lxc_name
  lxc_path:
    description: The container directory (C(lxc-attach -P)); the LXC default when empty.
    type: str
    vars:
      - name: ansible_lxc_path
    env:
      - name: VIRTKIT_LXC_PATH
  lxc_host:
    description: The LXC host to reach over SSH; empty means the controller itself.
    type: str
    vars:
      - name: ansible_lxc_host
    env:
      - name: VIRTKIT_LXC_HOST
  lxc_host_user:
    description: The SSH user on O(lxc_host) (it must be allowed to run C(lxc-attach)).
    type: str
    vars:
      - name: ansible_lxc_host_user
  lxc_host_port:
    description: The SSH port of O(lxc_host).
    type: int
    vars:
      - name: ansible_lxc_host_port
  lxc_ssh_args:
    description: Extra arguments for C(ssh), for example V([-i, /path/key]).
    type: list
    elements: str
    default: []
    vars:
      - name: ansible_lxc_ssh_args
  lxc_ssh_executable:
    description: The SSH client.
    type: str
    default: ssh
    vars:
      - name: ansible_lxc_ssh_executable
  lxc_executable:
    description: C(lxc-attach) on the LXC host.
    type: str
    default: lxc-attach
    vars:
      - name: ansible_lxc_attach_executable
  timeout:
    description: Seconds a file transfer may take before it is abandoned.
    type: int
    default: 3600
    vars:
      - name: ansible_lxc_timeout
notes:
  - The container must be running. With O(lxc_host) the SSH login must not need a password
    (keys or an agent); host keys are checked as C(ssh) is configured.
'''

EXAMPLES = r'''
# inventory
# [containers]
# web1 ansible_connection=virtkit.guests.lxc
# web2 ansible_connection=virtkit.guests.lxc ansible_lxc_host=hv1.example.com ansible_lxc_host_user=root
'''

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.runner import clean_error

display = Display()

DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# Run inside the container with the path as $1: no path is ever pasted into a script.
PUT_SCRIPT = 'cat > "$1" && chmod "$2" "$1"'
FETCH_SCRIPT = 'exec cat -- "$1"'


class Connection(ConnectionBase):
    """lxc-attach locally or through SSH to the LXC host."""

    transport = 'virtkit.guests.lxc'
    has_pipelining = True
    default_user = 'root'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.container = None

    def _connect(self):
        super()._connect()
        if not self._connected:
            self.container = self.get_option('remote_addr') or self._play_context.remote_addr
            if not self.container:
                raise AnsibleConnectionFailure('virtkit.guests.lxc: no container name (remote_addr)')
            display.vvv('LXC container %s%s' % (self.container, (' on ' + self.get_option('lxc_host'))
                                                if self.get_option('lxc_host') else ''), host=self.container)
            self._connected = True
        return self

    # ---------------------------------------------------------------- argv

    def attach_argv(self, argv):
        """The argv that runs ``argv`` in the container, on the LXC host (local or via SSH)."""
        cmd = [self.get_option('lxc_executable'), '-n', self.container]
        if self.get_option('lxc_path'):
            cmd += ['-P', self.get_option('lxc_path')]
        cmd += ['--clear-env', '-v', 'PATH=%s' % DEFAULT_PATH, '-v', 'HOME=/root', '--'] + list(argv)
        host = self.get_option('lxc_host')
        if not host:
            return cmd
        ssh = [self.get_option('lxc_ssh_executable'), '-o', 'BatchMode=yes']
        if self.get_option('lxc_host_port'):
            ssh += ['-p', str(self.get_option('lxc_host_port'))]
        if self.get_option('lxc_host_user'):
            ssh += ['-l', self.get_option('lxc_host_user')]
        ssh += list(self.get_option('lxc_ssh_args') or [])
        # ssh hands the remote side one string for its shell: quote every word.
        return ssh + [host, '--', ' '.join(shlex.quote(word) for word in cmd)]

    def _where(self):
        host = self.get_option('lxc_host')
        return 'container %s%s' % (self.container, ' on %s' % host if host else '')

    def _popen(self, argv, stdin, stdout):
        try:
            return subprocess.Popen([to_bytes(a, errors='surrogate_or_strict') for a in argv],
                                    stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        except OSError as err:
            raise AnsibleConnectionFailure('%s: cannot run %s: %s' % (self._where(), argv[0], err))

    def _failure(self, rc, stderr, what):
        raw = to_text(stderr, errors='surrogate_or_replace')
        text = clean_error(raw) or ' '.join(raw.split())
        if self.get_option('lxc_host') and rc == 255:
            raise AnsibleConnectionFailure('%s: %s failed: ssh to the LXC host failed: %s' % (self._where(), what, text))
        if 'not running' in raw or "doesn't exist" in raw or 'Failed to get init pid' in raw:
            raise AnsibleConnectionFailure('%s: %s failed: the container is not running or does not exist (%s)'
                                           % (self._where(), what, text))
        raise AnsibleError('%s: %s failed (rc %s): %s' % (self._where(), what, rc, text))

    # ---------------------------------------------------------------- the connection API

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        shell = self._play_context.executable or '/bin/sh'
        argv = self.attach_argv([shell, '-c', cmd])
        display.vvv('EXEC %s' % argv, host=self.container)
        proc = self._popen(argv, subprocess.PIPE, subprocess.PIPE)
        stdout, stderr = proc.communicate(in_data)
        if proc.returncode == 255 and self.get_option('lxc_host'):
            self._failure(proc.returncode, stderr, 'exec')
        if proc.returncode != 0 and b'Failed to get init pid' in stderr:
            self._failure(proc.returncode, stderr, 'exec')
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv('PUT %s TO %s' % (in_path, out_path), host=self.container)
        local = to_bytes(in_path, errors='surrogate_or_strict')
        if not os.path.exists(local):
            raise AnsibleFileNotFound('file or module does not exist: %s' % in_path)
        mode = '%o' % (os.stat(local).st_mode & 0o7777)
        argv = self.attach_argv(['/bin/sh', '-c', PUT_SCRIPT, 'sh', out_path, mode])
        with open(local, 'rb') as source:
            proc = self._popen(argv, source, subprocess.DEVNULL)
            try:
                _out, stderr = proc.communicate(timeout=self.get_option('timeout'))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise AnsibleError('%s: put %s timed out' % (self._where(), out_path))
        if proc.returncode != 0:
            self._failure(proc.returncode, stderr, 'put %s' % out_path)

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv('FETCH %s TO %s' % (in_path, out_path), host=self.container)
        argv = self.attach_argv(['/bin/sh', '-c', FETCH_SCRIPT, 'sh', in_path])
        local = to_bytes(out_path, errors='surrogate_or_strict')
        tmp = local + b'.part'
        try:
            with open(tmp, 'wb') as target:
                proc = self._popen(argv, subprocess.DEVNULL, target)
                try:
                    _out, stderr = proc.communicate(timeout=self.get_option('timeout'))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    raise AnsibleError('%s: fetch %s timed out' % (self._where(), in_path))
            if proc.returncode != 0:
                self._failure(proc.returncode, stderr, 'fetch %s' % in_path)
            os.rename(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def close(self):
        super().close()
        self._connected = False
