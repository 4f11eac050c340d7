# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure network code: validation, XML merge (checked by virt-xml-validate), live updates, plans."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils import _network as nw
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._xml import canonical, parse, to_string
from ansible_collections.virtkit.guests.tests.unit.helpers import schema_validator


def params(**options):
    result = ArgumentSpecValidator(nw.ARGUMENT_SPEC).validate(dict(options))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def spec_of(**options):
    return nw.validate(params(**options))


def validate_network_xml(text):
    """Assert that libvirt's network schema accepts ``text``."""
    tool = schema_validator()  # skips without the tools, fails in CI
    handle = tempfile.NamedTemporaryFile('w', suffix='.xml', prefix='virtkit-network-', delete=False)
    try:
        with handle:
            handle.write(text if isinstance(text, str) else to_string(text))
        proc = subprocess.run([tool, handle.name, 'network'], capture_output=True, text=True, timeout=60,
                              check=False)
    finally:
        os.unlink(handle.name)
    assert proc.returncode == 0, 'libvirt network schema rejects the XML: %s%s\n%s' % (
        proc.stdout, proc.stderr, text if isinstance(text, str) else to_string(text))


RICH = dict(
    name='lab', forward_mode='nat', forward_dev='eth0', bridge='vkbr250', domain='lab.internal', mtu=9000,
    ipv4={'address': '192.168.250.1/24',
          'dhcp_ranges': [{'start': '192.168.250.100', 'end': '192.168.250.199'},
                          {'start': '192.168.250.210', 'end': '192.168.250.220'}],
          'dhcp_hosts': [{'mac': '52:54:00:25:00:10', 'ip': '192.168.250.10', 'name': 'web1'},
                         {'mac': '52:54:00:25:00:11', 'ip': '192.168.250.11'}]},
    ipv6={'address': 'fd00:250::1/64',
          'dhcp_ranges': [{'start': 'fd00:250::100', 'end': 'fd00:250::1ff'}],
          'dhcp_hosts': [{'id': '0:1:0:1:18:aa:62:fe:0:16:3e:44:55:66', 'ip': 'fd00:250::10', 'name': 'web1'},
                         {'name': 'web2', 'ip': 'fd00:250::11'}]},
    dns_hosts=[{'ip': '192.168.250.5', 'hostnames': ['repo', 'repo.lab.internal']}],
    autostart=True,
)

