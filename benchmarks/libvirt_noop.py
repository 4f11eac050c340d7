# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No-op micro-benchmark for virtkit.guests.libvirt_domain and lxc_container, through ansible-playbook.

1. One playbook run defines 10 guests vk-bench-01..vk-bench-10 (virt_type qemu, 64-128 MiB,
   direct kernel boot of the tiny test image, a NIC on network default, a pty serial port,
   metadata; defined, not started: state present) and creates and starts 10 busybox
   containers vk-bench-lxc-01..vk-bench-lxc-10 with a memory limit of 64 MiB (state started).
2. ONE playbook run then holds, for several rounds (default 7), a phase of 10 libvirt_domain
   calls and a phase of 10 lxc_container calls with the very same options as the set-up (a
   no-op: every call must report changed=false, otherwise the run is rejected) and a phase
   of 10 ansible.builtin.stat calls (default options) on the guests' persistent XML files
   /etc/libvirt/qemu/<name>.xml. The round order alternates (L,C,S then S,C,L, ...) so that
   drift during the run hits every side alike. All sides have the same shape: one task with
   a loop over the 10 items (default), or with --shape tasks, 10 separate tasks per phase.
   An unmeasured warm-up call of each module comes first.
   Phase times come from the callback plugin benchmarks/callback_plugins/virtkit_bench_timer.py:
   from the announcement of the phase's first task to the arrival of its last result at the
   controller, both taken with time.perf_counter() inside the ansible-playbook process.
