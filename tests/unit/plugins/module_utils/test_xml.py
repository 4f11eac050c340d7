# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._xml import Editor, canonical, parse, to_string


def test_parse_and_to_string_round_trip():
    root = parse("<domain type='kvm'><name>a</name></domain>")
    assert root.tag == 'domain'
    assert to_string(root) == '<domain type="kvm"><name>a</name></domain>'
    assert parse(b'<a/>').tag == 'a'


def test_parse_error_is_one_line_naming_the_document():
    with pytest.raises(VirtkitError) as err:
        parse('<domain><name>a</domain>', 'the current XML of web1')
    message = str(err.value)
    assert message.startswith('cannot parse the current XML of web1: ')
    assert '\n' not in message


def test_parse_does_not_resolve_entities():
    text = ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<domain><name>&x;</name></domain>')
    root = parse(text)
    assert 'root:' not in (root.findtext('name') or '')


def test_canonical_ignores_attribute_order_blank_text_and_comments():
    a = parse("<domain type='kvm' id='1'>\n  <name>a</name>\n  <!-- note -->\n  <vcpu placement='static' current='1'>2</vcpu>\n</domain>")
    b = parse('<domain id="1" type="kvm"><name>a</name><vcpu current="1" placement="static">2</vcpu></domain>')
    assert canonical(a) == canonical(b)
    assert canonical(a).splitlines() == [
        '<domain id="1" type="kvm">',
        '  <name>a</name>',
        '  <vcpu current="1" placement="static">2</vcpu>',
        '</domain>',
    ]


def test_canonical_sees_real_differences():
    a = parse('<domain><name>a</name><memory unit="KiB">1024</memory></domain>')
    b = parse('<domain><name>a</name><memory unit="KiB">2048</memory></domain>')
    c = parse('<domain><memory unit="KiB">1024</memory><name>a</name></domain>')
    assert canonical(a) != canonical(b)
    assert canonical(a) != canonical(c)  # child order is kept: it is configuration
    assert canonical(None) is None


def test_canonical_keeps_namespaces():
    text = ('<metadata><v:guest xmlns:v="https://virtkit.dev/xmlns/guests/1"><v:var name="a">1</v:var>'
            '</v:guest></metadata>')
    assert 'xmlns:v="https://virtkit.dev/xmlns/guests/1"' in canonical(parse(text))
    assert canonical(parse(text)) == canonical(parse(text.replace('name="a"', 'name="a" ')))


def test_editor_child_finds_or_creates_and_records_only_creation():
    root = parse('<os><feature name="x"/><feature name="y" enabled="no"/></os>')
    ed = Editor(root)
    assert ed.child(root, 'feature', 'f', name='y').get('enabled') == 'no'
    assert ed.changes == []
    assert ed.child(root, 'missing', 'f', create=False) is None
    assert ed.changes == []
    new = ed.child(root, 'feature', 'fw', name='z')
    assert new.get('name') == 'z' and new.getparent() is root
    assert ed.fields() == ['fw']


def test_editor_path_walks_and_creates():
    root = parse('<domain><features/></domain>')
    ed = Editor(root)
    el = ed.path(root, 'features/hyperv/relaxed', 'xml_overrides')
    assert el.tag == 'relaxed'
    assert root.find('features/hyperv/relaxed') is el
    assert len(ed.changes) == 2  # hyperv and relaxed; features existed
    again = Editor(root)
    assert again.path(root, 'features/hyperv/relaxed', 'xml_overrides') is el
    assert again.changes == []


def test_editor_attr_records_real_changes_only():
    root = parse('<memory unit="KiB">1024</memory>')
    ed = Editor(root)
    ed.attr(root, 'unit', 'KiB', 'memory')
    ed.attr(root, 'missing', None, 'memory')
    assert ed.changes == []
    ed.attr(root, 'unit', 'MiB', 'memory')
    ed.attr(root, 'slots', 4, 'max_memory')       # non-strings are written as text
    ed.attr(root, 'unit', None, 'memory')          # None removes
    assert root.get('slots') == '4' and root.get('unit') is None
    assert [c.field for c in ed.changes] == ['memory', 'max_memory', 'memory']
    assert ed.fields() == ['memory', 'max_memory']


def test_editor_text_ignores_surrounding_blanks():
    root = parse('<vcpu>\n  2\n</vcpu>')
    ed = Editor(root)
    ed.text(root, 2, 'vcpus')
    assert ed.changes == []
    ed.text(root, '3', 'vcpus')
    assert root.text == '3'
    empty = parse('<title/>')
    ed2 = Editor(empty)
    ed2.text(empty, None, 'title')
    assert ed2.changes == []
    ed2.text(empty, 'x', 'title')
    ed2.text(empty, None, 'title')
    assert empty.text is None and len(ed2.changes) == 2


def test_editor_remove_and_ensure_flag():
    root = parse('<disk><readonly/><shareable/></disk>')
    ed = Editor(root)
    ed.ensure_flag(root, 'readonly', True, 'disks:vda')
    assert ed.changes == []
    ed.ensure_flag(root, 'readonly', False, 'disks:vda')
    assert root.find('readonly') is None
    ed.ensure_flag(root, 'transient', True, 'disks:vda')
    assert root.find('transient') is not None
    shareable = root.find('shareable')
    ed.remove(shareable, 'disks:vda', 'remove', 'vda')
    assert root.find('shareable') is None
    last = ed.changes[-1]
    assert (last.field, last.kind, last.key, last.element) == ('disks:vda', 'remove', 'vda', shareable)
    assert repr(last) == "Change('disks:vda', 'remove', 'vda')"
    ed.ensure_flag(root, 'transient', False, 'disks:vda')
    assert len(ed.changes) == 4
    # Removing a detached element records nothing.
    ed.remove(shareable, 'disks:vda')
    assert len(ed.changes) == 4