CURRENT = '''<network connections='1'>
  <name>lab</name>
  <uuid>7a6e3c2b-1111-4c4c-9a9a-0123456789ab</uuid>
  <forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
  <bridge name='virbr7' stp='on' delay='0'/>
  <mac address='52:54:00:aa:bb:cc'/>
  <ip address='192.168.250.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.250.100' end='192.168.250.199'/>
      <host mac='52:54:00:25:00:10' name='web1' ip='192.168.250.10'/>
      <host mac='52:54:00:25:00:99' name='old' ip='192.168.250.99'/>
    </dhcp>
  </ip>
</network>'''


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize('options, message', [
    ({'ipv4': {'address': '192.168.250.1'}}, "lab: ipv4.address '192.168.250.1' needs a prefix length"),
    ({'ipv4': {'address': '192.168.250.300/24'}}, "lab: ipv4.address '192.168.250.300/24' is not an address"),
    ({'ipv4': {'address': 'fd00::1/64'}}, 'lab: ipv4.address fd00::1/64 is not an IPv4 address'),
    ({'ipv4': {'address': '192.168.250.0/24'}}, 'is the network or broadcast address'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_ranges': [{'start': '192.168.250.10', 'end': '192.168.251.5'}]}},
     'lab: ipv4 dhcp range end 192.168.251.5 is outside the subnet 192.168.250.0/24'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_ranges': [{'start': '192.168.250.50', 'end': '192.168.250.10'}]}},
     'starts after it ends'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_ranges': [{'start': '192.168.250.1', 'end': '192.168.250.10'}]}},
     "contains the network's own address"),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:00:00:01', 'ip': '192.168.250.10'},
        {'mac': '52:54:00:00:00:01', 'ip': '192.168.250.11'}]}},
     'lab: ipv4 dhcp hosts list mac 52:54:00:00:00:01 twice'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:00:00:01', 'ip': '192.168.250.10'},
        {'mac': '52:54:00:00:00:02', 'ip': '192.168.250.10'}]}},
     'give 192.168.250.10 to more than one host'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_hosts': [{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.1'}]}},
     'dhcp host 52:54:00:00:00:01 ip 10.0.0.1 is outside the subnet'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_hosts': [{'mac': '52:54:00:zz:00:01', 'ip': '192.168.250.3'}]}},
     'is not a MAC address'),
    ({'ipv4': {'address': '192.168.250.1/24', 'dhcp_hosts': [{'mac': '52:54:00:00:00:01'}]}}, 'needs an ip'),
    ({'ipv6': {'address': 'fd00::1/64', 'dhcp_hosts': [{'mac': '52:54:00:00:00:01', 'ip': 'fd00::5'}]}},
     'libvirt matches ipv6 hosts by id'),
    ({'mtu': 20}, 'lab: mtu 20 is outside 68-65535'),
    ({'bridge': 'a-very-long-bridge-name'}, 'is not a valid interface name'),
    ({'forward_mode': 'bridge'}, 'forward_mode bridge needs bridge'),
    ({'forward_mode': 'bridge', 'bridge': 'br0', 'ipv4': {'address': '10.1.0.1/24'}},
     'ipv4 cannot be set with forward_mode bridge'),
    ({'forward_mode': 'isolated', 'forward_dev': 'eth0'}, 'forward_dev needs forward_mode nat or route'),
    ({'dns_hosts': [{'ip': 'nope', 'hostnames': ['a']}]}, "dns host ip 'nope' is not an IP address"),
    ({'dns_hosts': [{'ip': '10.0.0.1'}]}, 'dns host 10.0.0.1 needs at least one hostname'),
    ({'dns_hosts': [{'ip': '10.0.0.1', 'hostnames': ['a']}, {'ip': '10.0.0.1', 'hostnames': ['b']}]},
     'dns hosts list 10.0.0.1 twice'),
])
def test_bad_input_is_one_line(options, message):
    with pytest.raises(VirtkitError) as err:
        spec_of(name='lab', **options)
    assert message in str(err.value)
    assert '\n' not in str(err.value)


def test_validate_normalises():
    spec = spec_of(**RICH)
    assert spec.ipv4['ip'] == '192.168.250.1' and spec.ipv4['prefix'] == 24
    assert spec.ipv6['ranges'] == [('fd00:250::100', 'fd00:250::1ff')]
    hosts = [{'mac': '52:54:00:AB:00:01', 'ip': '10.1.0.5'}]
    mac = spec_of(name='x', ipv4={'address': '10.1.0.1/24', 'dhcp_hosts': hosts})
    assert mac.ipv4['hosts'][0]['mac'] == '52:54:00:ab:00:01'


# ------------------------------------------------------------------ XML generation and merge

@pytest.mark.parametrize('options', [
    RICH,
    dict(name='iso', forward_mode='isolated', ipv4={'address': '10.77.0.1/24'}),
    dict(name='routed', forward_mode='route', bridge='vkbr-r', ipv4={'address': '10.78.0.1/16',
         'dhcp_ranges': [{'start': '10.78.1.1', 'end': '10.78.1.200'}]}),
    dict(name='open', forward_mode='open', ipv6={'address': 'fd00:79::1/64'}),
    dict(name='lan', forward_mode='bridge', bridge='br0'),
    dict(name='minimal'),
])
def test_new_network_xml_is_valid(options):
    spec = spec_of(**options)
    root = nw.skeleton(spec.name)
    nw.merge(root, spec)
    validate_network_xml(root)
    # Merging again changes nothing: the generated XML is a fixed point.
    assert not nw.merge(root, spec).changes


