# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's own network setup in a container rootfs (guestnet): edits on fixture files."""

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._lxc import guestnet
from ansible_collections.virtkit.guests.plugins.module_utils._lxc import rootfs as lxcrootfs
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.guestnet import (
    edit_interfaces, edit_rcs, nics, static_families, survey, warning)
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.rootfs import RootfsView

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'rootfs')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def statics(*networks):
    return static_families(nics(list(networks)))


STATIC = {'link': 'lxcbr0', 'ipv4': ['10.0.3.61/24'], 'ipv4_gateway': '10.0.3.1'}
DHCP = {'link': 'lxcbr0'}


# ---------------------------------------------------------------- NIC names

def test_nics_are_named_as_lxc_names_them():
    out = nics([{'link': 'a', 'name': 'eth0'}, {'link': 'b'}, {'type': 'empty'}, {'link': 'c', 'ipv4': ['10.0.0.2/8']}])
    assert [(n['index'], n['ifname']) for n in out] == [(0, 'eth0'), (1, 'eth1'), (3, 'eth2')]
    assert out[2]['ipv4'] == ['10.0.0.2/8']
    assert nics([{'type': 'none'}]) == []
    assert statics(DHCP, dict(STATIC, name='lan0')) == {'lan0': (1, {'ipv4'})}


# ---------------------------------------------------------------- busybox rcS

def test_busybox_rcs_udhcpc_is_turned_off_for_a_static_eth0_and_back_on():
    text = fixture('busybox-rcS')
    new, seen = edit_rcs(text, statics(STATIC))
    assert seen == {'eth0': 'off'}
    assert '\n/bin/udhcpc\n' not in new
    assert '# virtkit.guests: eth0 has a static ipv4 address (lxc.net.0); was: /bin/udhcpc\n' in new
    assert new.replace('# virtkit.guests: eth0 has a static ipv4 address (lxc.net.0); was: ', '') == text
    # a rerun changes nothing, also when the NIC moved to another index
    assert edit_rcs(new, statics(STATIC))[0] == new
    assert edit_rcs(new, statics(DHCP, DHCP))[0] != new
    # back to DHCP: the original line, byte for byte
    back, seen = edit_rcs(new, statics(DHCP))
    assert back == text and seen == {'eth0': 'on'}
    assert edit_rcs(text, statics(DHCP)) == (text, {'eth0': 'on'})


def test_busybox_rcs_leaves_udhcpc_of_other_nics_and_shell_constructs():
    text = '#!/bin/sh\nudhcpc -i eth1 -b\n/sbin/udhcpc --interface=eth0 -q\n[ -x /bin/udhcpc ] && /bin/udhcpc\n'
    new, seen = edit_rcs(text, statics(STATIC))
    lines = new.split('\n')
    assert lines[1] == 'udhcpc -i eth1 -b'
    assert lines[2].startswith('# virtkit.guests: eth0 has') and lines[2].endswith('was: /sbin/udhcpc --interface=eth0 -q')
    assert lines[3] == '[ -x /bin/udhcpc ] && /bin/udhcpc'
    assert seen == {'eth1': 'on', 'eth0': 'complex'}  # the last line still runs it: a reason to warn
    _new, seen = edit_rcs('[ -x /bin/udhcpc ] && /bin/udhcpc\n', statics(STATIC))
    assert seen == {'eth0': 'complex'}


@pytest.mark.parametrize('args,ifname', [('', 'eth0'), ('-i eth2', 'eth2'), ('-ieth3 -b', 'eth3'),
                                         ('--interface eth4', 'eth4'), ('-b -q', 'eth0')])
def test_udhcpc_interface(args, ifname):
    assert guestnet.udhcpc_interface(args) == ifname


# ---------------------------------------------------------------- ifupdown

def test_ifupdown_dhcp_becomes_manual_for_a_static_nic_and_comes_back():
    text = fixture('debian-interfaces')
    new, seen = edit_interfaces(text, statics(STATIC))
    assert new == ('auto lo\niface lo inet loopback\n\nauto eth0\n'
                   '# virtkit.guests: eth0 has a static ipv4 address (lxc.net.0); was: iface eth0 inet dhcp\n'
                   'iface eth0 inet manual\n')
    assert seen[('eth0', 'ipv4')] == 'manual' and seen[('lo', 'ipv4')] == 'loopback'
    assert edit_interfaces(new, statics(STATIC))[0] == new
    back, seen = edit_interfaces(new, statics(DHCP))
    assert back == text and seen[('eth0', 'ipv4')] == 'dhcp'