3. Prints per-round times, the medians of the per-round ratios libvirt_domain/stat and
   lxc_container/stat, and the target (at most 1.3x each), and writes benchmarks/results/libvirt_noop.json. Warns that the
   numbers are unreliable when the host was busy (load average above half the CPUs before
   the run, or one side's slowest phase more than 1.3x its fastest).
4. Always removes the 10 guests and the 10 containers it created (state: absent; only those
   names; then libvirt-python or lxc-destroy -f for what is left), also after a failure or Ctrl-C.

Run as root from anywhere: .venv/bin/python benchmarks/libvirt_noop.py [--rounds N] [--shape loop|tasks]
Exit status: 0 both targets met, 1 a target missed, 2 the measurement failed or is invalid.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
PYTHON = os.path.join(VENV_BIN, 'python')
ANSIBLE_PLAYBOOK = os.path.join(VENV_BIN, 'ansible-playbook')
COLLECTIONS = os.path.join(ROOT, '.build', 'collections')
CALLBACKS = os.path.join(HERE, 'callback_plugins')
RESULTS = os.path.join(HERE, 'results')
IMAGE_DIR = os.environ.get('VIRTKIT_IMAGE_DIR') or '/var/lib/libvirt/images/virtkit-test'

TARGET = 1.3
NOISY_LOAD = 0.5     # load average per CPU before the run above which results are suspect
NOISY_SPREAD = 1.3   # slowest/fastest phase of one side above which results are suspect
PREFIX = 'vk-bench-'
CT_PREFIX = 'vk-bench-lxc-'
CT_MEMORY = '64MiB'
SIDES = ('libvirt_domain', 'lxc_container', 'stat')
MEASURED = ('libvirt_domain', 'lxc_container')   # each compared with stat
SHORT = {'libvirt_domain': 'L', 'lxc_container': 'C', 'stat': 'S'}


class BenchError(Exception):
    """The benchmark could not run or its measurement is not valid."""


# ---------------------------------------------------------------------------- playbooks

def guests(count):
    """The benchmark items: guest vk-bench-01.. with 64, 80, ..., 128 MiB and container vk-bench-lxc-01.."""
    return [{'name': '%s%02d' % (PREFIX, i), 'memory': 64 + (i - 1) % 5 * 16,
             'xml': '/etc/libvirt/qemu/%s%02d.xml' % (PREFIX, i),
             'ct': '%s%02d' % (CT_PREFIX, i)} for i in range(1, count + 1)]


def container_args(guest, state='started'):
    """lxc_container options; the bench phase repeats the set-up's options exactly."""
    if state == 'absent':
        return {'name': guest['ct'], 'state': 'absent'}
    return {'name': guest['ct'], 'state': state, 'template': 'busybox', 'limits': {'memory': CT_MEMORY}}


def domain_args(uri, guest, state='present'):
    """libvirt_domain options; ``guest`` holds literal values or Jinja2 item references."""
    if state == 'absent':
        return {'uri': uri, 'name': guest['name'], 'state': 'absent'}
    return {
        'uri': uri,
        'name': guest['name'],
        'state': state,
        'virt_type': 'qemu',
        'memory': guest['memory'],
        'vcpus': 1,
        'boot': {
            'kernel': os.path.join(IMAGE_DIR, 'tiny-vmlinuz'),
            'initrd': os.path.join(IMAGE_DIR, 'tiny-initrd.img'),
            'cmdline': 'console=ttyS0 quiet virtkit.hostname=%s' % guest['name'],
        },
        'interfaces': [{'network': 'default'}],
        'serial': {'type': 'pty'},
        'metadata': {'groups': ['bench']},
    }


ITEM = {'name': '{{ item.name }}', 'memory': '{{ item.memory }}', 'xml': '{{ item.xml }}', 'ct': '{{ item.ct }}'}


def side_tasks(side, label, uri, count, shape, state=None):
    """The tasks of one phase: one looped task, or ``count`` separate tasks."""
    def body(guest):
        if side == 'libvirt_domain':
            return {'virtkit.guests.libvirt_domain': domain_args(uri, guest, state or 'present')}
        if side == 'lxc_container':
            return {'virtkit.guests.lxc_container': container_args(guest, state or 'started')}
        return {'ansible.builtin.stat': {'path': guest['xml']}}

    key = 'ct' if side == 'lxc_container' else 'name'
    if shape == 'loop':
        task = {'name': '%s %s' % (label, side)}
        task.update(body(ITEM))
        task['loop'] = '{{ vk_bench_guests }}'
        task['loop_control'] = {'label': '{{ item.%s }}' % key}
        return [task]
    tasks = []
    for guest in guests(count):
        task = {'name': '%s %s %s' % (label, side, guest[key])}
        task.update(body(guest))
        tasks.append(task)
    return tasks


def play(count, tasks):
    return [{'name': 'virtkit.guests libvirt_domain/lxc_container no-op benchmark', 'hosts': 'localhost',
             'gather_facts': False, 'vars': {'vk_bench_guests': guests(count)}, 'tasks': tasks}]


def setup_tasks(uri, count, state=None):
    """Define the guests and create + start the containers (state None), or remove both (absent)."""
    return (side_tasks('libvirt_domain', 'setup', uri, count, 'loop', state)
            + side_tasks('lxc_container', 'setup', uri, count, 'loop', state))


def bench_tasks(uri, count, rounds, shape):
    tasks = []
    # Warm-up, not measured: builds each module's AnsiballZ payload once, as in any run.
    for side in SIDES:
        warm = side_tasks(side, 'warmup', uri, 1, 'tasks')
        tasks.extend(warm)
    for rnd in range(1, rounds + 1):
        order = SIDES if rnd % 2 else tuple(reversed(SIDES))
        for side in order:
            tasks.extend(side_tasks(side, 'bench r%d' % rnd, uri, count, shape))
    return tasks


# ---------------------------------------------------------------------------- running

def ansible_env(times_path):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS,
        'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
        'ANSIBLE_CALLBACKS_ENABLED': 'virtkit_bench_timer',
        'ANSIBLE_PYTHON_INTERPRETER': PYTHON,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'VIRTKIT_BENCH_TIMES': times_path,
        'PATH': VENV_BIN + os.pathsep + env.get('PATH', ''),
    })
    return env