def test_rich_xml_content():
    spec = spec_of(**RICH)
    root = nw.skeleton('lab')
    nw.merge(root, spec)
    assert root.find('forward').get('mode') == 'nat' and root.find('forward').get('dev') == 'eth0'
    assert root.find('bridge').get('name') == 'vkbr250'
    assert root.find('mtu').get('size') == '9000'
    assert root.find('domain').get('name') == 'lab.internal'
    v4, v6 = root.findall('ip')
    assert (v4.get('address'), v4.get('prefix')) == ('192.168.250.1', '24')
    assert v6.get('family') == 'ipv6'
    assert [h.get('mac') for h in v4.findall('dhcp/host')] == ['52:54:00:25:00:10', '52:54:00:25:00:11']
    assert [h.get('name') for h in v6.findall('dhcp/host')] == ['web1', 'web2']
    assert [n.text for n in root.findall('dns/host/hostname')] == ['repo', 'repo.lab.internal']


def test_merge_keeps_libvirt_identity_and_owns_only_what_is_set():
    root = parse(CURRENT)
    ed = nw.merge(root, spec_of(name='lab', domain='lab.internal'))
    assert ed.fields() == ['domain']
    assert root.findtext('uuid') == '7a6e3c2b-1111-4c4c-9a9a-0123456789ab'
    assert root.find('bridge').get('name') == 'virbr7'
    assert root.find('mac').get('address') == '52:54:00:aa:bb:cc'
    assert root.find('forward/nat/port') is not None
    assert len(root.findall('ip/dhcp/host')) == 2
    validate_network_xml(root)


def test_merge_same_values_is_no_change():
    # netmask vs prefix, and the omitted forward mode spelled out, are the same config.
    root = parse(CURRENT)
    ed = nw.merge(root, spec_of(name='lab', forward_mode='nat', ipv4={
        'address': '192.168.250.1/24', 'dhcp_ranges': [{'start': '192.168.250.100', 'end': '192.168.250.199'}],
        'dhcp_hosts': [{'mac': '52:54:00:25:00:10', 'ip': '192.168.250.10'}]}))
    assert ed.changes == []
    assert root.find('ip').get('netmask') == '255.255.255.0'


