# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Addresses: stale DHCP leases from an earlier boot never count; the guest's start time.

Fake network/domain objects stand in for libvirt; the pid file and /proc are fake trees
under tmp_path.
"""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._domain import addresses as addr
from ansible_collections.virtkit.guests.plugins.module_utils._domain.addresses import (
    AddressReader, first_address, fresh, guest_start_time, lease_key, lease_seconds, qemu_run_dir)
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

MAC = '52:54:00:aa:bb:01'
OTHER_MAC = '52:54:00:aa:bb:02'
LIVE = parse('''<domain type='kvm'><name>vm1</name><devices>
  <interface type='network'><mac address='%s'/><source network='lab'/></interface>
  <interface type='network'><mac address='%s'/><source network='infinite'/></interface>
  <interface type='bridge'><mac address='52:54:00:aa:bb:03'/><source bridge='br0'/></interface>
</devices></domain>''' % (MAC.upper(), OTHER_MAC))

T0 = 1795696000  # when the guest's current boot began (host epoch seconds)


def network_xml(lease=''):
    return ("<network><name>lab</name><ip address='192.168.250.1' netmask='255.255.255.0'><dhcp>"
            "<range start='192.168.250.100' end='192.168.250.199'>%s</range></dhcp></ip></network>" % lease)


def lease(ip, acquired, duration=3600, mac=MAC):
    """A lease as virNetworkGetDHCPLeases returns it (expirytime = grant time + lease time)."""
    return {'iface': 'virbr-lab', 'expirytime': int(acquired) + duration if duration else 0, 'type': 0,
            'mac': mac, 'iaid': None, 'ipaddr': ip, 'prefix': 24, 'hostname': 'vm1', 'clientid': None}


class FakeNetwork:
    def __init__(self, xml, leases, active=True, fail=False):
        self.xml, self.leases, self.active, self.fail = xml, leases, active, fail
        self.xml_reads = 0

    def isActive(self):
        return self.active

    def XMLDesc(self, flags):
        self.xml_reads += 1
        return self.xml

    def DHCPLeases(self, mac=None):
        if self.fail:
            raise libvirt.libvirtError('fake: leases unavailable')
        return [entry for entry in self.leases if mac is None or entry['mac'] == mac]


class FakeConnection:
    def __init__(self, networks, uri='qemu:///system'):
        self.networks, self.uri = networks, uri

    def network(self, name):
        return self.networks.get(name)


class FakeDomain:
    def __init__(self, name='vm1', state=None, reason=None, agent=None, fail=False):
        self._name = name
        self._state = libvirt.VIR_DOMAIN_RUNNING if state is None else state
        self._reason = libvirt.VIR_DOMAIN_RUNNING_BOOTED if reason is None else reason
        self.agent = agent or {}
        self.fail = fail

    def name(self):
        return self._name

    def state(self):
        if self.fail:
            raise libvirt.libvirtError('fake: domain vanished')
        return [self._state, self._reason]

    def interfaceAddresses(self, source, flags):
        return self.agent


def reader_for(leases, lease_xml='', active=True, fail=False):
    net = FakeNetwork(network_xml(lease_xml), leases, active=active, fail=fail)
    return AddressReader(FakeConnection({'lab': net})), net


# ------------------------------------------------------------------ lease time of a network

@pytest.mark.parametrize('element, seconds', [
    ('', 3600),                                        # none set: dnsmasq's default hour
    ("<lease expiry='2' unit='hours'/>", 7200),
    ("<lease expiry='30'/>", 1800),                    # minutes by default
    ("<lease expiry='600' unit='seconds'/>", 600),
    ("<lease expiry='0'/>", None),                     # infinite
])
def test_lease_seconds(element, seconds):
    assert lease_seconds(network_xml(element)) == seconds


# ------------------------------------------------------------------ the rule itself

@pytest.mark.parametrize('acquired, since, counts', [
    (T0 - 30, T0, False),          # stale: from the boot before
    (T0 - 2, T0, False),           # stale even when the restart was quick
    (T0 + 12, T0, True),           # fresh: taken during this boot
    (T0, T0, True),                # taken in the very second the guest started
    (T0, T0 + 0.9, True),          # dnsmasq truncates to whole seconds
    (T0 - 1, T0 + 0.5, False),     # ...but not more than that
])
def test_fresh_compares_acquisition_with_the_start(acquired, since, counts):
    assert fresh(lease('10.0.0.5', acquired), since, 3600) is counts


def test_fresh_counts_everything_when_nothing_tells_stale_apart():
    stale = lease('10.0.0.5', T0 - 600)
    assert fresh(stale, None, 3600)                                 # start time unknown
    assert fresh(stale, T0, None)                                   # infinite lease time
    assert fresh(lease('10.0.0.5', T0 - 600, duration=0), T0, 3600)  # no expiry time (infinite lease)


def test_fresh_counts_a_renewed_lease():
    """A lease first granted before the start and renewed during this boot: renewal moves
    the expiry, so the lease reads as acquired at the renewal."""
    first_grant = lease('10.0.0.5', T0 - 1000)
    renewed = dict(first_grant, expirytime=T0 + 20 + 3600)
    assert not fresh(first_grant, T0, 3600)
    assert fresh(renewed, T0, 3600)


def test_fresh_reads_the_expiry_as_libvirt_returns_it():
    assert fresh(dict(lease('10.0.0.5', T0 + 5), expirytime=str(T0 + 5 + 3600)), T0, 3600)


# ------------------------------------------------------------------ the reader

def test_reader_drops_the_lease_of_the_earlier_boot():
    reader, _net = reader_for([lease('192.168.250.150', T0 - 40), lease('192.168.250.151', T0 + 14)])
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == ['192.168.250.151']


def test_reader_with_only_a_stale_lease_reports_nothing_yet():
    """Right after a restart only the old lease exists: no answer, so wait_for_ip keeps polling."""
    reader, _net = reader_for([lease('192.168.250.150', T0 - 40)])
    found = reader.read(FakeDomain(), LIVE, ['lease'], since=T0)
    assert found == {MAC.lower(): [], OTHER_MAC: [], '52:54:00:aa:bb:03': []}
    assert first_address(found) is None


def test_reader_without_a_start_time_takes_any_lease_and_skips_the_network_xml():
    reader, net = reader_for([lease('192.168.250.150', T0 - 40)])
    assert reader.read(FakeDomain(), LIVE, ['lease'])[MAC.lower()] == ['192.168.250.150']
    assert net.xml_reads == 0


def test_reader_reads_the_lease_time_once_per_network():
    reader, net = reader_for([lease('192.168.250.150', T0 - 40, duration=600)], "<lease expiry='10'/>")
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == []
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0 - 60)[MAC.lower()] == ['192.168.250.150']
    assert net.xml_reads == 1


def test_reader_uses_the_network_lease_time():
    """With 10-minute leases a lease that expires in 9 minutes was taken a minute ago."""
    now_lease = lease('192.168.250.150', T0 + 60, duration=600)
    reader, _net = reader_for([now_lease], "<lease expiry='10'/>")
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == ['192.168.250.150']
    # the same expiry read with dnsmasq's default hour would look 50 minutes old
    reader, _net = reader_for([now_lease])
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == []


def test_reader_keeps_infinite_leases():
    reader, _net = reader_for([lease('192.168.250.150', T0 - 4000, duration=0)], "<lease expiry='0'/>")
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == ['192.168.250.150']


@pytest.mark.parametrize('active, fail', [(False, False), (True, True)])
def test_reader_without_leases(active, fail):
    reader, _net = reader_for([lease('192.168.250.150', T0 + 5)], active=active, fail=fail)
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == []


def test_reader_skips_unusable_addresses_and_other_macs():
    reader, _net = reader_for([lease('fe80::1', T0 + 5), lease('192.168.250.160', T0 + 5, mac=OTHER_MAC),
                               lease('192.168.250.150', T0 + 6)])
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == ['192.168.250.150']


def test_baseline_drops_the_leases_held_before_the_start_whatever_the_clocks_say():
    """Over a remote URI: the libvirt host's clock runs a minute behind ours (``since`` would
    drop this boot's lease); the baseline taken before the start tells the leases apart."""
    stale = lease('192.168.250.150', T0 - 3000)
    reader, _net = reader_for([stale])
    baseline = reader.lease_keys(LIVE)
    assert baseline == frozenset([lease_key(stale)])
    # after the start: the old lease and a new one, dated by the host's slow clock
    reader, _net = reader_for([stale, lease('192.168.250.151', T0 - 60)])
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0)[MAC.lower()] == []
    found = reader.read(FakeDomain(), LIVE, ['lease'], since=T0, baseline=baseline)
    assert found[MAC.lower()] == ['192.168.250.151']


