# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options every libvirt module shares (see plugins/module_utils/_libvirt.py).
    DOCUMENTATION = r'''
options:
  uri:
    description:
      - The libvirt connection URI, for example V(qemu:///system), V(qemu+ssh://root@host/system)
        or V(test:///default).
      - The module opens exactly one connection per run.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (python3-libvirt) on the host that runs the module
  - lxml (python3-lxml) on the host that runs the module
notes:
  - Errors are reported in one line naming the guest, the operation and the likely cause
    (daemon not running, permission denied, missing network, pool or volume, name clash).
'''
