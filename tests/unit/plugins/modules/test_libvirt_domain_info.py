# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_domain_info's main() through AnsibleModule, against test:///default: one guest,
a missing guest, and the "all guests" form (no name)."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.plugins.modules import libvirt_domain_info
from ansible_collections.virtkit.guests.tests.unit.helpers import params
from ansible_collections.virtkit.guests.tests.unit.module_main import guest_fixtures, run_main_json

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'
PREFIX = 'virtkit-unit-info-'
_counter = itertools.count()

# Keys every guest carries, the same as libvirt_domain's RV(domain).
KEYS = {'name', 'uuid', 'state', 'persistent', 'autostart', 'id', 'ip', 'memory_mib', 'max_memory_mib', 'vcpus',
        'max_vcpus', 'disks', 'interfaces', 'metadata'}


keeper, _name = guest_fixtures(Connection, URI, PREFIX)


@pytest.fixture
def guests(keeper):
    """Two guests of this test: ``b`` running, ``a`` defined only (names sort a < b)."""
    serial = next(_counter)
    a, b = '%s%d-a' % (PREFIX, serial), '%s%d-b' % (PREFIX, serial)
    manager = DomainManager(keeper)
    manager.run(params(uri=URI, name=b, memory=64, state='running', interfaces=[{'network': 'default'}],
                       metadata={'groups': ['web']}), check_mode=False)
    DomainManager(keeper).run(params(uri=URI, name=a, memory=96, vcpus=2, autostart=True), check_mode=False)
    return a, b


def run_info(capsys, **args):
    return run_main_json(libvirt_domain_info.main, capsys, args, uri=URI)


def test_all_guests_sorted_with_state_and_facts(capsys, guests):
    a, b = guests
    rc, result = run_info(capsys)
    assert rc == 0 and result['changed'] is False and not result.get('failed')
    names = [d['name'] for d in result['domains']]
    assert names == sorted(names)
    assert 'test' in names  # the test driver's own guest is listed too
    ours = [d for d in result['domains'] if d['name'].startswith(PREFIX)]
    assert [d['name'] for d in ours] == [a, b]
    for facts in result['domains']:
        assert KEYS <= set(facts), facts['name']
    first, second = ours
    assert (first['state'], first['id'], first['memory_mib'], first['vcpus'], first['autostart']) == \
        ('shutoff', None, 96, 2, True)
    assert first['interfaces'] == [] and first['ip'] is None
    assert second['state'] == 'running' and isinstance(second['id'], int) and second['id'] > 0
    assert second['memory_mib'] == 64 and second['metadata'] == {'groups': ['web']}
    assert [n['source'] for n in second['interfaces']] == ['default']
    assert second['interfaces'][0]['mac'].startswith('52:54:00:')


def test_all_guests_equals_one_by_one(capsys, guests):
    rc, every = run_info(capsys)
    assert rc == 0
    for facts in every['domains']:
        rc, one = run_info(capsys, name=facts['name'])
        assert rc == 0 and one['domains'] == [facts]


def test_one_guest_and_a_missing_guest(capsys, guests):
    a, _b = guests
    rc, result = run_info(capsys, name=a)
    assert rc == 0 and [d['name'] for d in result['domains']] == [a]
    rc, result = run_info(capsys, name=PREFIX + 'no-such-guest')
    assert rc == 0 and result == {'changed': False, 'domains': [], 'invocation': result['invocation']}


def test_all_guests_form_describes_through_the_manager(keeper, guests):
    """describe(None) lists every guest once, sorted, and only existing ones."""
    manager = DomainManager(keeper)
    every = manager.describe(None)
    assert [d['name'] for d in every] == sorted(d.name() for d in keeper.conn.listAllDomains(0))
    assert manager.describe(PREFIX + 'no-such-guest') == []


def test_ip_sources_choose_where_addresses_come_from(capsys, guests):
    """The test driver answers the ARP source with a fixed address for running guests; the
    default sources (lease, agent) find nothing there (no leases, no connected agent)."""
    rc, result = run_info(capsys, name='test')
    assert rc == 0 and result['domains'][0]['ip'] is None
    rc, result = run_info(capsys, name='test', ip_sources=['arp'])
    facts = result['domains'][0]
    assert rc == 0 and facts['ip'] == '192.168.122.3'
    assert facts['interfaces'][0]['addresses'] == ['192.168.122.3']
    _a, b = guests
    rc, result = run_info(capsys, ip_sources=['lease', 'arp'])
    by_name = {d['name']: d for d in result['domains']}
    assert by_name[b]['ip'] is not None  # running: the ARP source answers
    assert all(by_name[n]['ip'] is None for n in by_name if by_name[n]['state'] != 'running')


def test_check_mode_reads_the_same(capsys, guests):
    rc, real = run_info(capsys)
    rc2, check = run_info(capsys, _ansible_check_mode=True)
    assert rc == rc2 == 0 and check['domains'] == real['domains'] and check['changed'] is False


def test_bad_arguments_and_connection_failures_are_one_line(capsys):
    rc, result = run_info(capsys, ip_sources=['dns'])
    assert rc == 1 and result['failed'] and 'ip_sources' in result['msg'] and '\n' not in result['msg']
    rc, result = run_info(capsys, uri='test:///nonexistent/virtkit.xml')
    assert rc == 1 and result['failed']
    assert result['msg'].startswith('test:///nonexistent/virtkit.xml: connect failed: ')
    assert '\n' not in result['msg'] and 'exception' not in result