def run_playbook(workdir, tag, plays):
    """Run a playbook; return (seconds, task records). Raises BenchError on failure."""
    path = os.path.join(workdir, tag + '.yml')
    times = os.path.join(workdir, tag + '.times.json')
    log = os.path.join(workdir, tag + '.log')
    with open(path, 'w') as handle:
        handle.write('---\n')
        yaml.safe_dump(plays, handle, sort_keys=False, default_flow_style=False, width=200)
    cmd = [ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % PYTHON, path]
    start = time.perf_counter()
    with open(log, 'w') as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=ansible_env(times), check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        with open(log) as handle:
            tail = handle.read()[-3000:]
        raise BenchError('%s playbook failed (exit %d); log %s:\n%s' % (tag, proc.returncode, log, tail))
    try:
        with open(times) as handle:
            records = json.load(handle)['tasks']
    except (OSError, ValueError, KeyError) as err:
        raise BenchError('%s: no timings from the callback plugin (%s)' % (tag, err))
    return elapsed, records


def ansible_setting(name):
    cmd = [os.path.join(VENV_BIN, 'ansible-config'), 'dump']
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(os.devnull),
                             check=False, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return '?'
    for line in out.splitlines():
        if line.startswith(name + '('):
            return line.split('=', 1)[1].strip()
    return '?'


# ---------------------------------------------------------------------------- libvirt helpers

def libvirt_states(uri, names):
    """{name: state string} for the guests that exist, through libvirt-python directly."""
    import libvirt
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    conn = libvirt.open(uri)
    try:
        found = {}
        for name in names:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            found[name] = 'running' if dom.isActive() else 'shut off'
        running = sum(1 for d in conn.listAllDomains(0) if d.isActive())
        return found, running
    finally:
        conn.close()


def force_remove(uri, names):
    """Last resort after a failed clean-up playbook: destroy + undefine our guests only."""
    import libvirt
    conn = libvirt.open(uri)
    try:
        for name in names:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_NVRAM', 0)
                              | getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_MANAGED_SAVE', 0)
                              | getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA', 0))
    finally:
        conn.close()


# ---------------------------------------------------------------------------- lxc helpers

def lxc_existing(names):
    """The benchmark containers among ``names`` that exist, with their state (lxc-ls)."""
    proc = subprocess.run(['lxc-ls', '--fancy', '--fancy-format', 'name,state'],
                          capture_output=True, text=True, check=True, timeout=60)
    found = {}
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] in names:
            found[parts[0]] = parts[1]
    return found


