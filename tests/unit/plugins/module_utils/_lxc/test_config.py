# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._lxc.config import LxcConfig, check_key, check_value, is_repeatable

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


@pytest.mark.parametrize('name', ['busybox.config', 'with-includes.config', 'debian.config'])
def test_round_trip_is_byte_identical(name):
    if not os.path.exists(os.path.join(FIXTURES, name)):
        pytest.skip('fixture %s not captured' % name)
    text = fixture(name)
    assert LxcConfig.parse(text).render() == text


def test_round_trip_without_final_newline_and_empty():
    assert LxcConfig.parse('lxc.uts.name = a').render() == 'lxc.uts.name = a'
    assert LxcConfig.parse('').render() == ''


def test_multimap_reads_repeated_keys_in_order():
    conf = LxcConfig.parse(fixture('busybox.config'))
    entries = conf.get('lxc.mount.entry')
    assert entries[0] == 'shm dev/shm tmpfs defaults,create=dir 0 0'
    assert len(entries) == 7
    assert conf.first('lxc.net.0.link') == 'lxcbr0'
    assert conf.keys().count('lxc.mount.entry') == 1


def test_set_edits_in_place_and_keeps_comments_and_includes():
    text = fixture('with-includes.config')
    conf = LxcConfig.parse(text)
    conf.set('lxc.net.0.link', ['br9'])
    out = conf.render()
    assert out == text.replace('lxc.net.0.link = lxcbr0', 'lxc.net.0.link = br9')
    assert '# an indented comment' in out
    assert out.count('lxc.include = ') == 2


def test_set_unchanged_value_keeps_original_spelling():
    conf = LxcConfig.parse('lxc.rootfs.path=dir:/x\n')
    conf.set('lxc.rootfs.path', ['dir:/x'])
    assert conf.render() == 'lxc.rootfs.path=dir:/x\n'


def test_set_repeated_key_grows_and_shrinks_without_duplicates():
    conf = LxcConfig.parse('a = 1\nlxc.idmap = u 0 1 2\n# c\nlxc.idmap = g 0 1 2\nlxc.uts.name = z\n'.replace('a = 1\n', ''))
    conf.set('lxc.idmap', ['u 0 5 6'])
    assert conf.render() == 'lxc.idmap = u 0 5 6\n# c\nlxc.uts.name = z\n'
    conf.set('lxc.idmap', ['u 0 5 6', 'g 0 5 6'])
    assert conf.render() == 'lxc.idmap = u 0 5 6\nlxc.idmap = g 0 5 6\n# c\nlxc.uts.name = z\n'
    conf.set('lxc.start.auto', '1')
    assert conf.render().endswith('lxc.start.auto = 1\n')
    conf.set('lxc.start.auto', ['1'])
    assert conf.render().count('lxc.start.auto') == 1


def test_remove_and_remove_where():
    conf = LxcConfig.parse(fixture('with-includes.config'))
    conf.remove_where(lambda k, v: k.startswith('lxc.net.1.'))
    conf.remove('lxc.idmap')
    out = conf.render()
    assert 'lxc.net.1' not in out and 'lxc.idmap' not in out
    assert 'lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc' in out


@pytest.mark.parametrize('value', ['a\nlxc.apparmor.profile = unconfined', 'x\ry', 'nul\x00', 'tab\x0bx'])
def test_injection_in_values_is_refused(value):
    conf = LxcConfig.parse('')
    with pytest.raises(VirtkitError, match='newline or control character'):
        conf.set('lxc.environment', [value])


@pytest.mark.parametrize('key', ['lxc.a = b', 'lxc.a\nlxc.b', 'foo.bar', 'lxc.', 'lxc..x', 'lxc.a b', '', 3])
def test_bad_keys_are_refused(key):
    with pytest.raises(VirtkitError, match='not an LXC config key'):
        check_key(key)


def test_values_are_normalised():
    assert check_value('lxc.start.auto', True) == '1'
    assert check_value('lxc.start.delay', 5) == '5'
    with pytest.raises(VirtkitError, match='must be a string'):
        check_value('lxc.x', {'a': 1})
    with pytest.raises(VirtkitError, match='has no value'):
        check_value('lxc.x', None)


