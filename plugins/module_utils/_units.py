# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes with units, the way libvirt reads them (``K``/``KiB`` = 1024, ``KB`` = 1000)."""

from __future__ import annotations

import re

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

_FACTORS = {
    'b': 1, 'bytes': 1,
    'k': 1024, 'kib': 1024, 'kb': 1000,
    'm': 1024 ** 2, 'mib': 1024 ** 2, 'mb': 1000 ** 2,
    'g': 1024 ** 3, 'gib': 1024 ** 3, 'gb': 1000 ** 3,
    't': 1024 ** 4, 'tib': 1024 ** 4, 'tb': 1000 ** 4,
}
_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$')


def parse_size(value, option, default_unit='MiB'):
    """Return ``value`` in bytes.

    Integers (and digit-only strings) are read in ``default_unit``; strings may carry a
    unit such as ``512MiB``, ``2GiB``, ``2G`` (binary, as libvirt reads it) or ``2GB``
    (decimal). ``option`` names the option in the error message.
    """
    if isinstance(value, bool):
        raise VirtkitError('%s: expected a size such as 1024 or 2GiB, got %r' % (option, value))
    if isinstance(value, int):
        number, unit = value, default_unit
    elif isinstance(value, float):
        number, unit = value, default_unit
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise VirtkitError('%s: cannot read %r as a size; use an integer (%s) or a '
                               'string such as 512MiB or 2GiB' % (option, value, default_unit))
        number, unit = float(match.group(1)), match.group(2) or default_unit
    factor = _FACTORS.get(unit.lower())
    if factor is None:
        raise VirtkitError('%s: unknown unit %r in %r; use B, KiB, MiB, GiB, TiB '
                           '(or K, M, G, T; KB, MB, GB, TB are decimal)' % (option, unit, value))
    size = int(round(float(number) * factor))
    if size < 0:
        raise VirtkitError('%s: size must not be negative, got %r' % (option, value))
    return size


def to_kib(value, option, default_unit='MiB'):
    """Return ``value`` in KiB (libvirt's memory unit), rounded up to a whole KiB.

    libvirt rounds memory sizes up to the next KiB the same way; without it every odd
    number of decimal gigabytes (``1GB`` = 976562.5 KiB) would be refused.
    """
    size = parse_size(value, option, default_unit)
    return -(-size // 1024)
