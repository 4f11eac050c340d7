#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_domain
short_description: Define, update and run KVM/QEMU guests through libvirt
version_added: 0.1.0
description:
  - Defines a libvirt domain from structured options and keeps it in the wanted power state.
  - The options are merged onto the guest's current persistent XML with lxml, so libvirt's
    own identity (UUID, MAC addresses, PCI addresses, NVRAM paths) survives every update.
    Only what you set is owned; an omitted option leaves the live value alone.
  - Devices are matched by identity, a disk by its target, a NIC by its MAC, else its
    O(interfaces[].alias), else its source and position. Unlisted devices are removed only
    with O(devices_exclusive=true).
  - On a running guest, memory (balloon, up to the maximum), the vCPU count (up to the
    maximum), added or removed disks, NICs and host devices, and cdrom media are applied live
    and persistently. Everything else is written to the persistent config and reported in
    RV(pending_restart_fields); the guest is restarted only with O(restart_policy=if_needed).
  - A balloon target and a device detach need the guest's cooperation (a balloon driver,
    honouring hot-unplug). The module waits up to O(live_timeout) for the live config to
    show the result. When it does not, the run warns; a detach the guest ignored is
    reported in RV(pending_restart_fields) (the persistent config no longer has the device).
    The request is recorded in the running guest's live metadata (namespace
    C(https://virtkit.dev/xmlns/guests/1/live), gone at the next boot), so reruns do not
    ask again and stay unchanged, but warn again.
  - QEMU starts a guest with all of its maximum memory and libvirt then asks the balloon
    for O(memory). When the module starts the guest (a start or a restart), it records that
    request the same way, so a rerun that finds a guest without a balloon driver still at
    its maximum, or one with a driver still on its way to the target, is unchanged (with a
    warning) instead of asking again. A guest started outside the module is asked once.
  - Check mode runs the same planning code as a real run and reports exactly its actions.
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
    details: The diff shows the guest's power state, autostart and its canonical persistent XML
      before and after (passwords masked).
  platform:
    platforms: posix
options:
  name:
    description: The guest's name; its identity.
    type: str
    required: true
  state:
    description:
      - V(present) defines or updates the guest and leaves its power state alone.
      - V(running) and V(paused) also start, resume or pause it.
      - V(shutdown) asks the guest to shut down (ACPI) and waits up to O(shutdown_timeout)
        seconds; then it powers the guest off only when O(force=true), otherwise it fails.
      - V(destroyed) powers the guest off at once.
      - V(absent) powers off and undefines the guest, with its NVRAM, TPM state, snapshot and
        checkpoint metadata and managed save image. It deletes disks only as O(remove_storage)
        says. A guest that does not exist is not an error.
    type: str
    choices: [present, running, paused, shutdown, destroyed, absent]
    default: present
  virt_type:
    description:
      - The domain type. Defaults, for a new guest, to V(kvm) where the host offers it,
        else V(qemu) (software emulation, TCG).
    type: str
    choices: [kvm, qemu]
  arch:
    description: The guest architecture of a new guest; defaults to the host's.
    type: str
  machine:
    description:
      - The machine type, for example V(q35) or V(pc). libvirt expands those aliases to
        versioned types such as V(pc-q35-7.2); the alias keeps matching them.
    type: str
  memory:
    description:
      - The guest's memory. An integer is read in MiB; a string may carry a unit such as
        V(512MiB), V(2GiB) or V(2G) (binary) or V(2GB) (decimal).
      - On a running guest a change up to the maximum memory goes through the balloon.
      - Raises the maximum (O(max_memory)) when above it, which needs a restart.
    type: raw
  max_memory:
    description: The guest's maximum memory (same units as O(memory)).
    type: raw
  vcpus:
    description:
      - The number of active vCPUs. Up to O(max_vcpus) it is applied live on a running guest.
    type: int
  max_vcpus:
    description: The maximum vCPU count; defaults to O(vcpus) for a new guest.
    type: int
  cpu:
    description: The guest CPU.
    type: dict
    suboptions:
      mode:
        description: The CPU mode. V(host-passthrough) and V(host-model) need KVM.
        type: str
        choices: [host-passthrough, host-model, maximum, custom]
      model:
        description: A named CPU model (implies O(cpu.mode=custom)).
        type: str
      sockets:
        description: Topology; sockets x dies x cores x threads must equal the maximum vCPUs.
        type: int
      dies:
        description: Topology dies per socket.
        type: int
      cores:
        description: Topology cores per die.
        type: int
      threads:
        description: Topology threads per core.
        type: int
  firmware:
    description:
      - V(uefi) asks libvirt to pick UEFI firmware (OVMF) and make a per-guest NVRAM store
        from the host's firmware descriptors (Debian package C(ovmf)).
      - V(bios) is the x86 default; on a UEFI guest it removes UEFI and discards the guest's
        NVRAM file, which BIOS does not use (see O(secure_boot) for when).
    type: str
    choices: [bios, uefi]
  secure_boot:
    description:
      - Enable UEFI secure boot with enrolled keys; needs O(firmware=uefi) and a q35 machine.
      - libvirt copies the firmware's NVRAM template (with secure boot, one with Microsoft's
        keys enrolled; without, an empty one) into the guest's NVRAM file only when that file
        is missing. So when a change of O(secure_boot) (or of O(firmware), or of the loader or
        NVRAM template named by O(xml_overrides)) means another template, or no UEFI at all,
        the module discards the guest's NVRAM file (boot entries and UEFI variables go with
        it) and libvirt makes a new one from the right template at the next start.
      - A guest that is off loses the file in the same run, right after the define (action
        V(discard_nvram)). A running guest still uses it, so the change waits in
        RV(pending_restart_fields), and the file to discard is recorded in the persistent
        config (metadata namespace C(https://virtkit.dev/xmlns/guests/1/live)); it goes
        between stop and start when O(restart_policy=if_needed) restarts the guest, after
        O(state=shutdown) or O(state=destroyed) stops it, or on a later run that finds the
        guest off. Then the record is cleared.
      - Only the file the guest's definition names (or, for C(<os firmware='efi'>) without
        one, the path libvirt derives, C(/var/lib/libvirt/qemu/nvram/<name>_VARS.fd) on
        qemu:///system) is discarded, through the storage API when it is a volume of a pool,
        else as a local file; over a remote URI with no pool holding it the run warns once
        naming the file and the host. A recorded file that is none of these is not deleted;
        the run warns and drops the record. So a guest whose definition named its own NVRAM
        file and that switches to V(bios) while it runs keeps that file (with a warning).
      - Left unset on q35, libvirt picks the firmware by priority (on Debian the one with
        secure boot and Microsoft's keys enrolled). Setting O(secure_boot) later discards
        the file only when it is known to come from another template, as told by the
        firmware libvirt selected (in the running guest's live XML or, from libvirt 9.2, in
        the inactive XML). If
        the guest is off and that is unknown (libvirt before 9.2), the file is kept, since
        it may hold boot entries or keys still needed, and the run warns once; to reset it,
        delete the file while the guest is off.
      - From libvirt 9.2, libvirt writes the loader and NVRAM template it selected into the
        persistent config. When O(secure_boot) flips, the module drops them (the NVRAM file
        path stays) so that libvirt selects matching firmware again, unless this run's
        O(xml_overrides) set C(loader) or C(nvram); a loader set by an earlier run's
        O(xml_overrides) cannot be told from libvirt's and is dropped too.
    type: bool
  boot:
    description: Boot order, or direct kernel boot.
    type: dict
    suboptions:
      devices:
        description: Boot devices in order.
        type: list
        elements: str
        choices: [hd, cdrom, network, fd]
      kernel:
        description: A kernel on the host for direct kernel boot; an empty string removes it.
        type: str
      initrd:
        description: An initrd on the host for direct kernel boot.
        type: str
      cmdline:
        description: The kernel command line for direct kernel boot.
        type: str
  disks:
    description:
      - Disks and cdroms, each matched to the guest's disks by O(disks[].target).
    type: list
    elements: dict
    suboptions:
      target:
        description:
          - The disk's name in the guest, for example V(vda), V(sdb) or V(hdc).
          - Defaults to the next free name for the disk's bus, in list order.
        type: str
      device:
        description: A disk or a cdrom (a cdrom without a source is an empty drive).
        type: str
        choices: [disk, cdrom]
        default: disk
      bus:
        description:
          - The bus. Defaults to V(virtio) for a disk and V(sata) (q35) or V(ide) (pc) for a
            cdrom on a new device; an existing device keeps its bus unless this is set.
        type: str
        choices: [virtio, sata, scsi, ide, usb]
      path:
        description: A file or block device on the host (must exist on a local URI).
        type: path
      pool:
        description: The storage pool of O(disks[].volume).
        type: str
      volume:
        description: A volume in O(disks[].pool).
        type: str
      format:
        description:
          - The image format. Defaults, for a new disk, to the volume's format, or to what the
            file's header says on a local URI (qcow2 or raw).
          - Over a remote URI the module cannot read a plain file's header, so a O(disks[].path)
            that is no volume of a pool is attached as V(raw) unless C(format) is set; set it for
            qcow2 files there.
        type: str
        choices: [raw, qcow2, vmdk, vdi, iso]
      readonly:
        description: Read-only disk. Cdroms default to read-only.
        type: bool
      cache:
        description: The host cache mode.
        type: str
        choices: [default, none, writethrough, writeback, directsync, unsafe]
  interfaces:
    description:
      - Network interfaces, matched by MAC, else alias, else source and position.
      - A NIC without O(interfaces[].mac) gets a MAC from libvirt that is kept on every update.
    type: list
    elements: dict
    suboptions:
      network:
        description: A libvirt network (must exist).
        type: str
      bridge:
        description: An existing host bridge.
        type: str
      direct:
        description: A host interface for a macvtap (direct) connection.
        type: str
      direct_mode:
        description: The macvtap mode of a direct connection.
        type: str
        choices: [vepa, bridge, private, passthrough]
        default: bridge
      model:
        description: The NIC model; V(virtio) for a new NIC when not set.
        type: str
      mac:
        description: The MAC address.
        type: str
      alias:
        description: A user alias (starting with C(ua-)) that identifies the NIC.
        type: str
  graphics:
    description: The graphical console; V(none) removes every graphics device.
    type: dict
    suboptions:
      type:
        description: The console type.
        type: str
        choices: [none, vnc, spice]
        required: true
      listen:
        description: The address to listen on, for example V(127.0.0.1).
        type: str
      port:
        description: The port, or V(-1) for an automatic one.
        type: int
      password:
        description: The console password (never shown in diffs or logs).
        type: str
  serial:
    description: The first serial port (libvirt adds the matching console).
    type: dict
    suboptions:
      type:
        description: A pseudo terminal or a file.
        type: str
        choices: [pty, file]
        default: pty
      path:
        description: The file for O(serial.type=file).
        type: path
      log:
        description: Also log the port's output to this file.
        type: path
  tpm:
    description: A TPM device.
    type: dict
    suboptions:
      model:
        description: The TPM model.
        type: str
        choices: [tpm-crb, tpm-tis]
        default: tpm-crb
      backend:
        description: An emulated TPM (swtpm) or the host's TPM.
        type: str
        choices: [emulator, passthrough]
        default: emulator
      version:
        description: The emulated TPM version.
        type: str
        choices: ['1.2', '2.0']
        default: '2.0'
      device:
        description: The host TPM device for O(tpm.backend=passthrough).
        type: path
  hostdevs:
    description: Host PCI or USB devices passed through, matched by address or USB ids.
    type: list
    elements: dict
    suboptions:
      type:
        description: The kind of device.
        type: str
        choices: [pci, usb]
        required: true
      address:
        description: A PCI address such as V(0000:03:00.0), or a USB V(BUS:DEVICE).
        type: str
      vendor:
        description: The USB vendor id, for example V(0x1d6b).
        type: str
      product:
        description: The USB product id.
        type: str
  rng:
    description: A virtio random number generator fed from the host's /dev/urandom.
    type: bool
  guest_agent:
    description: The QEMU guest agent channel (lets O(ip_sources) use V(agent)).
    type: bool
  autostart:
    description: Start the guest when libvirtd starts.
    type: bool
  title:
    description: A short title; an empty string removes it.
    type: str
  description:
    description: A description; an empty string removes it.
    type: str
  metadata:
    description:
      - Key/values (strings, numbers, booleans or lists of them) stored in the domain's
        C(<metadata>) under the namespace C(https://virtkit.dev/xmlns/guests/1).
      - This option owns that namespace element as a whole; the inventory plugin groups by it.
    type: dict
  xml_overrides:
    description:
      - An escape hatch applied last, to anything the options do not cover. Each item
        selects elements or attributes with an absolute XPath starting with C(/domain).
      - A simple path that matches nothing (V(/domain/features/hyperv/relaxed)) is created.
    type: list
    elements: dict
    suboptions:
      xpath:
        description: The XPath; V(/@name) at its end selects an attribute.
        type: str
        required: true
      state:
        description: Set (V(present)) or remove (V(absent)) what the XPath selects.
        type: str
        choices: [present, absent]
        default: present
      value:
        description: The text (or attribute value) to set.
        type: str
      attributes:
        description: Attributes to set on the selected elements (null removes one).
        type: dict
  devices_exclusive:
    description:
      - Remove disks, NICs and host devices that O(disks), O(interfaces) or O(hostdevs) do
        not list (only for the lists you give).
    type: bool
    default: false
  restart_policy:
    description:
      - What to do when a change to a running guest needs a restart. V(never) reports it in
        RV(pending_restart); V(if_needed) shuts the guest down (as O(state=shutdown) does,
        honouring O(shutdown_timeout) and O(force)) and starts it again.
    type: str
    choices: [never, if_needed]
    default: never
  shutdown_timeout:
    description: Seconds to wait for a graceful shutdown.
    type: int
    default: 120
  live_timeout:
    description:
      - Seconds to wait, per live change, for a running guest to complete what it must
        cooperate in, a device detach (hot-unplug) or a memory balloon target, before the
        module warns (and, for a detach, reports the device in RV(pending_restart_fields)).
      - V(0) checks once without waiting. A paused guest is checked once.
    type: int
    default: 20
  force:
    description: Power the guest off when it does not shut down within O(shutdown_timeout).
    type: bool
    default: false
  remove_storage:
    description:
      - With O(state=absent), the disk targets whose storage is deleted, or V(all) for every
        disk (not cdroms). Volumes are deleted through libvirt; plain files only on a local
        URI; block devices that are not pool volumes are never wiped.
    type: list
    elements: str
    default: []
  wait_for_ip:
    description:
      - Wait until the running guest has an IP address and return it.
      - A DHCP lease left from an earlier boot of the same MAC does not count when the
        start of this boot is known; then only a lease taken after that start, or what the
        guest agent reports, counts. The start is known when the module started the guest,
        and on a local C(qemu:///system) or C(qemu:///session) connection when libvirt
        booted the guest (the start of its QEMU process). A guest restored from a saved
        image, a snapshot or a migration keeps the lease it held before.
    type: bool
    default: false
  wait_for_ip_timeout:
    description: Seconds to wait for an address.
    type: int
    default: 300
  ip_sources:
    description: Where addresses come from, in order of preference.
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent]
seealso:
  - module: virtkit.guests.libvirt_domain_info
'''

EXAMPLES = r'''
- name: A small guest booted from a qcow2 volume, waiting for its address
  virtkit.guests.libvirt_domain:
    name: web1
    state: running
    memory: 2GiB
    vcpus: 2
    max_vcpus: 4
    machine: q35
    disks:
      - pool: default
        volume: web1.qcow2
    interfaces:
      - network: default
    serial:
      type: pty
    guest_agent: true
    rng: true
    metadata:
      groups: [web, production]
      owner: team-a
    wait_for_ip: true
  register: web1

- name: Show its address
  ansible.builtin.debug:
    msg: "{{ web1.domain.ip }}"

- name: Direct kernel boot in software emulation (no KVM needed)
  virtkit.guests.libvirt_domain:
    name: tiny
    state: running
    virt_type: qemu
    memory: 256
    boot:
      kernel: /var/lib/libvirt/images/tiny-vmlinuz
      initrd: /var/lib/libvirt/images/tiny-initrd.img
      cmdline: console=ttyS0
    interfaces:
      - network: default

- name: More memory and a second NIC, live; a restart only if something needs one
  virtkit.guests.libvirt_domain:
    name: web1
    state: running
    memory: 3GiB
    max_memory: 4GiB
    interfaces:
      - network: default
      - bridge: br0
    restart_policy: if_needed
    shutdown_timeout: 60
    force: true

- name: Insert an installer ISO into the cdrom of a running guest
  virtkit.guests.libvirt_domain:
    name: web1
    disks:
      - target: sda
        device: cdrom
        path: /var/lib/libvirt/images/debian-12.iso

- name: Keep only the listed disk and NIC on a running guest, unplug the rest (waits up to 30 s)
  virtkit.guests.libvirt_domain:
    name: web1
    disks:
      - pool: default
        volume: web1.qcow2
    interfaces:
      - network: default
    devices_exclusive: true
    live_timeout: 30
  register: web1_unplug

- name: Say so when the guest ignored the unplug (it goes at the next restart)
  ansible.builtin.debug:
    msg: "Still attached until a restart: {{ web1_unplug.pending_restart_fields }}"
  when: web1_unplug.pending_restart

# A guest from a cloud image: the system disk is a copy-on-write overlay on an imported
# base image, cloud-init reads its seed from a cdrom (see the collection README).
- name: A 20 GiB copy-on-write system disk for web2 on the imported Debian cloud image
  virtkit.guests.libvirt_volume:
    pool: images
    name: web2.qcow2
    backing_volume: debian-12-base.qcow2
    capacity: 20GiB

- name: Its cloud-init seed (user and SSH key)
  virtkit.guests.cloud_init_seed:
    pool: images
    name: web2-seed.iso
    hostname: web2
    user_data:
      users:
        - name: ops
          ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', 'ops.pub') }}"]
          sudo: ALL=(ALL) NOPASSWD:ALL

- name: The guest, booting from the overlay with the seed as a cdrom
  virtkit.guests.libvirt_domain:
    name: web2
    state: running
    memory: 2GiB
    vcpus: 2
    disks:
      - pool: images
        volume: web2.qcow2
      - pool: images
        volume: web2-seed.iso
        device: cdrom
    interfaces:
      - network: default
    guest_agent: true
    wait_for_ip: true

- name: An escape hatch for anything else
  virtkit.guests.libvirt_domain:
    name: web1
    xml_overrides:
      - xpath: /domain/features/hyperv/relaxed
        attributes:
          state: 'on'
      - xpath: /domain/on_crash
        value: restart

- name: Graceful shutdown, forced after a minute
  virtkit.guests.libvirt_domain:
    name: web1
    state: shutdown
    shutdown_timeout: 60
    force: true

- name: Remove the guest and its system disk (other disks stay)
  virtkit.guests.libvirt_domain:
    name: web1
    state: absent
    remove_storage: [vda]
'''

RETURN = r'''
changed:
  description: Whether anything changed (or, in check mode, would change).
  returned: always
  type: bool
actions:
  description:
    - What the run did (check mode, what it would do), in order.
    - V(discard_nvram) discards an NVRAM file made for another firmware (see O(secure_boot));
      V(keep_nvram) forgets such a request when the firmware was changed back before it ran.
  returned: always
  type: list
  elements: dict
  sample: [{action: define, summary: "update the persistent config of web1: memory"},
           {action: set_memory, summary: set the memory of the running guest to 3072 MiB}]
forced_off:
  description:
    - Whether a shutdown (O(state=shutdown) or a restart) had to power the guest off because
      it did not shut down within O(shutdown_timeout).
  returned: always
  type: bool
pending_restart:
  description: Whether the running guest differs from its config in a way only a restart applies.
  returned: always
  type: bool
pending_restart_fields:
  description:
    - The fields that wait for a restart, including a device the running guest did not
      release within O(live_timeout) (for example V(disks:vdb)).
  returned: always
  type: list
  elements: str
  sample: [max_memory, machine]
diff:
  description: Before and after (state, autostart, canonical persistent XML).
  returned: when diff mode is on
  type: dict
domain:
  description: The guest after the run (empty after O(state=absent)).
  returned: always
  type: dict
  contains:
    name:
      description: The guest's name.
      type: str
    uuid:
      description: The guest's UUID.
      type: str
    state:
      description: V(running), V(paused), V(shutoff), V(crashed) and so on.
      type: str
    autostart:
      description: Whether libvirtd starts the guest.
      type: bool
    memory_mib:
      description: The current memory in MiB.
      type: int
    vcpus:
      description: The active vCPUs.
      type: int
    interfaces:
      description: The NICs, each with C(mac), C(type), C(source), C(model) and C(addresses).
      type: list
      elements: dict
    ip:
      description: The first address found (null when none).
      type: str
    metadata:
      description: The key/values stored by O(metadata).
      type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import run_manager
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.plugins.module_utils._domain.spec import ARGUMENT_SPEC


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    run_manager(module, DomainManager)


if __name__ == '__main__':
    main()