def test_baseline_counts_a_renewal_of_the_same_address():
    old = lease('192.168.250.150', T0 - 3000)
    reader, _net = reader_for([old])
    baseline = reader.lease_keys(LIVE)
    reader, _net = reader_for([lease('192.168.250.150', T0 - 55)])
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0, baseline=baseline)[MAC.lower()] == [
        '192.168.250.150']


def test_baseline_with_only_the_old_lease_reports_nothing_yet():
    reader, net = reader_for([lease('192.168.250.150', T0 - 40)])
    baseline = reader.lease_keys(LIVE)
    assert reader.read(FakeDomain(), LIVE, ['lease'], since=T0, baseline=baseline)[MAC.lower()] == []
    assert net.xml_reads == 0  # no lease time needed


@pytest.mark.parametrize('active, fail', [(False, False), (True, True)])
def test_baseline_of_an_inactive_or_failing_network_is_empty(active, fail):
    reader, _net = reader_for([lease('192.168.250.150', T0 - 40)], active=active, fail=fail)
    assert reader.lease_keys(LIVE) == frozenset()


def test_reader_falls_back_to_arp_after_a_stale_lease():
    arp = {'vnet0': {'hwaddr': MAC, 'addrs': [{'type': 0, 'addr': '192.168.250.150', 'prefix': 0}]}}
    reader, _net = reader_for([lease('192.168.250.150', T0 - 40)])
    found = reader.read(FakeDomain(agent=arp), LIVE, ['lease', 'arp'], since=T0)
    assert found[MAC.lower()] == ['192.168.250.150']


