# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: guest_inventory
short_description: Every KVM guest and LXC container of a list of hypervisors
version_added: 0.1.0
description:
  - One host per KVM/QEMU guest (read through libvirt) and per LXC container (read with the LXC
    tools, on this host or over SSH on the LXC host) of every hypervisor listed in O(hypervisors).
  - Each hypervisor is read in bulk over one connection (libvirt) or one C(lxc-ls) call plus file
    reads (LXC; one SSH round trip for a remote LXC host). An unreachable hypervisor gives a warning
    naming it and the cause, and the others are still listed, unless O(fail_on_unreachable) is set.
  - "Host variables: C(virtkit_kind) (V(kvm) or V(lxc)), C(virtkit_hypervisor), C(virtkit_state)
    (V(running), V(paused), V(shutoff), ...; a frozen container is V(paused), a stopped one
    V(shutoff)), C(virtkit_autostart), C(virtkit_vcpus) (a container's CPU quota when it has one),
    C(virtkit_memory_mib) (a container's memory limit when it has one), C(virtkit_addresses) (every
    address with C(interface), C(mac), C(network), C(family), C(prefix) and the C(source) it came
    from), C(virtkit_interfaces), C(virtkit_metadata) (the key/values C(virtkit.guests.libvirt_domain)
    stores in the domain's metadata), C(virtkit_groups) (the declared groups), for VMs
    C(virtkit_uri) and C(virtkit_uuid), for containers C(virtkit_lxc_path) and C(virtkit_lxc_config)
    (the C(lxc.start.*), C(lxc.group), C(lxc.cgroup*), C(lxc.net.*) keys and a few more)."
  - C(ansible_host) is the chosen address (see O(preferred_networks)); C(ansible_connection) is
    O(kvm_connection) for VMs and O(lxc_connection) for containers, and containers also get
    C(ansible_lxc_name), C(ansible_lxc_path) and, for a remote LXC host, C(ansible_lxc_host) and its SSH
    settings, so C(virtkit.guests.lxc) reaches them through their host. O(hypervisors[].vars),
    O(compose) or ordinary group and host vars override any of them.
  - "Groups: V(kvm), V(lxc), C(hypervisor_<name>), C(state_<state>) and every group the guest declares
    (the C(groups) key of the metadata C(virtkit.guests.libvirt_domain) stores, as a list or a
    comma-separated string; a container's C(lxc.group) values), plus those made by O(groups) and
    O(keyed_groups)."
  - Strings read from the guests (names, metadata, declared groups, guest-agent interface names and
    addresses, container config values) are never templates, on every supported ansible-core
    (marked unsafe on 2.17 and 2.18; untrusted by core's data tagging on 2.19 and newer), so a guest
    cannot make the controller evaluate a template. Values of O(hypervisors[].vars) and O(compose) are
    the inventory file's own and are templated as usual.
author:
  - virtkit.guests developers (!UNKNOWN)
requirements:
  - libvirt-python (python3-libvirt) and lxml on the controller for libvirt hypervisors
  - the LXC tools on the LXC host (on the controller for a local LXC host)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as an inventory source of this plugin.
    type: str
    required: true
    choices: [virtkit.guests.guest_inventory]
  hypervisors:
    description:
      - The hypervisors to read. Each one has a libvirt O(hypervisors[].uri), an LXC host
        (O(hypervisors[].lxc)), or both.
    type: list
    elements: dict
    default: [{uri: 'qemu:///system'}]
    suboptions:
      name:
        description:
          - The hypervisor's name in C(virtkit_hypervisor), in the C(hypervisor_<name>) group and in
            host names made unique. Default the host of O(hypervisors[].uri), else
            O(hypervisors[].lxc_host), else V(localhost).
        type: str
      uri:
        description: A libvirt URI such as V(qemu:///system) or V(qemu+ssh://root@hv1/system).
        type: str
      lxc:
        description: List the LXC containers of this hypervisor too.
        type: bool
        default: false
      lxc_host:
        description:
          - The LXC host to reach over SSH (C(host) or C(user@host)); empty means the controller.
        type: str
      lxc_host_user:
        description: The SSH user on O(hypervisors[].lxc_host).
        type: str
      lxc_host_port:
        description: The SSH port of O(hypervisors[].lxc_host).
        type: int
      lxc_ssh_args:
        description: Extra C(ssh) arguments, for example V([-i, /path/key]).
        type: list
        elements: str
      lxc_ssh_executable:
        description: The SSH client used to reach O(hypervisors[].lxc_host).
        type: str
        default: ssh
      lxc_path:
        description: The container directory; default LXC's own (C(lxc.lxcpath), else V(/var/lib/lxc)).
        type: str
      vars:
        description: Variables set on every guest of this hypervisor (they win over the plugin's own).
        type: dict
  address_sources:
    description:
      - Where VM addresses come from, tried in order per NIC; V(lease) is one call per network
        for all guests, V(agent) and V(arp) one call per running guest that is still without an
        address. Container addresses are read from the container's C(/proc/<pid>/net).
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent]
  preferred_networks:
    description:
      - C(ansible_host) is the first address in the first of these CIDRs (V(10.0.0.0/8)) or
        network/bridge/interface names (V(default), V(eth0)) that has one; else the first IPv4
        address, else the first address.
    type: list
    elements: str
    default: []
  host_name:
    description:
      - V(name) names each host after its guest; when guests on different hypervisors share a name,
        the guest of the hypervisor listed first keeps it and the others become
        C(<name>.<hypervisor>) (C(<name>.<kind>.<hypervisor>) when a VM and a container share a name
        on one hypervisor), with a warning.
      - V(name_hypervisor) always uses C(<name>.<hypervisor>).
    type: str
    choices: [name, name_hypervisor]
    default: name
  include:
    description:
      - Only guests whose name matches one of these shell patterns (V(web*)). Guests left out by
        O(include), O(exclude) and O(states) are not read any further (no XML is fetched).
    type: list
    elements: str
    default: []
  exclude:
    description: Leave out guests whose name matches one of these shell patterns.
    type: list
    elements: str
    default: []
  states:
    description: Only guests in one of these states (V(running), V(paused), V(shutoff), ...).
    type: list
    elements: str
    default: []
  kvm_connection:
    description: C(ansible_connection) of VMs; empty sets none.
    type: str
    default: ssh
  lxc_connection:
    description: C(ansible_connection) of containers; empty sets none (and no C(ansible_lxc_*) variables).
    type: str
    default: virtkit.guests.lxc
  fail_on_unreachable:
    description: Fail when a hypervisor cannot be read, instead of warning and listing the others.
    type: bool
    default: false
  workers:
    description:
      - How many round trips may be in flight at once - hypervisors are read at the same time,
        and the per-guest XML of one libvirt hypervisor is fetched concurrently on its one
        connection. V(1) reads everything one after another.
    type: int
    default: 8
  timeout:
    description: Seconds an LXC host (the C(lxc-ls) call or the SSH round trip) may take.
    type: int
    default: 30
notes:
  - "The inventory file is YAML (C(.yml) or C(.yaml)) with C(plugin: virtkit.guests.guest_inventory);
    Ansible's C(auto) inventory plugin (enabled by default) finds this plugin from that key."
  - "AWX/Tower: commit the inventory file to a project, create an inventory source of type
    I(Sourced from a Project) pointing at the file, and run it in an execution environment that has
    this collection, libvirt-python and lxml (see C(meta/execution-environment.yml)). SSH keys for
    C(qemu+ssh://) URIs and remote LXC hosts come from a Machine credential or the EE's SSH config.
    Enable O(cache) to make repeated syncs of many hypervisors cheap."
'''

EXAMPLES = r'''
# fleet.virtkit.yml - list it with: ansible-inventory -i fleet.virtkit.yml --graph
plugin: virtkit.guests.guest_inventory
hypervisors:
  - uri: qemu:///system            # this host's VMs
    lxc: true                      # ... and its containers
  - name: hv1
    uri: qemu+ssh://root@hv1.example.com/system
    lxc: true
    lxc_host: hv1.example.com
    lxc_host_user: root
    vars:                          # reach hv1's NAT guests through hv1
      ansible_ssh_common_args: -o ProxyJump=root@hv1.example.com
address_sources: [lease, agent]
preferred_networks: [192.168.122.0/24]
exclude: ['vk-cache-*']
states: [running]
compose:
  ansible_user: virtkit_metadata.admin_user | default('debian')
keyed_groups:
  - key: virtkit_metadata.owner | default('nobody')
    prefix: owner
groups:
  big: virtkit_memory_mib is not none and virtkit_memory_mib >= 4096
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/virtkit-inventory-cache
cache_timeout: 300

# AWX/Tower: put the file above in your project (for example inventories/fleet.virtkit.yml),
# then Inventories > Add > Sources > Add: Source "Sourced from a Project", Project: yours,
# Inventory file: inventories/fleet.virtkit.yml, an execution environment with virtkit.guests,
# libvirt-python and lxml, and a Machine credential whose key opens the hypervisors.
'''

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

from ansible_collections.virtkit.guests.plugins.module_utils import _inventory
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.plugin_utils._untrusted import untrusted

display = Display()

SOURCE_KEYS = ('name', 'uri', 'lxc', 'lxc_host', 'lxc_host_user', 'lxc_host_port', 'lxc_ssh_args',
               'lxc_ssh_executable', 'lxc_path', 'vars')


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = 'virtkit.guests.guest_inventory'

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        return path.endswith(('.yml', '.yaml'))

    def _sources(self):
        sources = []
        for i, source in enumerate(self.get_option('hypervisors') or []):
            if not isinstance(source, dict):
                raise AnsibleParserError('hypervisors[%d] must be a mapping' % i)
            unknown = sorted(set(source) - set(SOURCE_KEYS))
            if unknown:
                raise AnsibleParserError('hypervisors[%d]: unknown key(s) %s (known: %s)'
                                         % (i, ', '.join(unknown), ', '.join(SOURCE_KEYS)))
            if not source.get('uri') and not source.get('lxc'):
                raise AnsibleParserError('hypervisors[%d] has neither uri nor lxc: true' % i)
            sources.append((_inventory.hypervisor_label(source), source))
        labels = [label for label, _s in sources]
        for label in labels:
            if labels.count(label) > 1:
                raise AnsibleParserError('two hypervisors are named %s: give them distinct names' % label)
        return sources

    def _collect(self, sources):
        """[(label, source, guests)] as plain data (what the cache holds).

        Hypervisors are read at the same time (up to O(workers)); a failure is reported
        after all were read, naming the hypervisor and the cause.
        """
        workers = max(1, self.get_option('workers'))
        address_sources = self.get_option('address_sources')
        timeout = self.get_option('timeout')
        include, exclude, states = self.get_option('include'), self.get_option('exclude'), self.get_option('states')

        def keep(name, state):
            return _inventory.matches({'name': name, 'state': state}, include, exclude, states)

        def read_one(item):
            label, source = item
            guests, errors = [], []
            if source.get('uri'):
                try:
                    guests.extend(_inventory.read_libvirt(source['uri'], address_sources, workers, keep))
                except VirtkitError as err:
                    errors.append(('libvirt', err))
            if source.get('lxc'):
                try:
                    guests.extend(_inventory.read_lxc(source, timeout))
                except VirtkitError as err:
                    errors.append(('LXC', err))
            return label, source, guests, errors

        collected = []
        for label, source, guests, errors in _inventory.parallel_map(read_one, sources, workers):
            for what, err in errors:
                msg = 'virtkit.guests.guest_inventory: hypervisor %s (%s) skipped: %s' % (label, what, err)
                if self.get_option('fail_on_unreachable'):
                    raise AnsibleError(msg)
                display.warning(msg)
            collected.append((label, dict((k, v) for k, v in source.items() if k != 'vars'), guests))
        return collected

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        sources = self._sources()
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        collected = None
        if use_cache:
            try:
                collected = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if collected is None:
            collected = self._collect(sources)
        if update_cache:
            self._cache[cache_key] = collected
        self._populate(collected, dict(sources))

    def _populate(self, collected, sources):
        options = dict((key, self.get_option(key)) for key in (
            'preferred_networks', 'host_name', 'include', 'exclude', 'states', 'kvm_connection',
            'lxc_connection'))
        data = []
        for label, source, guests in collected:
            full = dict(source, vars=(sources.get(label) or {}).get('vars'))
            # Everything a guest record holds was read from the guest (names, metadata, groups,
            # agent interface names, container config): never a template, on every core. The
            # options and hypervisors[].vars are the user's own and keep their templates.
            data.append((label, full, untrusted(guests)))
        hosts, clashes = _inventory.plan_hosts(data, options)
        for name, hypervisor in clashes:
            display.warning('virtkit.guests.guest_inventory: more than one guest is named %s; the one on %s '
                            'is listed as %s.%s' % (name, hypervisor, name, hypervisor))
        strict = self.get_option('strict')
        for name, hvars, groups in hosts:
            name = untrusted(name)  # a guest's name, maybe made unique with the hypervisor's
            self.inventory.add_host(name)
            for group in groups:
                group = self.inventory.add_group(self._sanitize_group_name(group))
                self.inventory.add_child(group, name)
            for key, value in hvars.items():
                self.inventory.set_variable(name, key, value)
            self._set_composite_vars(self.get_option('compose'), hvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), hvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), hvars, name, strict=strict)
