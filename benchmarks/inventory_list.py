# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time `ansible-inventory --list` for 50 guests: virtkit.guests.guest_inventory next to
community.libvirt's libvirt inventory plugin, on the same guests.

    .venv/bin/python benchmarks/inventory_list.py [--guests 50] [--runs 9] [--latency-ms 1] [--lxc 5]

The 50 guests are domains of libvirt's test driver, defined in one XML file that both
plugins open as test:///<file> (40 running, 10 shut off, each with a NIC and our metadata).
community.libvirt comes from the PyPI `ansible` package (12.x) in a separate venv,
.build/peers-venv, created here when missing (never in .venv).

Three scenarios, same guests: the test driver in-process (no round trips at all), the
same file served by libvirtd (test+unix://, RPC over its socket like qemu:///system), and
libvirtd behind a local proxy that delays every chunk by --latency-ms each way (a remote
hypervisor's round trip, simulated; 0 skips it). For each: the best and median wall time
of `ansible-inventory --list` (the whole CLI, as AWX runs it; runs interleaved so load from
elsewhere hits both plugins alike) and the plugins' own parse time (InventoryManager
in-process, CLI start-up excluded), with their ratios. With --lxc N (default 5; 0 skips
it) N busybox containers vk-bench-invct-NN are created and started on lxcbr0, and the time
for the VMs plus the containers in one inventory is printed too (community.libvirt cannot
list LXC-tool containers); the containers are removed afterwards. Results also go to
benchmarks/results/inventory_list.json.

Exit status 0 when the CLI ratio (best runs) of the remote scenario (else the libvirtd one) is at
most 0.5, the target, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OURS_BIN = os.path.join(ROOT, '.venv', 'bin')
PEERS = os.path.join(ROOT, '.build', 'peers-venv')
PEERS_BIN = os.path.join(PEERS, 'bin')
COLLECTIONS = os.path.join(ROOT, '.build', 'collections')
RESULTS = os.path.join(HERE, 'results', 'inventory_list.json')
TARGET = 0.5
NS = 'https://virtkit.dev/xmlns/guests/1'

DOMAIN = '''  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>vk-bench-inv-%(i)02d</name>
    <uuid>00000000-0000-4000-8000-0000000000%(i)02d</uuid>
    <memory unit='MiB'>512</memory>
    <vcpu>1</vcpu>
    <metadata><virtkit:guest xmlns:virtkit='%(ns)s'><virtkit:var name='groups' type='list'>
      <virtkit:item>bench</virtkit:item><virtkit:item>tier%(tier)d</virtkit:item></virtkit:var></virtkit:guest></metadata>
    <os><type arch='x86_64'>hvm</type></os>
    <devices>
      <interface type='network'><mac address='52:54:00:be:00:%(i)02x'/><source network='default'/></interface>
    </devices>%(state)s
  </domain>
'''
NETWORK = '''  <network><name>default</name><bridge name='virbr0'/><forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>
  </network>
'''


def node_xml(count):
    body = ''.join(DOMAIN % {'i': i, 'ns': NS, 'tier': i % 3,
                             'state': '\n    <test:runstate>5</test:runstate>' if i % 5 == 4 else ''}
                   for i in range(count))
    return '<node>\n' + NETWORK + body + '</node>\n'


def ensure_peers():
    exe = os.path.join(PEERS_BIN, 'ansible-inventory')
    if os.path.exists(exe) and subprocess.run([os.path.join(PEERS_BIN, 'python'), '-c', 'import libvirt'],
                                              check=False).returncode == 0:
        return exe
    print('creating %s (PyPI ansible 12.x with community.libvirt, libvirt-python)' % PEERS, flush=True)
    subprocess.run([sys.executable, '-m', 'venv', PEERS], check=True)
    subprocess.run([os.path.join(PEERS_BIN, 'pip'), 'install', '-q', 'ansible>=12,<13', 'libvirt-python', 'lxml'],
                   check=True)
    return exe


def env_for(ours):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED='1')
    env.pop('ANSIBLE_COLLECTIONS_PATH', None)
    if ours:
        env['ANSIBLE_COLLECTIONS_PATH'] = COLLECTIONS
    return env