def test_ifupdown_families_and_other_nics_are_separate():
    text = ('iface eth0 inet dhcp\n    hostname web\niface eth0 inet6 auto\n'
            'iface eth1 inet dhcp\niface eth2 inet static\n    address 10.9.0.2/24\n')
    v6 = {'link': 'lxcbr0', 'ipv6': ['fd00::5/64']}
    new, _seen = edit_interfaces(text, statics(STATIC, DHCP, v6))
    assert new.split('\n') == [
        '# virtkit.guests: eth0 has a static ipv4 address (lxc.net.0); was: iface eth0 inet dhcp',
        'iface eth0 inet manual', '    hostname web', 'iface eth0 inet6 auto',
        'iface eth1 inet dhcp', 'iface eth2 inet static', '    address 10.9.0.2/24', '']
    both = dict(STATIC, ipv6=['fd00::5/64'])
    new, _seen = edit_interfaces(text, statics(both))
    assert 'iface eth0 inet6 manual' in new and 'was: iface eth0 inet6 auto' in new
    assert edit_interfaces(new, statics(DHCP))[0] == text


def test_a_marker_whose_stanza_the_user_changed_is_left_alone():
    text = ('# virtkit.guests: eth0 has a static ipv4 address (lxc.net.0); was: iface eth0 inet dhcp\n'
            'iface eth0 inet static\n')
    assert edit_interfaces(text, statics(DHCP))[0] == text


# ---------------------------------------------------------------- a whole rootfs

