# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No-op micro-benchmark for lxc_container: 10 running busybox containers.

Compares converging 10 already-converged containers (ContainerManager.run, in process, as
the module does it) with a loop that runs ``stat`` on each container's config file (one
subprocess each, the floor for "look at the container once"). Target: at most 1.3x.
Creates vk-bench-0..9 and removes them at the end. Run as root: .venv/bin/python benchmarks/lxc_noop.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), '.build', 'collections'))

from ansible_collections.virtkit.guests.plugins.module_utils._lxc.manager import ContainerManager  # noqa: E402

COUNT = 10
ROUNDS = 7


def params(i):
    return {'name': 'vk-bench-%d' % i, 'state': 'started', 'template': 'busybox',
            'limits': {'memory': '64MiB', 'pids': 50}, 'autostart': False}


def timed(func):
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main():
    manager = ContainerManager()
    setup = [timed(lambda i=i: manager.run(params(i))) for i in range(COUNT)]
    try:
        def converge():
            for i in range(COUNT):
                result = ContainerManager().run(params(i))
                assert not result['changed'], result['actions']

        def stat_loop():
            for i in range(COUNT):
                subprocess.run(['stat', manager.r.config_path('vk-bench-%d' % i)], stdout=subprocess.DEVNULL, check=True)

        noop = [timed(converge) for _round in range(ROUNDS)]
        stat = [timed(stat_loop) for _round in range(ROUNDS)]
    finally:
        remove = [timed(lambda i=i: manager.run({'name': 'vk-bench-%d' % i, 'state': 'absent'})) for i in range(COUNT)]
    result = {
        'containers': COUNT,
        'create_start_s_median': round(statistics.median(setup), 4),
        'noop_10_s_median': round(statistics.median(noop), 4),
        'stat_10_s_median': round(statistics.median(stat), 4),
        'ratio': round(statistics.median(noop) / statistics.median(stat), 2),
        'remove_s_median': round(statistics.median(remove), 4),
        'target_ratio': 1.3,
    }
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    with open(os.path.join(HERE, 'results', 'lxc_noop.json'), 'w') as handle:
        json.dump(result, handle, indent=2)
    print(json.dumps(result, indent=2))
    return 0 if result['ratio'] <= 1.3 else 1


if __name__ == '__main__':
    sys.exit(main())
