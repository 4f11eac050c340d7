#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: lxc_container
short_description: Create, configure and run LXC system containers through the LXC tools
version_added: 0.1.0
description:
  - Creates a container from a template or a local rootfs tarball, or clones it from another,
    writes its full config B(before the first start), and keeps it in the wanted state.
  - The config file is edited as an ordered multimap; comments, includes and keys you do not
    set are kept byte for byte. Values with newlines or control characters are refused.
  - Typed options (O(limits), O(networks), O(mounts), autostart) render to LXC keys; limits map
    to C(lxc.cgroup2.*) or C(lxc.cgroup.*) per controller, as the host runs it (v1, v2 or hybrid).
  - Config changes on a running container are written and reported in
    RV(pending_restart_fields); the container restarts only with O(restart_policy=if_needed).
  - Check mode runs the same planning code as a real run; the diff lists the config keys that
    change, before and after.
  - Calls the C(lxc-*) tools as argument lists (no shell); python3-lxc is not needed. An
    unchanged run reads the config file and calls C(lxc-info) once.
  - B(Static addresses stick.) LXC sets a static address (O(networks[].ipv4)) before the guest's
    init runs; a DHCP client the guest starts on the same interface would then replace it (the
    busybox template's C(udhcpc)) or add a second address (ifupdown's C(inet dhcp)). Where the
    rootfs is a directory (C(dir), C(btrfs), or the upper directory of an overlay clone) and its
    layout is known, the module turns that client off for each NIC with static addresses, before
    the first start (for templates, O(rootfs_tarball) and O(clone_from) alike) and whenever the
    declared addresses change - in busybox's C(/etc/init.d/rcS) the C(udhcpc) line of the NIC is
    commented out; in ifupdown's C(/etc/network/interfaces), C(interfaces.d/*) and the files their
    C(source) and C(source-directory) lines name (symlinks resolved inside the rootfs) C(iface NIC
    inet dhcp) (C(inet6 dhcp|auto) for static IPv6) becomes C(manual). A file larger than 1 MiB, or
    one ifupdown reads that the module cannot, is not edited but named in the warning below. Each edit carries a
    C(# virtkit.guests:) marker line with the original, which comes back when the NIC goes back to
    DHCP. The edits keep the files' owner and mode (unprivileged containers), never follow a
    symlink out of the rootfs, show in check mode and in the diff, and make a running container
    report RV(pending_restart) with C(rootfs PATH) in RV(pending_restart_fields) (the guest reads
    them when it boots) - on later runs too, like config keys, until the container restarts
    (O(restart_policy=if_needed) restarts it). An overlay rootfs (a snapshot clone) is not edited
    while the container runs (changing a mounted overlay's upper directory is undefined), so the
    edit is made between the stop and the start of a restart this module makes, or after a stop
    it makes; until then it is in RV(pending_restart_fields) and named in the warning below.
  - Where the module cannot make an address stick (a systemd-networkd C(.network) file or netplan
    config with DHCP on for the NIC, NetworkManager in the guest, no network setup it knows, a
    backing store it does not edit), it says so in B(one warning) naming the container, the NIC
    and the reason. After a start it watches the NICs with static addresses (up to 10 seconds; the
    full 10 seconds where such a reason was found) and returns the addresses the container really
    has; a container that ends up with an address other than the declared one, or an extra one,
    gets that warning too, on every run (not while a changed address waits for a restart).
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.lxc
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the state and the config keys that change (before and after).
  platform:
    platforms: posix
requirements:
  - C(lxc-templates) for template based creation; C(debootstrap) for the C(debian) template;
    C(xz) for O(rootfs_tarball)
options:
  name:
    description: The container's name.
    type: str
    required: true
  state:
    description:
      - V(present) creates and configures the container and leaves its run state alone.
      - V(started), V(stopped), V(frozen) also bring it to that state; V(restarted) always
        stops and starts it (or starts it when stopped).
      - V(stopped) asks for a clean shutdown and waits up to O(stop_timeout) seconds; it kills
        the container after that only with O(force_stop=true).
      - V(absent) kills and destroys the container with its snapshots; a missing container is
        not an error.
      - A container left half-created by an interrupted C(lxc-create) (LXC's C(partial) marker in its
        directory) does not count as existing; it is destroyed and created again (just destroyed for
        V(absent)). While another C(lxc-create) is still creating it, the module fails in one line and
        changes nothing.
    type: str
    choices: [present, started, stopped, restarted, frozen, absent]
    default: present
  template:
    description:
      - The template for a new container, a name under C(/usr/share/lxc/templates) (V(busybox),
        V(download), V(debian), V(local), ...) or an absolute path. Ignored when the container exists.
      - Mutually exclusive with O(rootfs_tarball) (the default then does not apply).
    type: str
    default: busybox
  rootfs_tarball:
    description:
      - Create a new container from this root file system tarball on the LXC host, a C(.tar),
        C(.tar.gz), C(.tar.bz2) or C(.tar.xz) whose top directory is the container's C(/)
        (for example made with C(tar --numeric-owner -cJf rootfs.tar.xz -C rootfs .)).
      - Uses LXC's own C(local) template with a generated metadata tarball whose config includes
        C(/usr/share/lxc/config/common.conf) (and C(userns.conf) for an unprivileged container,
        where device nodes under C(/dev) are skipped). Owners, modes and devices are kept.
      - C(lxc-local) reads only xz; any other tarball is first recompressed to a temporary
        C(.tar.xz) in O(lxc_path) (removed afterwards), which takes a while for a large rootfs
        (about 30 s for 200 MB of tar on a 2-core host), so a C(.tar.xz) is fastest.
      - Set what the rootfs needs in the other options; they are written before the first start.
        For example a busybox rootfs stops cleanly only with C(lxc.signal.halt) set to V(SIGUSR1) in O(config).
      - Only used at creation. An existing container is never recreated, so a changed tarball is
        not applied again (remove the container to rebuild it), and the tarball may be gone on later runs.
      - Checked before anything changes, also in check mode, by streaming the archive's member
        list once (the scan stops at the first member that marks a root file system). It must be a
        readable tar archive whose top holds C(sbin/init), C(usr/sbin/init), C(bin/sh) or
        C(usr/bin/sh) (a leading C(./) is fine). A missing or unreadable file, one that is not a tar
        archive, and one whose files all sit under one top directory (such as C(rootfs/) or
        C(debian-12/), made with C(tar -cf FILE rootfs) instead of C(tar -C rootfs -cf FILE .)) fail
        in one line naming the problem (and that directory). zstd is not supported.
      - An application rootfs without C(sbin/init) or C(bin/sh) is accepted when O(config) sets
        C(lxc.init.cmd) (or C(lxc.execute.cmd)) and the archive holds its program (the first word,
        for example C(usr/local/bin/app) for V(/usr/local/bin/app --serve)); the one-top-directory
        refusal applies all the same.
      - The scratch files live in C(.virtkit-create-<name>) in O(lxc_path), one directory per
        container, locked while in use and removed afterwards. When a run was killed, the next
        run removes the one it left (only if it holds nothing but the files this module writes), and
        a container whose C(lxc-create) was interrupted (LXC's C(partial) marker is still there, with
        no C(lxc-create) running) is destroyed with C(lxc-destroy) and created again. The same holds
        for containers created from a O(template). The half-created container is checked again just
        before C(lxc-destroy); if another run made it again meanwhile, the module fails and keeps it.
      - O(lxc_path) must be on a file system with C(flock) locks; otherwise the module fails in one
        line naming the file it could not lock.
      - Mutually exclusive with O(template), O(template_options) and O(clone_from).
    type: path
  template_options:
    description:
      - Arguments for the template, passed after C(--) as a list, for example
        V([--dist, debian, --release, bookworm, --arch, amd64]) for V(download) or
        V([--release, bookworm]) for V(debian).
    type: list
    elements: str
    default: []
  backing_store:
    description: The backing store of a new container (C(lxc-create -B)).
    type: str
    choices: [dir, btrfs, lvm, zfs, overlayfs, loop]
    default: dir
  backing_store_options:
    description:
      - Options of the backing store (C(lxc-create --dir/--vgname/...)).
      - With O(clone_from) only O(backing_store_options.fssize) applies (C(lxc-copy -L)); the
        others are refused.
    type: dict
    suboptions:
      dir:
        description: The rootfs directory (dir backing store).
        type: path
      vgname:
        description: The LVM volume group.
        type: str
      lvname:
        description: The LVM logical volume name.
        type: str
      thinpool:
        description: The LVM thin pool.
        type: str
      fstype:
        description: The file system of a block backing store.
        type: str
      fssize:
        description: The size of a block backing store, for example V(2G).
        type: str
      zfsroot:
        description: The ZFS root.
        type: str
  clone_from:
    description:
      - Create the container as a copy of this (existing) container with C(lxc-copy) instead
        of a template. A running source is stopped for the copy and started again (unless
        O(clone_snapshot=true), which copies it running); a frozen one is thawed, stopped,
        started and frozen again.
      - O(backing_store) (C(-B)) and O(backing_store_options.fssize) (C(-L)) apply to the copy.
      - An interrupted clone converges on the next run. C(lxc-copy) leaves no marker of its own
        (a killed copy leaves a container whose config has no C(lxc.rootfs.path) yet and whose
        rootfs is partly copied), so the module records each clone in
        C(<lxc_path>/.virtkit-clone-<name>) before it touches the source, holds a lock on it
        while it runs and removes it when the clone is complete and the source is back. A rerun
        that finds it destroys the half-made clone and clones again (actions C(destroy),
        C(drop_clone_marker), C(clone), listed in check mode too), and starts (and freezes)
        again a source the interrupted run had stopped and that is still stopped (action
        C(restore_source)); this happens whatever O(state) asks for the clone.
      - Only a half-made clone is destroyed, never a complete container; one whose config names a
        root file system is kept and only the marker goes. While a run holds the marker or an
        C(lxc-copy) or its C(rsync) still works on the container, the module fails and changes
        nothing; a marker it did not write is named and left alone. A run holds the marker it read
        for its whole run, so of two reruns started together one recovers and the other fails
        in one line without touching anything. The files a config includes (C(lxc.include)) are read
        too; one that sets C(lxc.rootfs.path) makes the container complete (kept), and one that
        cannot be read makes the module fail in one line instead of destroying anything.
      - Only for O(backing_store=dir) and O(backing_store=overlayfs) does C(lxc-destroy) remove a
        half-made clone in full. On V(lvm), V(zfs), V(btrfs) or V(loop) the half-made clone's config
        names no storage, so C(lxc-destroy) would leave the logical volume, dataset, subvolume or
        image behind; the rerun then fails in one line naming what to remove by hand (for example
        the logical volume C(/dev/lxc/<name>), C(lxc.bdev.lvm.vg) and C(lxc.bdev.zfs.root) of
        C(/etc/lxc/lxc.conf) taken into account) and the container directory; the marker stays, so
        the run after that starts the source again and clones.
    type: str
  clone_snapshot:
    description: Make an overlay snapshot clone (C(lxc-copy -s)) instead of a full copy.
    type: bool
    default: false
  limits:
    description:
      - Resource limits; each maps to the cgroup version the host runs for its controller.
      - An omitted limit leaves the config alone.
    type: dict
    suboptions:
      memory:
        description: Memory limit; an integer in MiB or a size such as V(512MiB), V(1G).
        type: raw
      memory_swap:
        description: Memory plus swap limit (needs O(limits.memory)); same units.
        type: raw
      cpu_shares:
        description: The relative CPU weight as v1 shares (2-262144, default of the kernel 1024);
          converted to C(cpu.weight) on cgroup v2.
        type: int
      cpus:
        description: CPU quota in CPUs, for example V(0.5) (C(cfs_quota_us) / C(cpu.max)).
        type: float
      cpuset:
        description: The CPUs the container may run on, for example V(0-1,3).
        type: str
      pids:
        description: The maximum number of tasks.
        type: int
  networks:
    description:
      - The container's network interfaces in order (C(lxc.net.0), C(lxc.net.1), ...). When set,
        every C(lxc.net.*) key is owned; a generated C(hwaddr) is kept where none is given.
      - An empty list removes all interfaces (the container gets only loopback).
    type: list
    elements: dict
    suboptions:
      type:
        description: V(veth) (on a bridge), V(macvlan), V(phys), V(empty) (loopback only) or
          V(none) (share the host's network).
        type: str
        choices: [veth, macvlan, phys, none, empty]
        default: veth
      link:
        description: The host bridge (veth) or interface (macvlan, phys).
        type: str
      name:
        description: The interface name inside the container.
        type: str
      hwaddr:
        description: The MAC address (C(xx) placeholders allowed).
        type: str
      mtu:
        description: The MTU.
        type: int
      macvlan_mode:
        description: The macvlan mode.
        type: str
        choices: [private, vepa, bridge, passthru]
      ipv4:
        description:
          - Static IPv4 addresses with prefix, for example V(10.0.3.10/24). They are written with
            their broadcast address (C(lxc.net.N.ipv4.address = 10.0.3.10/24 10.0.3.255)); without
            it LXC 5.0 sets the broadcast to the host part of the netmask (C(0.0.0.255)).
          - The guest's own DHCP client is turned off for this NIC where the rootfs layout is known
            (see the description); elsewhere one warning says the address may not stick.
          - A NIC with static addresses and no O(networks[].hwaddr) (and none in the config) gets a
            fixed MAC, C(00:16:3e:) and three bytes derived from the container name and the NIC
            index, since LXC would otherwise make up a new MAC at every start and the host's ARP cache
            would point at the old one for a while after a restart.
        type: list
        elements: str
      ipv4_gateway:
        description: The IPv4 gateway (or V(auto)).
        type: str
      ipv6:
        description: Static IPv6 addresses with prefix.
        type: list
        elements: str
      ipv6_gateway:
        description: The IPv6 gateway (or V(auto)).
        type: str
  mounts:
    description:
      - Bind mounts, matched by O(mounts[].target); other C(lxc.mount.entry) lines stay.
      - Every source is checked on the LXC host before anything changes, in check mode too. A
        source that does not exist is refused in one line naming O(mounts[].source), unless
        O(mounts[].optional=true).
      - When the container exists, its root file system is a directory on the host and the run
        starts it, a target that would make the start fail is refused before anything changes.
        That is a target missing with O(mounts[].create=false), or one of the other type than its
        source (a directory source on a file). Otherwise a start that fails on a mount fails the
        task with one line naming the mount (C(mounts[i]) and its target), what LXC logged and
        the option that fixes it.
    type: list
    elements: dict
    suboptions:
      source:
        description: The host path (required unless O(mounts[].state=absent)).
        type: str
      target:
        description: The path inside the container.
        type: str
        required: true
      readonly:
        description: Mount read-only.
        type: bool
        default: false
      create:
        description:
          - Whether LXC creates a missing target in the container's root file system at each start
            (C(create=dir) or C(create=file) in the entry). A created target stays in the root file
            system (an empty directory or file).
          - Omitted or V(true) (the default) creates a directory when the source is a directory and a
            file otherwise (a file, a device node). This needs the source to exist, so a missing
            O(mounts[].optional) source with create omitted is refused; name V(dir) or V(file) for it.
          - V(dir) or V(file) creates that type; it must match the source (a directory source needs
            V(dir)).
          - V(false) creates nothing. The target must then exist in the root file system, or the
            start fails (unless O(mounts[].optional=true)).
          - Entries written by earlier versions, which had no default, get C(create=) on their next
            run (reported as changed). A running container needs no restart for that, so it is not
            in RV(pending_restart_fields).
        type: raw
      optional:
        description:
          - Do not fail the start when the mount fails (LXC skips it); the source need not exist.
        type: bool
        default: false
      state:
        description: V(absent) removes the mount entry with this target.
        type: str
        choices: [present, absent]
        default: present
  autostart:
    description: Start the container with the host (C(lxc.start.auto)).
    type: bool
  autostart_order:
    description: The autostart order (C(lxc.start.order)).
    type: int
  autostart_delay:
    description: Seconds to wait after starting this container (C(lxc.start.delay)).
    type: int
  groups:
    description: The container's groups (C(lxc.group)); exactly this list when set.
    type: list
    elements: str
  unprivileged:
    description:
      - Create a root-owned unprivileged container, mapping ids through C(lxc.idmap) from root's
        ranges in C(/etc/subuid) and C(/etc/subgid). Only at creation.
    type: bool
  config:
    description:
      - Raw config keys for anything else, a value or a list of values. A key also set by a
        typed option is refused; use O(mounts) for C(lxc.mount.entry).
      - A key that holds one value (for example C(lxc.apparmor.profile)) is set to exactly the
        value given, replacing the lines it has.
      - A key whose lines add up in LXC (C(lxc.include), C(lxc.idmap), C(lxc.mount.auto),
        C(lxc.cap.drop), C(lxc.cap.keep), C(lxc.environment), C(lxc.group), C(lxc.apparmor.raw),
        C(lxc.hook.*), C(lxc.cgroup.devices.allow) and C(.deny), C(lxc.cgroup2.devices.allow)
        and C(.deny), C(lxc.net.N.ipv4.address) and C(ipv6.address)) only gets the lines given that
        it does not hold yet; its other lines stay. So setting C(lxc.include) to
        C(/usr/share/lxc/config/nesting.conf) adds that include and keeps the template's.
        To drop lines of such a key, set O(config_exclusive=true).
    type: dict
  config_exclusive:
    description:
      - Remove every config key not set by this task, except the keys a container needs to
        boot (rootfs, uts name, includes, signals, tty, capabilities, apparmor, mounts, idmap,
        init, console, seccomp, hooks, logging). Networks count as unmanaged unless O(networks) is set.
      - A key given in O(config) then holds exactly the values given, also a key whose lines
        add up; for example C(lxc.include) given here must list the template's includes too.
    type: bool
    default: false
  restart_policy:
    description: Restart a running container whose config changed (V(if_needed)) or only
      report it (V(never)).
    type: str
    choices: [never, if_needed]
    default: never
  start_timeout:
    description: Seconds to wait for the RUNNING state after a start.
    type: int
    default: 30
  stop_timeout:
    description: Seconds to wait for a clean shutdown.
    type: int
    default: 30
  force_stop:
    description: Kill the container when it did not stop within O(stop_timeout).
    type: bool
    default: false
  wait_for_ip:
    description: Wait until the running container has an address.
    type: bool
    default: false
  wait_for_ip_interfaces:
    description: Wait until each of these interfaces has an address (implies O(wait_for_ip)).
    type: list
    elements: str
  wait_for_ip_timeout:
    description: Seconds to wait for the address.
    type: int
    default: 60
notes:
  - Addresses are read from the container's C(/proc/<init pid>/net), without a subprocess.
seealso:
  - module: virtkit.guests.lxc_container_info
  - module: virtkit.guests.lxc_snapshot
  - module: virtkit.guests.lxc_exec
'''

EXAMPLES = r'''
- name: A busybox container with limits, a static address and a bind mount
  virtkit.guests.lxc_container:
    name: web1
    template: busybox
    state: started
    limits:
      memory: 256MiB
      cpus: 0.5
      pids: 200
    networks:
      - type: veth
        link: lxcbr0
        ipv4: [10.0.3.50/24]
        ipv4_gateway: 10.0.3.1
    mounts:
      - source: /srv/web1           # a directory: /srv/www is created in the container if missing
        target: /srv/www
      - source: /etc/web1/app.conf  # a file: an empty /etc/app.conf is made to mount it on
        target: /etc/app.conf
        readonly: true
      - source: /srv/cache          # the target must already exist in the rootfs
        target: /var/cache/app
        create: false
    autostart: true
    wait_for_ip: true

- name: A Debian container from the download template
  virtkit.guests.lxc_container:
    name: deb1
    template: download
    template_options: [--dist, debian, --release, bookworm, --arch, amd64]
    state: started

- name: A container from a local rootfs tarball (config written before its first start)
  virtkit.guests.lxc_container:
    name: app1
    rootfs_tarball: /srv/images/app-rootfs.tar.xz
    config:
      lxc.signal.halt: SIGUSR1
    networks:
      - link: lxcbr0
        ipv4: [10.0.3.60/24]
        ipv4_gateway: 10.0.3.1
    state: started

- name: Raise the memory limit and restart if needed
  virtkit.guests.lxc_container:
    name: web1
    limits:
      memory: 512MiB
    restart_policy: if_needed

- name: A clone of web1
  virtkit.guests.lxc_container:
    name: web2
    clone_from: web1
    state: started

- name: Remove it
  virtkit.guests.lxc_container:
    name: web2
    state: absent
'''

RETURN = r'''
actions:
  description: What the run did (or would do in check mode), in order.
  returned: always
  type: list
  elements: dict
  sample: [{action: create, summary: create web1 from the busybox template (dir backing store)}]
pending_restart:
  description: Whether the running container's config changed in a way only a restart applies.
  returned: always
  type: bool
pending_restart_fields:
  description: The config keys that wait for a restart, and C(rootfs PATH) for each rootfs file edited since the
    running container started.
  returned: always
  type: list
  elements: str
  sample: [lxc.cgroup.memory.limit_in_bytes]
container:
  description: The container after the run (empty after O(state=absent)).
  returned: always
  type: dict
  contains:
    name:
      description: The name.
      type: str
    state:
      description: V(running), V(stopped) or V(frozen).
      type: str
    pid:
      description: The init process id on the host (null when stopped).
      type: int
    ips:
      description:
        - All addresses (IPv4 first), read from the container's network namespace after the run
          (not from the config); after a start, once the NICs with static addresses have settled.
      type: list
      elements: str
    ipv4:
      description: The IPv4 addresses.
      type: list
      elements: str
    ipv6:
      description: The global IPv6 addresses.
      type: list
      elements: str
    interfaces:
      description: The addresses per interface name, each with C(ipv4) and C(ipv6) lists.
      type: dict
    config_path:
      description: The config file.
      type: str
    lxc_path:
      description: The container directory.
      type: str
    autostart:
      description: Whether C(lxc.start.auto) is on.
      type: bool
    unprivileged:
      description: Whether the container maps ids (C(lxc.idmap)).
      type: bool
    limits:
      description: The limits in force, read from the running container's cgroup files
        (bytes, shares, CPUs, cpuset, pids) and the cgroup directories.
      type: dict
    managed_config:
      description: The config keys this task manages, with their values.
      type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager
from ansible_collections.virtkit.guests.plugins.module_utils._resource import run_module
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.spec import ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    run_module(module, lambda: ContainerManager(lxc_path=module.params['lxc_path']).run(
        module.params, check_mode=module.check_mode))


if __name__ == '__main__':
    main()
