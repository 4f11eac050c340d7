# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""LXC container config as an ordered multimap that round-trips the file.

Keys may repeat (``lxc.mount.entry``, ``lxc.idmap``, ``lxc.net.N.ipv4.address``...).
Lines we do not change (comments, blank lines, ``lxc.include``, keys the user did not
set) are rendered byte for byte as read. Keys and values are checked so a value can
never smuggle a second line (or a second key) into the file.
"""

from __future__ import annotations

import re

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

KEY_RE = re.compile(r'^lxc(\.[A-Za-z0-9_-]+)+$')
_BAD_VALUE = re.compile(r'[\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')

# Keys LXC reads as lists: every line adds to what the earlier lines (and included files)
# set (lxc.container.conf(5)). Other keys hold one value, a later line replacing an earlier one.
REPEATABLE_KEYS = frozenset((
    'lxc.include', 'lxc.idmap', 'lxc.mount.entry', 'lxc.mount.auto', 'lxc.cap.drop', 'lxc.cap.keep',
    'lxc.environment', 'lxc.group', 'lxc.apparmor.raw',
    'lxc.cgroup.devices.allow', 'lxc.cgroup.devices.deny', 'lxc.cgroup2.devices.allow',
    'lxc.cgroup2.devices.deny',
))
_REPEATABLE_RE = re.compile(r'^lxc\.hook\.(?!version$)[a-z-]+$'
                            r'|^lxc\.net\.\d+\.(ipv4\.address|ipv6\.address|veth\.ipv4\.route|veth\.ipv6\.route'
                            r'|veth\.vlan\.tagged\.id)$')


def is_repeatable(key):
    """True for a key whose lines add up (lxc.include, lxc.idmap, lxc.cap.drop, hooks...)."""
    return key in REPEATABLE_KEYS or bool(_REPEATABLE_RE.match(key))


def _same(a, b):
    return ' '.join(a.split()) == ' '.join(b.split())


def check_key(key, where='config'):
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise VirtkitError('%s: %r is not an LXC config key (expected lxc.<name>[.<name>...], '
                           'letters, digits, "_" and "-" only)' % (where, key))
    return key


def check_value(key, value, where='config'):
    if isinstance(value, bool):
        value = '1' if value else '0'
    if value is None:
        raise VirtkitError('%s: %s has no value' % (where, key))
    if not isinstance(value, (str, int, float)):
        raise VirtkitError('%s: %s must be a string or a number, got %s' % (where, key, type(value).__name__))
    text = str(value)
    if _BAD_VALUE.search(text):
        raise VirtkitError('%s: the value of %s contains a newline or control character; '
                           'refusing it (it could inject config lines)' % (where, key))
    return text.strip()


class Line:
    __slots__ = ('key', 'value', 'raw')

    def __init__(self, key=None, value=None, raw=None):
        self.key = key
        self.value = value
        self.raw = raw

    def render(self):
        if self.raw is not None:
            return self.raw
        return '%s = %s' % (self.key, self.value)


class LxcConfig:
    """Ordered lines; entries are (key, value); anything else is kept verbatim."""

    def __init__(self, lines=None, trailing_newline=True):
        self.lines = lines or []
        self.trailing_newline = trailing_newline

    @classmethod
    def parse(cls, text):
        lines = []
        text = text or ''
        for raw in text.split('\n')[:-1] if text.endswith('\n') else text.split('\n'):
            stripped = raw.strip()
            if not stripped or stripped.startswith('#') or '=' not in stripped:
                lines.append(Line(raw=raw))
                continue
            key, _sep, value = stripped.partition('=')
            lines.append(Line(key.strip(), value.strip(), raw))
        if text == '':
            lines = []
        return cls(lines, trailing_newline=text.endswith('\n') or text == '')

    def render(self):
        body = '\n'.join(line.render() for line in self.lines)
        return body + ('\n' if self.lines and self.trailing_newline else '')

    # -- reading
    def entries(self):
        return [(line.key, line.value) for line in self.lines if line.key is not None]

    def keys(self):
        seen = []
        for key, _value in self.entries():
            if key not in seen:
                seen.append(key)
        return seen

    def get(self, key):
        return [line.value for line in self.lines if line.key == key]

    def first(self, key, default=None):
        values = self.get(key)
        return values[0] if values else default

    def as_dict(self, keys=None):
        """{key: [values]} for ``keys`` (all keys when None), in file order."""
        result = {}
        for key, value in self.entries():
            if keys is None or key in keys:
                result.setdefault(key, []).append(value)
        return result

    # -- writing
    def set(self, key, values):
        """Make ``key`` hold exactly ``values`` (a list), editing in place.

        Existing lines keep their position (and their text when the value is equal);
        surplus old lines go, extra new values follow the last kept line (or the end).
        """
        check_key(key)
        if not isinstance(values, (list, tuple)):
            values = [values]
        values = [check_value(key, v) for v in values]
        positions = [i for i, line in enumerate(self.lines) if line.key == key]
        for pos, value in zip(positions, values):
            if self.lines[pos].value != value:
                self.lines[pos] = Line(key, value)
        if len(positions) > len(values):
            drop = set(positions[len(values):])
            self.lines = [line for i, line in enumerate(self.lines) if i not in drop]
        elif len(values) > len(positions):
            insert_at = positions[-1] + 1 if positions else len(self.lines)
            for offset, value in enumerate(values[len(positions):]):
                self.lines.insert(insert_at + offset, Line(key, value))

    def ensure(self, key, values):
        """Add the ``values`` of ``key`` that no line holds yet; every existing line stays.

        New lines follow the last line of ``key`` (or go at the end). Values compare with
        runs of blanks folded, so ``u 0 1 2`` and ``u  0 1 2`` are the same line.
        """
        check_key(key)
        if not isinstance(values, (list, tuple)):
            values = [values]
        values = [check_value(key, v) for v in values]
        have = self.get(key)
        missing = []
        for value in values:
            if not any(_same(value, v) for v in have + missing):
                missing.append(value)
        positions = [i for i, line in enumerate(self.lines) if line.key == key]
        insert_at = positions[-1] + 1 if positions else len(self.lines)
        for offset, value in enumerate(missing):
            self.lines.insert(insert_at + offset, Line(key, value))

    def remove(self, key):
        self.lines = [line for line in self.lines if line.key != key]

    def remove_where(self, predicate):
        self.lines = [line for line in self.lines if line.key is None or not predicate(line.key, line.value)]


def render_entries(mapping):
    """{key: [values]} -> "key = value" lines, sorted by key (for diffs)."""
    lines = []
    for key in sorted(mapping):
        for value in mapping[key]:
            lines.append('%s = %s' % (key, value))
    return '\n'.join(lines) + ('\n' if lines else '')
