# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage pools and volumes: shared pieces (volume facts, stream upload/download).

:func:`upload_volume` is public to the other module families (cloud-init seeds use it);
its signature is stable. Everything goes through the libvirt API (streams for content),
so it works over a remote URI such as ``qemu+ssh://``.
"""

from __future__ import annotations

import hashlib
import os

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse

try:
    from lxml import etree
except ImportError:  # pragma: no cover - reported by the module
    etree = None

CHUNK = 1024 * 1024
FORMATS = ('raw', 'qcow2', 'iso')


def volume_xml_text(name, capacity, fmt='raw', allocation=None, backing=None, backing_format=None):
    """Volume XML for ``storageVolCreateXML`` (capacity/allocation in bytes)."""
    root = etree.Element('volume')
    etree.SubElement(root, 'name').text = name
    cap = etree.SubElement(root, 'capacity', unit='bytes')
    cap.text = str(int(capacity))
    if allocation is not None:
        alloc = etree.SubElement(root, 'allocation', unit='bytes')
        alloc.text = str(int(allocation))
    target = etree.SubElement(root, 'target')
    etree.SubElement(target, 'format', type=fmt)
    if backing:
        store = etree.SubElement(root, 'backingStore')
        etree.SubElement(store, 'path').text = backing
        if backing_format:
            etree.SubElement(store, 'format', type=backing_format)
    return etree.tostring(root, pretty_print=True, encoding='unicode')


def volume_format(vol_xml_root):
    el = vol_xml_root.find('target/format')
    return el.get('type') if el is not None else None


def volume_sizes(conn, vol, subject):
    """(capacity, physical size in bytes) of ``vol``; physical falls back to allocation."""
    lv = _libvirt.libvirt
    try:
        info = vol.infoFlags(lv.VIR_STORAGE_VOL_GET_PHYSICAL)
        return info[1], info[2]
    except lv.libvirtError as err:
        if _libvirt.error_code(err) != lv.VIR_ERR_NO_SUPPORT:
            raise VirtkitError(_libvirt.explain(err, subject, 'read volume size'))
    info = conn.call(subject, 'read volume size', vol.info)
    return info[1], info[2]


def _local_file(conn, vol):
    """The volume's path when it is a regular file this process can read, else None."""
    if not conn.is_local:
        return None
    try:
        path = vol.path()
    except _libvirt.libvirt.libvirtError:
        return None
    if path and os.path.isfile(path) and os.access(path, os.R_OK):
        return path
    return None


def stream_send(conn, vol, chunks, length, subject):
    """Upload ``length`` bytes (an iterable of byte chunks) into ``vol`` via a stream."""
    lv = _libvirt.libvirt
    stream = conn.call(subject, 'open upload stream', conn.conn.newStream, 0)
    try:
        vol.upload(stream, 0, length, 0)
        sent = 0
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                done = stream.send(bytes(view[:CHUNK]))
                if done < 0:
                    raise VirtkitError('%s: upload failed: the stream refused data' % subject)
                view = view[done:]
                sent += done
        stream.finish()
    except lv.libvirtError as err:
        _abort(stream)
        raise VirtkitError(_libvirt.explain(err, subject, 'upload'))
    except BaseException:
        _abort(stream)
        raise
    if sent != length:
        raise VirtkitError('%s: upload failed: sent %d of %d bytes' % (subject, sent, length))
    return sent


def stream_digest(conn, vol, length, subject, algorithm='sha256'):
    """Hex digest of the first ``length`` bytes of ``vol``, read locally or via a stream."""
    digest = hashlib.new(algorithm)
    path = _local_file(conn, vol)
    if path is not None:
        with open(path, 'rb') as handle:
            remaining = length
            while remaining > 0:
                block = handle.read(min(CHUNK, remaining))
                if not block:
                    break
                digest.update(block)
                remaining -= len(block)
        return digest.hexdigest()
    lv = _libvirt.libvirt
    stream = conn.call(subject, 'open download stream', conn.conn.newStream, 0)
    try:
        vol.download(stream, 0, length, 0)
        received = 0
        while received < length:
            block = stream.recv(min(CHUNK, length - received))
            if isinstance(block, int) or not block:
                break
            digest.update(block)
            received += len(block)
        stream.finish()
    except lv.libvirtError as err:
        _abort(stream)
        raise VirtkitError(_libvirt.explain(err, subject, 'download'))
    return digest.hexdigest()


def _abort(stream):
    try:
        stream.abort()
    except Exception:  # pragma: no cover - the stream is already gone
        pass


def delete_volume(conn, vol, subject):
    conn.call(subject, 'delete volume', vol.delete, 0)


def upload_volume(connection, pool_name, volume_name, data, fmt='raw'):
    """Make volume ``volume_name`` in pool ``pool_name`` hold exactly ``data`` (bytes).

    Idempotent: when the volume exists with the same format, size and SHA-256 of its
    content, nothing is written. Same size but other content is overwritten in place;
    another size or format replaces the volume. The content is compared by reading the
    file directly on a local connection, else by downloading it through a libvirt stream.
    Returns the ``virStorageVol``. Failures raise a one-line :class:`VirtkitError`.
    """
    subject = '%s/%s' % (pool_name, volume_name)
    if not isinstance(data, (bytes, bytearray)):
        raise VirtkitError('%s: upload failed: data must be bytes, not %s' % (subject, type(data).__name__))
    if fmt not in FORMATS:
        raise VirtkitError('%s: upload failed: format must be one of %s, got %r'
                           % (subject, ', '.join(FORMATS), fmt))
    data = bytes(data)
    if not data:
        raise VirtkitError('%s: upload failed: data is empty' % subject)
    pool = connection.pool(pool_name)
    if pool is None:
        raise VirtkitError('%s: upload failed: the storage pool %s does not exist' % (subject, pool_name))
    if not pool.isActive():
        raise VirtkitError('%s: upload failed: the storage pool %s is not running' % (subject, pool_name))
    vol = connection.volume(pool, volume_name)
    if vol is not None:
        current_fmt = volume_format(parse(connection.call(subject, 'read volume', vol.XMLDesc, 0)))
        _capacity, physical = volume_sizes(connection, vol, subject)
        # dir pools probe the format from the content (an ISO may show as raw or iso).
        same_kind = current_fmt == fmt or (fmt == 'iso' and current_fmt in (None, 'raw'))
        if same_kind and physical == len(data):
            if stream_digest(connection, vol, len(data), subject) == hashlib.sha256(data).hexdigest():
                return vol
            stream_send(connection, vol, [data], len(data), subject)
            connection.call(subject, 'refresh pool', pool.refresh, 0)
            return connection.volume(pool, volume_name) or vol
        delete_volume(connection, vol, subject)
    # Created raw with exactly the data's size, then overwritten: an image format's own
    # header comes with the data (libvirt probes the format again after the upload).
    vol = connection.call(subject, 'create volume', pool.createXML,
                          volume_xml_text(volume_name, len(data), 'raw'), 0)
    stream_send(connection, vol, [data], len(data), subject)
    # libvirt re-reads the volume after an upload; a refresh makes the pool's view agree.
    connection.call(subject, 'refresh pool', pool.refresh, 0)
    return connection.volume(pool, volume_name) or vol
