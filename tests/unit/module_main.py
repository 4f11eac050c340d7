# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a module's main() in a unit test, and keeping libvirt's test driver state.

Import as ``ansible_collections.virtkit.guests.tests.unit.module_main``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from unittest import mock

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode()):
            yield


def run_main(main, capsys, args):
    """Run ``main()`` with ``args``; return (exit code, what it printed)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            main()
    out, _err = capsys.readouterr()
    return exc.value.code, out


def driver_keeper(connection_class, uri, prefix):
    """Generator for a fixture: an open connection keeps the test driver's state between
    module runs; afterwards the guests named ``prefix*`` are removed."""
    conn = connection_class(uri)
    yield conn
    for dom in conn.conn.listAllDomains(0):
        if dom.name().startswith(prefix):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    conn.close()


def run_main_json(main, capsys, args, **defaults):
    """Run ``main()`` with ``args`` (``defaults`` filled in); return (exit code, the JSON result)."""
    for key, value in defaults.items():
        args.setdefault(key, value)
    code, out = run_main(main, capsys, args)
    return code, json.loads(out)


def guest_fixtures(connection_class, uri, prefix):
    """The ``keeper`` and ``name`` fixtures of a module test file: an open connection that
    keeps the test driver's guests between module runs (removing ``prefix*`` ones after the
    test), and a fresh guest name for every test. Bind both at module level:
    ``keeper, name = guest_fixtures(Connection, URI, PREFIX)``."""
    counter = itertools.count()

    @pytest.fixture
    def keeper():
        yield from driver_keeper(connection_class, uri, prefix)

    @pytest.fixture
    def name():
        return '%s%d' % (prefix, next(counter))

    return keeper, name
