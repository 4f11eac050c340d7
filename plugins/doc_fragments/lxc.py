# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options every LXC module shares (see plugins/module_utils/_lxc/).
    DOCUMENTATION = r'''
options:
  lxc_path:
    description:
      - The container directory, passed to every LXC tool as C(-P).
      - Defaults to C(lxc.lxcpath) of C(/etc/lxc/lxc.conf), else C(/var/lib/lxc).
    type: path
requirements:
  - the LXC tools (C(lxc) package) on the host that runs the module; python3-lxc is not needed
notes:
  - The LXC tools are called as argument lists, never through a shell.
  - Errors are reported in one line naming the container, the operation and the LXC tool's own error.
'''
