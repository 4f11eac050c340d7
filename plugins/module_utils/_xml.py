# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxml helpers shared by every libvirt XML family (domains, networks, pools, volumes).

:class:`Editor` edits a tree in place and records, per user-facing field, what it
changed. Merging the desired spec onto a guest's current XML with an Editor tells at
once whether anything differs and which fields do.
"""

from __future__ import annotations

from copy import deepcopy

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

try:
    from lxml import etree
except ImportError:  # pragma: no cover - reported by the module
    etree = None

_PARSER = None


def parse(text, what='XML'):
    global _PARSER
    if _PARSER is None:
        _PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    try:
        return etree.fromstring(text.encode('utf-8') if isinstance(text, str) else text, _PARSER)
    except etree.XMLSyntaxError as err:
        raise VirtkitError('cannot parse %s: %s' % (what, err))


def _normalized(el):
    """A copy with attributes sorted and blank text removed, for comparing and showing."""
    copy = etree.Element(el.tag, nsmap=el.nsmap) if isinstance(el.tag, str) else deepcopy(el)
    if not isinstance(el.tag, str):
        copy.tail = None
        return copy
    for key in sorted(el.attrib):
        copy.set(key, el.get(key))
    text = el.text
    copy.text = text if text and text.strip() else None
    for child in el:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions are not configuration
        copy.append(_normalized(child))
    return copy


def canonical(el):
    """Pretty text of ``el`` with sorted attributes: equal configs give equal strings."""
    if el is None:
        return None
    return etree.tostring(_normalized(el), pretty_print=True, encoding='unicode')


def to_string(el):
    return etree.tostring(el, encoding='unicode')


class Change:
    """One recorded edit: the user-facing field, what kind of edit, and its subject."""

    __slots__ = ('field', 'kind', 'key', 'element')

    def __init__(self, field, kind='modify', key=None, element=None):
        self.field = field
        self.kind = kind
        self.key = key
        self.element = element

    def __repr__(self):
        return 'Change(%r, %r, %r)' % (self.field, self.kind, self.key)


class Editor:
    """Edits an lxml tree and records each real change under the field that caused it."""

    def __init__(self, root):
        self.root = root
        self.changes = []

    def record(self, field, kind='modify', key=None, element=None):
        self.changes.append(Change(field, kind, key, element))

    def fields(self):
        seen = []
        for change in self.changes:
            if change.field not in seen:
                seen.append(change.field)
        return seen

    def child(self, parent, tag, field, create=True, **attrs):
        """The first child ``tag`` of ``parent`` (matching ``attrs``), created if asked."""
        for el in parent.findall(tag):
            if all(el.get(k) == v for k, v in attrs.items()):
                return el
        if not create:
            return None
        el = etree.SubElement(parent, tag)
        for key, value in attrs.items():
            el.set(key, value)
        self.record(field)
        return el

    def path(self, parent, tags, field):
        """Walk or create the chain of children ``tags`` (a '/'-separated string)."""
        el = parent
        for tag in tags.split('/'):
            el = self.child(el, tag, field)
        return el

    def attr(self, el, name, value, field):
        """Set attribute ``name`` to ``value`` (str); ``None`` removes it."""
        current = el.get(name)
        if value is None:
            if current is not None:
                del el.attrib[name]
                self.record(field)
            return
        value = str(value)
        if current != value:
            el.set(name, value)
            self.record(field)

    def text(self, el, value, field):
        value = None if value is None else str(value)
        current = el.text.strip() if el.text and el.text.strip() else None
        if current != value:
            el.text = value
            self.record(field)

    def remove(self, el, field, kind='modify', key=None):
        parent = el.getparent()
        if parent is not None:
            parent.remove(el)
            self.record(field, kind, key, el)

    def ensure_flag(self, parent, tag, present, field):
        """A valueless child such as ``<readonly/>`` present or absent."""
        found = parent.find(tag)
        if present and found is None:
            etree.SubElement(parent, tag)
            self.record(field)
        elif not present and found is not None:
            self.remove(found, field)
