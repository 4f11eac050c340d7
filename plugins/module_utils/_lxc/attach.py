# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running commands inside a container with lxc-attach (argv, never a host shell)."""

from __future__ import annotations

import os
import re

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import check_name

DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')

ARGUMENT_SPEC = {
    'name': {'type': 'str', 'required': True},
    'lxc_path': {'type': 'path'},
    'argv': {'type': 'list', 'elements': 'str'},
    'command': {'type': 'str'},
    'shell': {'type': 'str', 'default': '/bin/sh'},
    'chdir': {'type': 'str'},
    'env': {'type': 'dict', 'default': {}},
    'stdin': {'type': 'str'},
    'creates': {'type': 'str'},
    'removes': {'type': 'str'},
    'timeout': {'type': 'int', 'default': 600},
}


def attach_argv(runner, name, argv, env=None, chdir=None, clear_env=True):
    """The lxc-attach argv that runs ``argv`` in ``name`` (``chdir`` through sh positional args)."""
    cmd = runner.argv('lxc-attach', name)
    if clear_env:
        cmd += ['--clear-env', '-v', 'PATH=%s' % DEFAULT_PATH, '-v', 'HOME=/root']
    for key in sorted(env or {}):
        if not _ENV_NAME.match(key):
            raise VirtkitError('env: %r is not a variable name' % key)
        value = str(env[key])
        if '\x00' in value:
            raise VirtkitError('env: the value of %s contains a NUL byte' % key)
        cmd += ['-v', '%s=%s' % (key, value)]
    if chdir:
        argv = ['/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'sh', chdir] + list(argv)
    return cmd + ['--'] + list(argv)


def container_path(pid, path):
    """The host view of ``path`` inside the container whose init is ``pid``."""
    return '/proc/%d/root/%s' % (pid, path.lstrip('/'))


def run(manager, params, check_mode=False):
    name = check_name(params['name'])
    if bool(params.get('argv')) == bool(params.get('command')):
        raise VirtkitError('give exactly one of argv (a list) or command (a shell string)')
    for opt in ('creates', 'removes', 'chdir'):
        if params.get(opt) is not None and not params[opt].startswith('/'):
            raise VirtkitError('%s: %r must be an absolute path inside the container' % (opt, params[opt]))
    if params.get('timeout') is not None and params['timeout'] < 1:
        raise VirtkitError('timeout: must be at least 1 second')
    if params.get('argv'):
        argv = list(params['argv'])
        shown = argv
    else:
        argv = [params.get('shell') or '/bin/sh', '-c', params['command']]
        shown = params['command']
    if not manager.exists(name):
        raise VirtkitError('%s: the container does not exist in %s' % (name, manager.r.lxc_path))
    state, pid = manager.info(name)
    if state != 'running' or not pid:
        raise VirtkitError('%s: cannot run a command: the container is %s (start it first)' % (name, state))
    # No 'rc' until the command ran: Ansible reads a non-zero rc as a failure.
    result = {'cmd': shown, 'stdout': '', 'stderr': '', 'stdout_lines': [], 'stderr_lines': []}
    if params.get('creates') and os.path.lexists(container_path(pid, params['creates'])):
        result.update(changed=False, msg='skipped, %s exists' % params['creates'])
        return result
    if params.get('removes') and not os.path.lexists(container_path(pid, params['removes'])):
        result.update(changed=False, msg='skipped, %s does not exist' % params['removes'])
        return result
    if check_mode:
        result.update(changed=True, msg='would run the command (check mode)')
        return result
    full = attach_argv(manager.r, name, argv, params.get('env'), params.get('chdir'))
    rc, out, err = manager.r.run('lxc-attach', name, raw_argv=full, check=False, data=params.get('stdin'),
                                 timeout=params.get('timeout') or 600)
    # Like ansible.builtin.command: the final newline is not part of the output.
    out, err = out.rstrip('\r\n'), err.rstrip('\r\n')
    result.update(changed=True, rc=rc, stdout=out, stderr=err, stdout_lines=out.splitlines(),
                  stderr_lines=err.splitlines())
    if rc != 0:
        last = err.strip().splitlines()[-1] if err.strip() else ''
        raise VirtkitError('%s: the command exited with %s%s' % (name, rc, ': ' + last if last else ''), **result)
    return result
