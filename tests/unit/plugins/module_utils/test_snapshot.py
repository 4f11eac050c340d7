# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots: XML (checked against libvirt's domainsnapshot schema), pure plans, and the
manager against libvirt's embedded test driver (test:///default)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtkit.guests.plugins.module_utils import _snapshot as snap
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._xml import to_string

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
    tool = shutil.which('virt-xml-validate')
    if tool is None or shutil.which('xmllint') is None:
        pytest.skip('virt-xml-validate (libvirt-clients) or xmllint (libxml2-utils) is not installed')
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
