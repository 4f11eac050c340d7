# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""XML-derived facts about a domain, shared by libvirt_domain and libvirt_domain_info."""

from __future__ import annotations

from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.devices import (
    agent_channels, disk_target, nic_mac, nic_source)

STATE_NAMES = {0: 'nostate', 1: 'running', 2: 'running', 3: 'paused', 4: 'running',
               5: 'shutoff', 6: 'crashed', 7: 'pmsuspended'}


def xml_facts(root):
    """Facts read from one domain XML document (live XML for a running guest)."""
    vcpu = root.find('vcpu')
    max_vcpus = int(vcpu.text) if vcpu is not None and vcpu.text else None
    os_type = root.find('os/type')
    disks = []
    for el in root.findall('devices/disk'):
        src = el.find('source')
        driver = el.find('driver')
        target = el.find('target')
        disks.append({
            'target': disk_target(el),
            'device': el.get('device'),
            'bus': target.get('bus') if target is not None else None,
            'type': el.get('type'),
            'source': dict((k, v) for k, v in (src.attrib.items() if src is not None else [])
                           if k in ('file', 'dev', 'pool', 'volume')),
            'format': driver.get('type') if driver is not None else None,
            'readonly': el.find('readonly') is not None,
        })
    interfaces = []
    for el in root.findall('devices/interface'):
        model = el.find('model')
        interfaces.append({
            'mac': nic_mac(el),
            'type': el.get('type'),
            'source': nic_source(el),
            'model': model.get('type') if model is not None else None,
            'addresses': [],
        })
    mem = xmerge.read_kib(root.find('memory'))
    cur = xmerge.read_kib(root.find('currentMemory')) or mem
    title = root.find('title')
    description = root.find('description')
    agent = agent_channels(root.find('devices')) if root.find('devices') is not None else []
    return {
        'name': root.findtext('name'),
        'uuid': root.findtext('uuid'),
        'virt_type': root.get('type'),
        'arch': os_type.get('arch') if os_type is not None else None,
        'machine': os_type.get('machine') if os_type is not None else None,
        'firmware': 'uefi' if root.find('os').get('firmware') == 'efi' or root.find('os/loader') is not None
        else 'bios',
        'memory_mib': cur // 1024 if cur else None,
        'max_memory_mib': mem // 1024 if mem else None,
        'vcpus': int(vcpu.get('current') or max_vcpus) if vcpu is not None else None,
        'max_vcpus': max_vcpus,
        'title': title.text if title is not None else None,
        'description': description.text if description is not None else None,
        'metadata': xmerge.read_metadata(root),
        'disks': disks,
        'interfaces': interfaces,
        'guest_agent': bool(agent),
    }
