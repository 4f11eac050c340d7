# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.virtkit.guests.plugins.module_utils._mac import stable_mac
from ansible_collections.virtkit.guests.plugins.module_utils._fleet import spec as fleet_spec


def test_the_macs_derived_before_the_helper_existed_are_kept():
    """Guests created by earlier releases keep their MACs (a new MAC would make their NIC look
    new): the values of the two former stable_mac() functions, for KVM (guest_fleet) and LXC."""
    assert stable_mac('db1', 0) == '52:54:00:3d:7b:4a'
    assert stable_mac('db1', 1) == '52:54:00:5b:c6:fe'
    assert stable_mac('c1', 0, 'lxc') == '00:16:3e:14:bf:5b'
    assert stable_mac('c1', 1, 'lxc') == '00:16:3e:4b:e8:1b'
    assert stable_mac(u'web-\xe9a', 2, 'lxc') == '00:16:3e:51:2e:41'


def test_one_helper_serves_both_kinds():
    assert fleet_spec.stable_mac is stable_mac
    assert stable_mac('a', 0) != stable_mac('a', 0, 'lxc')