def test_merge_hosts_add_modify_remove_and_exclusive():
    root = parse(CURRENT)
    ed = nw.merge(root, spec_of(name='lab', ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:10', 'ip': '192.168.250.12'},
        {'mac': '52:54:00:25:00:20', 'ip': '192.168.250.20', 'name': 'new'}]}))
    assert ed.fields() == ['dhcp_hosts']
    hosts = {h.get('mac'): (h.get('ip'), h.get('name')) for h in root.findall('ip/dhcp/host')}
    assert hosts == {'52:54:00:25:00:10': ('192.168.250.12', 'web1'),     # name kept
                     '52:54:00:25:00:99': ('192.168.250.99', 'old'),      # unlisted kept
                     '52:54:00:25:00:20': ('192.168.250.20', 'new')}
    root = parse(CURRENT)
    nw.merge(root, spec_of(name='lab', hosts_exclusive=True, ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:10', 'ip': '192.168.250.10'}]}))
    assert [h.get('mac') for h in root.findall('ip/dhcp/host')] == ['52:54:00:25:00:10']
    root = parse(CURRENT)
    nw.merge(root, spec_of(name='lab', ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:99', 'state': 'absent'}]}))
    assert [h.get('mac') for h in root.findall('ip/dhcp/host')] == ['52:54:00:25:00:10']


def test_merge_forward_changes():
    root = parse(CURRENT)
    ed = nw.merge(root, spec_of(name='lab', forward_mode='route'))
    assert ed.fields() == ['forward_mode'] and root.find('forward/nat') is None
    validate_network_xml(root)
    root = parse(CURRENT)
    nw.merge(root, spec_of(name='lab', forward_mode='isolated'))
    assert root.find('forward') is None
    validate_network_xml(root)


def test_merge_address_and_ranges():
    root = parse(CURRENT)
    ed = nw.merge(root, spec_of(name='lab', ipv4={'address': '192.168.250.1/25', 'dhcp_ranges': [
        {'start': '192.168.250.20', 'end': '192.168.250.30'}]}))
    assert ed.fields() == ['ipv4']
    ip = root.find('ip')
    assert ip.get('prefix') == '25' and ip.get('netmask') is None
    assert [(r.get('start'), r.get('end')) for r in ip.findall('dhcp/range')] == [('192.168.250.20', '192.168.250.30')]
    assert len(ip.findall('dhcp/host')) == 2
    validate_network_xml(root)


def test_dns_hosts_merge():
    root = parse(CURRENT)
    ed = nw.merge(root, spec_of(name='lab', dns_hosts=[{'ip': '192.168.250.5', 'hostnames': ['repo']}]))
    assert ed.fields() == ['dns_hosts']
    validate_network_xml(root)
    assert not nw.merge(root, spec_of(name='lab', dns_hosts=[{'ip': '192.168.250.5', 'hostnames': ['repo']}])).changes
    nw.merge(root, spec_of(name='lab', dns_hosts=[{'ip': '192.168.250.5', 'hostnames': ['repo', 'r2']}]))
    assert [n.text for n in root.findall('dns/host/hostname')] == ['repo', 'r2']
    nw.merge(root, spec_of(name='lab', dns_hosts=[{'ip': '192.168.250.5', 'state': 'absent'}]))
    assert root.findall('dns/host') == []


# ------------------------------------------------------------------ live updates

def test_host_updates():
    before = parse(CURRENT)
    after = parse(CURRENT)
    nw.merge(after, spec_of(name='lab', ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:10', 'ip': '192.168.250.12'},
        {'mac': '52:54:00:25:00:99', 'state': 'absent'},
        {'mac': '52:54:00:25:00:20', 'ip': '192.168.250.20'}]},
        dns_hosts=[{'ip': '192.168.250.5', 'hostnames': ['repo']}]))
    ops = nw.host_updates(before, after)
    kinds = [(op[0], op[1].rsplit('_', 2)[-2], op[2]) for op in ops]
    assert kinds == [('DELETE', 'DHCP', 0), ('MODIFY', 'DHCP', 0), ('ADD_LAST', 'DHCP', 0), ('ADD_LAST', 'DNS', -1)]
    assert "mac='52:54:00:25:00:99'" in ops[0][3].replace('"', "'")
    assert "ip='192.168.250.12'" in ops[1][3].replace('"', "'")
    assert nw.host_updates(before, parse(CURRENT)) == []


# ------------------------------------------------------------------ plans

def current(active=True, xml=CURRENT, live=None, users=(), autostart=False):
    return nw.Current('lab', True, active, True, autostart, xml, (live or xml) if active else None, users)


def ops(plan):
    return [a.op for a in plan.actions]


def test_plan_new_network():
    plan = nw.build_plan(spec_of(state='running', **RICH), nw.Current('lab'))
    assert ops(plan) == ['define', 'start', 'autostart']
    validate_network_xml(plan.actions[0].params['xml'])
    assert plan.before == {'state': 'absent'} and plan.after['state'] == 'running'
    assert 'vkbr250' in plan.diff()['after']


def test_plan_noop_reports_pending_from_live_xml():
    spec = spec_of(name='lab', forward_mode='nat')
    plan = nw.build_plan(spec, current())
    assert not plan.changed and plan.pending_fields == []
    # The config already has a domain the running network lacks: pending, not changed.
    config = CURRENT.replace('<mac ', "<domain name='lab.internal'/><mac ")
    plan = nw.build_plan(spec_of(name='lab', domain='lab.internal'), current(xml=config, live=CURRENT))
    assert not plan.changed and plan.pending_fields == ['domain']


def test_plan_live_host_update_without_restart():
    spec = spec_of(name='lab', ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:20', 'ip': '192.168.250.20', 'name': 'new'}]})
    plan = nw.build_plan(spec, current())
    assert ops(plan) == ['update']
    assert plan.actions[0].params['config'] is True and plan.actions[0].params['command'] == 'ADD_LAST'
    assert plan.pending_fields == []
    # Stopped network: the same edit is a define.
    plan = nw.build_plan(spec, current(active=False))
    assert ops(plan) == ['define']


def test_plan_persistent_edit_on_running_network():
    spec = spec_of(name='lab', domain='lab.internal', mtu=1400, ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:20', 'ip': '192.168.250.20'}]})
    plan = nw.build_plan(spec, current())
    assert ops(plan) == ['update', 'define']
    assert plan.pending_fields == ['domain', 'mtu']
    validate_network_xml(plan.actions[1].params['xml'])
    # if_unused restarts only a network no running guest uses.
    spec.restart_policy = 'if_unused'
    plan = nw.build_plan(spec, current())
    assert ops(plan) == ['update', 'define', 'restart'] and plan.pending_fields == []
    plan = nw.build_plan(spec, current(users=['guest1']))
    assert ops(plan) == ['update', 'define'] and plan.restart_blocked_by == ['guest1']
    assert plan.pending_fields == ['domain', 'mtu']
    # if_needed restarts anyway and carries the running guests' NICs over.
    spec.restart_policy = 'if_needed'
    plan = nw.build_plan(spec, current(users=['guest1']))
    assert ops(plan) == ['update', 'define', 'restart'] and plan.pending_fields == []
    assert plan.actions[-1].summary == ('restart network lab to apply domain, mtu, carrying the NICs of '
                                        'running guests guest1 over')


def test_plan_live_and_config_hosts_differ():
    # The config already has the host (edited while stopped elsewhere); only live needs it.
    config = CURRENT.replace("</dhcp>", "<host mac='52:54:00:25:00:20' ip='192.168.250.20'/></dhcp>")
    spec = spec_of(name='lab', ipv4={'address': '192.168.250.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:20', 'ip': '192.168.250.20'}]})
    plan = nw.build_plan(spec, current(xml=config, live=CURRENT))
    assert ops(plan) == ['update'] and plan.actions[0].params['config'] is False


def test_plan_states():
    assert ops(nw.build_plan(spec_of(name='lab', state='stopped'), current())) == ['destroy']
    assert ops(nw.build_plan(spec_of(name='lab', state='running'), current(active=False))) == ['start']
    assert ops(nw.build_plan(spec_of(name='lab', state='absent'), current())) == ['destroy', 'undefine']
    assert ops(nw.build_plan(spec_of(name='lab', state='absent'), nw.Current('lab'))) == []
    assert ops(nw.build_plan(spec_of(name='lab', autostart=True), current())) == ['autostart']
    assert ops(nw.build_plan(spec_of(name='lab', autostart=False), current())) == []


def test_xml_facts():
    facts = nw.xml_facts(CURRENT)
    assert facts['forward_mode'] == 'nat' and facts['bridge'] == 'virbr7'
    assert facts['ipv4']['address'] == '192.168.250.1/24'
    assert facts['ipv4']['dhcp_hosts'][0] == {'mac': '52:54:00:25:00:10', 'name': 'web1', 'ip': '192.168.250.10'}
    assert facts['ipv6'] is None
    assert canonical(parse(CURRENT)) == canonical(parse(CURRENT))


def test_hosts_of_a_readdressed_or_new_ip_wait_for_the_restart():
    spec = spec_of(name='lab', ipv4={'address': '192.168.251.1/24', 'dhcp_hosts': [
        {'mac': '52:54:00:25:00:20', 'ip': '192.168.251.20'}]},
        ipv6={'address': 'fd00:250::1/64', 'dhcp_hosts': [{'name': 'six', 'ip': 'fd00:250::6'}]})
    plan = nw.build_plan(spec, current())
    assert ops(plan) == ['define'] and plan.pending_fields == ['ipv4', 'ipv6']
    validate_network_xml(plan.actions[0].params['xml'])
