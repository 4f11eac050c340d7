# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots: XML (checked against libvirt's domainsnapshot schema), pure plans, and the
manager against libvirt's embedded test driver (test:///default)."""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils import _snapshot as snap
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._xml import to_string
from ansible_collections.virtkit.guests.tests.unit.helpers import schema_validator

URI = 'test:///default'
_counter = itertools.count()


def params(**options):
    result = ArgumentSpecValidator(snap.ARGUMENT_SPEC).validate(dict(options))
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def spec(**options):
    options.setdefault('domain', 'web1')
    options.setdefault('name', 's1')
    return snap.validate(params(**options))


def validate_snapshot_xml(text):
    tool = schema_validator()  # skips without the tools, fails in CI
    handle = tempfile.NamedTemporaryFile('w', suffix='.xml', prefix='virtkit-snapshot-', delete=False)
    try:
        with handle:
            handle.write(text)
        proc = subprocess.run([tool, handle.name, 'domainsnapshot'], capture_output=True, text=True,
                              timeout=60, check=False)
    finally:
        os.unlink(handle.name)
    assert proc.returncode == 0, 'domainsnapshot schema rejects: %s%s\n%s' % (proc.stdout, proc.stderr, text)


# ------------------------------------------------------------------ XML

@pytest.mark.parametrize('options', [
    {},
    {'description': 'before the upgrade <2.0> & co'},
    {'disk_only': True, 'description': 'disk only'},
])
def test_snapshot_xml_is_valid(options):
    xml = to_string(snap.snapshot_xml(spec(**options)))
    validate_snapshot_xml(xml)
    assert '<name>s1</name>' in xml
    assert ("<memory snapshot=\"no\"/>" in xml) == bool(options.get('disk_only'))


def test_snapshot_facts():
    xml = ('<domainsnapshot><name>s1</name><description>d</description><state>running</state>'
           '<parent><name>s0</name></parent><creationTime>1700000000</creationTime>'
           '<memory snapshot="internal"/><disks><disk name="vda" snapshot="internal"/>'
           '<disk name="vdb" snapshot="external"><source file="/x.s1"/></disk></disks>'
           '<domain type="qemu"><name>web1</name></domain></domainsnapshot>')
    facts = snap.snapshot_facts(xml, current=True)
    assert facts == {'name': 's1', 'description': 'd', 'state': 'running', 'parent': 's0',
                     'creation_time': 1700000000, 'memory': 'internal', 'current': True,
                     'disks': [{'target': 'vda', 'snapshot': 'internal', 'file': None},
                               {'target': 'vdb', 'snapshot': 'external', 'file': '/x.s1'}]}


# ------------------------------------------------------------------ validation and plans

@pytest.mark.parametrize('options, message', [
    ({'name': 'a/b'}, 'snapshot name'),
    ({'state': 'absent', 'description': 'x'}, 'apply to state=present only'),
    ({'state': 'reverted', 'disk_only': True}, 'apply to state=present only'),
    ({'force_revert': True}, 'apply to state=reverted only'),
    ({'revert_state': 'running'}, 'apply to state=reverted only'),
])
def test_bad_input_is_one_line(options, message):
    with pytest.raises(VirtkitError, match=message):
        spec(**options)


def facts(name='s1', description=None):
    return {'name': name, 'description': description}


def ops(plan):
    return [a.op for a in plan.actions]


def test_plan_create_and_rerun():
    plan = snap.build_plan(spec(description='d'), snap.Current(True, None, None, None, 'running'))
    assert ops(plan) == ['create'] and 'with memory' in plan.actions[0].summary
    assert 'snapshot: absent' in plan.diff()['before'] and 'description: d' in plan.diff()['after']
    plan = snap.build_plan(spec(description='d'), snap.Current(True, None, None, None, 'shutoff'))
    assert 'of the disks' in plan.actions[0].summary
    plan = snap.build_plan(spec(disk_only=True), snap.Current(True, None, None, None, 'running'))
    assert 'disk-only' in plan.actions[0].summary
    plan = snap.build_plan(spec(description='d'), snap.Current(True, facts(description='d'), 's1'))
    assert not plan.changed and plan.diff()['before'] == plan.diff()['after']
    # no description given: an existing snapshot's description is left alone
    assert not snap.build_plan(spec(), snap.Current(True, facts(description='d'), 's1')).changed