def _with_agent(state):
    return ("<domain type='kvm'><name>vm1</name><devices>"
            "<interface type='network'><mac address='%s'/><source network='lab'/></interface>"
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='%s'/></channel>"
            "</devices></domain>" % (MAC, state))


def test_agent_addresses_once_the_agent_connected_after_the_xml_was_read():
    """A wait polls with the live XML read before the boot: the agent's channel reads
    disconnected there, and connects later. Its addresses count once libvirt says so."""
    agent = {'ens2': {'hwaddr': MAC, 'addrs': [{'type': 0, 'addr': '192.168.250.20', 'prefix': 24}]}}
    reader, _net = reader_for([])
    dom = FakeDomain(agent=agent)
    stale_root = parse(_with_agent('disconnected'))
    dom.XMLDesc = lambda flags: _with_agent('disconnected')
    assert reader.read(dom, stale_root, ['agent'], since=T0)[MAC] == []
    dom.XMLDesc = lambda flags: _with_agent('connected')
    assert reader.read(dom, stale_root, ['agent'], since=T0)[MAC] == ['192.168.250.20']


# ------------------------------------------------------------------ the guest's start time

@pytest.mark.parametrize('uri, expected', [
    ('qemu:///system', '/run/libvirt/qemu'),
    ('qemu:///system?socket=/run/libvirt/virtqemud-sock', '/run/libvirt/qemu'),
    ('qemu+ssh://root@host/system', None),   # remote: its files are not ours to read
    ('qemu+unix:///system', None),
    ('test:///default', None),
    ('lxc:///system', None),
    ('qemu:///embed?root=/tmp/x', None),
    ('default', None),
])
def test_qemu_run_dir(uri, expected):
    assert qemu_run_dir(uri) == expected


def test_qemu_run_dir_of_the_session(monkeypatch):
    monkeypatch.setenv('XDG_RUNTIME_DIR', '/run/user/1000')
    assert qemu_run_dir('qemu:///session') == '/run/user/1000/libvirt/qemu/run'
    monkeypatch.delenv('XDG_RUNTIME_DIR')
    assert qemu_run_dir('qemu:///session') is None


def fake_host(tmp_path, name='vm1', pid=4242, written=T0 + 0.25, started_ticks=None, btime=T0 - 10000,
              argv=None):
    """A pid file under run/ and a /proc tree under proc/; returns (run_dir, proc)."""
    run_dir, proc = tmp_path / 'run', tmp_path / 'proc'
    (proc / str(pid)).mkdir(parents=True)
    run_dir.mkdir()
    pid_file = run_dir / ('%s.pid' % name)
    pid_file.write_text('%d' % pid)
    os.utime(str(pid_file), (written, written))
    ticks = os.sysconf('SC_CLK_TCK')
    if started_ticks is None:
        started_ticks = int((T0 - btime) * ticks)  # the process started exactly at T0
    fields = ['S'] + ['0'] * 18 + [str(started_ticks)] + ['0'] * 30
    (proc / str(pid) / 'stat').write_text('%d (qemu-system-x86) %s\n' % (pid, ' '.join(fields)))
    (proc / 'stat').write_text('cpu  1 2 3\nbtime %d\nprocesses 9\n' % btime)
    if argv is None:
        argv = ['/usr/bin/qemu-system-x86_64', '-name', 'guest=%s,debug-threads=on' % name.replace(',', ',,'), '-S']
    (proc / str(pid) / 'cmdline').write_bytes(b'\0'.join(a.encode() for a in argv) + b'\0')
    return str(run_dir), str(proc)


def test_start_time_is_the_qemu_process_start(tmp_path):
    run_dir, proc = fake_host(tmp_path)
    assert guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc) == pytest.approx(T0)


