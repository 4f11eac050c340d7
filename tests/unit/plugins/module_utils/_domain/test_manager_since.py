# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which start time the manager gives the address reader (stale DHCP leases), against
libvirt's test driver: its own start, the guest's QEMU start, none for a restored guest."""

from __future__ import annotations


import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._domain import manager as manager_module
from ansible_collections.virtkit.guests.plugins.module_utils._domain.addresses import AddressReader
from ansible_collections.virtkit.guests.plugins.module_utils._domain.manager import DomainManager
from ansible_collections.virtkit.guests.tests.unit.helpers import params

pytestmark = pytest.mark.skipif(libvirt is None, reason='libvirt-python is not installed')

URI = 'test:///default'


@pytest.fixture
def seen(monkeypatch):
    """The ``since`` of every AddressReader.read call; the guest's QEMU start is 1000.0."""
    calls = []
    monkeypatch.setattr(AddressReader, 'read', lambda self, dom, root, sources, since=None, baseline=None: calls.append(since) or {})
    monkeypatch.setattr(manager_module, 'guest_start_time', lambda connection, dom: 1000.0)
    return calls


def run(conn, clock=lambda: 2000.0, **options):
    return DomainManager(conn, clock=clock).run(params(uri=URI, memory=64, **options), check_mode=False)


def test_a_guest_started_earlier_uses_its_qemu_start(conn, name, seen):
    run(conn, name=name, state='running')
    del seen[:]
    run(conn, name=name, state='running')  # a later module run: it did not start the guest
    assert seen == [1000.0]


def test_a_guest_this_run_started_uses_the_runs_clock(conn, name, seen):
    run(conn, name=name, state='running')
    assert seen == [2000.0]


def test_a_guest_restored_from_a_managed_save_keeps_its_lease(conn, name, seen):
    run(conn, name=name, state='running')
    conn.conn.lookupByName(name).managedSave(0)
    del seen[:]
    result = run(conn, name=name, state='running')
    assert [a['action'] for a in result['actions']] == ['start']
    assert seen == [1000.0]  # not the run's clock: the restored guest's lease predates this start