def lxc_force_remove(names):
    """Last resort after a failed clean-up playbook: lxc-destroy -f on our containers only."""
    for name in names:
        subprocess.run(['lxc-destroy', '-f', '-n', name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, timeout=120)


# ---------------------------------------------------------------------------- analysis

def phase_of(name):
    """'bench r3 stat' or 'bench r3 stat vk-bench-04' -> (3, 'stat'); other tasks -> None."""
    parts = name.split()
    if len(parts) < 3 or parts[0] != 'bench' or not parts[1].startswith('r') or parts[2] not in SIDES:
        return None
    return int(parts[1][1:]), parts[2]


def analyse(records, count, rounds):
    problems = []
    phases = {}
    calls = {side: [] for side in SIDES}
    for rec in records:
        side = rec['name'].split()[1] if rec['name'].startswith('warmup ') else None
        key = phase_of(rec['name'])
        side = key[1] if key else side
        if side is None:
            continue
        if rec['end'] is None:
            problems.append('%s: no final result recorded' % rec['name'])
            continue
        for item in rec['items']:
            if item.get('failed'):
                problems.append('%s: failed: %s' % (rec['name'], item.get('msg')))
            if side in MEASURED and item.get('changed'):
                problems.append('%s: reported changed=true, so this is not a no-op' % rec['name'])
            if side == 'stat' and item.get('exists') is False:
                problems.append('%s: the stat target does not exist' % rec['name'])
        if key is None:
            continue
        phase = phases.setdefault(key, {'start': rec['start'], 'end': rec['end'], 'items': 0})
        phase['start'] = min(phase['start'], rec['start'])
        phase['end'] = max(phase['end'], rec['end'])
        phase['items'] += len(rec['items'])
        previous = rec['start']
        for item in rec['items']:
            calls[side].append(item['t'] - previous)
            previous = item['t']
    per_round = []
    for rnd in range(1, rounds + 1):
        order = SIDES if rnd % 2 else tuple(reversed(SIDES))
        row = {'round': rnd, 'order': ','.join(SHORT[side] for side in order)}
        for side in SIDES:
            phase = phases.get((rnd, side))
            if phase is None or phase['items'] != count:
                problems.append('round %d %s: %s of %d calls recorded'
                                % (rnd, side, phase['items'] if phase else 0, count))
                row[side] = None
            else:
                row[side] = phase['end'] - phase['start']
        for side in MEASURED:
            if row[side] and row['stat']:
                row['ratio_' + side] = row[side] / row['stat']
        per_round.append(row)
    return per_round, calls, problems


def noise_reasons(per_round, load_start):
    """Why this run's numbers are not to be trusted (other work competing for the CPUs)."""
    reasons = []
    cpus = os.cpu_count() or 1
    if load_start[0] > NOISY_LOAD * cpus:
        reasons.append('load average %.2f on %d CPUs before the run' % (load_start[0], cpus))
    for side in SIDES:
        times = [r[side] for r in per_round]
        if len(times) > 1 and max(times) / min(times) > NOISY_SPREAD:
            reasons.append('%s phases vary %.2f-%.2f s' % (side, min(times), max(times)))
    load_end = os.getloadavg()[0]
    # The run itself keeps about one CPU busy.
    if load_end > 1 + NOISY_LOAD * cpus:
        reasons.append('load average %.2f on %d CPUs at the end (this run adds about 1)' % (load_end, cpus))
    return reasons


# ---------------------------------------------------------------------------- main

def missing_prerequisite(tools=()):
    """The first thing a libvirt/LXC benchmark needs that is not there, as one line naming its
    fix (the venv, the collection path, the tiny test image, the ``tools`` on PATH), or None."""
    for path, hint in ((ANSIBLE_PLAYBOOK, 'run: scripts/setup-host.sh venv'),
                       (os.path.join(COLLECTIONS, 'ansible_collections', 'virtkit', 'guests'),
                        'run: scripts/setup-host.sh collection'),
                       (os.path.join(IMAGE_DIR, 'tiny-vmlinuz'), 'run: tests/images/build-tiny-image.sh'),
                       (os.path.join(IMAGE_DIR, 'tiny-initrd.img'), 'run: tests/images/build-tiny-image.sh')):
        if not os.path.exists(path):
            return '%s is missing (%s)' % (path, hint)
    for tool in tools:
        if shutil.which(tool) is None:
            return '%s not found (run: scripts/setup-host.sh)' % tool
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--count', type=int, default=10, help='guests, containers and stat calls per phase (default 10)')
    parser.add_argument('--rounds', type=int, default=7, help='rounds of the three phases (default 7)')
    parser.add_argument('--shape', choices=('loop', 'tasks'), default='loop',
                        help='one looped task per phase (default) or one task per call; same on every side')
    parser.add_argument('--uri', default='qemu:///system')
    parser.add_argument('--keep-playbooks', action='store_true',
                        help='keep the generated playbooks, logs and timings in benchmarks/results/')
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 99 or args.rounds < 1:
        parser.error('--count must be 1..99 and --rounds at least 1')

    missing = missing_prerequisite(('lxc-ls', 'lxc-destroy'))
    if missing:
        print('libvirt_noop: ERROR: %s' % missing, file=sys.stderr)
        return 2

    names = [g['name'] for g in guests(args.count)]
    cts = [g['ct'] for g in guests(args.count)]
    os.makedirs(RESULTS, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix='libvirt_noop.', dir=RESULTS)
    try:
        before, running_others = libvirt_states(args.uri, names)
    except Exception as err:  # libvirt-python missing or libvirtd down: say so in one line
        print('libvirt_noop: ERROR: cannot connect to %s: %s (is libvirtd running? '
              'scripts/setup-host.sh services)' % (args.uri, ' '.join(str(err).split())), file=sys.stderr)
        return 2
    try:
        ct_before = lxc_existing(cts)
    except (OSError, subprocess.SubprocessError) as err:
        print('libvirt_noop: ERROR: lxc-ls failed: %s' % err, file=sys.stderr)
        return 2

    print('libvirt_noop: no-op rerun of virtkit.guests.libvirt_domain and virtkit.guests.lxc_container '
          'vs ansible.builtin.stat, %d calls each' % args.count)
    load_start = [round(x, 2) for x in os.getloadavg()]
    print('  host: %s, %d CPUs, load average %s, other running guests: %d'
          % (platform.node(), os.cpu_count() or 0, ' '.join('%.2f' % x for x in load_start), running_others))
    if before or ct_before:
        print('  note: %d benchmark guests and %d containers were left from an earlier run; they are '
              'converged and removed' % (len(before), len(ct_before)))
    status = 2
    summary = None
    try:
        summary = measure(args, workdir, names, cts, load_start)
        status = 0 if summary['target_met'] else 1
    except BenchError as err:
        print('libvirt_noop: ERROR: %s' % err, file=sys.stderr)
        status = 2
    finally:
        cleaned, cleanup_s = cleanup(args, workdir, names, cts)
        if not cleaned:
            status = 2
        if summary is not None:
            summary['cleanup_s'] = round(cleanup_s, 3) if cleanup_s is not None else None
            with open(os.path.join(RESULTS, 'libvirt_noop.json'), 'w') as handle:
                json.dump(summary, handle, indent=2)
        if status != 2 and not args.keep_playbooks:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print('  playbooks, logs and timings kept in %s' % os.path.relpath(workdir, ROOT))
    return status


def measure(args, workdir, names, cts, load_start):
    """Set up, run the bench playbook, print the results; return the JSON summary."""
    setup_s, _rec = run_playbook(workdir, 'setup', play(args.count, setup_tasks(args.uri, args.count)))
    states, _running = libvirt_states(args.uri, names)
    if sorted(states) != names:
        raise BenchError('after the set-up run, guests %s are missing'
                         % ', '.join(sorted(set(names) - set(states))))
    ct_states = lxc_existing(cts)
    if sorted(k for k, v in ct_states.items() if v == 'RUNNING') != cts:
        raise BenchError('after the set-up run, containers %s are not running'
                         % ', '.join(n for n in cts if ct_states.get(n) != 'RUNNING'))
    state_set = sorted(set(states.values()))
    print('  guests: %s%02d..%s%02d DEFINED, NOT STARTED (state %s; state: present, virt_type qemu, '
          '64-128 MiB, direct kernel boot, NIC on network default)'
          % (PREFIX, 1, PREFIX, args.count, '/'.join(state_set)))
    print('  containers: %s%02d..%s%02d busybox, RUNNING (state: started, limits.memory %s); set-up run %.1f s'
          % (CT_PREFIX, 1, CT_PREFIX, args.count, CT_MEMORY, setup_s))
    pipelining = ansible_setting('ANSIBLE_PIPELINING')
    print('  shape: %s on every side; %d rounds, order alternating L,C,S / S,C,L; 1 unmeasured warm-up call each'
          % ('one task looping over %d items per phase' % args.count if args.shape == 'loop'
             else '%d separate tasks per phase' % args.count, args.rounds))
    print('  stat: ansible.builtin.stat, default options, on /etc/libvirt/qemu/<guest>.xml; '
          'pipelining: %s; interpreter: %s' % (pipelining, os.path.relpath(PYTHON, ROOT)))

    bench_s, records = run_playbook(workdir, 'bench', play(args.count, bench_tasks(
        args.uri, args.count, args.rounds, args.shape)))
    per_round, calls, problems = analyse(records, args.count, args.rounds)
    if problems:
        raise BenchError('invalid measurement:\n  ' + '\n  '.join(problems))

    print()
    print('  round  order  libvirt_domain x%-3d  lxc_container x%-3d  stat x%-3d  L/S    C/S'
          % (args.count, args.count, args.count))
    for row in per_round:
        print('  %5d  %-5s  %16.3f s  %15.3f s  %8.3f s  %5.2f  %5.2f'
              % (row['round'], row['order'], row['libvirt_domain'], row['lxc_container'], row['stat'],
                 row['ratio_libvirt_domain'], row['ratio_lxc_container']))
    med = {side: statistics.median(r[side] for r in per_round) for side in SIDES}
    ratio = {side: statistics.median(r['ratio_' + side] for r in per_round) for side in MEASURED}
    print('  median        %16.3f s  %15.3f s  %8.3f s  %5.2f  %5.2f'
          % (med['libvirt_domain'], med['lxc_container'], med['stat'],
             ratio['libvirt_domain'], ratio['lxc_container']))
    per_call = {side: statistics.median(calls[side]) for side in SIDES}
    print('  per call (median): libvirt_domain %.3f s, lxc_container %.3f s, stat %.3f s'
          % (per_call['libvirt_domain'], per_call['lxc_container'], per_call['stat']))
    for side in MEASURED:
        ratios = [r['ratio_' + side] for r in per_round]
        print('  median ratio %s/stat: %.2fx (rounds %.2f-%.2f; target: at most %.1fx): %s'
              % (side, ratio[side], min(ratios), max(ratios), TARGET,
                 'met' if ratio[side] <= TARGET else 'MISSED'))
    print('  bench playbook wall time %.1f s' % bench_s)
    noise = noise_reasons(per_round, load_start)
    if noise:
        print('  WARNING: noisy host, the ratios are not reliable (%s); rerun when the host is idle'
              % '; '.join(noise))
    return {
        'benchmark': 'libvirt_noop',
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'host': platform.node(),
        'cpus': os.cpu_count(),
        'uri': args.uri,
        'guests': args.count,
        'containers': args.count,
        'guest_state': '/'.join(state_set),
        'container_memory': CT_MEMORY,
        'shape': args.shape,
        'rounds': per_round,
        'median_s': med,
        'per_call_median_s': per_call,
        'median_ratio': {side: round(ratio[side], 3) for side in MEASURED},
        'ratio_of_medians': {side: round(med[side] / med['stat'], 3) for side in MEASURED},
        'target_ratio': TARGET,
        'target_met': all(ratio[side] <= TARGET for side in MEASURED),
        'setup_s': round(setup_s, 3),
        'bench_playbook_s': round(bench_s, 3),
        'pipelining': pipelining,
        'load_average_start': load_start,
        'noisy': noise,
    }


def cleanup(args, workdir, names, cts):
    """Remove our guests and containers (only those names); return (all gone, playbook seconds)."""
    ok = True
    cleanup_s = None
    try:
        cleanup_s, _rec = run_playbook(workdir, 'cleanup', play(args.count, setup_tasks(
            args.uri, args.count, state='absent')))
    except BenchError as err:
        print('libvirt_noop: clean-up playbook failed, removing the guests and containers directly: %s'
              % err, file=sys.stderr)
        ok = False
    try:
        left, _running = libvirt_states(args.uri, names)
        if left:
            force_remove(args.uri, sorted(left))
            left, _running = libvirt_states(args.uri, names)
    except Exception as err:  # report, never hide the original outcome
        print('libvirt_noop: ERROR checking the clean-up of the guests: %s' % err, file=sys.stderr)
        left = names
    try:
        ct_left = lxc_existing(cts)
        if ct_left:
            lxc_force_remove(sorted(ct_left))
            ct_left = lxc_existing(cts)
    except (OSError, subprocess.SubprocessError) as err:
        print('libvirt_noop: ERROR checking the clean-up of the containers: %s' % err, file=sys.stderr)
        ct_left = cts
    if left:
        print('libvirt_noop: ERROR: guests still defined: %s' % ', '.join(sorted(left)), file=sys.stderr)
    if ct_left:
        print('libvirt_noop: ERROR: containers still present: %s' % ', '.join(sorted(ct_left)), file=sys.stderr)
    if left or ct_left:
        return False, cleanup_s
    if ok:
        print('  cleanup: removed %s%02d..%s%02d and %s%02d..%s%02d (%.1f s)'
              % (PREFIX, 1, PREFIX, args.count, CT_PREFIX, 1, CT_PREFIX, args.count, cleanup_s))
    return ok, cleanup_s


if __name__ == '__main__':
    sys.exit(main())
