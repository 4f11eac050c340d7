# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image sources: checksums, sums files, download cache, decompression, import records."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._storage import fetch as F

IMAGE = b'QFI\xfb' + b'\0' * 20 + (64 * 1024 * 1024).to_bytes(8, 'big') + b'payload' * 100


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize('value, message', [
    ('abc', "checksum: expected 'sha256:<hex>'"),
    ('md5:' + 'a' * 32, "checksum: algorithm must be sha256 or sha512, got 'md5'"),
    ('sha256:abc', 'checksum: a sha256 digest is 64 hex digits'),
    ('sha512:' + 'a' * 64, 'checksum: a sha512 digest is 128 hex digits'),
])
def test_bad_checksums(value, message):
    with pytest.raises(VirtkitError) as err:
        F.parse_checksum(value)
    assert message in str(err.value)


def test_checksum_forms():
    assert F.parse_checksum('SHA256:' + 'A' * 64) == ('sha256', 'a' * 64, None)
    assert F.parse_checksum('sha512:https://x/SHA512SUMS') == ('sha512', None, 'https://x/SHA512SUMS')


def test_sums_file_formats():
    text = '\n'.join([
        '# comment',
        '%s  other.img' % ('1' * 64),
        '%s *./base.qcow2' % ('2' * 64),
        'SHA256 (bsd.img) = %s' % ('3' * 64),
    ])
    assert F.find_in_sums(text, 'base.qcow2', 'sha256', 'u') == '2' * 64
    assert F.find_in_sums(text, 'bsd.img', 'sha256', 'u') == '3' * 64
    with pytest.raises(VirtkitError) as err:
        F.find_in_sums(text, 'missing.img', 'sha256', 'http://x/SHA256SUMS')
    assert str(err.value) == 'checksum: http://x/SHA256SUMS lists no sha256 digest for missing.img'


def test_resolve_checksum_from_file_url(tmp_path):
    (tmp_path / 'SHA256SUMS').write_text('%s  base.qcow2\n' % sha256(IMAGE))
    got = F.resolve_checksum('sha256:file://%s/SHA256SUMS' % tmp_path, 'http://h/dir/base.qcow2', 10)
    assert got == ('sha256', sha256(IMAGE))


def test_fetch_url_is_cached_and_verified(tmp_path):
    src = tmp_path / 'base.qcow2'
    src.write_bytes(IMAGE)
    cache = tmp_path / 'cache'
    url = 'file://%s' % src
    path = F.fetch(url, ('sha256', sha256(IMAGE)), str(cache), 10)
    assert path == str(cache / ('%s-base.qcow2' % sha256(IMAGE)))
    with open(path, 'rb') as handle:
        assert handle.read() == IMAGE
    src.unlink()   # a second fetch comes from the cache
    assert F.fetch(url, ('sha256', sha256(IMAGE)), str(cache), 10) == path
    assert not [n for n in os.listdir(cache) if n.startswith('.')]


def test_fetch_mismatch_leaves_nothing(tmp_path):
    src = tmp_path / 'base.qcow2'
    src.write_bytes(IMAGE)
    cache = tmp_path / 'cache'
    with pytest.raises(VirtkitError) as err:
        F.fetch('file://%s' % src, ('sha256', '0' * 64), str(cache), 10)
    assert 'sha256 checksum mismatch: expected %s, got %s' % ('0' * 64, sha256(IMAGE)) in str(err.value)
    assert os.listdir(cache) == []
    with pytest.raises(VirtkitError) as err:
        F.fetch(str(src), ('sha256', '0' * 64), str(cache), 10)
    assert 'checksum mismatch' in str(err.value)


@pytest.mark.parametrize('suffix, pack', [('.gz', gzip.compress), ('.xz', lzma.compress)])
def test_fetch_decompresses(tmp_path, suffix, pack):
    packed = pack(IMAGE)
    src = tmp_path / ('base.qcow2' + suffix)
    src.write_bytes(packed)
    for source in ('file://%s' % src, str(src)):
        path = F.fetch(source, ('sha256', sha256(packed)), str(tmp_path / 'cache'), 10)
        assert path.endswith('-base.qcow2')
        with open(path, 'rb') as handle:
            assert handle.read() == IMAGE
    assert F.image_info(path) == ('qcow2', 64 * 1024 * 1024)


