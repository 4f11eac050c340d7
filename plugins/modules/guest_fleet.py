#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: guest_fleet
short_description: Converge a declarative list of KVM guests and LXC containers in parallel
version_added: 0.1.0
description:
  - Takes the whole list of guests of a host and converges it in one module run, over one
    libvirt connection, with the same code the single-resource modules use
    (M(virtkit.guests.libvirt_volume), M(virtkit.guests.cloud_init_seed),
    M(virtkit.guests.libvirt_domain), M(virtkit.guests.lxc_container)). Ten guests take
    about as long as the slowest one.
  - "Phases: 1. validation of every guest before anything is touched (all errors, one line per
    bad guest); 2. shared base images, imported once per pool; 3. per guest, in O(parallel)
    threads: KVM overlay, extra disks, cloud-init seed and domain, or the LXC container;
    4. one wait of at most O(wait_timeout) seconds for all running guests to have an address;
    5. results for every guest, in input order."
  - A failure of one guest does not stop the others; the module fails at the end with one line
    per failed guest and still returns every guest's result.
  - Check mode runs the managers' check modes and reports the whole fleet's drift; a guest whose
    disks or seed would first be created is reported as to be defined.
author:
  - virtkit.guests developers (!UNKNOWN)
extends_documentation_fragment:
  - virtkit.guests.libvirt
  - virtkit.guests.lxc
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  action_group:
    support: full
    membership:
      - virtkit.guests.libvirt
      - virtkit.guests.lxc
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One before/after text for the fleet, with a section per guest and resource that
      would change (the single modules' diffs).
  platform:
    platforms: posix
options:
  pool:
    description:
      - The libvirt storage pool for base images, overlays, extra disks and seeds.
      - It must exist and run (see M(virtkit.guests.libvirt_pool)).
    type: str
    default: default
  guests:
    description:
      - The guests, each a dict. Names must be unique across the list.
      - "Common keys: C(name) (required), C(kind) (V(kvm) or V(lxc), required), C(state)
        (V(running) (default), V(stopped), V(present) = defined or created with its power state
        untouched, V(absent)), C(groups) (inventory groups, passed through to the result),
        C(autostart), C(wait_for_ip) (default true for running guests; for KVM guests with
        a network-config C(networks[].ip) the default is false and RV(guests[].ip) is the
        configured address unless the wait reads the guest's own, for example with
        C(wait_for_ip=true) and C(domain.ip_sources=[agent])), C(host_vars) (passed through into
        RV(guests[].host_vars))."
      - "KVM keys: C(image) (C(url) or C(path) of the base image, imported once per pool with
        its C(checksum) (V(sha256:<hex>) or V(sha256:<url of SHA256SUMS>)), optional C(format)
        and C(name) (the base volume's name, default the file name); C(path) is a file on the
        host that runs the module; with only C(name), an existing volume of the pool is used),
        C(disk_size) (the guest's root disk is the qcow2 overlay C(<name>.qcow2) on the base
        volume, this size or the base's; never shrunk), C(memory) (default V(512MiB)),
        C(vcpus) (default V(1)), C(virt_type), C(firmware), C(boot), C(metadata),
        C(description) (as in M(virtkit.guests.libvirt_domain)), C(networks) (list of
        C(network) or C(bridge), C(mac), C(model), C(ip), C(gateway), C(dns), C(address_mode);
        default one NIC on network V(default)), C(disks) (extra disks: C(name), C(size),
        C(format) (V(qcow2) default or V(raw)), C(bus); volumes C(<guest>-<name>.<format>)
        attached after the root disk), C(cloud_init), C(remove_storage), C(domain)."
      - "C(cloud_init): V(false) or absent for no seed, or a dict with C(user_data) (raw text or
        a dict; wins over the shortcuts), C(users), C(ssh_authorized_keys) (to the default user
        and to each user without keys of its own), C(packages), C(runcmd), C(hostname) (default
        the guest's name), C(network_config) (wins over the one derived from C(networks[].ip)).
        The seed is the volume C(<guest>-seed.iso) in O(pool) on a cdrom; its instance-id is
        stable, so cloud-init runs once per guest."
      - "C(networks[].ip) declares a static address. When a NIC of the guest has an C(ip), each NIC
        without C(mac) gets a stable MAC derived from the guest's name and the NIC's position; a MAC
        two NICs of the fleet would share is refused at validation. An existing guest whose NIC
        lacks the derived MAC (made before the C(ip) was added) is refused in one line naming the
        MAC to set as C(mac), instead of getting a second NIC. C(address_mode) says how
        the address reaches the guest: V(cloud_init) (the default) writes it, with C(gateway) and
        C(dns), into the seed's cloud-init network-config (version 2, matched by MAC; C(ip) in CIDR
        form), so it needs C(cloud_init) not to be V(false); the guest configures it itself and
        runs no DHCP client on that NIC."
      - "C(address_mode=dhcp_reservation) is for images without cloud-init: the address (IPv4,
        optionally with the subnet's prefix) becomes a DHCP host entry (MAC -> IP, host name the
        guest's name when it is a valid host name) of the libvirt network C(network) the NIC is
        on, added live and persistently (no network restart) before the guest is defined, so its
        first DHCP request gets it. The guest's own DHCP client then keeps it across restarts.
        Only networks a NIC names with this mode are edited. Refused in one line before anything
        of the guest is created when the network does not exist, has no DHCP range in its first
        IPv4 subnet or the address lies outside that subnet, or the address (or host name) is
        reserved for or leased to another MAC, or by another guest of the fleet. C(gateway) and
        C(dns) come from the network and cannot be set. With a seed, its network-config runs DHCP
        on each NIC (matched by MAC). State V(absent) removes the reservations of the NICs the
        entry still lists (keep C(networks) in the entry); a reservation the entry no longer
        declares is left in the network and named in a warning. The guest is waited for by default and
        RV(guests[].ip) is the lease it really took; when a running guest holds another address
        (it took a lease before the reservation existed or changed), a warning says so."
      - "C(remove_storage) (default V(false)): with state V(absent), also delete the overlay,
        the extra disks and the seed, never the shared base image."
      - "C(domain): any further M(virtkit.guests.libvirt_domain) option, merged last
        (C(disks) and C(interfaces) are appended to the generated ones), for example
        C(xml_overrides), C(guest_agent), C(rng), C(serial), C(ip_sources)."
      - "LXC keys, as in M(virtkit.guests.lxc_container): C(template) (default V(busybox)),
        C(template_options), C(clone_from), C(limits), C(networks), C(mounts), C(config),
        C(unprivileged), C(backing_store), and C(container), any further lxc_container option,
        merged last. C(mounts) create their targets by default (C(create) V(false) opts out) and
        a missing C(mounts[].source) is one of the validation errors reported before anything
        changes. C(remove_storage) is accepted for containers too and changes nothing:
        removing a container always deletes its root file system."
      - "A container's static C(networks[].ipv4) addresses stick as in
        M(virtkit.guests.lxc_container) (its own DHCP client is turned off in the rootfs where the
        layout is known; otherwise, or when the container ends up with another address, the run
        warns once for it); RV(guests[].ip) is the address the container has after it settled."
    type: list
    elements: dict
    required: true
  defaults:
    description:
      - Guest keys merged under every guest of a kind; the guest wins, dicts (for example
        C(cloud_init)) are merged one level deep, lists are replaced.
    type: dict
    default: {}
    suboptions:
      kvm:
        description: Defaults for guests of kind V(kvm).
        type: dict
        default: {}
      lxc:
        description: Defaults for guests of kind V(lxc).
        type: dict
        default: {}
  restart_policy:
    description:
      - Passed to the domain and container managers. V(if_needed) restarts a running guest
        when a change needs it; V(never) reports it in RV(guests[].pending_restart_fields).
    type: str
    choices: [never, if_needed]
    default: never
  wait_timeout:
    description: One deadline, in seconds, for all running guests to have an address.
    type: int
    default: 300
  parallel:
    description: Worker threads for the per-guest phase.
    type: int
    default: 10
  only:
    description:
      - Limit the run to these guest names; the others are validated but left untouched and
        not reported.
    type: list
    elements: str
notes:
  - Base images are imported with the same import record as M(virtkit.guests.libvirt_volume)
    (download cache C(/var/cache/virtkit/images)), so a rerun downloads nothing.
  - The cloud-init contents are part of the module's arguments; use C(no_log) on the task when
    they hold secrets. Results carry only digests of the seeds.
  - Removing a guest never deletes the shared base image.
seealso:
  - module: virtkit.guests.libvirt_domain
  - module: virtkit.guests.lxc_container
  - module: virtkit.guests.libvirt_volume
  - module: virtkit.guests.cloud_init_seed
'''

EXAMPLES = r'''
- name: Two KVM guests from one base image and two containers
  virtkit.guests.guest_fleet:
    pool: default
    defaults:
      kvm:
        image:
          url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
          checksum: sha512:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS
        memory: 1GiB
        cloud_init:
          users:
            - name: admin
              sudo: ALL=(ALL) NOPASSWD:ALL
          ssh_authorized_keys:
            - "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    guests:
      - name: web1
        kind: kvm
        disk_size: 10GiB
        groups: [web]
      - name: db1
        kind: kvm
        vcpus: 2
        networks:
          - network: default
            ip: 192.168.122.50/24
            gateway: 192.168.122.1
            dns: [192.168.122.1]
        disks:
          - name: data
            size: 20GiB
      - name: cache1
        kind: lxc
        limits:
          memory: 256MiB
      - name: cache2
        kind: lxc
  register: fleet

# add_host takes the host variables as its own arguments: one dict with name and groups.
- name: Add the running guests to the inventory
  ansible.builtin.add_host: "{{ item.host_vars | combine({'name': item.name, 'groups': item.groups + [item.kind]}) }}"
  loop: "{{ fleet.guests | selectattr('ip') | list }}"
  loop_control:
    label: "{{ item.name }}"

- name: A guest from an image without cloud-init, its address reserved on the network lab
  virtkit.guests.guest_fleet:
    guests:
      - name: appliance1
        kind: kvm
        image: {name: appliance.qcow2}
        cloud_init: false
        networks:
          - network: lab
            ip: 192.168.150.30
            address_mode: dhcp_reservation

- name: Remove one guest with its overlay, disks and seed
  virtkit.guests.guest_fleet:
    guests:
      - name: db1
        kind: kvm
        state: absent
        remove_storage: true
'''

RETURN = r'''
changed:
  description: Whether any guest or base image changed (would change in check mode).
  returned: always
  type: bool
guests:
  description: Every guest of the run, in input order (only those named in O(only) when set).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The guest's name.
      type: str
    kind:
      description: V(kvm) or V(lxc).
      type: str
    state:
      description: The actual state after the run (V(running), V(stopped), V(paused), V(frozen), V(absent));
        in check mode the current state.
      type: str
    changed:
      description: Whether anything of this guest changed.
      type: bool
    actions:
      description: What was done (or would be done), each prefixed with the resource.
      type: list
      elements: str
    pending_restart:
      description: Whether changes wait for the next restart of the guest.
      type: bool
    pending_restart_fields:
      description: The fields that wait for a restart.
      type: list
      elements: str
    ip:
      description: The first IPv4 address, or null.
      type: str
    addresses:
      description: Every address found.
      type: list
      elements: str
    groups:
      description: The guest's C(groups), passed through.
      type: list
      elements: str
    host_vars:
      description:
        - The guest's C(host_vars) plus C(ansible_host) (the address) and the connection variables
          (C(ansible_connection=ssh) and C(ansible_user) for KVM guests with a cloud-init user;
          C(ansible_connection=virtkit.guests.lxc), C(ansible_lxc_name) and C(ansible_lxc_path)
          for containers), ready for M(ansible.builtin.add_host).
      type: dict
    failed:
      description: Whether this guest failed.
      type: bool
    error:
      description: The one-line error of a failed guest.
      type: str
      returned: when the guest failed
    domain:
      description: The facts of a KVM guest, as M(virtkit.guests.libvirt_domain) returns them.
      type: dict
      returned: for KVM guests
    container:
      description: The facts of a container, as M(virtkit.guests.lxc_container) returns them.
      type: dict
      returned: for LXC guests
  sample:
    - name: web1
      kind: kvm
      state: running
      changed: true
      actions: ['overlay web1.qcow2: create a qcow2 overlay on /var/lib/libvirt/images/debian.qcow2',
                'domain: define web1', 'domain: start web1']
      pending_restart: false
      pending_restart_fields: []
      ip: 192.168.122.31
      addresses: [192.168.122.31]
      groups: [web]
      host_vars: {ansible_host: 192.168.122.31, ansible_connection: ssh, ansible_user: admin}
      failed: false
      domain: {}
failed_guests:
  description: Names of the guests that failed.
  returned: always
  type: list
  elements: str
errors:
  description: "One line per failed guest: C(guests[<index>] (<name>): <error>)."
  returned: always
  type: list
  elements: str
summary:
  description: Counts of guests created, changed, unchanged, removed and failed.
  returned: always
  type: dict
  sample: {created: 2, changed: 0, unchanged: 2, removed: 0, failed: 0}
images:
  description: The shared base images with what was done to each.
  returned: always
  type: list
  elements: dict
  sample: [{name: debian.qcow2, pool: default, changed: false, actions: [], guests: [web1, db1]}]
timings:
  description:
    - Seconds since the start of the run at the end of each phase (V(images), V(guests), V(wait)),
      in V(converged) for each guest when its own part of the guest phase (create, start) ended,
      and in V(addresses) for each guest waited for, when its address was found.
  returned: always
  type: dict
  sample: {images: 0.01, guests: 1.9, wait: 14.2, converged: {web1: 1.2, cache1: 1.9}, addresses: {web1: 14.2, cache1: 3.1}}
diff:
  description: Before and after texts for the fleet, one section per guest and resource that changed.
  returned: when diff mode is on
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import require_libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._seed import require_libs
from ansible_collections.virtkit.guests.plugins.module_utils._fleet.engine import FleetEngine
from ansible_collections.virtkit.guests.plugins.module_utils._fleet.spec import (
    ARGUMENT_SPEC, FleetValidationError, validate_fleet)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        plans, bases = validate_fleet(module.params)
    except FleetValidationError as err:
        module.fail_json(msg=err.message, errors=err.lines, failed_guests=[], guests=[], changed=False)
    except VirtkitError as err:
        module.fail_json(msg=str(err))
    if any(plan.kind == 'kvm' for plan in plans):
        require_libvirt(module)
    if any(plan.seed is not None for plan in plans):
        require_libs(module)
    try:
        result = FleetEngine(module.params, check_mode=module.check_mode).run(plans, bases)
    except VirtkitError as err:
        module.fail_json(msg=str(err))
    for warning in result.pop('warnings'):
        module.warn(warning)
    if not module._diff:
        result.pop('diff', None)
    if result['failed_guests']:
        module.fail_json(msg='\n'.join(result['errors']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
