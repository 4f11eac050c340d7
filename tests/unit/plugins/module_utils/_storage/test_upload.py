# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""upload_volume on a real libvirtd (the test driver has no stream upload)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils import _storage
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._storage import upload_volume


def _content(path):
    with open(path, 'rb') as handle:
        return handle.read()


@pytest.fixture(params=['local', 'remote'])
def mode(request, monkeypatch):
    """'remote' hides the file so the content is compared through a download stream."""
    if request.param == 'remote':
        monkeypatch.setattr(_storage, '_local_file', lambda conn, vol: None)
    return request.param


def test_upload_creates_then_is_idempotent(system_pool, mode):
    conn, pool, path = system_pool
    data = b'virtkit' * 3000
    vol = upload_volume(conn, pool, 'seed.raw', data)
    target = os.path.join(path, 'seed.raw')
    assert vol.path() == target
    assert _content(target) == data
    os.utime(target, (1000000000, 1000000000))
    again = upload_volume(conn, pool, 'seed.raw', data)
    assert again.path() == target
    assert os.stat(target).st_mtime == 1000000000, 'identical content must not be written again'


def test_upload_same_size_other_content_overwrites(system_pool, mode):
    conn, pool, path = system_pool
    upload_volume(conn, pool, 'a.raw', b'a' * 4096)
    upload_volume(conn, pool, 'a.raw', b'b' * 4096)
    assert _content(os.path.join(path, 'a.raw')) == b'b' * 4096


def test_upload_other_size_replaces(system_pool):
    conn, pool, path = system_pool
    upload_volume(conn, pool, 'a.raw', b'a' * 8192)
    vol = upload_volume(conn, pool, 'a.raw', b'short')
    assert _content(os.path.join(path, 'a.raw')) == b'short'
    assert _storage.volume_sizes(conn, vol, 'x')[0] == 5


def test_upload_image_formats_are_probed(system_pool, tmp_path):
    conn, pool, _path = system_pool
    image = tmp_path / 'x.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(image), '10M'], check=True)
    vol = upload_volume(conn, pool, 'x.qcow2', image.read_bytes(), fmt='qcow2')
    assert "<format type='qcow2'/>" in vol.XMLDesc(0)
    assert vol.info()[1] == 10 * 1024 * 1024


@pytest.mark.parametrize('args, message', [
    (('nope-vk-pool', 'v', b'x'), 'nope-vk-pool/v: upload failed: the storage pool nope-vk-pool does not exist'),
    ((None, 'v', 'text'), 'upload failed: data must be bytes, not str'),
    ((None, 'v', b''), 'upload failed: data is empty'),
    ((None, 'v', b'x', 'vmdk'), "upload failed: format must be one of raw, qcow2, iso, got 'vmdk'"),
])
def test_upload_errors_are_one_line(system_pool, args, message):
    conn, pool, _path = system_pool
    args = (args[0] or pool,) + args[1:]
    with pytest.raises(VirtkitError) as err:
        upload_volume(conn, *args)
    assert message in str(err.value)
    assert '\n' not in str(err.value)
