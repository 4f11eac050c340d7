#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_volume_info
short_description: Read libvirt storage volumes
version_added: 0.1.0
description:
  - Returns the path, format, sizes, backing store and recorded import source of one volume
    or of every volume in a running pool.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.libvirt
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  action_group:
    support: full
    membership:
      - virtkit.guests.libvirt
  check_mode:
    support: full
  diff_mode:
    support: N/A
  platform:
    platforms: posix
options:
  pool:
    description: The pool to read; it must be running.
    type: str
    required: true
  name:
    description: The volume to read. Omitted reads every volume in the pool.
    type: str
  cache_dir:
    description: Where M(virtkit.guests.libvirt_volume) keeps its import records.
    type: path
    default: /var/cache/virtkit/images
seealso:
  - module: virtkit.guests.libvirt_volume
'''

EXAMPLES = r'''
- name: Where is the overlay and what does it sit on
  virtkit.guests.libvirt_volume_info:
    pool: images
    name: web1.qcow2
  register: web1_disk
'''

RETURN = r'''
volumes:
  description: The volumes found (none when O(name) does not exist), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The volume's name.
      type: str
    pool:
      description: The pool's name.
      type: str
    path:
      description: The volume's path on the libvirt host.
      type: str
    key:
      description: libvirt's key of the volume.
      type: str
    format:
      description: The volume's format.
      type: str
    capacity:
      description: The virtual size in bytes.
      type: int
    allocation:
      description: The bytes allocated on disk.
      type: int
    physical:
      description: The size of the file in bytes.
      type: int
    backing_store:
      description: The backing store (C(path), C(format)), or null.
      type: dict
    source:
      description: The import source recorded for the volume, or null.
      type: str
    source_checksum:
      description: The recorded checksum of the import source (C(algorithm:hex)), or null.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, Connection, run_module
from ansible_collections.virtkit.guests.plugins.module_utils._storage.volume import DEFAULT_CACHE, list_volumes


def main():
    module = AnsibleModule(argument_spec=dict(
        LIBVIRT_ARGS, pool={'type': 'str', 'required': True}, name={'type': 'str'},
        cache_dir={'type': 'path', 'default': DEFAULT_CACHE}), supports_check_mode=True)

    def body():
        with Connection(module.params['uri'], readonly=True) as conn:
            return {'changed': False, 'volumes': list_volumes(conn, module.params['pool'], module.params['name'],
                                                              module.params['cache_dir'])}

    run_module(module, body)


if __name__ == '__main__':
    main()
