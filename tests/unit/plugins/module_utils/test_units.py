# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._units import parse_size, to_kib

KIB, MIB, GIB, TIB = 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4


@pytest.mark.parametrize('value, expected', [
    (512, 512 * MIB),                 # integers are read in the default unit (MiB)
    ('512', 512 * MIB),               # so are digit-only strings
    (1.5, int(1.5 * MIB)),
    ('512MiB', 512 * MIB),
    ('512 MiB', 512 * MIB),
    ('2GiB', 2 * GIB),
    ('2G', 2 * GIB),                  # one letter is binary, as libvirt reads it
    ('2g', 2 * GIB),
    ('2GB', 2 * 1000 ** 3),           # two letters without "i" are decimal
    ('1.5GiB', int(1.5 * GIB)),
    ('4096K', 4096 * KIB),
    ('4096KiB', 4096 * KIB),
    ('1000KB', 1000 * 1000),
    ('1T', TIB),
    ('1TB', 1000 ** 4),
    ('100B', 100),
    ('100bytes', 100),
    (' 64 m ', 64 * MIB),
    (0, 0),
])
def test_parse_size_units(value, expected):
    assert parse_size(value, 'memory') == expected


def test_parse_size_default_unit():
    assert parse_size(10, 'size', default_unit='GiB') == 10 * GIB
    assert parse_size('10', 'size', default_unit='KiB') == 10 * KIB
    assert parse_size('10M', 'size', default_unit='GiB') == 10 * MIB


@pytest.mark.parametrize('value, words', [
    ('512XB', ["memory: unknown unit 'XB' in '512XB'", 'use B, KiB, MiB, GiB, TiB']),
    ('2 gigs', ["unknown unit 'gigs'"]),
    ('lots', ["memory: cannot read 'lots' as a size", 'use an integer (MiB)', '512MiB or 2GiB']),
    ('-5', ["cannot read '-5' as a size"]),
    ('', ["cannot read '' as a size"]),
    ('1,5G', ["cannot read '1,5G' as a size"]),
    (True, ['memory: expected a size such as 1024 or 2GiB, got True']),
    (-5, ['memory: size must not be negative, got -5']),
])
def test_parse_size_errors_are_one_clear_line(value, words):
    with pytest.raises(VirtkitError) as err:
        parse_size(value, 'memory')
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith('memory: ')
    for word in words:
        assert word in message


def test_to_kib():
    assert to_kib(1, 'memory') == 1024
    assert to_kib('2GiB', 'memory') == 2 * 1024 * 1024
    assert to_kib('1024KB', 'memory') == 1000  # 1024 x 1000 bytes
    assert to_kib('3K', 'memory') == 3
    assert to_kib('2048B', 'max_memory') == 2


@pytest.mark.parametrize('value, kib', [
    ('1000B', 1),
    ('1KB', 1),
    ('1GB', 976563),            # 976562.5 KiB: rounded up, as libvirt does
    ('3GB', 2929688),
    ('2GB', 1953125),           # exact
    ('1.0001MiB', 1025),
])
def test_to_kib_rounds_parts_of_a_kib_up_like_libvirt(value, kib):
    assert to_kib(value, 'memory') == kib


def test_to_kib_passes_unit_errors_through():
    with pytest.raises(VirtkitError, match="^memory: unknown unit 'Q'"):
        to_kib('5Q', 'memory')
