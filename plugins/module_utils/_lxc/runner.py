# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calling the LXC tools: argv lists only (never a shell), one-line errors, parsers.

Every call goes through :class:`Runner`, which adds ``-n NAME`` and ``-P LXC_PATH`` so the
container path is honoured everywhere. Parsers read the text the tools print.
"""

from __future__ import annotations

import os
import re
import subprocess

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

DEFAULT_LXC_PATH = '/var/lib/lxc'
SYSTEM_CONFIG = '/etc/lxc/lxc.conf'
# "lxc-create: vk-a: lxccontainer.c: do_lxcapi_create: 1850 Container already exists"
_PREFIX_RE = re.compile(r'^(?:lxc-[\w-]+|lxc): (?:[^:\s]*: )?[\w./-]+\.c: \w+: \d+ ')
_NOISE = ('to get more details', 'additional information can be obtained',
          'run the container in foreground mode')


def default_lxc_path(system_config=SYSTEM_CONFIG):
    """The lxc path LXC uses for root: ``lxc.lxcpath`` from lxc.conf, else /var/lib/lxc.

    Read from the file (no ``lxc-config`` subprocess) so the no-op path stays cheap.
    """
    try:
        with open(system_config) as handle:
            for line in handle:
                key, sep, value = line.partition('=')
                if sep and key.strip() == 'lxc.lxcpath' and value.strip():
                    return value.strip()
    except (IOError, OSError):
        pass
    return DEFAULT_LXC_PATH


def clean_error(text):
    """The useful part of an LXC tool's stderr, as one line."""
    seen, parts = set(), []
    for line in (text or '').splitlines():
        line = _PREFIX_RE.sub('', line.strip()).strip()
        if not line or line in seen or any(n in line.lower() for n in _NOISE):
            continue
        seen.add(line)
        parts.append(line.rstrip('.'))
    return '; '.join(parts[-4:])


def _subprocess_run(argv, data=None, timeout=None, env=None):
    try:
        proc = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        raise VirtkitError('%s is not installed (install the lxc package)' % argv[0])
    except subprocess.TimeoutExpired:
        raise VirtkitError('%s did not finish within %s s' % (' '.join(argv[:3]), timeout))
    return proc.returncode, proc.stdout, proc.stderr


class Runner:
    """Runs ``lxc-*`` tools for one lxc path; ``run`` may be replaced in tests."""

    def __init__(self, lxc_path=None, run=None):
        self.lxc_path = lxc_path or default_lxc_path()
        self._run = run or _subprocess_run
        self.calls = []

    def argv(self, tool, name=None, args=()):
        argv = [tool]
        if name is not None:
            argv += ['-n', name]
        argv += ['-P', self.lxc_path]
        argv += [str(a) for a in args]
        return argv

    def run(self, tool, name, args=(), operation=None, check=True, data=None, timeout=None,
            raw_argv=None, env=None):
        """Run the tool; return (rc, stdout text, stderr text).

        With ``check`` a non-zero exit raises VirtkitError naming the container, the
        operation and the tool's own error.
        """
        argv = raw_argv or self.argv(tool, name, args)
        self.calls.append(argv)
        if isinstance(data, str):
            data = data.encode('utf-8')
        rc, out, err = self._run(argv, data, timeout, env) if env is not None else self._run(argv, data, timeout)
        out = out.decode('utf-8', 'replace') if isinstance(out, bytes) else (out or '')
        err = err.decode('utf-8', 'replace') if isinstance(err, bytes) else (err or '')
        if check and rc != 0:
            raise VirtkitError('%s: %s failed: %s' % (name or self.lxc_path, operation or tool,
                                                      clean_error(err) or clean_error(out)
                                                      or '%s exited with %s' % (tool, rc)))
        return rc, out, err

    def config_path(self, name):
        return os.path.join(self.lxc_path, name, 'config')


# ---------------------------------------------------------------- parsers

def parse_info(text):
    """``lxc-info -s -p -i`` output -> {'state', 'pid', 'ips'} (state lower-case)."""
    info = {'state': None, 'pid': None, 'ips': []}
    for line in (text or '').splitlines():
        key, sep, value = line.partition(':')
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == 'state':
            info['state'] = value.lower()
        elif key == 'pid':
            info['pid'] = int(value) if value.isdigit() else None
        elif key == 'ip':
            info['ips'].append(value)
        elif key == 'name':
            info['name'] = value
    return info


def parse_ls_fancy(text):
    """``lxc-ls --fancy`` output -> list of dicts keyed by the lower-case column names.

    Columns are cut at the header's column starts (values such as "eth0, lo" contain
    blanks); "-" becomes None; list columns (IPV4, IPV6, GROUPS, INTERFACE) become lists.
    """
    lines = [line for line in (text or '').splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [m.start() for m in re.finditer(r'\S+', header)]
    names = header.split()
    rows = []
    for line in lines[1:]:
        row = {}
        for i, name in enumerate(names):
            end = starts[i + 1] if i + 1 < len(starts) else None
            value = line[starts[i]:end].strip() if end is not None else line[starts[i]:].strip()
            key = name.lower()
            if key in ('ipv4', 'ipv6', 'groups', 'interface'):
                row[key] = [] if value in ('-', '') else [v.strip() for v in value.split(',') if v.strip()]
            elif key in ('pid', 'ram', 'swap'):
                row[key] = None if value in ('-', '') else value
            elif key in ('autostart', 'unprivileged'):
                row[key] = value in ('1', 'true', 'YES', 'yes')
            else:
                row[key] = None if value in ('-', '') else value
            if key == 'state' and row[key]:
                row[key] = row[key].lower()
        rows.append(row)
    return rows


def parse_lxc_config(text):
    """``lxc-config KEY`` prints the value; ``lxc-config -l`` prints one key a line."""
    return [line.strip() for line in (text or '').splitlines() if line.strip()]


def parse_snapshots(text):
    """``lxc-snapshot -L`` output -> [{'name', 'path', 'timestamp'}]."""
    result = []
    for line in (text or '').splitlines():
        match = re.match(r'^(\S+) \((.*?)\) (\S+ \S+)$', line.strip())
        if match:
            result.append({'name': match.group(1), 'path': match.group(2), 'timestamp': match.group(3)})
    return result
