# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MAC a NIC gets when its address must be known before the guest exists.

A static address is bound to a MAC (a seed's network-config matches the NIC by MAC, a DHCP
reservation is MAC -> IP, an LXC config names the NIC's hwaddr), so a NIC the user gave no
MAC gets one derived from the guest's name and the NIC's index: the same on every run, so
check mode and reruns agree.

The two derivations below are the ones guests were created with before this helper
existed; they are kept byte for byte, because a different MAC makes the guest's NIC look
new (another NIC next to it, an address bound to a MAC the guest does not have). The KVM
key joins name and index without a separator, so ('web1', 0) and ('web', 10) give the same
MAC; guest_fleet refuses such a pair (and any other MAC used twice) within one fleet
instead of changing the MACs of existing guests.
"""

from __future__ import annotations

import hashlib

# kind: (prefix, the hashed key for (name, index), mask of the first derived byte)
_KINDS = {
    # QEMU's prefix, the one libvirt gives KVM guests.
    'kvm': ('52:54:00', '%s%d', 0xff),
    # LXC's prefix 00:16:3e (Xensource), as lxc-create's own random MACs.
    'lxc': ('00:16:3e', '%s/%d', 0x7f),
}


def stable_mac(name, index, kind='kvm'):
    """The MAC of NIC ``index`` of guest ``name`` (``kind`` kvm or lxc): prefix plus three
    bytes of sha256 of the kind's key."""
    prefix, key, mask = _KINDS[kind]
    digest = bytearray(hashlib.sha256((key % (name, index)).encode('utf-8')).digest())
    return '%s:%02x:%02x:%02x' % (prefix, digest[0] & mask, digest[1], digest[2])