def test_start_time_is_the_earlier_of_pid_file_and_process(tmp_path):
    """A pid file written earlier than /proc says (btime is rounded) bounds the start too."""
    run_dir, proc = fake_host(tmp_path, written=T0 - 0.5)
    assert guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc) == pytest.approx(T0 - 0.5)


def test_start_time_without_proc_stat_is_the_pid_file_time(tmp_path):
    run_dir, proc = fake_host(tmp_path)
    os.unlink(os.path.join(proc, 'stat'))
    assert guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc) == pytest.approx(T0 + 0.25)


def test_start_time_of_a_name_with_a_comma(tmp_path):
    run_dir, proc = fake_host(tmp_path, name='web,1')
    assert guest_start_time(FakeConnection({}), FakeDomain('web,1'), run_dir, proc) == pytest.approx(T0)


@pytest.mark.parametrize('argv', [
    ['/usr/bin/qemu-system-x86_64', '-name', 'guest=vm10,debug-threads=on'],   # another guest took the pid
    ['/usr/sbin/sshd', '-D'],
    [],
])
def test_start_time_of_a_stale_pid_file_is_unknown(tmp_path, argv):
    run_dir, proc = fake_host(tmp_path, argv=argv)
    assert guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc) is None


def test_start_time_without_pid_file_or_process_is_unknown(tmp_path):
    run_dir, proc = fake_host(tmp_path)
    assert guest_start_time(FakeConnection({}), FakeDomain('other'), run_dir, proc) is None  # no pid file
    with open(os.path.join(run_dir, 'vm1.pid'), 'w') as handle:
        handle.write('garbage\n')
    assert guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc) is None
    with open(os.path.join(run_dir, 'vm1.pid'), 'w') as handle:
        handle.write('4343\n')  # no such process
    assert guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc) is None


@pytest.mark.parametrize('state, reason', [
    ('VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_RUNNING_RESTORED'),       # managed save / save image: old lease is valid
    ('VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_RUNNING_MIGRATED'),
    ('VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_RUNNING_FROM_SNAPSHOT'),
    ('VIR_DOMAIN_RUNNING', 'VIR_DOMAIN_RUNNING_UNPAUSED'),      # booted or restored: cannot tell
    ('VIR_DOMAIN_PAUSED', 'VIR_DOMAIN_PAUSED_USER'),
    ('VIR_DOMAIN_SHUTOFF', 'VIR_DOMAIN_SHUTOFF_DESTROYED'),
])
def test_start_time_only_for_a_booted_guest(tmp_path, state, reason):
    run_dir, proc = fake_host(tmp_path)
    dom = FakeDomain(state=getattr(libvirt, state), reason=getattr(libvirt, reason))
    assert guest_start_time(FakeConnection({}), dom, run_dir, proc) is None


def test_start_time_of_a_vanished_guest_is_unknown(tmp_path):
    run_dir, proc = fake_host(tmp_path)
    assert guest_start_time(FakeConnection({}), FakeDomain(fail=True), run_dir, proc) is None


def test_start_time_on_a_remote_or_other_driver_is_unknown(tmp_path, monkeypatch):
    run_dir, proc = fake_host(tmp_path)
    monkeypatch.setattr(addr, 'QEMU_SYSTEM_RUN_DIR', run_dir)
    assert guest_start_time(FakeConnection({}, 'qemu:///system'), FakeDomain(), proc=proc) == pytest.approx(T0)
    for uri in ('qemu+ssh://root@host/system', 'test:///default'):
        assert guest_start_time(FakeConnection({}, uri), FakeDomain(), proc=proc) is None


def test_process_start_of_this_process_reads_the_real_proc():
    if not os.path.exists('/proc/self/stat'):
        pytest.skip('no /proc')
    started = addr._process_start(os.getpid(), '/proc')
    assert started is not None and started <= time.time() + 1
    with open('/proc/stat') as handle:
        btime = next(int(line.split()[1]) for line in handle if line.startswith('btime '))
    assert started >= btime


def test_restart_with_a_known_start_drops_the_old_lease_end_to_end(tmp_path):
    """The manager's view: a guest started before this run, its start time from the pid
    file, the old lease dropped and the new one taken."""
    run_dir, proc = fake_host(tmp_path)
    since = guest_start_time(FakeConnection({}), FakeDomain(), run_dir, proc)
    reader, _net = reader_for([lease('192.168.250.150', T0 - 3)])
    assert first_address(reader.read(FakeDomain(), LIVE, ['lease'], since)) is None
    reader, _net = reader_for([lease('192.168.250.150', T0 + 13)])
    assert first_address(reader.read(FakeDomain(), LIVE, ['lease'], since)) == '192.168.250.150'
