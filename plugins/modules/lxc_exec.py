#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lxc_exec
short_description: Run a command inside a running LXC container with lxc-attach
version_added: 0.1.0
description:
  - Runs O(argv) (an argument list, no shell) or O(command) (a shell string, run by O(shell)
    inside the container) through C(lxc-attach) and returns rc, stdout and stderr.
  - The environment is cleared to a default C(PATH) and C(HOME=/root) plus O(env).
  - Reports C(changed) only when the command ran; O(creates) and O(removes) skip it, checked
    through the container's root as the host sees it (no subprocess).
  - A non-zero exit fails the task with rc, stdout and stderr in the result.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.lxc
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details: The command is not run in check mode; the result says whether it would run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  name:
    description: The (running) container.
    type: str
    required: true
  argv:
    description: The command as a list of arguments. Exactly one of O(argv) and O(command).
    type: list
    elements: str
  command:
    description: A shell command line run with O(shell) C(-c) inside the container.
    type: str
  shell:
    description: The shell inside the container for O(command).
    type: str
    default: /bin/sh
  chdir:
    description: Change into this directory (inside the container) first.
    type: str
  env:
    description: Environment variables to set.
    type: dict
    default: {}
  stdin:
    description: Data for the command's standard input.
    type: str
  creates:
    description: A path inside the container; when it exists, the command is not run.
    type: str
  removes:
    description: A path inside the container; when it does not exist, the command is not run.
    type: str
  timeout:
    description: Seconds after which the command is abandoned and the task fails.
    type: int
    default: 600
seealso:
  - module: virtkit.guests.lxc_container
'''

EXAMPLES = r'''
- name: Install a package unless it is there
  virtkit.guests.lxc_exec:
    name: web1
    argv: [apt-get, install, -y, nginx]
    creates: /usr/sbin/nginx

- name: A shell pipeline
  virtkit.guests.lxc_exec:
    name: web1
    command: ip -o -4 addr show | wc -l
  register: out
  changed_when: false
'''

RETURN = r'''
cmd:
  description: The command that was run (or would be).
  returned: always
  type: raw
rc:
  description: The exit status.
  returned: when the command ran
  type: int
stdout:
  description: Standard output.
  returned: always
  type: str
stderr:
  description: Standard error.
  returned: always
  type: str
stdout_lines:
  description: Standard output by line.
  returned: always
  type: list
  elements: str
stderr_lines:
  description: Standard error by line.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.attach import ARGUMENT_SPEC, run
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._resource import run_module


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[['argv', 'command']], required_one_of=[['argv', 'command']])
    run_module(module, lambda: run(ContainerManager(lxc_path=module.params['lxc_path']), module.params,
                                   check_mode=module.check_mode))


if __name__ == '__main__':
    main()