def test_parsed_entries_of_the_debian_template():
    """Structure, not just text: the entries, their order and what is not an entry."""
    conf = LxcConfig.parse(fixture('debian.config'))
    assert conf.entries() == [
        ('lxc.net.0.type', 'veth'), ('lxc.net.0.hwaddr', '00:16:3e:fc:49:b4'), ('lxc.net.0.link', 'lxcbr0'),
        ('lxc.net.0.flags', 'up'), ('lxc.apparmor.profile', 'generated'), ('lxc.apparmor.allow_nesting', '1'),
        ('lxc.rootfs.path', 'dir:/var/lib/lxc/vk-cache-debian/rootfs'),
        ('lxc.include', '/usr/share/lxc/config/debian.common.conf'),
        ('lxc.tty.max', '4'), ('lxc.uts.name', 'vk-cache-debian'), ('lxc.arch', 'amd64'), ('lxc.pty.max', '1024')]
    # the commented-out include is a comment, not an entry
    comments = [line.raw for line in conf.lines if line.key is None and line.raw.startswith('#')]
    assert '#lxc.include = /usr/share/lxc/config/nesting.conf' in comments and len(comments) == 8


@pytest.mark.parametrize('name', ['busybox.config', 'with-includes.config', 'debian.config'])
def test_structural_round_trip(name):
    conf = LxcConfig.parse(fixture(name))
    again = LxcConfig.parse(conf.render())
    assert again.entries() == conf.entries()
    assert [line.raw for line in again.lines] == [line.raw for line in conf.lines]
    # rewriting every entry with its own value changes nothing (no respelling, no reordering)
    for key, values in conf.as_dict().items():
        again.set(key, values)
    assert again.render() == fixture(name)


def test_with_includes_entries_keep_spelling_and_repeats():
    conf = LxcConfig.parse(fixture('with-includes.config'))
    assert conf.get('lxc.include') == ['/usr/share/lxc/config/common.conf', '/usr/share/lxc/config/userns.conf']
    assert conf.get('lxc.idmap') == ['u 0 100000 65536', 'g 0 100000 65536']
    assert conf.first('lxc.rootfs.path') == 'dir:/var/lib/lxc/x/rootfs'  # written "key=value"
    assert [line.raw for line in conf.lines if line.key == 'lxc.rootfs.path'] == ['lxc.rootfs.path=dir:/var/lib/lxc/x/rootfs']
    assert conf.keys().index('lxc.net.1.type') > conf.keys().index('lxc.net.0.hwaddr')


def test_ensure_adds_only_missing_lines_after_the_last_of_the_key():
    conf = LxcConfig.parse('lxc.include = /a\n# c\nlxc.include = /b\nlxc.uts.name = z\n')
    conf.ensure('lxc.include', ['/b', '/c', '/c'])
    assert conf.render() == 'lxc.include = /a\n# c\nlxc.include = /b\nlxc.include = /c\nlxc.uts.name = z\n'
    conf.ensure('lxc.include', '/a')
    assert conf.get('lxc.include') == ['/a', '/b', '/c']
    conf.ensure('lxc.idmap', ['u 0 1 2'])
    assert conf.render().endswith('lxc.uts.name = z\nlxc.idmap = u 0 1 2\n')
    conf.ensure('lxc.idmap', ['u  0 1\t2'])
    assert conf.get('lxc.idmap') == ['u 0 1 2']
    with pytest.raises(VirtkitError, match='newline'):
        conf.ensure('lxc.include', ['/d\nlxc.apparmor.profile = unconfined'])


@pytest.mark.parametrize('key,repeatable', [
    ('lxc.include', True), ('lxc.idmap', True), ('lxc.cap.drop', True), ('lxc.environment', True),
    ('lxc.mount.auto', True), ('lxc.hook.pre-start', True), ('lxc.hook.version', False),
    ('lxc.cgroup2.devices.allow', True), ('lxc.cgroup.devices.deny', True), ('lxc.net.2.ipv6.address', True),
    ('lxc.net.0.veth.ipv4.route', True),
    ('lxc.apparmor.profile', False), ('lxc.uts.name', False), ('lxc.cgroup2.memory.max', False),
    ('lxc.net.0.ipv4.gateway', False), ('lxc.start.auto', False),
])
def test_repeatable_keys(key, repeatable):
    assert is_repeatable(key) is repeatable
