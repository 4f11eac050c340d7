# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark (issue 5): N tiny KVM guests + N busybox containers, ours vs peers vs a plain-Python floor.

The same work done three ways, one after another in one invocation, each starting from a
host with nothing of the fleet on it:

- ours: benchmarks/fleet/ours-converge.yml, the role virtkit.guests.guests (one guest_fleet
  call; --ours module calls the module virtkit.guests.guest_fleet directly instead), with the
  repository's venv and collection;
- peers: benchmarks/fleet/peers-converge.yml, community.libvirt (virt_pool refresh after
  copying the base image into the pool, virt_volume with an overlay XML, virt define from a
  Jinja2 domain XML template, virt state=running, a virt_net info lease wait loop) and
  community.general.lxc_container (container_config with the memory limit), plus an lxc-ls
  wait loop for the containers' addresses, run by the peers venv's ansible-playbook
  (.build/peers-venv, the PyPI `ansible` package);
- floor: plain Python in this process, libvirt-python and the lxc CLI (subprocess), one
  thread per guest: create, start and wait in parallel;
- peers-async (only when named in --sides): the peers' playbook with the lxc_container loop run
  as async jobs (async + poll 0, then async_status).

The workload: N KVM guests vk-bench-fleet-kvm-NN (virt_type qemu, 128 MiB, 1 vCPU, direct
kernel boot of the tiny busybox image from tests/images/build-tiny-image.sh, a qcow2 overlay
on a shared base volume, a virtio NIC with a fixed MAC on network `default`) and N busybox
containers vk-bench-fleet-lxc-NN with a 64 MiB memory limit, in the pool vk-bench-fleet-pool
that this script creates (a dir pool) and removes at the end. The base image is a small empty
qcow2 made here; each side imports it into the pool (ours: guest image.path; peers and floor:
copy into the pool's directory + pool refresh) and deletes it again at teardown.

Phases, each timed per side:
1. converge: from nothing to every guest reachable: the side's own run (which waits for the
   addresses its own way), then the same reachability check for every side, timed as part of
   the phase: each KVM guest answers HTTP on port 80 (the tiny image's busybox httpd) at its
   leased address, each container answers an ICMP echo at its lxc-info address;
2. no-op: the same run again (must change nothing; a side that reports a change is flagged);
3. teardown: remove everything (guests, overlays, base volume, containers).
Playbook sides are timed inside the run by the callback plugin virtkit_bench_timer (first task
announced to last result); ansible-playbook's start-up, the same on both sides, is printed
separately as wall time. The floor is timed in-process.

Every wait is bounded (--wait-timeout); a side's leftovers are force-removed (only this
benchmark's names) before the next side and in a finally step, also after a failure or Ctrl-C.

Run as root:  .venv/bin/python benchmarks/fleet.py [--count 10] [--sides ours,peers,floor] [--breakdown]
Exit status: 0 every target met, 1 a target missed, 2 the measurement failed or is invalid.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import struct
import subprocess
import sys
import signal
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# pylint: disable=wrong-import-position
from inventory_list import PEERS_BIN, ensure_peers  # noqa: E402  the peers venv, created when missing
from libvirt_noop import (  # noqa: E402  shared helpers of the libvirt/lxc benchmarks
    ANSIBLE_PLAYBOOK, IMAGE_DIR, PYTHON, RESULTS, ROOT, ansible_env, force_remove,
    lxc_existing, lxc_force_remove, missing_prerequisite)

FLEET_DIR = os.path.join(HERE, 'fleet')
PEERS_PLAYBOOK = os.path.join(PEERS_BIN, 'ansible-playbook')
PEERS_PYTHON = os.path.join(PEERS_BIN, 'python')

SIDES = ('ours', 'peers', 'floor', 'peers-async')
DEFAULT_SIDES = ('ours', 'peers', 'floor')
PHASES = ('converge', 'noop', 'teardown')
# issue 5's targets: phase -> {other side: at most this ratio ours/other}
TARGETS = {'converge': {'peers': 0.5, 'floor': 1.3}, 'noop': {'peers': 0.2}, 'teardown': {'peers': 0.3}}
for _targets in TARGETS.values():  # the same work as peers, its container loop as async jobs
    if 'peers' in _targets:
        _targets['peers-async'] = _targets['peers']
MEMORY_MIB = 128
CT_MEMORY_BYTES = 64 * 1024 * 1024
BASE_CAPACITY = 64 * 1024 * 1024
NOISY_LOAD = 0.5
POLL = 0.25
ABORT = threading.Event()   # set on Ctrl-C or a failure: the waiting threads give up at once


class BenchError(Exception):
    """The benchmark could not run or its measurement is not valid."""


# ---------------------------------------------------------------------------- the fleet

class Fleet:
    """Names, MACs and paths of one benchmark run; the vars every side gets."""

    def __init__(self, args, workdir):
        self.args = args
        self.uri = args.uri
        self.prefix = args.prefix
        self.count = args.count
        self.kvm = ['%skvm-%02d' % (args.prefix, i) for i in range(1, args.count + 1)]
        self.lxc = ['%slxc-%02d' % (args.prefix, i) for i in range(1, args.count + 1)]
        self.pool = args.prefix + 'pool'
        self.pool_path = os.path.join('/var/lib/libvirt/images', self.pool)
        self.base_name = args.prefix + 'base.qcow2'
        self.base_src = os.path.join(workdir, 'base.qcow2')
        self.network = 'default'
        self.kernel = os.path.join(IMAGE_DIR, 'tiny-vmlinuz')
        self.initrd = os.path.join(IMAGE_DIR, 'tiny-initrd.img')
        self.workdir = workdir
        self.lxc_memory_key = lxc_memory_key()

    def volumes(self):
        return [name + '.qcow2' for name in self.kvm] + [self.base_name]

    def mac(self, side, index):
        """A fixed MAC per side and guest: few distinct leases on the shared network, and no
        side inherits the lease of another side's guest."""
        return '52:54:00:f1:%02x:%02x' % (SIDES.index(side) + 1, index + 1)

    def macs(self, side):
        return {name: self.mac(side, i) for i, name in enumerate(self.kvm)}

    def ct_macs(self, side):
        """Fixed container MACs too (lxc.net.0.hwaddr): a MAC with a lease gets its address back at
        once, while for a new one lxc-net's dnsmasq first pings the address (about 3 s, one address
        at a time), so that containers started together miss udhcpc's first round and wait 20 s."""
        return {name: '00:16:3e:f1:%02x:%02x' % (SIDES.index(side) + 1, i + 1) for i, name in enumerate(self.lxc)}

    def cmdline(self, name):
        return 'console=ttyS0 quiet virtkit.hostname=%s' % name

    def vars(self, side):
        """The extra vars of a playbook side (vk_fleet) and the role's own variables."""
        macs = self.macs(side)
        ct_macs = self.ct_macs(side)
        checksum = 'sha256:' + sha256(self.base_src)
        ours_guests = []
        for name in self.kvm:
            ours_guests.append({
                'name': name, 'kind': 'kvm',
                'image': {'path': self.base_src, 'name': self.base_name, 'format': 'qcow2', 'checksum': checksum},
                'memory': '%dMiB' % MEMORY_MIB, 'vcpus': 1, 'virt_type': 'qemu',
                'boot': {'kernel': self.kernel, 'initrd': self.initrd, 'cmdline': self.cmdline(name)},
                'networks': [{'network': self.network, 'mac': macs[name]}],
                'domain': {'serial': {'type': 'pty'}},
            })
        for name in self.lxc:
            ours_guests.append({'name': name, 'kind': 'lxc', 'template': 'busybox',
                                'limits': {'memory': '%dMiB' % (CT_MEMORY_BYTES // 1048576)},
                                'config': {'lxc.net.0.hwaddr': ct_macs[name]}})
        absent = [{'name': name, 'kind': 'kvm', 'state': 'absent', 'remove_storage': True} for name in self.kvm]
        absent += [{'name': name, 'kind': 'lxc', 'state': 'absent'} for name in self.lxc]
        data = {'vk_fleet': {
            'uri': self.uri, 'pool': self.pool, 'pool_path': self.pool_path, 'network': self.network,
            'base_src': self.base_src, 'base_name': self.base_name, 'base_capacity': BASE_CAPACITY,
            'memory_mib': MEMORY_MIB, 'kernel': self.kernel, 'initrd': self.initrd,
            'kvm': [{'name': name, 'mac': macs[name]} for name in self.kvm],
            'lxc': [{'name': name, 'mac': ct_macs[name]} for name in self.lxc],
            'lxc_memory_config': '%s=%d' % (self.lxc_memory_key, CT_MEMORY_BYTES),
            'wait_seconds': self.args.wait_timeout,
            'ours_guests': ours_guests, 'ours_guests_absent': absent,
            'peers_async': side == 'peers-async',
        }}
        if side == 'ours':
            data.update({'virtkit_guests_uri': self.uri, 'virtkit_guests_pool': self.pool,
                         'virtkit_guests_wait_timeout': self.args.wait_timeout})
            if self.args.parallel:
                data['virtkit_guests_parallel'] = self.args.parallel
        return data


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def lxc_memory_key():
    """lxc.cgroup.memory.limit_in_bytes where the memory controller is cgroup v1, else cgroup2's key."""
    with open('/proc/self/mounts') as handle:
        for line in handle:
            parts = line.split()
            if len(parts) > 3 and parts[2] == 'cgroup' and 'memory' in parts[3].split(','):
                return 'lxc.cgroup.memory.limit_in_bytes'
    return 'lxc.cgroup2.memory.max'


# ---------------------------------------------------------------------------- host state

def libvirt_open(uri):
    import libvirt
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    return libvirt, libvirt.open(uri)


def ensure_pool(fleet):
    """The benchmark's own dir pool (untimed set-up, shared by the three sides)."""
    libvirt, conn = libvirt_open(fleet.uri)
    try:
        try:
            pool = conn.storagePoolLookupByName(fleet.pool)
        except libvirt.libvirtError:
            xml = ("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                   % (fleet.pool, fleet.pool_path))
            pool = conn.storagePoolDefineXML(xml, 0)
            pool.build(0)
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
    finally:
        conn.close()


def remove_pool(fleet):
    libvirt, conn = libvirt_open(fleet.uri)
    try:
        try:
            pool = conn.storagePoolLookupByName(fleet.pool)
        except libvirt.libvirtError:
            return
        empty = True
        if pool.isActive():
            pool.refresh(0)
            empty = pool.numOfVolumes() == 0
            pool.destroy()
        if empty:  # remove the pool's directory only when nothing else was put there
            pool.delete(0)
        pool.undefine()
    finally:
        conn.close()


def host_state(fleet):
    """What of the fleet exists: {'domains': {name: active}, 'volumes': [...], 'containers': {name: state}}."""
    libvirt, conn = libvirt_open(fleet.uri)
    try:
        domains = {}
        for name in fleet.kvm:
            try:
                domains[name] = bool(conn.lookupByName(name).isActive())
            except libvirt.libvirtError:
                pass
        volumes = []
        try:
            pool = conn.storagePoolLookupByName(fleet.pool)
            pool.refresh(0)
            volumes = sorted(set(pool.listVolumes()) & set(fleet.volumes()))
        except libvirt.libvirtError:
            pass
    finally:
        conn.close()
    return {'domains': domains, 'volumes': volumes, 'containers': lxc_existing(fleet.lxc)}


def is_empty(state):
    return not (state['domains'] or state['volumes'] or state['containers'])


def force_clean(fleet):
    """Remove whatever of the fleet exists (only its names); True when nothing is left."""
    state = host_state(fleet)
    if state['domains']:
        force_remove(fleet.uri, sorted(state['domains']))
    if state['containers']:
        lxc_force_remove(sorted(state['containers']))
    if state['volumes']:
        libvirt, conn = libvirt_open(fleet.uri)
        try:
            pool = conn.storagePoolLookupByName(fleet.pool)
            for name in sorted(state['volumes'], key=lambda n: n == fleet.base_name):  # overlays first
                try:
                    pool.storageVolLookupByName(name).delete(0)
                except libvirt.libvirtError as err:
                    print('fleet: could not delete volume %s: %s' % (name, err), file=sys.stderr)
        finally:
            conn.close()
    return is_empty(host_state(fleet))


def container_memory_limit(name):
    for key in ('memory.limit_in_bytes', 'memory.max'):
        proc = subprocess.run(['lxc-cgroup', '-n', name, key], capture_output=True, text=True,
                              check=False, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return None


def check_converged(fleet):
    """Problems with the converged fleet (untimed): every guest running, every volume there,
    every container running with the memory limit in force."""
    state = host_state(fleet)
    problems = []
    down = [n for n in fleet.kvm if not state['domains'].get(n)]
    if down:
        problems.append('guests not running: %s' % ', '.join(down))
    missing = sorted(set(fleet.volumes()) - set(state['volumes']))
    if missing:
        problems.append('volumes missing: %s' % ', '.join(missing))
    cts = [n for n in fleet.lxc if state['containers'].get(n) != 'RUNNING']
    if cts:
        problems.append('containers not running: %s' % ', '.join(cts))
    for name in fleet.lxc:
        if name in cts:
            continue
        limit = container_memory_limit(name)
        if limit != str(CT_MEMORY_BYTES):
            problems.append('container %s: memory limit %s, expected %d' % (name, limit, CT_MEMORY_BYTES))
    return problems


# ---------------------------------------------------------------------------- reachability

def _icmp_checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def icmp_echo(ip, timeout=1.0):
    """One ICMP echo request (raw socket, root); True when the reply came within ``timeout``."""
    ident = random.randint(0, 0xffff)
    header = struct.pack('!BBHHH', 8, 0, 0, ident, 1)
    payload = b'virtkit-fleet-bench'
    packet = struct.pack('!BBHHH', 8, 0, _icmp_checksum(header + payload), ident, 1) + payload
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        sock.sendto(packet, (ip, 0))
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            try:
                data, addr = sock.recvfrom(2048)
            except socket.timeout:
                return False
            hlen = (data[0] & 0x0f) * 4
            if addr[0] == ip and len(data) >= hlen + 8:
                kind, _code, _sum, rid, _seq = struct.unpack('!BBHHH', data[hlen:hlen + 8])
                if kind == 0 and rid == ident:
                    return True
    finally:
        sock.close()


def http_ok(ip, timeout=1.0):
    """True when http://ip/ answers with a status line (the tiny image's busybox httpd)."""
    try:
        with socket.create_connection((ip, 80), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' % ip.encode())
            return sock.recv(64).startswith(b'HTTP/')
    except OSError:
        return False


def lease_ips(net, mac):
    """The leased IPv4 addresses of a MAC, newest lease first."""
    leases = sorted(net.DHCPLeases(mac), key=lambda lease: -int(lease.get('expirytime') or 0))
    return [lease['ipaddr'] for lease in leases if lease.get('ipaddr') and ':' not in lease['ipaddr']]


def container_ips(name):
    proc = subprocess.run(['lxc-info', '-n', name, '-iH'], capture_output=True, text=True, check=False, timeout=30)
    return [ip for ip in proc.stdout.split() if '.' in ip] if proc.returncode == 0 else []


def reach_all(fleet, side, deadline):
    """Wait (in parallel, until ``deadline``) until every guest and container answers.
    Returns {name: ip}; raises BenchError naming the ones that never answered."""
    libvirt, conn = libvirt_open(fleet.uri)
    macs = fleet.macs(side)

    def kvm(name):
        net = conn.networkLookupByName(fleet.network)
        while time.monotonic() < deadline and not ABORT.is_set():
            for ip in lease_ips(net, macs[name]):
                if http_ok(ip):
                    return ip
            time.sleep(POLL)
        return None

    def ct(name):
        while time.monotonic() < deadline and not ABORT.is_set():
            for ip in container_ips(name):
                if icmp_echo(ip):
                    return ip
            time.sleep(POLL)
        return None

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2 * fleet.count) as pool:
            futures = {name: pool.submit(kvm, name) for name in fleet.kvm}
            futures.update({name: pool.submit(ct, name) for name in fleet.lxc})
            try:
                found = {name: future.result() for name, future in futures.items()}
            except BaseException:
                ABORT.set()
                raise
    finally:
        conn.close()
    missing = [name for name, ip in found.items() if not ip]
    if missing:
        raise BenchError('%s: not reachable within the wait timeout: %s' % (side, ', '.join(missing)))
    return found


# ---------------------------------------------------------------------------- playbook sides

def run_playbook(fleet, side, tag, playbook):
    """Run one playbook of a side; return {'seconds' (in-run), 'wall', 'changed': [task names]}."""
    times = os.path.join(fleet.workdir, '%s-%s.times.json' % (side, tag))
    log = os.path.join(fleet.workdir, '%s-%s.log' % (side, tag))
    varsfile = os.path.join(fleet.workdir, '%s-vars.json' % side)
    with open(varsfile, 'w') as handle:
        json.dump(fleet.vars(side), handle, indent=1)
    env = ansible_env(times)
    if side.startswith('peers'):
        env.pop('ANSIBLE_COLLECTIONS_PATH', None)  # the collections bundled in the `ansible` package
        env['ANSIBLE_PYTHON_INTERPRETER'] = PEERS_PYTHON
        env['PATH'] = PEERS_BIN + os.pathsep + os.environ.get('PATH', '')
        cmd = [PEERS_PLAYBOOK, '-e', 'ansible_python_interpreter=%s' % PEERS_PYTHON]
    else:
        cmd = [ANSIBLE_PLAYBOOK, '-e', 'ansible_python_interpreter=%s' % PYTHON]
    cmd += ['-i', 'localhost,', '-c', 'local', '-e', '@' + varsfile, os.path.join(FLEET_DIR, playbook)]
    start = time.perf_counter()
    with open(log, 'w') as out:
        # Its own process group, so that an interruption ends the module processes too (they
        # would otherwise go on creating guests after the clean-up).
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            proc.wait(timeout=fleet.args.wait_timeout + 600)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise BenchError('%s %s: ansible-playbook did not finish in time; log %s' % (side, tag, log))
        except BaseException:
            kill_group(proc)
            raise
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        with open(log) as handle:
            tail = handle.read()[-3000:]
        raise BenchError('%s %s: playbook failed (exit %d); log %s:\n%s' % (side, tag, proc.returncode, log, tail))
    try:
        with open(times) as handle:
            records = json.load(handle)['tasks']
    except (OSError, ValueError, KeyError) as err:
        raise BenchError('%s %s: no timings from the callback plugin (%s)' % (side, tag, err))
    ends = [rec['end'] for rec in records if rec['end'] is not None]
    if not records or not ends:
        raise BenchError('%s %s: the callback plugin recorded no task' % (side, tag))
    # An async launch (poll 0) says nothing about change: its async_status task does.
    changed = [rec['name'] for rec in records
               if any(item.get('changed') and not item.get('async_started') for item in rec['items'])]
    failed = [rec['name'] for rec in records if rec['failed']]
    if failed:
        raise BenchError('%s %s: tasks failed: %s; log %s' % (side, tag, ', '.join(failed), log))
    tasks = [(rec['name'], round(rec['end'] - rec['start'], 3)) for rec in records if rec['end'] is not None]
    return {'seconds': max(ends) - min(rec['start'] for rec in records), 'wall': wall, 'changed': changed,
            'tasks': tasks}


def kill_group(proc):
    """End ansible-playbook and everything it started (SIGTERM, then SIGKILL after 10 s)."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; give the rest of the group its signal too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


class PlaybookSide:
    def __init__(self, fleet, side, converge, teardown):
        self.fleet, self.side = fleet, side
        self.playbooks = {'converge': converge, 'noop': converge, 'teardown': teardown}

    def run(self, phase):
        return run_playbook(self.fleet, self.side, phase, self.playbooks[phase])


# ---------------------------------------------------------------------------- the floor

class FloorSide:
    """Plain Python: libvirt-python and the lxc CLI, one thread per guest, parallel waits."""

    def __init__(self, fleet):
        self.fleet = fleet
        import jinja2
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(FLEET_DIR), autoescape=False)
        self.domain_tpl = env.get_template('domain.xml.j2')   # the very XML the peers define
        self.overlay_tpl = env.get_template('overlay.xml.j2')

    def run(self, phase):
        start = time.perf_counter()
        changed = self.teardown() if phase == 'teardown' else self.converge()
        return {'seconds': time.perf_counter() - start, 'wall': None,
                'changed': ['floor'] if changed and phase == 'noop' else [], 'tasks': []}

    def render(self, template, name, mac=None):
        fleet = self.fleet
        return template.render(vk_guest={'name': name, 'mac': mac}, vk_fleet={
            'memory_mib': MEMORY_MIB, 'kernel': fleet.kernel, 'initrd': fleet.initrd, 'pool': fleet.pool,
            'network': fleet.network, 'pool_path': fleet.pool_path, 'base_name': fleet.base_name,
            'base_capacity': BASE_CAPACITY})

    def converge(self):
        """Create what is missing, start what is stopped, wait for every address; True if anything changed."""
        fleet = self.fleet
        libvirt, conn = libvirt_open(fleet.uri)
        deadline = time.monotonic() + fleet.args.wait_timeout
        macs = fleet.macs('floor')
        ct_macs = fleet.ct_macs('floor')
        changes = []
        try:
            pool = conn.storagePoolLookupByName(fleet.pool)
            try:
                pool.storageVolLookupByName(fleet.base_name)
            except libvirt.libvirtError:
                dest = os.path.join(fleet.pool_path, fleet.base_name)
                shutil.copyfile(fleet.base_src, dest)
                os.chmod(dest, 0o644)
                pool.refresh(0)
                changes.append('base')
            lease_time = 3600  # the default network sets no lease time: dnsmasq's default
            net = conn.networkLookupByName(fleet.network)
            states = dict(line.split()[:2] for line in subprocess.run(
                ['lxc-ls', '--fancy', '--fancy-format', 'name,state'], capture_output=True, text=True,
                check=True, timeout=60).stdout.splitlines()[1:] if len(line.split()) >= 2)

            def kvm(name):
                try:
                    pool.storageVolLookupByName(name + '.qcow2')
                except libvirt.libvirtError:
                    pool.createXML(self.render(self.overlay_tpl, name), 0)
                    changes.append(name + '.qcow2')
                try:
                    dom = conn.lookupByName(name)
                except libvirt.libvirtError:
                    dom = conn.defineXML(self.render(self.domain_tpl, name, macs[name]))
                    changes.append(name)
                since = None
                if not dom.isActive():
                    since = time.time() - 1
                    dom.create()
                    changes.append(name + ' started')
                while time.monotonic() < deadline and not ABORT.is_set():
                    for lease in net.DHCPLeases(macs[name]):
                        acquired = int(lease.get('expirytime') or 0) - lease_time
                        if since is None or acquired >= since:
                            return lease['ipaddr']
                    time.sleep(POLL)
                raise BenchError('floor: %s has no lease' % name)

            def ct(name):
                config = '/var/lib/lxc/%s/config' % name
                if name not in states:
                    subprocess.run(['lxc-create', '-n', name, '-t', 'busybox'], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, check=True, timeout=120)
                    changes.append(name)
                wanted = ['%s = %d' % (fleet.lxc_memory_key, CT_MEMORY_BYTES), 'lxc.net.0.hwaddr = %s' % ct_macs[name]]
                with open(config) as handle:
                    present = handle.read().splitlines()
                missing = [line for line in wanted if line not in present]
                if missing:
                    with open(config, 'a') as handle:
                        handle.write(''.join(line + '\n' for line in missing))
                    changes.append(name + ' config')
                if states.get(name) != 'RUNNING':
                    subprocess.run(['lxc-start', '-n', name, '-d'], check=True, timeout=120)
                    changes.append(name + ' started')
                while time.monotonic() < deadline and not ABORT.is_set():
                    ips = container_ips(name)
                    if ips:
                        return ips[0]
                    time.sleep(POLL)
                raise BenchError('floor: %s has no address' % name)

            with concurrent.futures.ThreadPoolExecutor(max_workers=2 * fleet.count) as workers:
                futures = [workers.submit(kvm, n) for n in fleet.kvm] + [workers.submit(ct, n) for n in fleet.lxc]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    ABORT.set()  # the other threads stop waiting; the executor exits at once
                    raise
        finally:
            conn.close()
        return bool(changes)

    def teardown(self):
        fleet = self.fleet
        libvirt, conn = libvirt_open(fleet.uri)
        try:
            pool = conn.storagePoolLookupByName(fleet.pool)

            def kvm(name):
                try:
                    dom = conn.lookupByName(name)
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
                except libvirt.libvirtError:
                    pass
                try:
                    pool.storageVolLookupByName(name + '.qcow2').delete(0)
                except libvirt.libvirtError:
                    pass

            def ct(name):
                subprocess.run(['lxc-destroy', '-f', '-n', name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False, timeout=120)

            with concurrent.futures.ThreadPoolExecutor(max_workers=2 * fleet.count) as workers:
                futures = [workers.submit(kvm, n) for n in fleet.kvm] + [workers.submit(ct, n) for n in fleet.lxc]
                for future in futures:
                    future.result()
            try:
                pool.storageVolLookupByName(fleet.base_name).delete(0)
            except libvirt.libvirtError:
                pass
        finally:
            conn.close()
        return True


# ---------------------------------------------------------------------------- measuring

LXC_LEASES = '/var/lib/misc/dnsmasq.lxcbr0.leases'   # lxc-net's dnsmasq lease file


def new_macs(fleet, side):
    """The side's MACs without a DHCP lease yet (their first address costs dnsmasq's ping check)."""
    libvirt, conn = libvirt_open(fleet.uri)
    try:
        net = conn.networkLookupByName(fleet.network)
        fresh = [mac for mac in fleet.macs(side).values() if not net.DHCPLeases(mac)]
    finally:
        conn.close()
    try:
        with open(LXC_LEASES) as handle:
            leased = set(line.split()[1].lower() for line in handle if len(line.split()) > 2)
    except OSError:
        leased = set()
    return fresh + [mac for mac in fleet.ct_macs(side).values() if mac not in leased]


def measure_side(fleet, side, runner):
    """converge (+ reachability), no-op, teardown of one side; returns its result dict."""
    result = {'side': side}
    if not force_clean(fleet):
        raise BenchError('%s: the fleet could not be removed before the run' % side)
    fresh = new_macs(fleet, side)
    result['new_leases'] = len(fresh)
    if fresh:
        print('  %s: note: %d of its %d MACs have no DHCP lease yet (first run on this host?): dnsmasq pings '
              'each new address first, one at a time, which delays guests started together; rerun for '
              'steady-state numbers' % (side, len(fresh), 2 * fleet.count), flush=True)
    time.sleep(fleet.args.settle)
    print('  %s: converge ...' % side, flush=True)
    start = time.monotonic()
    run = runner.run('converge')
    check_start = time.monotonic()
    ips = reach_all(fleet, side, start + fleet.args.wait_timeout)
    check = time.monotonic() - check_start
    problems = check_converged(fleet)
    if problems:
        raise BenchError('%s: after converge: %s' % (side, '; '.join(problems)))
    result['converge'] = run['seconds'] + check
    result['converge_detail'] = {'run': run['seconds'], 'reach_check': check, 'wall': run['wall'], 'ips': ips,
                                 'tasks': run['tasks']}
    show_tasks(fleet, side, 'converge', run)
    print('  %s: converge %.2f s (run %.2f s + reachability check %.2f s); no-op ...'
          % (side, result['converge'], run['seconds'], check), flush=True)
    run = runner.run('noop')
    problems = check_converged(fleet)
    if problems:
        raise BenchError('%s: after the no-op rerun: %s' % (side, '; '.join(problems)))
    result['noop'] = run['seconds']
    result['noop_detail'] = {'wall': run['wall'], 'changed': run['changed'], 'tasks': run['tasks']}
    show_tasks(fleet, side, 'no-op', run)
    print('  %s: no-op %.2f s%s; teardown ...' % (
        side, run['seconds'], ' (NOT A NO-OP: changed: %s)' % ', '.join(run['changed']) if run['changed'] else ''),
        flush=True)
    run = runner.run('teardown')
    left = host_state(fleet)
    if not is_empty(left):
        raise BenchError('%s: after teardown, left: %s' % (side, json.dumps(left)))
    result['teardown'] = run['seconds']
    result['teardown_detail'] = {'wall': run['wall'], 'tasks': run['tasks']}
    show_tasks(fleet, side, 'teardown', run)
    print('  %s: teardown %.2f s' % (side, run['seconds']), flush=True)
    return result


def show_tasks(fleet, side, phase, run):
    if fleet.args.breakdown and run['tasks']:
        for name, seconds in run['tasks']:
            print('      %s %s: %6.2f s  %s' % (side, phase, seconds, name))


def table(results, count):
    """The printed comparison: phase times per side, ratios ours/peers and ours/floor, targets."""
    lines = []
    have = [s for s in SIDES if s in results]
    head = '  %-9s' % 'phase' + ''.join('%12s' % s for s in have)
    others = [o for o in SIDES if o != 'ours' and 'ours' in results and o in results]
    for other in others:
        head += '  %-26s' % ('ours/%s (target)' % other)
    lines.append(head)
    met_all = True
    verdicts = []
    for phase in PHASES:
        row = '  %-9s' % {'noop': 'no-op'}.get(phase, phase)
        row += ''.join('%10.2f s' % results[s][phase] for s in have)
        for other in others:
            ratio = results['ours'][phase] / results[other][phase] if results[other][phase] else float('inf')
            target = TARGETS[phase].get(other)
            if target is None:
                cell = '%.2fx' % ratio
            else:
                met = ratio <= target
                met_all = met_all and met
                cell = '%.2fx (<= %.1fx %s)' % (ratio, target, 'met' if met else 'MISSED')
                verdicts.append({'phase': phase, 'vs': other, 'ratio': round(ratio, 3), 'target': target, 'met': met})
            row += '  %-26s' % cell
        lines.append(row)
    lines.insert(0, '  N = %d KVM guests + %d containers; seconds per phase' % (count, count))
    return lines, met_all, verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--count', '-n', type=int, default=10, help='KVM guests and containers, each (default 10)')
    parser.add_argument('--sides', default=','.join(DEFAULT_SIDES),
                        help='comma-separated, in order, among %s (default %s)' % (', '.join(SIDES), ','.join(DEFAULT_SIDES)))
    parser.add_argument('--ours', choices=('role', 'module'), default='role',
                        help='ours through the role virtkit.guests.guests (default) or the guest_fleet module')
    parser.add_argument('--prefix', default='vk-bench-fleet-', help='name prefix of everything created')
    parser.add_argument('--uri', default='qemu:///system')
    parser.add_argument('--wait-timeout', type=int, default=300, help='bound of every wait, seconds (default 300)')
    parser.add_argument('--parallel', type=int, default=0,
                        help="ours: virtkit_guests_parallel (default: the role's default)")
    parser.add_argument('--settle', type=float, default=3.0, help='pause before each side, seconds (default 3)')
    parser.add_argument('--breakdown', action='store_true', help="print each playbook task's time")
    parser.add_argument('--keep-logs', action='store_true', help='keep playbook logs and vars in benchmarks/results/')
    args = parser.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(',') if s.strip()]
    if not 1 <= args.count <= 99 or not sides or set(sides) - set(SIDES) or len(set(sides)) != len(sides):
        parser.error('--count must be 1..99 and --sides a list of distinct sides among %s' % ', '.join(SIDES))
    if os.geteuid() != 0:
        print('fleet: ERROR: run as root (libvirt qemu:///system, LXC, raw ICMP)', file=sys.stderr)
        return 2
    missing = missing_prerequisite(('lxc-create', 'lxc-start', 'lxc-destroy', 'lxc-info', 'lxc-ls', 'lxc-cgroup', 'qemu-img'))
    if missing:
        print('fleet: ERROR: %s' % missing, file=sys.stderr)
        return 2
    if any(side.startswith('peers') for side in sides):
        try:
            ensure_peers_lxc()
        except (OSError, subprocess.CalledProcessError) as err:
            print('fleet: ERROR: the peers venv could not be prepared: %s' % err, file=sys.stderr)
            return 2

    # Ctrl-C and SIGTERM both end the run through the clean-up (even when started in the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    os.makedirs(RESULTS, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix='fleet.', dir=RESULTS)
    os.chmod(workdir, 0o755)
    fleet = Fleet(args, workdir)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', fleet.base_src, str(BASE_CAPACITY)], check=True)
    os.chmod(fleet.base_src, 0o644)
    load_start = os.getloadavg()
    print('fleet: from nothing to all reachable, no-op rerun, teardown: %d KVM guests (TCG, %d MiB, qcow2 overlay '
          'on a base volume, direct kernel boot of the tiny image, network %s) + %d busybox containers '
          '(%s=%d)' % (args.count, MEMORY_MIB, fleet.network, args.count, fleet.lxc_memory_key, CT_MEMORY_BYTES))
    print('  sides: %s; ours = %s; host %s, %d CPUs, load average %s'
          % (', '.join(sides), 'role virtkit.guests.guests' if args.ours == 'role' else 'module virtkit.guests.guest_fleet',
             platform.node(), os.cpu_count() or 0, ' '.join('%.2f' % x for x in load_start)), flush=True)
    results = {}
    status = 2
    summary = None
    try:
        ensure_pool(fleet)
        ours_books = ('ours-converge.yml', 'ours-teardown.yml') if args.ours == 'role' else (
            'ours-module-converge.yml', 'ours-module-teardown.yml')
        runners = {
            'ours': PlaybookSide(fleet, 'ours', *ours_books),
            'peers': PlaybookSide(fleet, 'peers', 'peers-converge.yml', 'peers-teardown.yml'),
            'peers-async': PlaybookSide(fleet, 'peers-async', 'peers-converge.yml', 'peers-teardown.yml'),
            'floor': FloorSide(fleet),
        }
        for side in sides:
            results[side] = measure_side(fleet, side, runners[side])
        lines, met_all, verdicts = table(results, args.count)
        print()
        print('\n'.join(lines))
        walls = ['%s %s' % (side, '/'.join('%.1f' % results[side][p + '_detail']['wall'] for p in PHASES))
                 for side in sides if side != 'floor']
        if walls:
            print('  ansible-playbook wall time converge/no-op/teardown (incl. start-up; converge without the '
                  'reachability check): ' + '; '.join(walls))
        for side in sides:
            if results[side]['noop_detail']['changed']:
                print('  WARNING: %s no-op rerun reported changes: %s'
                      % (side, ', '.join(results[side]['noop_detail']['changed'])))
        noisy = load_start[0] > NOISY_LOAD * (os.cpu_count() or 1)
        if noisy:
            print('  WARNING: noisy host (load average %.2f before the run): the times are an upper bound' % load_start[0])
        if verdicts:
            print('  targets: %s' % ('all met' if met_all else 'MISSED: ' + ', '.join(
                '%s vs %s %.2fx > %.1fx' % (v['phase'], v['vs'], v['ratio'], v['target'])
                for v in verdicts if not v['met'])))
        status = 0 if met_all else 1
        summary = {
            'benchmark': 'fleet',
            'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'host': platform.node(), 'cpus': os.cpu_count(), 'count': args.count, 'ours': args.ours,
            'load_average_start': [round(x, 2) for x in load_start], 'noisy': noisy,
            'results': results, 'verdicts': verdicts, 'targets_met': met_all,
        }
    except BenchError as err:
        print('fleet: ERROR: %s' % err, file=sys.stderr)
    except KeyboardInterrupt:
        print('\nfleet: interrupted; cleaning up', file=sys.stderr)
        status = 130
    finally:
        try:
            clean = force_clean(fleet)
            remove_pool(fleet)
        except Exception as err:  # report, never hide the original outcome
            print('fleet: ERROR during the final clean-up: %s' % err, file=sys.stderr)
            clean = False
        if not clean:
            print('fleet: ERROR: leftovers of the fleet remain: %s' % json.dumps(host_state(fleet)), file=sys.stderr)
            status = 2
        if summary is not None:
            with open(os.path.join(RESULTS, 'fleet.json'), 'w') as handle:
                json.dump(summary, handle, indent=2)
        if status in (0, 1) and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print('  logs, vars and timings kept in %s' % os.path.relpath(workdir, ROOT))
    return status


def _interrupted(signum, _frame):
    raise KeyboardInterrupt('signal %d' % signum)


def ensure_peers_lxc():
    """The peers venv (shared with inventory_list.py) plus the LXC binding lxc_container needs."""
    ensure_peers()
    if subprocess.run([PEERS_PYTHON, '-c', 'import lxc'], stderr=subprocess.DEVNULL, check=False).returncode:
        print('installing the LXC Python binding (PyPI lxc; builds against the lxc-dev package) into %s'
              % os.path.dirname(PEERS_BIN), flush=True)
        subprocess.run([os.path.join(PEERS_BIN, 'pip'), 'install', '-q', 'lxc'], check=True)


if __name__ == '__main__':
    sys.exit(main())