def test_plan_description_edit():
    plan = snap.build_plan(spec(description='new'), snap.Current(True, facts(description='old'), 's1'))
    assert ops(plan) == ['set_description'] and plan.actions[0].params == {'description': 'new'}
    assert 'description: old' in plan.diff()['before'] and 'description: new' in plan.diff()['after']


def test_plan_absent():
    assert ops(snap.build_plan(spec(state='absent'), snap.Current(True, facts()))) == ['delete']
    assert not snap.build_plan(spec(state='absent'), snap.Current(True, None)).changed
    assert not snap.build_plan(spec(state='absent'), snap.Current(False)).changed


def test_plan_revert_is_idempotent_by_record():
    reverted = spec(state='reverted')
    # just created: current, but never reverted to -> revert
    assert ops(snap.build_plan(reverted, snap.Current(True, facts(), 's1', None))) == ['revert']
    # reverted to it and still current -> nothing
    assert not snap.build_plan(reverted, snap.Current(True, facts(), 's1', 's1')).changed
    # another snapshot was taken since -> revert again
    assert ops(snap.build_plan(reverted, snap.Current(True, facts(), 's2', 's1'))) == ['revert']
    # forced
    assert ops(snap.build_plan(spec(state='reverted', force_revert=True),
                               snap.Current(True, facts(), 's1', 's1'))) == ['revert']


def test_plan_errors():
    with pytest.raises(VirtkitError, match='web1: cannot revert to snapshot s1: it does not exist'):
        snap.build_plan(spec(state='reverted'), snap.Current(True, None))
    with pytest.raises(VirtkitError, match='web1: the guest does not exist'):
        snap.build_plan(spec(), snap.Current(False))


# ------------------------------------------------------------------ the manager on test:///default

@pytest.fixture
def conn():
    if libvirt is None:
        pytest.skip('libvirt-python is not installed')
    connection = Connection(URI)
    # the test driver's own running guest 'test' with a fresh name per test
    name = 'virtkit-unit-snap-%d' % next(_counter)
    xml = connection.conn.lookupByName('test').XMLDesc(0)
    xml = xml.replace('<name>test</name>', '<name>%s</name>' % name)
    xml = xml.split('<uuid>')[0] + xml.split('</uuid>')[1]
    dom = connection.conn.defineXML(xml)
    dom.create()
    yield connection, name
    for s in dom.listAllSnapshots(0):
        s.delete(0)
    if dom.isActive():
        dom.destroy()
    dom.undefine()
    connection.close()


def run(connection, check=False, **options):
    return snap.SnapshotManager(connection).run(params(**options), check_mode=check)


def test_manager_lifecycle(conn):
    c, dom = conn
    base = dict(domain=dom, name='s1', description='first')
    r = run(c, check=True, **base)
    assert r['changed'] and r['snapshot'] == {}
    assert snap.SnapshotManager(c).list(dom)['snapshots'] == []
    r = run(c, **base)
    assert r['changed'] and r['snapshot']['description'] == 'first' and r['snapshot']['current']
    assert r['snapshot']['state'] == 'running'
    assert not run(c, **base)['changed'] and not run(c, check=True, **base)['changed']
    # edit the description in place
    edited = dict(base)
    edited['description'] = 'edited'
    r = run(c, **edited)
    assert [a['action'] for a in r['actions']] == ['set_description'] and r['snapshot']['description'] == 'edited'
    assert r['snapshot']['current']
    # second snapshot, then revert to the first
    run(c, domain=dom, name='s2')
    rev = dict(domain=dom, name='s1', state='reverted')
    r = run(c, check=True, **rev)
    assert r['changed'] and 'reverted_to: (none)' in r['diff']['before'] and 'reverted_to: s1' in r['diff']['after']
    r = run(c, **rev)
    assert r['changed'] and r['snapshot']['current']
    assert not run(c, **rev)['changed'] and not run(c, check=True, **rev)['changed']
    assert run(c, force_revert=True, **rev)['changed']
    listing = snap.SnapshotManager(c).list(dom)
    assert [s['name'] for s in listing['snapshots']] == ['s1', 's2'] and listing['current'] == 's1'
    assert snap.SnapshotManager(c).list(dom, 's2')['snapshots'][0]['parent'] == 's1'
    # delete
    gone = dict(domain=dom, name='s1', state='absent')
    assert run(c, check=True, **gone)['changed']
    assert run(c, **gone)['changed']
    assert not run(c, **gone)['changed'] and not run(c, check=True, **gone)['changed']
    assert [s['name'] for s in snap.SnapshotManager(c).list(dom)['snapshots']] == ['s2']


