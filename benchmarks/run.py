# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the micro-benchmarks one after another (`make benchmark`) and print their output.

    .venv/bin/python benchmarks/run.py              # every benchmark script, *_noop.py first
    .venv/bin/python benchmarks/run.py libvirt lxc  # only these (libvirt_noop.py, lxc_noop.py)
    .venv/bin/python benchmarks/run.py fleet -- --count 4   # options after -- go to every chosen script

A benchmark script is any benchmarks/*.py other than this one and names starting with "_"
(the *_noop.py no-op benchmarks, inventory_list.py, ...). A name given on the command line
is matched as NAME.py, then NAME_noop.py.

Each benchmark runs with the repository's venv Python, from the repository root, one at a
time (they compete for the same CPUs). The exit status is 0 when every benchmark exited 0
(ran and met its target), else 1; a summary line per benchmark names what failed.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')


def available():
    """Every benchmark script: the *_noop.py ones first, then the others, each sorted."""
    scripts = [p for p in glob.glob(os.path.join(HERE, '*.py'))
               if os.path.basename(p) != 'run.py' and not os.path.basename(p).startswith('_')]
    return sorted(scripts, key=lambda p: (not p.endswith('_noop.py'), os.path.basename(p)))


def select(names):
    scripts = available()
    if not names:
        return scripts, []
    chosen, unknown = [], []
    for name in names:
        base = os.path.basename(name)
        base = base[:-3] if base.endswith('.py') else base
        path = next((os.path.join(HERE, cand + '.py') for cand in (base, base + '_noop')
                     if os.path.join(HERE, cand + '.py') in scripts), None)
        if path is None:
            unknown.append(name)
        elif path not in chosen:
            chosen.append(path)
    return chosen, unknown


def main(argv):
    extra = []
    if '--' in argv:
        argv, extra = argv[:argv.index('--')], argv[argv.index('--') + 1:]
    scripts, unknown = select(argv)
    if unknown:
        print('benchmarks/run.py: unknown benchmark(s): %s (available: %s)'
              % (', '.join(unknown), ', '.join(os.path.basename(p) for p in available())), file=sys.stderr)
        return 2
    if not scripts:
        print('benchmarks/run.py: no benchmark scripts found in %s' % HERE, file=sys.stderr)
        return 2
    python = PYTHON if os.path.exists(PYTHON) else sys.executable
    outcomes = []
    for script in scripts:
        name = os.path.basename(script)
        print('=== %s' % name, flush=True)
        start = time.monotonic()
        try:
            rc = subprocess.run([python, script] + extra, cwd=ROOT, check=False).returncode
        except KeyboardInterrupt:
            print('\nbenchmarks/run.py: interrupted during %s' % name, file=sys.stderr)
            return 130
        outcomes.append((name, rc, time.monotonic() - start))
        print('=== %s: exit %d (%.0f s)\n' % (name, rc, time.monotonic() - start), flush=True)
    print('summary:')
    for name, rc, seconds in outcomes:
        print('  %-20s %s (%.0f s)' % (name, 'ok' if rc == 0 else 'FAILED (exit %d)' % rc, seconds))
    return 0 if all(rc == 0 for _name, rc, _s in outcomes) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