def test_corrupt_archive_is_one_line(tmp_path):
    src = tmp_path / 'bad.img.xz'
    src.write_bytes(b'not xz at all')
    with pytest.raises(VirtkitError) as err:
        F.fetch(str(src), None, str(tmp_path / 'cache'), 10)
    assert 'cannot decompress (xz)' in str(err.value) and '\n' not in str(err.value)


def test_missing_sources_are_one_line(tmp_path):
    with pytest.raises(VirtkitError) as err:
        F.fetch(str(tmp_path / 'nope.img'), None, str(tmp_path / 'c'), 10)
    assert 'the image file does not exist on the host running the module' in str(err.value)
    with pytest.raises(VirtkitError) as err:
        F.fetch('http://127.0.0.1:9/nope.img', None, str(tmp_path / 'c'), 5)
    assert str(err.value).startswith('http://127.0.0.1:9/nope.img: download failed:')


def test_image_info_raw(tmp_path):
    raw = tmp_path / 'x.raw'
    raw.write_bytes(b'\0' * 4096)
    assert F.image_info(str(raw)) == ('raw', 4096)


def test_records_roundtrip(tmp_path):
    cache = str(tmp_path)
    assert F.read_record(cache, 'uuid', 'v') is None
    F.write_record(cache, 'uuid', 'v', {'checksum': 'sha256:' + '1' * 64})
    assert F.read_record(cache, 'uuid', 'v') == {'checksum': 'sha256:' + '1' * 64}
    assert F.read_record(cache, 'other', 'v') is None
    F.drop_record(cache, 'uuid', 'v')
    assert F.read_record(cache, 'uuid', 'v') is None


def test_missing_local_sources_fail_in_one_line(tmp_path):
    cache = tmp_path / 'cache'
    for source in (str(tmp_path / 'gone.qcow2'), 'file://%s/gone.qcow2' % tmp_path):
        message = '%s: the image file does not exist on the host running the module' % source
        with pytest.raises(VirtkitError) as err:
            F.check_local_source(source)
        assert str(err.value) == message
        with pytest.raises(VirtkitError) as err:
            F.fetch(source, ('sha256', sha256(IMAGE)), str(cache), 10)
        assert str(err.value) == message
    F.check_local_source('http://127.0.0.1:1/x.qcow2')  # not local: nothing to check here


def test_a_cached_file_url_needs_no_source(tmp_path):
    src = tmp_path / 'base.qcow2'
    src.write_bytes(IMAGE)
    cache = tmp_path / 'cache'
    url = 'file://%s' % src
    checksum = ('sha256', sha256(IMAGE))
    F.fetch(url, checksum, str(cache), 10)
    src.unlink()
    F.check_local_source(url, checksum, str(cache))
    with pytest.raises(VirtkitError):
        F.check_local_source(url, ('sha256', '0' * 64), str(cache))
    assert F.local_path('file://localhost/a%20b') == '/a b' and F.local_path('file://other/x') is None


def test_a_damaged_cached_copy_does_not_stand_in_for_a_missing_source(tmp_path):
    """Check mode (check_local_source) and the real run (fetch) agree: both refuse."""
    src = tmp_path / 'base.qcow2'
    src.write_bytes(IMAGE)
    cache = tmp_path / 'cache'
    url = 'file://%s' % src
    checksum = ('sha256', sha256(IMAGE))
    F.fetch(url, checksum, str(cache), 10)
    src.unlink()
    (cached,) = [p for p in cache.iterdir() if p.name.endswith('base.qcow2')]
    cached.write_bytes(b'damaged')
    with pytest.raises(VirtkitError) as err:
        F.check_local_source(url, checksum, str(cache))
    assert 'does not exist on the host running the module' in str(err.value)
    with pytest.raises(VirtkitError):
        F.fetch(url, checksum, str(cache), 10)
