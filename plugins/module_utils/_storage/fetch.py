# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image sources for libvirt_volume imports: checksums, download cache, decompression.

Runs on the host that runs the module; the image then reaches libvirt through a stream,
so the libvirt host may be remote.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import tempfile

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError

CHUNK = 1024 * 1024
ALGORITHMS = ('sha256', 'sha512')
_HEX_LEN = {'sha256': 64, 'sha512': 128}


def is_url(source):
    return bool(re.match(r'^(https?|ftp|file)://', source or ''))


def basename(source):
    tail = source.rstrip('/').split('?', 1)[0].rsplit('/', 1)[-1]
    return tail or 'image'


def parse_checksum(value):
    """``'sha256:<hex>'`` or ``'sha256:<url of a sums file>'`` -> (algorithm, hex or None, url or None)."""
    if value is None:
        return None
    text = str(value).strip()
    if ':' not in text:
        raise VirtkitError("checksum: expected 'sha256:<hex>', 'sha512:<hex>' or 'sha256:<url of a "
                           "SHA256SUMS file>', got %r" % text)
    algo, rest = text.split(':', 1)
    algo = algo.lower()
    if algo not in ALGORITHMS:
        raise VirtkitError('checksum: algorithm must be sha256 or sha512, got %r' % algo)
    if is_url(rest):
        return algo, None, rest
    rest = rest.strip().lower()
    if not re.match(r'^[0-9a-f]{%d}$' % _HEX_LEN[algo], rest):
        raise VirtkitError('checksum: a %s digest is %d hex digits, got %r' % (algo, _HEX_LEN[algo], rest))
    return algo, rest, None


