# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the domain manager tests: a connection to libvirt's test driver that removes
the guests a test made, and a guest name of its own for every test."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import Connection, libvirt

URI = 'test:///default'
PREFIX = 'virtkit-unit-'
_counter = itertools.count()


@pytest.fixture
def conn():
    if libvirt is None:
        pytest.skip('libvirt-python is not installed')
    connection = Connection(URI)
    yield connection
    for dom in connection.conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
    connection.close()


@pytest.fixture
def name(request):
    return '%s%s-%d' % (PREFIX, request.node.originalname.replace('_', '-')[:40], next(_counter))