def test_manager_missing_guest(conn):
    c, _dom = conn
    with pytest.raises(VirtkitError, match='virtkit-unit-nope: the guest does not exist'):
        run(c, domain='virtkit-unit-nope', name='s1')
    assert not run(c, domain='virtkit-unit-nope', name='s1', state='absent')['changed']
    with pytest.raises(VirtkitError, match='virtkit-unit-nope: the guest does not exist'):
        snap.SnapshotManager(c).list('virtkit-unit-nope')


# ------------------------------------------------------------------ revert flags, external snapshots, transient guests

def test_revert_flags():
    if libvirt is None:
        pytest.skip('libvirt-python is not installed')
    assert snap.revert_flags('snapshot') == 0
    assert snap.revert_flags('running') == libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
    assert snap.revert_flags('paused') == libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
    # never a risky forced revert on the user's behalf
    for state in ('snapshot', 'running', 'paused'):
        assert not snap.revert_flags(state) & libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE


def test_metadata_flags():
    if libvirt is None:
        pytest.skip('libvirt-python is not installed')
    live, config = libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG
    # reading takes exactly one of the two: libvirt refuses both at once
    assert snap.metadata_flags(persistent=True, active=True) == config
    assert snap.metadata_flags(persistent=True, active=False) == config
    assert snap.metadata_flags(persistent=False, active=True) == live
    assert snap.metadata_flags(persistent=True, active=True, write=True) == config | live
    assert snap.metadata_flags(persistent=True, active=False, write=True) == config
    # a transient guest has no persistent config: libvirt refuses AFFECT_CONFIG
    assert snap.metadata_flags(persistent=False, active=True, write=True) == live


def external_facts(name='s1', memory='no', disk='external'):
    return {'name': name, 'description': None, 'memory': memory,
            'disks': [{'target': 'vda', 'snapshot': disk, 'file': '/x.s1'}]}


def test_is_external():
    assert snap.is_external(external_facts())
    assert snap.is_external(external_facts(memory='external', disk='internal'))
    assert not snap.is_external(external_facts(memory='internal', disk='internal'))
    assert not snap.is_external(facts())


def test_version_string():
    assert snap.version_string(9000000) == '9.0.0'
    assert snap.version_string(10010002) == '10.10.2'


def test_plan_external_revert_needs_libvirt_9_9():
    reverted = spec(state='reverted')
    old = snap.Current(True, external_facts(), 's2', None, 'running', 9000000)
    with pytest.raises(VirtkitError) as err:
        snap.build_plan(reverted, old)
    message = str(err.value)
    assert message == ('web1: cannot revert to snapshot s1: it is external (disk-only or external memory) and '
                       'reverting external snapshots needs libvirt 9.9 or later; this host runs 9.0.0')
    assert '\n' not in message
    assert ops(snap.build_plan(reverted, snap.Current(True, external_facts(), 's2', None, 'running', 9009000))) \
        == ['revert']
    # an internal snapshot reverts on any version
    internal = external_facts(memory='internal', disk='internal')
    assert ops(snap.build_plan(reverted, snap.Current(True, internal, 's2', None, 'running', 9000000))) == ['revert']
    # already there (recorded): nothing to refuse
    assert not snap.build_plan(reverted, snap.Current(True, external_facts(), 's1', 's1', 'running', 9000000)).changed


def test_plan_revert_summary_names_the_end_state():
    current = snap.Current(True, facts(), 's2', None, 'running')
    assert snap.build_plan(spec(state='reverted'), current).actions[0].summary == 'revert web1 to snapshot s1'
    plan = snap.build_plan(spec(state='reverted', revert_state='paused'), current)
    assert plan.actions[0].summary == 'revert web1 to snapshot s1 (ending paused)'