def tree(root, files):
    for path, text in files.items():
        full = os.path.join(str(root), path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w') as handle:
            handle.write(text)
    return RootfsView(str(root))


def test_survey_busybox(tmp_path):
    view = tree(tmp_path, {'bin/busybox': '', 'etc/init.d/rcS': fixture('busybox-rcS')})
    edits, reasons = survey(view, nics([STATIC]))
    assert [e[0] for e in edits] == ['/etc/init.d/rcS'] and reasons == {}
    assert edits[0][1] == fixture('busybox-rcS') and '# virtkit.guests' in edits[0][2]
    # a static eth1 on a busybox rootfs: nothing runs DHCP on it, nothing to edit
    assert survey(view, nics([DHCP, STATIC])) == ([], {})


def test_survey_debian_with_interfaces_d(tmp_path):
    view = tree(tmp_path, {'etc/network/interfaces': fixture('debian-interfaces') + 'source /etc/network/interfaces.d/*\n',
                           'etc/network/interfaces.d/eth1': 'auto eth1\niface eth1 inet dhcp\n',
                           'etc/network/interfaces.d/.hidden': 'iface eth1 inet dhcp\n',
                           'lib/systemd/network/80-container-ve.network': fixture('networkd-container-ve.network')})
    edits, reasons = survey(view, nics([STATIC, dict(STATIC, ipv4=['10.0.3.62/24'])]))
    assert [e[0] for e in edits] == ['/etc/network/interfaces', '/etc/network/interfaces.d/eth1']
    assert reasons == {}  # the container-ve .network file matches ve-* only


def test_survey_reasons_for_layouts_it_cannot_edit(tmp_path):
    networkd = tree(tmp_path / 'networkd', {'etc/systemd/network/20-wired.network': '[Match]\nName=eth*\n\n[Network]\nDHCP=yes\n',
                                            'etc/network/interfaces': 'auto lo\niface lo inet loopback\n'})
    assert survey(networkd, nics([STATIC])) == (
        [], {'eth0': 'systemd-networkd runs DHCP on it (/etc/systemd/network/20-wired.network)'})
    assert survey(networkd, nics([DHCP])) == ([], {})
    v6only = tree(tmp_path / 'v6', {'etc/systemd/network/20-wired.network': '[Match]\nName=eth0\n[Network]\nDHCP=ipv6\n',
                                    'etc/network/interfaces': ''})
    assert survey(v6only, nics([STATIC])) == ([], {})
    netplan = tree(tmp_path / 'netplan', {'etc/netplan/50-cloud-init.yaml': 'network:\n  ethernets:\n    eth0:\n      dhcp4: true\n'})
    assert 'netplan' in survey(netplan, nics([STATIC]))[1]['eth0']
    nm = tree(tmp_path / 'nm', {'usr/sbin/NetworkManager': '', 'etc/network/interfaces': ''})
    assert 'NetworkManager' in survey(nm, nics([STATIC]))[1]['eth0']
    unknown = tree(tmp_path / 'unknown', {'sbin/init': ''})
    assert 'no network setup this module knows' in survey(unknown, nics([STATIC]))[1]['eth0']
    assert survey(unknown, nics([DHCP])) == ([], {})


def test_survey_follows_source_lines_and_symlinks_inside_the_rootfs(tmp_path):
    view = tree(tmp_path, {'etc/network/interfaces': 'auto lo\niface lo inet loopback\n'
                                                     'source /etc/network/ifaces/*\nsource-directory more.d\n',
                           'etc/network/ifaces/eth0': 'auto eth0\niface eth0 inet dhcp\n',
                           'etc/network/ifaces/.skip': 'iface eth0 inet dhcp\n',
                           'etc/network/more.d/eth1': 'iface eth1 inet dhcp\n',
                           'etc/network/more.d/eth1.bak': 'iface eth1 inet dhcp\n',  # not a run-parts name
                           'srv/net/eth2': 'iface eth2 inet dhcp\n',
                           'etc/network/interfaces.d/lo': 'iface lo inet loopback\n'})
    # a stanza in interfaces.d that is a symlink: its target (inside the rootfs) is edited
    os.symlink('/srv/net/eth2', str(tmp_path / 'etc' / 'network' / 'interfaces.d' / 'eth2'))
    # a link out of the rootfs stops at its root, as in the guest: the host's file is not read
    outside = tmp_path.parent / (tmp_path.name + '-outside')
    outside.write_text('iface eth0 inet dhcp\n')
    os.symlink('../../../../' + outside.name, str(tmp_path / 'etc' / 'network' / 'interfaces.d' / 'gone'))
    edits, reasons = survey(view, nics([STATIC, dict(STATIC, ipv4=['10.0.3.62/24']),
                                        dict(STATIC, ipv4=['10.0.3.63/24'])]))
    assert sorted(e[0] for e in edits) == ['/etc/network/ifaces/eth0', '/etc/network/more.d/eth1', '/srv/net/eth2']
    assert reasons == {} and outside.read_text() == 'iface eth0 inet dhcp\n'
    assert all('iface' in e[2] and 'manual' in e[2] for e in edits)
    assert os.path.islink(str(tmp_path / 'etc' / 'network' / 'interfaces.d' / 'eth2'))


def test_ifupdown_files_it_cannot_edit_give_a_reason(tmp_path):
    view = tree(tmp_path, {'etc/network/interfaces': 'source /etc/network/*/eth0\nsource big\nsource loop\n',
                           'etc/network/big': '# ' + 'x' * lxcrootfs.MAX_TEXT + '\niface eth0 inet dhcp\n'})
    os.symlink('loop', str(tmp_path / 'etc' / 'network' / 'loop'))
    os.mkfifo(str(tmp_path / 'etc' / 'network' / 'interfaces.d'.replace('interfaces.d', 'fifo')))
    (tmp_path / 'etc' / 'network' / 'interfaces.d').mkdir()
    os.symlink('../fifo', str(tmp_path / 'etc' / 'network' / 'interfaces.d' / 'eth0'))
    texts, skipped = guestnet.ifupdown_files(view)
    assert [p for p, _t in texts] == ['etc/network/interfaces']
    assert sorted(skipped) == ['/etc/network/*/eth0 (a wildcard in a directory name)',
                               '/etc/network/big (larger than %d bytes)' % lxcrootfs.MAX_TEXT,
                               '/etc/network/fifo (not a regular file this module can read)',
                               'a file through a symlink loop']
    edits, reasons = survey(view, nics([STATIC, DHCP]))
    assert edits == [] and list(reasons) == ['eth0']
    assert reasons['eth0'].startswith('ifupdown reads /etc/network/')
    assert reasons['eth0'].endswith(', which this module does not edit')
    assert all(why in reasons['eth0'] for why in skipped)
    assert survey(view, nics([DHCP])) == ([], {})


def test_files_over_the_limit_are_not_edited_never_truncated(tmp_path):
    big = '#' * lxcrootfs.MAX_TEXT + '\n/bin/udhcpc\n'
    view = tree(tmp_path, {'bin/busybox': '', 'etc/init.d/rcS': big})
    with pytest.raises(lxcrootfs.TooLarge):
        view.read('etc/init.d/rcS')
    edits, reasons = survey(view, nics([STATIC]))
    assert edits == [] and 'is larger than 1048576 bytes, so this module does not edit it' in reasons['eth0']
    assert (tmp_path / 'etc' / 'init.d' / 'rcS').read_text() == big
    exact = tree(tmp_path / 'exact', {'bin/busybox': '', 'etc/init.d/rcS': '#' * (lxcrootfs.MAX_TEXT - 12) + '\n/bin/udhcpc'})
    assert [e[0] for e in survey(exact, nics([STATIC]))[0]] == ['/etc/init.d/rcS']


# ---------------------------------------------------------------- the one warning

def test_warning_names_the_nic_the_reason_and_what_it_has():
    nic_list = nics([STATIC, DHCP])
    assert warning('vk-a', nic_list, {}) is None
    assert warning('vk-a', nic_list, {}, {'eth0': ['10.0.3.61'], 'eth1': ['10.0.3.150']}) is None
    text = warning('vk-a', nic_list, {'eth0': 'netplan may run DHCP on it (/etc/netplan/a.yaml)'})
    assert text.startswith('vk-a: eth0 (networks[0]) may lose its static address: netplan may run DHCP on it')
    text = warning('vk-a', nic_list, {}, {'eth0': ['10.0.3.61', '10.0.3.127']})
    assert text.startswith('vk-a: eth0 (networks[0]) has 10.0.3.127, 10.0.3.61 instead of the declared 10.0.3.61;')
    text = warning('vk-a', nic_list, {'eth0': 'why'}, {})
    assert 'has no IPv4 address instead of the declared 10.0.3.61 because why' in text
