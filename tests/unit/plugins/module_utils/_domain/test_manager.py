# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DomainManager against libvirt's embedded test driver (test:///default).

The test driver keeps its state per process while a connection to it is open, so every
test opens its own Connection, uses guest names of its own and removes what it made.
It does not implement attachDeviceFlags or starting paused (VIR_DOMAIN_START_PAUSED):
live attach is covered by the integration tests on a real libvirtd.
"""

from __future__ import annotations

import copy
import os
import time

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.plugins.module_utils._domain.plan import LiveRequests
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse, to_string
from ansible_collections.virtkit.guests.tests.unit.helpers import RICH, params

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'


@pytest.fixture
def files(tmp_path):
    """A raw and a qcow2 image file on this host (the test driver is a local URI)."""
    raw = tmp_path / 'disk.raw'
    raw.write_bytes(b'\0' * 4096)
    qcow = tmp_path / 'disk.qcow2'
    qcow.write_bytes(b'QFI\xfb' + b'\0' * 4092)
    return {'raw': str(raw), 'qcow2': str(qcow), 'dir': tmp_path}


def run(conn, check=False, **options):
    options.setdefault('uri', URI)
    return DomainManager(conn).run(params(**options), check_mode=check)


def ops(result):
    return [a['action'] for a in result['actions']]


def inactive_root(conn, name):
    return parse(conn.conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


# ------------------------------------------------------------------ the whole lifecycle

def test_define_rerun_update_lifecycle_and_absent(conn, name, files):
    base = dict(name=name, memory=128, max_memory=512, vcpus=1, max_vcpus=2, disks=[{'path': files['raw']}],
                interfaces=[{'network': 'default'}], guest_agent=True, rng=True, serial={'type': 'pty'},
                metadata={'groups': ['web'], 'owner': 'a'})

    check = run(conn, check=True, **base)
    assert check['changed'] and ops(check) == ['define']
    assert check['domain'] == {}
    assert conn.domain(name) is None  # check mode touches nothing

    first = run(conn, **base)
    assert first['changed'] and first['actions'] == [{'action': 'define', 'summary': 'define %s' % name}]
    assert first['pending_restart'] is False and first['pending_restart_fields'] == []
    dom = first['domain']
    assert (dom['name'], dom['state'], dom['memory_mib'], dom['max_memory_mib'], dom['vcpus'], dom['max_vcpus']) == \
        (name, 'shutoff', 128, 512, 1, 2)
    assert dom['disks'][0]['source'] == {'file': files['raw']} and dom['disks'][0]['format'] == 'raw'
    assert dom['metadata'] == {'groups': ['web'], 'owner': 'a'}
    assert dom['guest_agent'] is True
    mac = dom['interfaces'][0]['mac']
    assert mac and mac.startswith('52:54:00:')
    uuid = dom['uuid']

    rerun = run(conn, **base)
    assert not rerun['changed'] and rerun['actions'] == []
    check = run(conn, check=True, **base)
    assert not check['changed'] and check['actions'] == []
    assert check['domain']['uuid'] == uuid

    # Memory while shut off: one define, libvirt's identity (UUID, MAC) stays.
    bigger = {**base, 'memory': 256}
    check = run(conn, check=True, **bigger)
    assert check['actions'] == [{'action': 'define', 'summary': 'update the persistent config of %s: memory' % name}]
    assert inactive_root(conn, name).findtext('currentMemory') == str(128 * 1024)
    updated = run(conn, **bigger)
    assert updated['actions'] == check['actions']
    assert updated['domain']['memory_mib'] == 256 and updated['domain']['uuid'] == uuid
    assert updated['domain']['interfaces'][0]['mac'] == mac
    assert not run(conn, **bigger)['changed']

    for state, expected, after in (('running', ['start'], 'running'), ('running', [], 'running'),
                                   ('paused', ['suspend'], 'paused'), ('paused', [], 'paused'),
                                   ('present', [], 'paused'), ('running', ['resume'], 'running'),
                                   ('destroyed', ['destroy'], 'shutoff'), ('destroyed', [], 'shutoff'),
                                   ('shutdown', [], 'shutoff'), ('running', ['start'], 'running'),
                                   ('shutdown', ['shutdown'], 'shutoff')):
        check = run(conn, check=True, state=state, **bigger)
        result = run(conn, state=state, **bigger)
        assert ops(check) == ops(result) == expected, (state, ops(check), ops(result))
        assert result['changed'] == bool(expected)
        assert result['domain']['state'] == after, state

    gone = run(conn, state='absent', name=name)
    assert gone['changed'] and ops(gone) == ['undefine'] and gone['domain'] == {}
    assert conn.domain(name) is None
    again = run(conn, state='absent', name=name)
    assert not again['changed'] and again['actions'] == [] and again['domain'] == {}
    assert not run(conn, check=True, state='absent', name=name)['changed']


def test_absent_powers_a_running_guest_off_first(conn, name):
    run(conn, name=name, state='running', memory=64)
    check = run(conn, check=True, name=name, state='absent')
    result = run(conn, name=name, state='absent')
    assert ops(check) == ops(result) == ['destroy', 'undefine']
    assert conn.domain(name) is None


def test_diff_texts(conn, name):
    first = run(conn, name=name, memory=64, max_memory=128, title='web', rng=True)
    assert first['diff']['before'] == 'state: absent\n'
    after = first['diff']['after'].splitlines()
    assert after[0] == 'state: shutoff' and after[1] == 'xml:'
    assert after[2] == '  <domain type="test">'
    assert '    <title>web</title>' in after
    assert first['diff']['before_header'] == '%s (before)' % name

    update = run(conn, name=name, memory=96, max_memory=128, title='web', rng=True,
                 graphics={'type': 'vnc', 'password': 'hunter2'})
    before, after = update['diff']['before'].splitlines(), update['diff']['after'].splitlines()
    assert before[0] == after[0] == 'state: shutoff'
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before]
    assert removed == ['    <currentMemory unit="KiB">65536</currentMemory>']
    assert added[0] == '    <currentMemory unit="KiB">98304</currentMemory>'
    assert any('passwd=\'********\'' in line for line in added)
    assert 'hunter2' not in update['diff']['after']
    # Unchanged: before and after are equal texts.
    same = run(conn, name=name, memory=96, max_memory=128, title='web')
    assert same['diff']['before'] == same['diff']['after']

    gone = run(conn, name=name, state='absent')
    assert gone['diff']['before'].startswith('state: shutoff') and gone['diff']['after'] == 'state: absent\n'


def test_a_nic_without_mac_keeps_libvirts_mac_across_updates(conn, name):
    first = run(conn, name=name, interfaces=[{'network': 'default'}, {'network': 'default', 'model': 'e1000'}])
    macs = [n['mac'] for n in first['domain']['interfaces']]
    second = run(conn, name=name, interfaces=[{'network': 'default'}, {'network': 'default', 'model': 'rtl8139'}])
    assert second['actions'][0]['summary'] == 'update the persistent config of %s: interfaces:%s' % (name, macs[1])
    assert [n['mac'] for n in second['domain']['interfaces']] == macs
    assert [n['model'] for n in second['domain']['interfaces']] == ['virtio', 'rtl8139']


def test_rich_guest_round_trips_through_libvirt(conn, name, files):
    pool = conn.conn.storagePoolLookupByName('default-pool')
    volume = name + '.qcow2'
    pool.createXML("<volume><name>%s</name><capacity>1048576</capacity><target><format type='qcow2'/></target>"
                   "</volume>" % volume, 0)
    kernel, initrd, iso = (files['dir'] / 'vmlinuz', files['dir'] / 'initrd', files['dir'] / 'seed.iso')
    for path in (kernel, initrd, iso):
        path.write_bytes(b'x')
    options = copy.deepcopy(RICH)
    for key in ('virt_type', 'machine', 'firmware', 'secure_boot'):  # the test driver has none of these
        options.pop(key)
    options['name'] = name
    options['boot'] = {'kernel': str(kernel), 'initrd': str(initrd), 'cmdline': 'console=ttyS0'}
    options['disks'] = [{'path': files['qcow2']}, {'pool': 'default-pool', 'volume': volume},
                        {'device': 'cdrom', 'path': str(iso)}, {'device': 'cdrom'}]
    options['interfaces'] = [{'network': 'default'}, {'network': 'default', 'mac': '52:54:00:12:34:56'},
                             {'bridge': 'br0', 'alias': 'ua-backend', 'model': 'e1000e'}]
    # libvirt writes vcpu/@placement back, so deleting it is not part of this round trip.
    options['xml_overrides'] = [o for o in RICH['xml_overrides'] if o.get('state') != 'absent']
    try:
        first = run(conn, **options)
        assert first['changed']
        disks = {d['target']: d for d in first['domain']['disks']}
        assert disks['vda']['format'] == 'qcow2'  # sniffed from the file's header
        assert disks['vdb']['format'] == 'qcow2'  # read from the volume
        assert disks['hda']['format'] == 'raw' and disks['hda']['readonly']
        assert not run(conn, **options)['changed']
        assert not run(conn, check=True, **options)['changed']
    finally:
        run(conn, name=name, state='absent')
        pool.storageVolLookupByName(volume).delete(0)


def test_an_override_libvirt_rewrites_is_reported_in_one_line(conn, name):
    with pytest.raises(VirtkitError) as err:
        run(conn, name=name, xml_overrides=[{'xpath': '/domain/vcpu/@placement', 'state': 'absent'}])
    assert str(err.value) == ('%s: libvirt did not keep xml_overrides as set (it rewrote them on define); '
                              'check the values against the host' % name)


# ------------------------------------------------------------------ live changes on a running guest

def test_running_guest_memory_and_vcpus_change_live(conn, name):
    base = dict(name=name, state='running', memory=128, max_memory=256, vcpus=1, max_vcpus=4)
    run(conn, **base)
    changed = {**base, 'memory': 64, 'vcpus': 3}
    check = run(conn, check=True, **changed)
    result = run(conn, **changed)
    assert ops(check) == ops(result) == ['define', 'set_memory', 'set_vcpus']
    assert result['pending_restart'] is False
    assert (result['domain']['memory_mib'], result['domain']['vcpus']) == (64, 3)
    dom = conn.conn.lookupByName(name)
    assert dom.info()[2] == 64 * 1024 and dom.info()[3] == 3  # the running guest itself
    assert not run(conn, **changed)['changed']


def test_restart_only_changes_are_pending_or_restart_with_if_needed(conn, name):
    base = dict(name=name, state='running', memory=64)
    run(conn, **base)
    dom_id = conn.conn.lookupByName(name).ID()
    pending = run(conn, cpu={'mode': 'host-passthrough'}, **base)
    assert ops(pending) == ['define']
    assert pending['pending_restart'] is True and pending['pending_restart_fields'] == ['cpu']
    assert conn.conn.lookupByName(name).ID() == dom_id  # not restarted
    # Rerun: the config is written; the restart is still pending, nothing changes.
    again = run(conn, cpu={'mode': 'host-passthrough'}, **base)
    assert not again['changed'] and again['pending_restart_fields'] == ['cpu']

    restarted = run(conn, cpu={'mode': 'host-passthrough'}, restart_policy='if_needed', **base)
    assert ops(restarted) == ['restart']
    assert restarted['pending_restart'] is False and restarted['pending_restart_fields'] == []
    assert restarted['domain']['state'] == 'running'
    assert conn.conn.lookupByName(name).ID() != dom_id
    assert not run(conn, cpu={'mode': 'host-passthrough'}, restart_policy='if_needed', **base)['changed']


def test_restart_of_a_paused_guest_leaves_it_as_the_state_asks(conn, name):
    run(conn, name=name, state='running', memory=64)
    run(conn, name=name, state='paused')
    kept = run(conn, name=name, cpu={'mode': 'maximum'}, restart_policy='if_needed')  # state present
    assert ops(kept) == ['define', 'restart', 'suspend']
    assert kept['domain']['state'] == 'paused'
    resumed = run(conn, name=name, state='running', cpu={'mode': 'host-passthrough'}, restart_policy='if_needed')
    assert ops(resumed) == ['define', 'restart']  # no resume of a guest the restart already runs
    assert resumed['domain']['state'] == 'running'


def test_metadata_changes_live_on_a_running_guest(conn, name):
    run(conn, name=name, state='running', memory=64, metadata={'a': '1'})
    result = run(conn, name=name, state='running', memory=64, metadata={'a': '2'}, title='t')
    assert ops(result) == ['define', 'set_metadata', 'set_metadata']
    assert result['domain']['metadata'] == {'a': '2'} and result['domain']['title'] == 't'


# ------------------------------------------------------------------ storage

def test_absent_with_remove_storage_deletes_files_and_volumes(conn, name, files):
    pool = conn.conn.storagePoolLookupByName('default-pool')
    volume = name + '.raw'
    pool.createXML("<volume><name>%s</name><capacity>1048576</capacity></volume>" % volume, 0)
    keep = files['dir'] / 'keep.raw'
    keep.write_bytes(b'\0')
    run(conn, name=name, disks=[{'path': files['raw']}, {'pool': 'default-pool', 'volume': volume},
                                {'path': str(keep)}])
    with pytest.raises(VirtkitError, match='remove_storage names vdx, but the guest has no disk with that target'):
        run(conn, name=name, state='absent', remove_storage=['vdx'])
    assert conn.domain(name) is not None  # refused before anything happened

    check = run(conn, check=True, name=name, state='absent', remove_storage=['vda', 'vdb'])
    assert ops(check) == ['undefine', 'delete_storage', 'delete_storage']
    assert os.path.exists(files['raw'])
    result = run(conn, name=name, state='absent', remove_storage=['vda', 'vdb'])
    assert ops(result) == ops(check)
    assert not os.path.exists(files['raw'])
    assert conn.volume(pool, volume) is None
    assert os.path.exists(str(keep))  # not named: kept


# ------------------------------------------------------------------ errors before any change

@pytest.mark.parametrize('options, message', [
    ({'interfaces': [{'network': 'nope'}]},
     '{name}: network nope does not exist (define it first, for example with virtkit.guests.libvirt_network)'),
    ({'disks': [{'pool': 'nope', 'volume': 'v.qcow2'}]}, '{name}: disk vda: storage pool nope does not exist'),
    ({'disks': [{'pool': 'default-pool', 'volume': 'missing.qcow2'}]},
     '{name}: disk vda: volume missing.qcow2 does not exist in pool default-pool'),
    ({'disks': [{'path': '/nonexistent/virtkit/disk.qcow2'}]},
     '{name}: disk vda: /nonexistent/virtkit/disk.qcow2 does not exist'),
    ({'disks': [{'device': 'cdrom', 'target': 'hdc', 'path': '/nonexistent/virtkit/seed.iso'}]},
     '{name}: disk hdc: /nonexistent/virtkit/seed.iso does not exist'),
    ({'boot': {'kernel': '/nonexistent/virtkit/vmlinuz'}}, '{name}: boot.kernel /nonexistent/virtkit/vmlinuz does not exist'),
    ({'virt_type': 'kvm'}, '{name}: virt_type kvm is not available on this host (it offers test); '
                           'use virt_type: qemu where KVM is missing'),
    ({'memory': '1 parsec'}, "memory: unknown unit 'parsec' in '1 parsec'; use B, KiB, MiB, GiB, TiB "
                             "(or K, M, G, T; KB, MB, GB, TB are decimal)"),
])
def test_preflight_errors_are_one_line_and_define_nothing(conn, name, options, message):
    before = sorted(d.name() for d in conn.conn.listAllDomains(0))
    for check in (True, False):
        with pytest.raises(VirtkitError) as err:
            run(conn, check=check, name=name, state='running', **options)
        assert str(err.value) == message.format(name=name)
        assert '\n' not in str(err.value)
    assert conn.domain(name) is None
    assert sorted(d.name() for d in conn.conn.listAllDomains(0)) == before


def test_an_inactive_network_fails_a_start_before_the_define(conn, name):
    net = conn.conn.networkLookupByName('default')
    net.destroy()
    try:
        with pytest.raises(VirtkitError, match=r'network default is not active, so the guest cannot start '
                                               r'\(start it with virsh net-start default\)'):
            run(conn, name=name, state='running', interfaces=[{'network': 'default'}])
        assert conn.domain(name) is None
        # Defining without starting is fine.
        assert run(conn, name=name, interfaces=[{'network': 'default'}])['changed']
    finally:
        net.create()


def test_connect_error_is_one_line():
    with pytest.raises(VirtkitError) as err:
        Connection('test:///nonexistent/virtkit.xml')
    assert str(err.value).startswith('test:///nonexistent/virtkit.xml: connect failed: ')
    assert '\n' not in str(err.value)


# ------------------------------------------------------------------ check mode == real run

SCENARIOS = {
    'new running guest': [dict(state='running', memory=64, interfaces=[{'network': 'default'}])],
    'update while running': [dict(state='running', memory=128, max_memory=256, vcpus=1, max_vcpus=2),
                             dict(state='running', memory=96, vcpus=2, title='x', autostart=True)],
    'pending restart': [dict(state='running', memory=64), dict(state='running', memory=64, cpu={'mode': 'maximum'})],
    'pause and absent': [dict(state='running', memory=64), dict(state='paused'), dict(state='absent')],
}


@pytest.mark.parametrize('steps', list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_check_mode_reports_exactly_what_the_real_run_executes(conn, name, steps, monkeypatch):
    executed = []
    original = DomainManager.execute

    def spy(self, plan, spec, current):
        executed.append([{'action': a.op, 'summary': a.summary} for a in plan.actions if a.changes])
        return original(self, plan, spec, current)

    monkeypatch.setattr(DomainManager, 'execute', spy)
    for step in steps:
        check = run(conn, check=True, name=name, **step)
        assert executed == []  # check mode executes nothing
        real = run(conn, name=name, **step)
        assert executed.pop() == check['actions'] == real['actions']
        assert (check['changed'], check['pending_restart_fields']) == (real['changed'], real['pending_restart_fields'])
        assert check['diff'] == real['diff']


# ------------------------------------------------------------------ live changes the guest must complete
# The test driver neither detaches devices live nor has a guest that could ignore a
# balloon target. A thin stand-in around its domain plays the guest: it hides a detached
# device from the live XML when it "honours" the unplug, and keeps its memory when it
# has "no balloon driver". Everything else (define, live metadata, state) is libvirt's.

class Guest:
    """A test-driver domain whose guest cooperates in unplug and balloon, or not.

    Started through the stand-in (or after :meth:`boot`), it is at its maximum memory as a
    QEMU guest is at the start, until its balloon driver (``balloon=True``) reaches the
    target (:meth:`settle`, or a set_memory); without a driver it stays there.
    """

    def __init__(self, dom, unplug=True, balloon=True):
        self.dom = dom
        self.unplug = unplug
        self.balloon = balloon
        self.unplugged = []  # live device elements the guest released
        self.detach_calls = 0
        self.memory_calls = 0
        self.at_kib = None  # where the guest is, while that differs from the test driver's value

    def __getattr__(self, attr):
        return getattr(self.dom, attr)

    def boot(self):
        """A new QEMU process: the guest has all of <memory>."""
        self.at_kib = int(parse(self.dom.XMLDesc(0)).find('memory').text)

    def settle(self):
        """The balloon driver reached the target libvirt asked for."""
        assert self.balloon
        self.at_kib = None

    def createWithFlags(self, flags=0):  # noqa: N802
        self.dom.createWithFlags(flags)
        self.boot()
        return 0

    def XMLDesc(self, flags=0):  # noqa: N802 - libvirt's name
        xml = self.dom.XMLDesc(flags)
        if flags & libvirt.VIR_DOMAIN_XML_INACTIVE or not (self.unplugged or self.at_kib) or not self.dom.isActive():
            return xml
        root = parse(xml)
        if self.at_kib:
            root.find('currentMemory').text = str(self.at_kib)
        devices = root.find('devices')
        for gone in self.unplugged:
            for el in devices.findall(gone.tag):
                if to_string(el) == to_string(gone):
                    devices.remove(el)
        return to_string(root)

    def detachDeviceFlags(self, xml, flags):  # noqa: N802
        self.detach_calls += 1
        assert flags == libvirt.VIR_DOMAIN_AFFECT_LIVE
        if self.unplug:
            wanted = parse(xml)
            for el in parse(self.dom.XMLDesc(0)).find('devices').findall(wanted.tag):
                if to_string(el) == to_string(wanted):
                    self.unplugged.append(el)
        return 0

    def setMemoryFlags(self, kib, flags):  # noqa: N802
        self.memory_calls += 1
        if not self.balloon:
            return 0
        self.at_kib = None
        return self.dom.setMemoryFlags(kib, flags)


class GuestConnection:
    """The virConnect of the test driver, handing out the stand-in after a define."""

    def __init__(self, conn, guest):
        self.conn = conn
        self.guest = guest

    def __getattr__(self, attr):
        return getattr(self.conn, attr)

    def defineXMLFlags(self, xml, flags):  # noqa: N802
        self.conn.defineXMLFlags(xml, flags)
        return self.guest


def run_guest(conn, guest, check=False, live_timeout=1, **options):
    """One module run against the stand-in ``guest``."""
    options.setdefault('uri', URI)
    manager = DomainManager(conn)
    manager.conn = GuestConnection(conn.conn, guest)
    conn.domain = lambda name: guest if name == guest.dom.name() else None
    try:
        values = params(live_timeout=live_timeout, **options)
        return manager.run(values, check_mode=check)
    finally:
        del conn.domain


def live_requests(conn, name):
    root = parse(conn.conn.lookupByName(name).XMLDesc(0))
    return LiveRequests.read(root)


def two_nics(name):
    return dict(name=name, state='running', memory=64, interfaces=[{'network': 'default'}, {'network': 'default'}])


def test_a_detach_the_guest_completes_is_confirmed(conn, name):
    run(conn, **two_nics(name))
    guest = Guest(conn.conn.lookupByName(name))
    macs = [nic['mac'] for nic in run(conn, name=name)['domain']['interfaces']]
    one = {**two_nics(name), 'interfaces': [{'mac': macs[0], 'network': 'default'}], 'devices_exclusive': True}
    result = run_guest(conn, guest, **one)
    assert ops(result) == ['define', 'detach_device']
    assert result['pending_restart'] is False and result['warnings'] == []
    assert [nic['mac'] for nic in result['domain']['interfaces']] == [macs[0]]
    assert live_requests(conn, name).detach == set()
    again = run_guest(conn, guest, **one)
    assert not again['changed'] and again['warnings'] == [] and guest.detach_calls == 1


def test_a_detach_the_guest_ignores_is_reported_and_reruns_are_stable(conn, name):
    run(conn, **two_nics(name))
    guest = Guest(conn.conn.lookupByName(name), unplug=False)
    macs = [nic['mac'] for nic in run(conn, name=name)['domain']['interfaces']]
    one = {**two_nics(name), 'interfaces': [{'mac': macs[0], 'network': 'default'}], 'devices_exclusive': True}
    field = 'interfaces:%s' % macs[1]
    started = time.monotonic()
    result = run_guest(conn, guest, live_timeout=1, **one)
    assert time.monotonic() - started < 10  # bounded by live_timeout
    assert result['changed'] and ops(result) == ['define', 'detach_device']
    assert result['pending_restart'] is True and result['pending_restart_fields'] == [field]
    assert result['warnings'] == [
        '%s: %s: the guest did not release the device within 1s (does it ignore hot-unplug?); the persistent '
        'config no longer has it, so it goes at the next restart (pending_restart); reruns do not ask again'
        % (name, field)]
    # Honest facts: the running guest still has the NIC, its persistent config does not.
    assert [nic['mac'] for nic in result['domain']['interfaces']] == macs
    assert [el.find('mac').get('address') for el in inactive_root(conn, name).findall('devices/interface')] == \
        [macs[0]]
    assert live_requests(conn, name).detach == {field}
    for check in (False, True):
        again = run_guest(conn, guest, check=check, **one)
        assert not again['changed'] and again['actions'] == []
        assert again['pending_restart'] is True and again['pending_restart_fields'] == [field]
        assert len(again['warnings']) == 1 and 'an earlier run asked the guest to release' in again['warnings'][0]
    assert guest.detach_calls == 1  # asked once, never again
    # The next boot applies the persistent config, and the live record goes with it.
    restarted = run_guest(conn, guest, restart_policy='if_needed', force=True, shutdown_timeout=0, **one)
    assert ops(restarted) == ['restart'] and restarted['pending_restart'] is False
    assert [nic['mac'] for nic in restarted['domain']['interfaces']] == [macs[0]]
    assert live_requests(conn, name).detach == set()
    assert not run_guest(conn, guest, **one)['changed']


def test_a_balloon_target_the_guest_ignores_is_asked_for_once(conn, name):
    base = dict(name=name, state='running', memory=128, max_memory=256)
    run(conn, **base)
    guest = Guest(conn.conn.lookupByName(name), balloon=False)
    result = run_guest(conn, guest, **{**base, 'memory': 64})
    assert ops(result) == ['define', 'set_memory'] and result['pending_restart'] is False
    assert result['warnings'] == [
        '%s: memory: the guest is at 128 MiB, it did not reach the 64 MiB asked for within 1s (no balloon '
        'driver in the guest?); the persistent config has it and reruns do not ask again while the guest '
        'stays there' % name]
    assert result['domain']['memory_mib'] == 128  # what the guest really has
    assert live_requests(conn, name).balloon == (64 * 1024, 128 * 1024)
    for check in (False, True):
        again = run_guest(conn, guest, check=check, **{**base, 'memory': 64})
        assert not again['changed'] and again['actions'] == [] and again['pending_restart'] is False
        assert len(again['warnings']) == 1 and 'not at the 64 MiB asked for when the module started it or by an ' \
            'earlier run' in again['warnings'][0]
    assert guest.memory_calls == 1
    # A guest that does balloon: another target is asked for, reached, the record cleared.
    guest.balloon = True
    reached = run_guest(conn, guest, **{**base, 'memory': 96})
    assert ops(reached) == ['define', 'set_memory'] and reached['warnings'] == []
    assert reached['domain']['memory_mib'] == 96
    assert live_requests(conn, name).balloon is None


def assert_quiet(conn, guest, options, warning):
    """A rerun and a check-mode rerun change nothing and ask the balloon nothing."""
    calls = guest.memory_calls
    for check in (False, True):
        again = run_guest(conn, guest, check=check, **options)
        assert not again['changed'] and again['actions'] == [] and again['pending_restart'] is False
        if warning:
            assert again['warnings'] == [warning]
        else:
            assert again['warnings'] == []
    assert guest.memory_calls == calls


def stuck_warning(name, at_mib, target_mib):
    return ('%s: memory: the guest is at %d MiB, not at the %d MiB asked for when the module started it or by an '
            'earlier run (no balloon driver in the guest, or still on its way?); not asking again, the persistent '
            'config has it' % (name, at_mib, target_mib))


def test_reruns_after_the_module_starts_a_guest_without_a_balloon_driver_are_no_ops(conn, name):
    base = dict(name=name, state='running', memory=128, max_memory=256)
    run(conn, **{**base, 'state': 'present'})
    guest = Guest(conn.conn.lookupByName(name), balloon=False)
    started = run_guest(conn, guest, **base)
    assert ops(started) == ['start'] and started['warnings'] == []
    # libvirt asked the balloon for 128 MiB at the start; the guest stays at its 256 MiB.
    assert started['domain']['memory_mib'] == 256
    assert live_requests(conn, name).balloon == (128 * 1024, 256 * 1024)
    assert_quiet(conn, guest, base, stuck_warning(name, 256, 128))
    # A reset inside the same QEMU process keeps the live metadata and the memory.
    guest.dom.reset(0)
    assert_quiet(conn, guest, base, stuck_warning(name, 256, 128))
    # Off and on again through the module: a new QEMU process, the start records anew.
    assert ops(run_guest(conn, guest, **{**base, 'state': 'destroyed'})) == ['destroy']
    assert live_requests(conn, name).balloon is None
    assert ops(run_guest(conn, guest, **base)) == ['start']
    assert_quiet(conn, guest, base, stuck_warning(name, 256, 128))
    # A restart for a restart-only change (restart_policy if_needed) records it as well.
    cpu = {**base, 'cpu': {'mode': 'host-passthrough'}, 'restart_policy': 'if_needed', 'force': True,
           'shutdown_timeout': 0}
    dom_id = guest.dom.ID()
    assert ops(run_guest(conn, guest, **cpu)) == ['define', 'restart']
    assert guest.dom.ID() != dom_id and live_requests(conn, name).balloon == (128 * 1024, 256 * 1024)
    assert_quiet(conn, guest, cpu, stuck_warning(name, 256, 128))
    assert guest.memory_calls == 0  # nothing asked after libvirt did at each start
    # Another target is still asked for (once).
    lower = run_guest(conn, guest, **{**cpu, 'memory': 96})
    assert ops(lower) == ['define', 'set_memory'] and guest.memory_calls == 1
    assert live_requests(conn, name).balloon == (96 * 1024, 256 * 1024)


def test_a_guest_whose_balloon_driver_reaches_the_target_later_is_quiet(conn, name):
    base = dict(name=name, state='running', memory=128, max_memory=256)
    run(conn, **{**base, 'state': 'present'})
    guest = Guest(conn.conn.lookupByName(name), balloon=True)
    started = run_guest(conn, guest, **base)
    assert ops(started) == ['start'] and started['domain']['memory_mib'] == 256
    # Right after the start (the driver not loaded yet) and on its way down: quiet.
    assert_quiet(conn, guest, base, stuck_warning(name, 256, 128))
    guest.at_kib = 200 * 1024
    assert_quiet(conn, guest, base, stuck_warning(name, 200, 128))
    # There: quiet without a warning.
    guest.settle()
    assert_quiet(conn, guest, base, None)
    assert run_guest(conn, guest, **base)['domain']['memory_mib'] == 128
    assert guest.memory_calls == 0


def test_a_reached_balloon_target_is_forgotten_so_a_later_return_to_the_maximum_is_corrected(conn, name):
    """Once the guest is at its target, the record of the request goes (quietly): a guest that
    later returns towards its maximum (virsh setmem, the driver unloaded) is asked again."""
    base = dict(name=name, state='running', memory=128, max_memory=256)
    run(conn, **{**base, 'state': 'present'})
    guest = Guest(conn.conn.lookupByName(name), balloon=True)
    run_guest(conn, guest, **base)
    assert live_requests(conn, name).balloon == (128 * 1024, 256 * 1024)
    guest.settle()
    # Check mode sees the reached target but keeps the record; the real rerun drops it, unchanged.
    assert_quiet(conn, guest, base, None)
    assert live_requests(conn, name).balloon is None
    assert not run_guest(conn, guest, **base)['changed']
    # Someone gives the guest its maximum again: the next run asks for the target.
    guest.at_kib = 256 * 1024
    corrected = run_guest(conn, guest, **base)
    assert ops(corrected) == ['set_memory'] and corrected['warnings'] == []
    assert corrected['domain']['memory_mib'] == 128 and guest.memory_calls == 1


def test_a_guest_started_outside_the_module_is_asked_once(conn, name):
    base = dict(name=name, state='running', memory=128, max_memory=256)
    run(conn, **{**base, 'state': 'present'})
    guest = Guest(conn.conn.lookupByName(name), balloon=False)
    guest.dom.create()  # virsh start: no record of what libvirt asked
    guest.boot()
    asked = run_guest(conn, guest, **base)
    assert ops(asked) == ['set_memory'] and guest.memory_calls == 1
    assert asked['warnings'] and 'did not reach the 128 MiB asked for within 1s' in asked['warnings'][0]
    assert_quiet(conn, guest, base, stuck_warning(name, 256, 128))


def test_memory_of_a_guest_without_balloon_device_is_pending_not_an_error(conn, name):
    none = [{'xpath': '/domain/devices/memballoon/@model', 'value': 'none'}]
    run(conn, name=name, state='running', memory=128, max_memory=256, xml_overrides=none)
    result = run(conn, name=name, state='running', memory=64, xml_overrides=none)
    assert ops(result) == ['define']
    assert result['pending_restart'] is True and result['pending_restart_fields'] == ['memory']


def test_live_timeout_must_not_be_negative(conn, name):
    values = params(name=name, uri=URI, live_timeout=-1)
    with pytest.raises(VirtkitError, match='^live_timeout: must not be negative$'):
        DomainManager(conn).run(values)
    assert conn.domain(name) is None


def test_a_paused_guest_is_checked_once_not_waited_for(conn, name):
    run(conn, **two_nics(name))
    run(conn, name=name, state='paused')
    guest = Guest(conn.conn.lookupByName(name), unplug=False)
    macs = [nic['mac'] for nic in run(conn, name=name)['domain']['interfaces']]
    one = {**two_nics(name), 'state': 'paused', 'interfaces': [{'mac': macs[0], 'network': 'default'}],
           'devices_exclusive': True}
    started = time.monotonic()
    result = run_guest(conn, guest, live_timeout=30, **one)
    assert time.monotonic() - started < 10  # no 30 s wait for a guest that cannot answer
    assert result['pending_restart_fields'] == ['interfaces:%s' % macs[1]]
    assert result['warnings'] == [
        '%s: interfaces:%s: the guest did not release the device at once: it is not running; the persistent '
        'config no longer has it, so it goes at the next restart (pending_restart); reruns do not ask again'
        % (name, macs[1])]