def find_in_sums(text, name, algo, url):
    """The digest for file ``name`` in a sums file (GNU ``<hex>  name`` or BSD ``ALGO (name) = hex``)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        bsd = re.match(r'^(\w+)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$', line)
        if bsd:
            fname, digest = bsd.group(2), bsd.group(3)
        else:
            parts = line.split(None, 1)
            if len(parts) != 2:
                continue
            digest, fname = parts
            fname = fname.lstrip('*').strip()
        if fname.lstrip('./') == name and len(digest) == _HEX_LEN[algo]:
            return digest.lower()
    raise VirtkitError('checksum: %s lists no %s digest for %s' % (url, algo, name))


def local_path(source):
    """The path on this host that ``source`` reads (a plain path or a ``file://`` URL), else None."""
    if not source:
        return None
    if source.startswith('file://'):
        from urllib.parse import unquote, urlsplit
        parts = urlsplit(source)
        if parts.netloc not in ('', 'localhost'):
            return None
        return unquote(parts.path)
    if is_url(source):
        return None
    return source


def _cache_name(source, expected, cache_dir):
    return os.path.join(cache_dir, '%s-%s' % (expected or 'unverified', basename(source)))


def check_local_source(source, checksum=None, cache_dir=None):
    """Raise the one-line error :func:`fetch` raises when ``source`` is a missing local file.

    A ``file://`` URL whose verified download is already in ``cache_dir`` needs no source:
    the same test :func:`fetch` makes (the cached copy's digest is the expected one).
    """
    path = local_path(source)
    if path is None or os.path.isfile(path):
        return
    if is_url(source) and checksum and cache_dir:
        cached = _cache_name(source, checksum[1], cache_dir)
        if os.path.isfile(cached) and file_digest(cached, checksum[0]) == checksum[1]:
            return
    raise VirtkitError('%s: the image file does not exist on the host running the module' % source)


def open_source(source, timeout, validate_certs=True):
    """A readable binary file object for a URL or a path on this host."""
    if is_url(source):
        from ansible.module_utils.urls import open_url
        try:
            return open_url(source, timeout=timeout, validate_certs=validate_certs,
                            http_agent='virtkit.guests')
        except Exception as err:  # urllib raises many kinds; all become one line
            raise VirtkitError('%s: download failed: %s' % (source, err))
    try:
        return open(source, 'rb')
    except OSError as err:
        raise VirtkitError('%s: cannot read the image: %s' % (source, err.strerror or err))


def read_sums(url, timeout, validate_certs=True):
    handle = open_source(url, timeout, validate_certs)
    try:
        data = handle.read(4 * 1024 * 1024)
    except Exception as err:
        raise VirtkitError('%s: download failed: %s' % (url, err))
    finally:
        handle.close()
    return data.decode('utf-8', 'replace')


def resolve_checksum(value, source, timeout, validate_certs=True):
    """(algorithm, hex) for ``source`` from the checksum option (fetching a sums file)."""
    parsed = parse_checksum(value)
    if parsed is None:
        return None
    algo, digest, url = parsed
    if url:
        digest = find_in_sums(read_sums(url, timeout, validate_certs), basename(source), algo, url)
    return algo, digest


def file_digest(path, algo):
    digest = hashlib.new(algo)
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def compression(source):
    name = basename(source).lower()
    if name.endswith('.xz'):
        return 'xz'
    if name.endswith('.gz'):
        return 'gz'
    return None


def fetch(source, checksum, cache_dir, timeout, validate_certs=True):
    """Bring ``source`` into ``cache_dir`` (verified) and return the path of the image to upload.

    ``checksum`` is (algorithm, hex) or None (unverified). A URL is downloaded to
    ``<cache>/<hex>-<name>`` once; a local file is verified in place. A ``.xz`` or ``.gz``
    source is decompressed to a file next to it in the cache.
    """
    name = basename(source)
    algo, expected = checksum if checksum else ('sha256', None)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    except OSError as err:
        raise VirtkitError('%s: cannot create the download cache: %s' % (cache_dir, err.strerror or err))
    if is_url(source):
        cached = _cache_name(source, expected, cache_dir)
        if not (expected and os.path.isfile(cached) and file_digest(cached, algo) == expected):
            check_local_source(source)
            _download(source, cached, algo, expected, timeout, validate_certs)
        path = cached
    else:
        check_local_source(source)
        if expected:
            actual = file_digest(source, algo)
            if actual != expected:
                raise VirtkitError('%s: %s checksum mismatch: expected %s, got %s' % (source, algo, expected, actual))
        path = source
    kind = compression(source)
    if kind is None:
        return path
    stem = name[:-len('.' + kind)] or 'image'
    out = os.path.join(cache_dir, '%s-%s' % (expected or 'unverified', stem))
    if not os.path.isfile(out) or not expected:
        _decompress(path, out, kind)
    return out


def _download(url, dest, algo, expected, timeout, validate_certs):
    digest = hashlib.new(algo)
    handle = open_source(url, timeout, validate_certs)
    fd, tmp = tempfile.mkstemp(prefix='.download-', dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, 'wb') as out:
            while True:
                try:
                    block = handle.read(CHUNK)
                except Exception as err:
                    raise VirtkitError('%s: download failed: %s' % (url, err))
                if not block:
                    break
                digest.update(block)
                out.write(block)
        actual = digest.hexdigest()
        if expected and actual != expected:
            raise VirtkitError('%s: %s checksum mismatch: expected %s, got %s' % (url, algo, expected, actual))
        os.rename(tmp, dest)
    finally:
        handle.close()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _decompress(path, out, kind):
    opener = lzma.open if kind == 'xz' else gzip.open
    fd, tmp = tempfile.mkstemp(prefix='.unpack-', dir=os.path.dirname(out))
    try:
        with opener(path, 'rb') as src, os.fdopen(fd, 'wb') as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        os.rename(tmp, out)
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise VirtkitError('%s: cannot decompress (%s): %s' % (path, kind, err))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def image_info(path):
    """(format, virtual size) of an image file from its header: qcow2 or raw."""
    with open(path, 'rb') as handle:
        head = handle.read(32)
    size = os.path.getsize(path)
    if head[:4] == b'QFI\xfb' and len(head) >= 32:
        return 'qcow2', int.from_bytes(head[24:32], 'big')
    return 'raw', size


# --------------------------------------------------------- import records

def record_path(cache_dir, pool_uuid, volume_name):
    key = hashlib.sha256(('%s/%s' % (pool_uuid, volume_name)).encode('utf-8')).hexdigest()[:32]
    return os.path.join(cache_dir, 'records', key + '.json')


def read_record(cache_dir, pool_uuid, volume_name):
    try:
        with open(record_path(cache_dir, pool_uuid, volume_name)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_record(cache_dir, pool_uuid, volume_name, record):
    path = record_path(cache_dir, pool_uuid, volume_name)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.record-', dir=os.path.dirname(path))
        with os.fdopen(fd, 'w') as handle:
            json.dump(record, handle, sort_keys=True, indent=1)
        os.rename(tmp, path)
    except OSError as err:
        raise VirtkitError('%s: cannot write the import record: %s' % (path, err.strerror or err))


def drop_record(cache_dir, pool_uuid, volume_name):
    try:
        os.unlink(record_path(cache_dir, pool_uuid, volume_name))
    except OSError:
        pass
