#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cloud_init_seed
short_description: Build a cloud-init NoCloud seed ISO as a file or a libvirt volume
version_added: 0.1.0
description:
  - Builds a NoCloud seed ISO (volume label C(cidata)) with the files C(user-data),
    C(meta-data) and optionally C(network-config) and C(vendor-data), in memory with
    pycdlib, and stores it as a file on the host (O(path)) or as a raw volume in a libvirt
    storage pool (O(pool) and O(name)), uploaded through the libvirt stream API so it works
    over a remote URI.
  - The ISO is byte-for-byte deterministic for the same input (fixed file order, every
    timestamp fixed at 2000-01-01T00:00:00Z, mappings rendered with sorted keys). A rerun
    with the same input is not changed; any change of the input rewrites the seed.
  - The ISO has ISO9660 (level 3), Rock Ridge and Joliet names, as C(genisoimage -J -r)
    makes them, so Linux cloud-init sees C(user-data) and C(meta-data) by their names.
  - Contents never appear in logs, diffs or return values; the diff and the result show
    SHA-256 digests and sizes only.
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
    support: full
    details: The diff shows state, the digest of the ISO and of each file, the instance-id and
      the file mode; never the contents.
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) builds the seed and stores it when what is stored differs.
      - V(absent) deletes the file or the volume; a missing one is not an error.
    type: str
    choices: [present, absent]
    default: present
  path:
    description:
      - Store the seed as this file on the host that runs the module (absolute path; the
        directory must exist). Written through a temporary file and renamed into place.
      - Mutually exclusive with O(pool).
    type: path
  pool:
    description:
      - Store the seed as the raw volume O(name) in this libvirt storage pool, which must
        exist and run. Needs O(name). The volume is read back through libvirt to decide
        whether it differs.
    type: str
  name:
    description: The volume name in O(pool), for example V(web1-seed.iso).
    type: str
  user_data:
    description:
      - The C(user-data) file. A dict is rendered as YAML with sorted keys under a
        C(#cloud-config) header. Text is stored as given and must start with a header
        cloud-init knows (C(#cloud-config), C(#!), C(#include), ...) or be MIME multipart.
      - Required with O(state=present). Never logged.
    type: raw
  meta_data:
    description:
      - The C(meta-data) file. A dict is rendered as YAML; O(instance_id) and O(hostname)
        are merged into it. Text must be a YAML mapping with an C(instance-id).
      - Not masked in logs; keep secrets in O(user_data).
    type: raw
  network_config:
    description:
      - The optional C(network-config) file (network config version 1 or 2). A dict is
        rendered as YAML and needs a C(version) key (or a top-level C(network) key). Never logged.
    type: raw
  vendor_data:
    description: The optional C(vendor-data) file, rendered like O(user_data). Never logged.
    type: raw
  instance_id:
    description:
      - The C(instance-id) in C(meta-data). cloud-init runs its once-per-instance steps
        again only when this changes, so a changed O(user_data) alone does not re-provision
        an already provisioned guest.
      - Defaults to the C(instance-id) of a dict O(meta_data), else C(iid-) followed by
        O(name) or the file name of O(path) without its extension.
    type: str
  hostname:
    description: Sets C(local-hostname) in C(meta-data).
    type: str
  mode:
    description:
      - The file mode of O(path), as an octal string. The default keeps the secrets in the
        seed readable by root only; libvirt's DAC driver gives qemu access when a guest starts.
    type: raw
    default: '0600'
requirements:
  - pycdlib on the host that runs the module
  - PyYAML on the host that runs the module
notes:
  - The libvirt connection (O(uri)) is opened only for O(pool).
  - The seed is meant for an IDE or SATA cdrom of the guest, for example a disk with
    O(virtkit.guests.libvirt_domain#module:disks[].device=cdrom) and
    O(virtkit.guests.libvirt_domain#module:disks[].bus=sata) in M(virtkit.guests.libvirt_domain).
seealso:
  - module: virtkit.guests.libvirt_domain
  - name: cloud-init NoCloud datasource
    description: How cloud-init reads a seed ISO labelled cidata.
    link: https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html
'''

EXAMPLES = r'''
- name: Seed for web1 as a file next to its disk
  virtkit.guests.cloud_init_seed:
    path: /var/lib/libvirt/images/web1-seed.iso
    hostname: web1
    user_data:
      users:
        - name: ops
          ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', 'ops.pub') }}"]
          sudo: ALL=(ALL) NOPASSWD:ALL
      package_update: true
    network_config:
      version: 2
      ethernets:
        eth0:
          dhcp4: true

- name: Seed for web2 as a volume in the default pool (works over qemu+ssh://)
  virtkit.guests.cloud_init_seed:
    uri: qemu+ssh://root@hv1/system
    pool: default
    name: web2-seed.iso
    instance_id: web2-1
    user_data: "{{ lookup('ansible.builtin.template', 'user-data.j2') }}"

- name: Remove the seed
  virtkit.guests.cloud_init_seed:
    path: /var/lib/libvirt/images/web1-seed.iso
    state: absent

# One guest from a cloud image: pool, base image and the overlay web1.qcow2 as in the
# EXAMPLES of virtkit.guests.libvirt_volume, then its seed and the guest.
- name: Its cloud-init seed (user and SSH key)
  virtkit.guests.cloud_init_seed:
    pool: images
    name: web1-seed.iso
    hostname: web1
    user_data:
      users:
        - name: ops
          ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', 'ops.pub') }}"]
          sudo: ALL=(ALL) NOPASSWD:ALL

- name: The guest itself, booting from the overlay with the seed as a CD-ROM
  virtkit.guests.libvirt_domain:
    name: web1
    state: running
    memory: 2GiB
    vcpus: 2
    disks:
      - {pool: images, volume: web1.qcow2}
      - {pool: images, volume: web1-seed.iso, device: cdrom}
    interfaces:
      - network: default
    guest_agent: true
    wait_for_ip: true
'''

RETURN = r'''
path:
  description: The file, or the path of the volume on the host (null in check mode before
    a volume exists).
  returned: always
  type: str
  sample: /var/lib/libvirt/images/web1-seed.iso
sha256:
  description: SHA-256 of the ISO.
  returned: when O(state=present)
  type: str
size:
  description: Size of the ISO in bytes.
  returned: when O(state=present)
  type: int
  sample: 69632
instance_id:
  description: The instance-id in meta-data.
  returned: when O(state=present)
  type: str
  sample: iid-web1-seed
files:
  description: SHA-256 and size of each file in the ISO, by file name (never the contents).
  returned: when O(state=present)
  type: dict
  sample: {meta-data: {sha256: 3b1c..., size: 40}, user-data: {sha256: 9f0a..., size: 210}}
actions:
  description: What was done (in check mode, what would be done), in order.
  returned: always
  type: list
  elements: dict
  sample: [{action: write_file, summary: write the seed ISO /var/lib/libvirt/images/web1-seed.iso (69632 bytes)}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import LIBVIRT_ARGS, Connection, require_libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._resource import run_module
from ansible_collections.virtkit.guests.plugins.module_utils._seed import (
    ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, REQUIRED_TOGETHER, SeedManager, conceal_content, require_libs)


def main():
    module = AnsibleModule(
        argument_spec=dict(LIBVIRT_ARGS, **ARGUMENT_SPEC),
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        required_one_of=REQUIRED_ONE_OF,
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = conceal_content(module)
    require_libs(module)
    if module.params['pool']:
        require_libvirt(module)

    def body():
        manager = SeedManager(lambda: Connection(module.params['uri']))
        try:
            return manager.run(params, check_mode=module.check_mode)
        finally:
            manager.close()

    run_module(module, body)


if __name__ == '__main__':
    main()