def run_cli(exe, path, ours):
    start = time.perf_counter()
    proc = subprocess.run([exe, '-i', path, '--list'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env_for(ours), check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit('%s -i %s failed: %s' % (exe, path, proc.stderr.decode()[-2000:]))
    return elapsed, len(json.loads(proc.stdout)['_meta']['hostvars'])


def time_cli_pair(ours, peer, runs):
    """Interleaved runs (ours, peer, ours, ...) so load from elsewhere hits both alike.
    Returns {'ours': (min, median, hosts), 'peer': ...}."""
    times = {'ours': [], 'peer': []}
    hosts = {}
    for _run in range(runs):
        for key, (exe, path, is_ours) in (('ours', ours), ('peer', peer)):
            elapsed, hosts[key] = run_cli(exe, path, is_ours)
            times[key].append(elapsed)
    return dict((key, (min(t), statistics.median(t), hosts[key])) for key, t in times.items())


PARSE_SNIPPET = r'''
import json, sys, time
from ansible.parsing.dataloader import DataLoader
from ansible.inventory.manager import InventoryManager
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    inv = InventoryManager(loader=DataLoader(), sources=[sys.argv[1]])
    times.append(time.perf_counter() - start)
print(json.dumps({'times': times, 'hosts': len(inv.hosts)}))
'''


def time_parse(bindir, path, ours, runs):
    proc = subprocess.run([os.path.join(bindir, 'python'), '-c', PARSE_SNIPPET, path, str(runs + 1)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(ours), check=False)
    if proc.returncode != 0:
        raise SystemExit('parse timing failed: %s' % proc.stderr.decode()[-2000:])
    data = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return statistics.median(data['times'][1:]), data['hosts']  # first run warms imports


LIBVIRT_SOCKET = '/var/run/libvirt/libvirt-sock'


def start_latency_proxy(path, delay):
    """A unix socket in front of libvirtd's that delivers every chunk ``delay`` seconds late,
    in both directions (latency, not bandwidth: chunks in flight overlap), as a remote
    hypervisor's round-trip time would. Runs in a daemon thread."""
    async def pipe(reader, writer):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                loop.call_later(delay, writer.write, data)
        finally:
            loop.call_later(delay, writer.close)

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_unix_connection(LIBVIRT_SOCKET)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    ready = threading.Event()

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.start_unix_server(handle, path=path))
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)


def make_containers(count):
    names = ['vk-bench-invct-%02d' % i for i in range(count)]
    for name in names:
        subprocess.run(['lxc-create', '-n', name, '-t', 'busybox'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        subprocess.run(['lxc-start', '-n', name], check=True, timeout=60)
    for name in names:
        subprocess.run(['lxc-wait', '-n', name, '-s', 'RUNNING', '-t', '30'], check=True)
    return names


def remove_containers(names):
    for name in names:
        subprocess.run(['lxc-stop', '-n', name, '-k'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=60)
        subprocess.run(['lxc-destroy', '-n', name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--guests', type=int, default=50)
    parser.add_argument('--runs', type=int, default=9)
    parser.add_argument('--latency-ms', type=float, default=1.0,
                        help='one-way delay of the simulated remote hypervisor (0: skip that scenario)')
    parser.add_argument('--lxc', type=int, default=5, help='real busybox containers to add (0: none)')
    args = parser.parse_args()
    peers_exe = ensure_peers()
    ours_exe = os.path.join(OURS_BIN, 'ansible-inventory')
    work = tempfile.mkdtemp(prefix='vk-bench-inv-')
    try:
        return measure(args, work, peers_exe, ours_exe)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, work, peers_exe, ours_exe):
    node = os.path.join(work, 'node.xml')
    with open(node, 'w') as handle:
        handle.write(node_xml(args.guests))
    result = {'guests': args.guests, 'runs': args.runs, 'scenarios': {}}
    paths = {}
    served = 'the same guests served by libvirtd (RPC over its unix socket, as qemu:///system)'
    scenarios = [('in-process', 'test://' + node, "libvirt's test driver in-process (no RPC)"),
                 ('libvirtd', 'test+unix://' + node, served)]
    if args.latency_ms > 0 and os.path.exists(LIBVIRT_SOCKET):
        proxy = os.path.join(work, 'latency.sock')
        start_latency_proxy(proxy, args.latency_ms / 1000.0)
        scenarios.append(('remote', 'test+unix://%s?socket=%s' % (node, proxy),
                          'the same guests through libvirtd behind a %.1f ms one-way delay (a remote hypervisor '
                          'with a %.1f ms round trip, simulated)' % (args.latency_ms, 2 * args.latency_ms)))
    for key, uri, _title in scenarios:
        for plugin, text in (('ours', 'plugin: virtkit.guests.guest_inventory\n'
                                      'hypervisors: [{name: bench, uri: "%s"}]\n' % uri),
                             ('peer', 'plugin: community.libvirt.libvirt\nuri: "%s"\n' % uri)):
            paths[key, plugin] = os.path.join(work, '%s-%s.yml' % (key, plugin))
            with open(paths[key, plugin], 'w') as handle:
                handle.write(text)
    paths['lxc'] = os.path.join(work, 'lxc.yml')
    with open(paths['lxc'], 'w') as handle:
        handle.write('plugin: virtkit.guests.guest_inventory\nhypervisors: [{name: bench, uri: "test://%s", lxc: true}]\n'
                     'include: [vk-bench-inv*]\n' % node)
    # warm both (page cache, pyc) before measuring
    run_cli(ours_exe, paths['in-process', 'ours'], True)
    run_cli(peers_exe, paths['in-process', 'peer'], False)
    for key, uri, title in scenarios:
        cli = time_cli_pair((ours_exe, paths[key, 'ours'], True), (peers_exe, paths[key, 'peer'], False), args.runs)
        (ours_t, ours_med, ours_n), (peer_t, peer_med, peer_n) = cli['ours'], cli['peer']
        ours_p, _n = time_parse(OURS_BIN, paths[key, 'ours'], True, args.runs)
        peer_p, _n = time_parse(PEERS_BIN, paths[key, 'peer'], False, args.runs)
        result['scenarios'][key] = dict(uri=uri, ours_cli_min_s=ours_t, peer_cli_min_s=peer_t, cli_ratio=ours_t / peer_t,
                                        ours_cli_median_s=ours_med, peer_cli_median_s=peer_med,
                                        ours_hosts=ours_n, peer_hosts=peer_n, ours_parse_s=ours_p,
                                        peer_parse_s=peer_p, parse_ratio=ours_p / peer_p)
        print('%d guests, %s' % (args.guests, title))
        values = (args.runs, ours_t, ours_n, peer_t, peer_n, ours_t / peer_t, ours_med, peer_med)
        print('  ansible-inventory --list, best of %d   ours %6.3f s (%d hosts)  community.libvirt %6.3f s '
              '(%d hosts)  ratio %.2fx  (medians %.3f / %.3f s)' % values)
        print('  plugin parse only (in-process, median) ours %6.3f s             community.libvirt %6.3f s'
              '             ratio %.2fx' % (ours_p, peer_p, ours_p / peer_p))
    if args.lxc and os.geteuid() == 0:
        names = []
        try:
            names = make_containers(args.lxc)
            lxc_times = [run_cli(ours_exe, paths['lxc'], True) for _run in range(args.runs)]
            lxc_t, lxc_n = min(t for t, _n in lxc_times), lxc_times[-1][1]
            lxc_p, _n = time_parse(OURS_BIN, paths['lxc'], True, args.runs)
            result.update(ours_lxc_cli_s=lxc_t, ours_lxc_parse_s=lxc_p, ours_lxc_hosts=lxc_n, lxc=args.lxc)
            print('virtkit.guests.guest_inventory, the %d VMs plus %d running LXC containers (real lxc-ls)'
                  % (args.guests, args.lxc))
            print('  ansible-inventory --list, best of %d   ours %6.3f s (%d hosts)' % (args.runs, lxc_t, lxc_n))
            print('  plugin parse only (in-process, median) ours %6.3f s' % lxc_p)
        finally:
            remove_containers(names)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, 'w') as handle:
        json.dump(result, handle, indent=2)
    judged = 'remote' if 'remote' in result['scenarios'] else 'libvirtd'
    ratio = result['scenarios'][judged]['cli_ratio']
    ok = ratio <= TARGET
    print('%s: ansible-inventory ratio, %s scenario: %.2fx %s the %.1fx target' % (
        'PASS' if ok else 'MISS', judged, ratio, 'meets' if ok else 'misses', TARGET))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
