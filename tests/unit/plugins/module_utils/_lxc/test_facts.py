# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

from ansible_collections.virtkit.guests.plugins.module_utils._lxc import facts

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_addresses_from_proc():
    files = {'/proc/9/net/fib_trie': fixture('fib_trie.txt'), '/proc/9/net/route': fixture('route.txt'),
             '/proc/9/net/if_inet6': fixture('if_inet6.txt')}
    out = facts.addresses(9, files.get)
    assert out['ipv4'] == ['10.0.3.157']
    assert out['ipv6'] == ['fd00::10']
    assert out['interfaces'] == {'eth0': {'ipv4': ['10.0.3.157'], 'ipv6': ['fd00::10']}}


def test_addresses_of_a_container_without_network():
    out = facts.addresses(9, {'/proc/9/net/fib_trie': 'Main:\n  |-- 127.0.0.1\n     /32 host LOCAL\n'}.get)
    assert out == {'ipv4': [], 'ipv6': [], 'interfaces': {}}


def test_proc_start_ticks():
    stat = '123 (my (odd) init) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10'
    assert facts.proc_start_ticks(123, {'/proc/123/stat': stat}.get) == 98765
    assert facts.proc_start_ticks(1, {}.get) is None
