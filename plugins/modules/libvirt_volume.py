#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_volume
short_description: Create, overlay, clone, import, resize and delete libvirt storage volumes
version_added: 0.1.0
description:
  - Manages one volume in a running libvirt storage pool, by name.
  - A new volume is created empty (O(capacity), O(format)), as a qcow2 overlay on a backing
    volume or file (O(backing_volume), O(backing_file); the way guests are made from a base
    cloud image), as a clone of another volume (O(clone_from)), or from an image
    (O(import_from)).
  - An existing volume is grown in place to O(capacity); shrinking is refused unless
    O(allow_shrink=true). Its format and backing store never change in place.
  - Imports read a URL or a file on the host that runs the module, verify a checksum
    (required unless O(allow_unverified=true)), keep the download in O(cache_dir),
    decompress C(.xz) and C(.gz) sources and upload the image through the libvirt stream
    API, so the libvirt host may be remote (for example C(qemu+ssh://)).
  - An imported volume is not imported again while its source checksum is unchanged. The
    checksum is recorded in a small JSON file under O(cache_dir) on the host that runs the
    module (libvirt keeps no user metadata for volumes). When the checksum changes, or no
    valid record exists, the volume is left alone with a warning unless O(reimport=true).
  - A first import is recorded as in progress (with the path the volume will have) before
    the volume is created, and as complete only after the uploaded content has been read
    back and compared with the image. A failed or interrupted upload deletes the volume the
    run created; if that fails, the error line names what was left.
  - A volume left half-imported by a run that was killed is recognised by that record (its
    path and capacity match), and the next run with O(import_from) deletes it and imports
    again (action C(drop_incomplete)), with or without O(reimport). A record whose path or
    capacity no longer matches the volume (it was replaced since) proves nothing; it is
    ignored and discarded, and such a volume, like any volume without a matching record, is
    never deleted. A half-imported volume that a running guest uses (as a disk or in a disk's
    backing chain) is not deleted either; the run fails in one line before anything changes.
  - Check mode runs the same planning code as a real run and reports exactly its actions.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.libvirt
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.flow
attributes:
  action_group:
    support: full
    membership:
      - virtkit.guests.libvirt
  action:
    support: full
    details: The action plugin sends a controller file when O(remote_src=false).
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - Resolving a checksum from a sums-file URL downloads that (small) file in check mode too.
      - A planned import from a missing local file (a path or a C(file://) URL) fails in check
        mode with the same message as the real run.
  diff_mode:
    support: full
    details: The diff shows the volume's existence, format, capacity, backing store and import source.
  platform:
    platforms: posix
options:
  name:
    description: The volume's name in the pool; its identity.
    type: str
    required: true
  pool:
    description: The storage pool holding the volume. It must be running.
    type: str
    required: true
  state:
    description:
      - V(present) creates, imports or resizes the volume.
      - V(absent) deletes it (a volume that does not exist is not an error).
    type: str
    choices: [present, absent]
    default: present
  capacity:
    description:
      - The volume's virtual size. An integer is read in GiB; a string may carry a unit such as
        V(512MiB), V(20GiB) or V(20G) (binary) or V(20GB) (decimal).
      - Required for a new empty volume; defaults to the backing store's or clone source's
        size otherwise. With O(import_from), the imported image is grown to it when smaller.
      - On an existing volume, a larger value grows it in place.
    type: raw
  format:
    description:
      - The format of a new empty volume (default V(qcow2)) or of a clone (default the
        source's). With O(import_from), the image must have this format.
    type: str
    choices: [qcow2, raw]
  backing_volume:
    description: Create a qcow2 overlay whose backing store is this volume (in O(backing_pool)).
    type: str
  backing_pool:
    description: The pool of O(backing_volume) (default O(pool)).
    type: str
  backing_file:
    description: Create a qcow2 overlay whose backing store is this file on the libvirt host.
    type: path
  backing_format:
    description: The backing store's format (default what libvirt reports for it).
    type: str
    choices: [qcow2, raw]
  clone_from:
    description: Create the volume as a full copy of this volume in the same pool.
    type: str
  import_from:
    description:
      - Import the image from this URL (V(http), V(https), V(ftp), V(file)) or path. A path is
        on the host that runs the module, or on the controller with O(remote_src=false).
      - A name ending in C(.xz) or C(.gz) is decompressed.
    type: str
  remote_src:
    description:
      - With V(false), a path in O(import_from) is on the controller (relative paths are
        looked up like other C(files)); the file is sent to the host's temporary directory
        only when the volume needs importing (not on a rerun with the same checksum).
      - The controller path, not the temporary copy, is recorded and returned as the
        volume's C(source) in RV(volume).
    type: bool
    default: true
  checksum:
    description:
      - The source's checksum, V(sha256:<hex>) or V(sha512:<hex>), or a checksum file such as
        V(sha256:https://example.com/SHA256SUMS) in which the source's file name is looked up.
      - It is the checksum of the file as downloaded (before decompression).
    type: str
  allow_unverified:
    description: Allow O(import_from) without O(checksum).
    type: bool
    default: false
  reimport:
    description:
      - Replace an existing volume with a fresh import when its recorded source checksum
        differs from O(checksum) or no valid import record exists. The old content is lost.
      - The new image is fetched and verified (checksum, format, not empty), then uploaded into
        a temporary volume of the same pool, C(<name>.virtkit-reimport) (the same format and
        capacity rules as an import), and its content is read back and compared with the image.
        Only then is the old volume deleted, the temporary volume copied into its name (libvirt
        cannot rename a volume; the copy is made by libvirt, so this works over a remote URI)
        and deleted. The pool needs room for the old volume and the new image side by side,
        and then for two copies of the new image.
      - Any failure before the old volume is deleted (a missing or bad source, a failed or
        interrupted upload, a content mismatch, a pool without room for the copy) leaves the old
        volume and its record, and removes the temporary volume.
      - The temporary volume is recorded as in progress before it is created, like a first
        import. Only a temporary volume whose record matches it (its path, and its capacity while
        in progress) is ever deleted or reused; a volume of that name without one is left alone
        with a warning, and a reimport that needs the name fails in one line before anything
        changes.
      - If the copy fails after the old volume was deleted, the error says so and the verified
        temporary volume is kept. A rerun finding no volume restores it from the temporary
        volume (with or without O(reimport)). A rerun finding a temporary volume left by an
        interrupted run (and its matching record) reuses it when its record shows the wanted
        checksum, else deletes it and starts over; O(state=absent) deletes it along with the
        volume.
      - A volume that a running guest uses (as a disk or in a disk's backing chain) is not
        reimported; the run fails in one line before anything changes. Shut the guest down first.
      - Volume names ending in C(.virtkit-reimport) are reserved for these temporary volumes.
    type: bool
    default: false
  cache_dir:
    description:
      - The download cache and import records, on the host that runs the module.
    type: path
    default: /var/cache/virtkit/images
  timeout:
    description: Seconds allowed for each network read of a download.
    type: int
    default: 600
  validate_certs:
    description: Verify TLS certificates of HTTPS sources.
    type: bool
    default: true
  allow_shrink:
    description: Allow O(capacity) below the current size (data beyond the new end is lost).
    type: bool
    default: false
  _original_source:
    description:
      - Internal, set only by the action plugin for O(remote_src=false); a value given in a
        task is dropped.
      - The controller path that O(import_from), a temporary copy on the host, stands for.
        It is recorded and returned as the volume's source.
    type: str
seealso:
  - module: virtkit.guests.libvirt_volume_info
  - module: virtkit.guests.libvirt_pool
'''

EXAMPLES = r'''
# The whole chain for one guest from a cloud image: base image -> overlay -> seed -> domain.
- name: A directory pool for guest disks
  virtkit.guests.libvirt_pool:
    name: images
    path: /srv/images
    autostart: true

- name: Import the Debian cloud image once (checksum verified, cached, uploaded via libvirt)
  virtkit.guests.libvirt_volume:
    pool: images
    name: debian-12-base.qcow2
    import_from: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
    checksum: sha512:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS

- name: A 20 GiB copy-on-write system disk for web1 on top of the base image
  virtkit.guests.libvirt_volume:
    pool: images
    name: web1.qcow2
    backing_volume: debian-12-base.qcow2
    capacity: 20GiB

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

- name: An overlay on a plain image file outside any pool
  virtkit.guests.libvirt_volume:
    pool: images
    name: test1.qcow2
    backing_file: /srv/golden/debian-12.qcow2
    backing_format: qcow2

- name: Import an image file that sits on the controller (sent only when it must be imported)
  virtkit.guests.libvirt_volume:
    pool: images
    name: appliance.qcow2
    import_from: appliance.qcow2.xz  # looked up in files/, like other controller files
    remote_src: false
    checksum: sha256:0f6b2c1e6d3b5a4f7e8c9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e

- name: An empty raw data disk
  virtkit.guests.libvirt_volume:
    pool: images
    name: web1-data.raw
    format: raw
    capacity: 50

- name: Grow it later, in place
  virtkit.guests.libvirt_volume:
    pool: images
    name: web1-data.raw
    capacity: 80GiB

- name: Delete the overlay
  virtkit.guests.libvirt_volume:
    pool: images
    name: web1.qcow2
    state: absent
'''

RETURN = r'''
actions:
  description: The steps taken (or, in check mode, that would be taken), each with C(action) and C(summary).
  returned: always
  type: list
  elements: dict
volume:
  description: The volume after the run (empty when absent, or new in check mode). The keys of RV(virtkit.guests.libvirt_volume_info#module:volumes).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import run_manager
from ansible_collections.virtkit.guests.plugins.module_utils._storage.volume import ARGUMENT_SPEC, VolumeManager


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    run_manager(module, VolumeManager)


if __name__ == '__main__':
    main()