def test_manager_revert_paused(conn):
    c, name = conn
    run(c, domain=name, name='s1')
    run(c, domain=name, name='s2')
    r = run(c, domain=name, name='s1', state='reverted', revert_state='paused')
    assert r['changed'] and r['snapshot']['current']
    assert c.conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert not run(c, domain=name, name='s1', state='reverted', revert_state='paused')['changed']
    # the default ends in the snapshot's own state (taken running)
    r = run(c, domain=name, name='s1', state='reverted', force_revert=True)
    assert r['changed'] and c.conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_manager_transient_guest(conn):
    c, name = conn
    # a transient copy of the fixture's guest: no persistent config for the revert record
    xml = c.conn.lookupByName(name).XMLDesc(0).replace('<name>%s</name>' % name, '<name>%s-tr</name>' % name)
    xml = xml.split('<uuid>')[0] + xml.split('</uuid>')[1]
    dom = c.conn.createXML(xml, 0)
    try:
        assert not dom.isPersistent()
        base = dict(domain=name + '-tr', name='s1')
        assert run(c, **base)['changed'] and not run(c, **base)['changed']
        run(c, domain=name + '-tr', name='s2')
        rev = dict(base, state='reverted')
        assert run(c, check=True, **rev)['changed']
        r = run(c, **rev)
        assert r['changed'] and r['snapshot']['current']
        assert not run(c, **rev)['changed'] and not run(c, check=True, **rev)['changed']
        assert run(c, **dict(base, state='absent'))['changed']
    finally:
        for s in dom.listAllSnapshots(0):
            s.delete(0)
        dom.destroy()


def test_manager_external_revert_refused_before_anything(conn, monkeypatch):
    c, name = conn
    dom = c.conn.lookupByName(name)
    run(c, domain=name, name='s1')
    # an external disk-only snapshot, redefined from XML (the test driver cannot take one)
    xml = dom.snapshotLookupByName('s1', 0).getXMLDesc(0)
    xml = xml.replace('<name>s1</name>', '<name>ext</name>').replace("<memory snapshot='internal'/>",
                                                                     "<memory snapshot='no'/>")
    xml = xml.replace("<disk name='vda' snapshot='internal'/>",
                      "<disk name='vda' snapshot='external'><source file='/tmp/virtkit-unit.ext'/></disk>")
    assert "snapshot='external'" in xml
    dom.snapshotCreateXML(xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
    run(c, domain=name, name='s2')
    monkeypatch.setattr(c.conn, 'getLibVersion', lambda: 9000000, raising=False)
    rev = dict(domain=name, name='ext', state='reverted')
    for check in (True, False):
        with pytest.raises(VirtkitError, match='needs libvirt 9.9 or later; this host runs 9.0.0$'):
            run(c, check=check, **rev)
    assert snap.SnapshotManager(c).list(name)['current'] == 's2'
    monkeypatch.setattr(c.conn, 'getLibVersion', lambda: 9009000, raising=False)
    assert run(c, check=True, **rev)['changed']


# ------------------------------------------------------------------ revert_state and reruns

def test_plan_revert_rerun_compares_the_recorded_revert_state():
    def plan(record_state, current_name='s1', domain_state='running', **options):
        return snap.build_plan(spec(state='reverted', **options),
                               snap.Current(True, facts(), current_name, 's1', domain_state, None, record_state))
    # the same task again: not changed
    assert not plan('running', revert_state='running').changed
    assert not plan('paused', revert_state='paused').changed
    # omitted and 'snapshot' are the same request
    assert not plan('snapshot').changed and not plan('snapshot', revert_state='snapshot').changed
    # another end state: revert again, ending as asked
    p = plan('running', revert_state='paused')
    assert ops(p) == ['revert'] and p.actions[0].summary == 'revert web1 to snapshot s1 (ending paused)'
    assert ops(plan('running')) == ['revert']
    assert ops(plan('snapshot', revert_state='running')) == ['revert']
    # the guest's power state now is not compared (started or stopped on purpose since)
    assert not plan('running', domain_state='shutoff', revert_state='running').changed
    assert not plan('paused', domain_state='running', revert_state='paused').changed
    # a record from before the state was kept matches any revert_state: no surprise revert
    for wanted in ('snapshot', 'running', 'paused'):
        assert not plan(None, revert_state=wanted).changed
    # another snapshot became current since, or forced: revert
    assert ops(plan('running', current_name='s2', revert_state='running')) == ['revert']
    assert ops(plan('running', revert_state='running', force_revert=True)) == ['revert']


def test_plan_revert_diff_shows_the_revert_state():
    p = snap.build_plan(spec(state='reverted', revert_state='running'), snap.Current(True, facts(), 's2', None))
    assert 'revert_state: (none)' in p.diff()['before'] and 'revert_state: running' in p.diff()['after']
    p = snap.build_plan(spec(state='reverted', revert_state='paused'),
                        snap.Current(True, facts(), 's1', 's1', 'running', None, 'running'))
    assert 'revert_state: running' in p.diff()['before'] and 'revert_state: paused' in p.diff()['after']
    p = snap.build_plan(spec(state='reverted'), snap.Current(True, facts(), 's1', 's1', 'running', None, None))
    assert not p.changed and 'revert_state: (not recorded)' in p.diff()['before']
    assert p.diff()['before'] == p.diff()['after']


def record(c, name):
    dom = c.conn.lookupByName(name)
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, snap.MARK_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError:
        return None
    root = snap.parse(text)
    return root.get('name'), root.get('state')


def test_manager_revert_state_reruns(conn):
    c, name = conn
    dom = c.conn.lookupByName(name)
    run(c, domain=name, name='s1')  # taken running, with memory
    run(c, domain=name, name='s2')
    rev = dict(domain=name, name='s1', state='reverted')
    r = run(c, revert_state='paused', **rev)
    assert r['changed'] and dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert record(c, name) == ('s1', 'paused')
    assert not run(c, revert_state='paused', **rev)['changed']
    assert not run(c, check=True, revert_state='paused', **rev)['changed']
    # another end state: check mode plans the revert and touches nothing
    r = run(c, check=True, revert_state='running', **rev)
    assert r['changed'] and [a['summary'] for a in r['actions']] == ['revert %s to snapshot s1 (ending running)' % name]
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED and record(c, name) == ('s1', 'paused')
    r = run(c, revert_state='running', **rev)
    assert r['changed'] and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING and record(c, name) == ('s1', 'running')
    assert not run(c, revert_state='running', **rev)['changed']
    # the guest paused by hand since: the rerun leaves it alone (documented)
    dom.suspend()
    assert not run(c, revert_state='running', **rev)['changed']
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    # omitted revert_state is 'snapshot': recorded as such, and the same as naming it
    assert run(c, **rev)['changed'] and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert record(c, name) == ('s1', 'snapshot')
    assert not run(c, revert_state='snapshot', **rev)['changed']


def test_manager_legacy_record_matches_any_revert_state(conn):
    c, name = conn
    dom = c.conn.lookupByName(name)
    run(c, domain=name, name='s1')
    # what an earlier version wrote: the name only
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<reverted name="s1"/>', snap.MARK_PREFIX, snap.MARK_NS,
                    libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    for wanted in ('snapshot', 'running', 'paused'):
        assert not run(c, domain=name, name='s1', state='reverted', revert_state=wanted)['changed']
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_manager_revert_not_in_the_asked_state_is_not_recorded(conn):
    c, name = conn
    dom = c.conn.lookupByName(name)
    dom.destroy()
    run(c, domain=name, name='off')  # taken shut off
    run(c, domain=name, name='other')
    rev = dict(domain=name, name='off', state='reverted', revert_state='running')
    # the test driver ignores REVERT_RUNNING for a snapshot taken shut off (real libvirtd boots
    # the guest): the module sees it, says so in one line, and records nothing
    with pytest.raises(VirtkitError) as err:
        run(c, **rev)
    assert str(err.value) == ('%s: after the revert to snapshot off the guest is shutoff, not running as '
                              'revert_state asks' % name)
    assert record(c, name) is None
    # so the rerun reverts again
    assert run(c, check=True, **rev)['changed']
