# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_volume: argument spec, validation, XML, plan and manager.

Where the source checksum of an imported image is kept: libvirt keeps no user metadata
for storage volumes (a volume's XML is generated from the file itself, unlike a domain's
``<metadata>``), so the record is a small JSON sidecar in the download cache on the host
that runs the module, keyed by the pool's UUID and the volume name. It stores the source,
its checksum and the volume's path, capacity and physical size right after the import;
a record whose volume no longer matches (replaced, written to, resized) is ignored. When
no valid record exists, an existing volume is left alone (with a warning) unless
``reimport=true``: the module never overwrites data it cannot prove it wrote.

A reimport never loses the old volume: the new image goes into a temporary volume of the
same pool (``<name>.virtkit-reimport``, with its own record), is verified there (its
content read back and compared with the image), and only then is the old volume deleted
and the temporary one copied into its name (libvirt cannot rename volumes; the copy is
``createXMLFrom``, inside libvirt, so it works over a remote URI too) and deleted. Any
failure before the old volume is deleted removes the temporary volume and leaves the old
one; a failure after it keeps the verified temporary volume, and a rerun restores the
volume from it. A rerun finding a temporary volume reuses it when its record shows the
wanted checksum, else deletes it and starts over. The temporary volume is ours from its
first byte too: its "importing" record is written before it is created, and only a
temporary volume whose record names its path (and, while importing, its capacity) is
ever deleted or reused (``temp_ours``); another volume of that name is left alone with a
warning, and a reimport that needs the name is refused before anything changes. The
temporary volume is only looked up when its record exists (a local read): a no-op run
costs no extra libvirt call, and a record whose volume is gone is discarded.

A first import is ours from its first byte: before the volume is created, an "importing"
record names the path it will have (and the capacities it can show: the image's size, or
its virtual size once libvirt probed a qcow2 header); only after the upload has been read
back and compared with the image is it replaced by the complete record. A failed or
interrupted upload deletes the volume it created (the error line says so, or says what
was left); a run that was killed leaves the volume with its "importing" record, and the
next run with ``import_from`` deletes and imports it again (``drop_incomplete``), with or
without ``reimport``, unless a running guest uses that volume (then the run fails before
anything changes). The copy of a reimport into the volume's name is guarded the same
way. An "importing" record whose path or capacity does not match the volume found (the
volume was replaced since) proves nothing: it is ignored and, on a real run, discarded,
like any record of a volume that no longer exists (so it cannot match a volume someone
else makes later). A volume without a matching record is still only warned about. The
path is predicted from the pool's target path for dir, fs, netfs and logical pools and
corrected right after the volume is created; for other pool types a kill in that instant
leaves an empty volume that the next run only warns about.
"""

from __future__ import annotations

import hashlib
import os

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils import _storage
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._storage import fetch as _fetch
from ansible_collections.virtkit.guests.plugins.module_utils._units import parse_size
from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse

VOLUME_FORMATS = ('qcow2', 'raw')
TEMP_SUFFIX = '.virtkit-reimport'
IMPORTING = 'importing'  # the "state" of the record of an import that has not finished
_PATH_POOLS = ('dir', 'fs', 'netfs', 'logical')  # a volume's path is <pool target path>/<name>
DEFAULT_CACHE = '/var/cache/virtkit/images'

ARGUMENT_SPEC = dict(
    _libvirt.LIBVIRT_ARGS,
    name={'type': 'str', 'required': True},
    pool={'type': 'str', 'required': True},
    state={'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
    capacity={'type': 'raw'},
    format={'type': 'str', 'choices': list(VOLUME_FORMATS)},
    backing_volume={'type': 'str'},
    backing_pool={'type': 'str'},
    backing_file={'type': 'path'},
    backing_format={'type': 'str', 'choices': list(VOLUME_FORMATS)},
    clone_from={'type': 'str'},
    import_from={'type': 'str'},
    remote_src={'type': 'bool', 'default': True},
    checksum={'type': 'str'},
    allow_unverified={'type': 'bool', 'default': False},
    reimport={'type': 'bool', 'default': False},
    cache_dir={'type': 'path', 'default': DEFAULT_CACHE},
    timeout={'type': 'int', 'default': 600},
    validate_certs={'type': 'bool', 'default': True},
    allow_shrink={'type': 'bool', 'default': False},
    # Private, set by the action plugin for controller files (remote_src=false): the
    # controller path that import_from (a temporary copy on the host) stands for.
    _original_source={'type': 'str'},
)


class VolumeSpec:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def validate(params):
    name, pool = params['name'], params['pool']
    subject = '%s/%s' % (pool, name)
    if not name or '/' in name:
        raise VirtkitError('name: a volume name must be non-empty and must not contain "/", got %r' % (name,))
    if name.endswith(TEMP_SUFFIX):
        raise VirtkitError('name: names ending in %s are reserved for the temporary volumes of reimports, got %r'
                           % (TEMP_SUFFIX, name))
    sources = [o for o in ('backing_volume', 'backing_file', 'clone_from', 'import_from') if params.get(o)]
    if len(sources) > 1:
        raise VirtkitError('%s: %s are mutually exclusive; a volume has one source' % (subject, ' and '.join(sources)))
    capacity = None
    if params.get('capacity') is not None:
        capacity = parse_size(params['capacity'], 'capacity', default_unit='GiB')
        if capacity <= 0:
            raise VirtkitError('capacity: must be positive, got %r' % (params['capacity'],))
    if params.get('backing_pool') and not params.get('backing_volume'):
        raise VirtkitError('backing_pool: only applies with backing_volume')
    if (params.get('backing_volume') or params.get('backing_file')) and params.get('format') == 'raw':
        raise VirtkitError('%s: an overlay on a backing store must be format qcow2, not raw' % subject)
    if params.get('backing_file') and not params['backing_file'].startswith('/'):
        raise VirtkitError('backing_file: must be an absolute path, got %r' % params['backing_file'])
    checksum = None
    source = params.get('import_from')
    if source:
        if not _fetch.is_url(source) and not source.startswith('/'):
            raise VirtkitError('import_from: expected a URL (http, https, ftp, file) or an absolute path '
                               'on the host running the module, got %r' % source)
        if params.get('checksum'):
            checksum = _fetch.parse_checksum(params['checksum'])
        elif not params.get('allow_unverified'):
            raise VirtkitError("%s: checksum is required to import %s: set checksum: 'sha256:<hex>' or "
                               "'sha256:<url of SHA256SUMS>' (or allow_unverified: true)" % (subject, source))
    elif params.get('checksum'):
        raise VirtkitError('checksum: only applies with import_from')
    if params.get('timeout', 600) <= 0:
        raise VirtkitError('timeout: must be positive, got %r' % params['timeout'])
    return VolumeSpec(
        name=name, pool=pool, subject=subject, state=params['state'], capacity=capacity,
        format=params.get('format'), backing_volume=params.get('backing_volume'),
        backing_pool=params.get('backing_pool') or pool, backing_file=params.get('backing_file'),
        backing_format=params.get('backing_format'), clone_from=params.get('clone_from'),
        import_from=source, source_label=params.get('_original_source') or source,
        controller_source=bool(params.get('_original_source')),
        checksum_option=params.get('checksum'), checksum=checksum,
        reimport=params.get('reimport', False), cache_dir=params.get('cache_dir') or DEFAULT_CACHE,
        timeout=params.get('timeout', 600), validate_certs=params.get('validate_certs', True),
        allow_shrink=params.get('allow_shrink', False),
    )


def round_capacity(capacity, fmt):
    """qcow2 sizes are kept in whole 512-byte sectors."""
    if fmt == 'qcow2':
        return -(-capacity // 512) * 512
    return capacity


def _human(size):
    for unit, factor in (('GiB', 1024 ** 3), ('MiB', 1024 ** 2), ('KiB', 1024)):
        if size >= factor and size % factor == 0:
            return '%d %s' % (size // factor, unit)
    return '%d bytes' % size


def temp_name(name):
    """The temporary volume a reimport of volume ``name`` stages the new image in."""
    return name + TEMP_SUFFIX


def _mib(size):
    return '%.1f MiB' % (size / 1024.0 ** 2)


class Current:
    """The volume as read: None fields when it does not exist.

    ``temp`` is the temporary volume of a reimport left by an earlier run (a Current with
    its own record), or None.
    """

    def __init__(self, exists=False, fmt=None, capacity=None, physical=None, path=None,
                 backing=None, record=None, temp=None):
        self.exists = exists
        self.format = fmt
        self.capacity = capacity
        self.physical = physical
        self.path = path
        self.backing = backing
        self.record = record
        self.temp = temp


def record_matches(record, current):
    """True when ``record`` is the complete import record of the volume ``current``."""
    return bool(record and record.get('state') != IMPORTING and record.get('path') == current.path
                and record.get('capacity') == current.capacity and record.get('physical') == current.physical)


def incomplete(record, current):
    """True when ``current`` is a volume this module began to import and never finished.

    The "importing" record was written before the volume was created: it names the path
    the volume got and the capacities it can show (an upload cut off after a qcow2 header
    may show the image's virtual size). Anything else (no volume, another path, another
    capacity: replaced since) proves nothing.
    """
    return bool(record and record.get('state') == IMPORTING and current is not None and current.exists
                and record.get('path') and record.get('path') == current.path
                and current.capacity in (record.get('capacities') or ()))


def stale_importing(record, current):
    """True when ``record`` is an "importing" record that does not describe ``current``."""
    return bool(record and record.get('state') == IMPORTING and not incomplete(record, current))


def wanted_checksum(resolved):
    checksum = resolved.get('checksum')
    return '%s:%s' % checksum if checksum else None


def needs_reimport(spec, current, resolved):
    """True when an existing volume does not hold the wanted import (reimport or warn)."""
    if not (spec.state == 'present' and spec.import_from and current.exists):
        return False
    wanted = wanted_checksum(resolved)
    record = current.record if record_matches(current.record, current) else None
    return wanted is None or (record.get('checksum') if record else None) != wanted


def temp_ours(temp):
    """True when the leftover temporary volume ``temp`` is provably this module's.

    Its record (the "importing" one written before the volume was created, or the
    complete one written after the upload was verified) must name the volume's path; an
    "importing" record must also name its capacity. A volume of that name without such a
    record (made by someone else, or replaced since) is never deleted.
    """
    record = temp.record if temp is not None else None
    if not record or not record.get('path') or record.get('path') != temp.path:
        return False
    return record.get('state') != IMPORTING or incomplete(record, temp)


def _not_ours_warning(spec, tname):
    return ('%s: a volume named %s exists but no import record of this module matches it; left alone (delete it '
            'yourself if it is not needed)' % (spec.subject, tname))


def temp_usable(spec, temp, wanted):
    """True when the leftover temporary volume holds the verified image this run wants."""
    record = temp.record if temp is not None and record_matches(temp.record, temp) else None
    if not record or not record.get('verified') or record.get('checksum') != wanted:
        return False
    return wanted is not None or record.get('source') == spec.source_label


def _plan_grow(plan, spec, after):
    """Plan growing a freshly imported volume to ``spec.capacity`` (when set); ``after`` updated."""
    if spec.capacity:
        plan.add('grow_to', 'grow the volume to at least %s' % _human(spec.capacity), capacity=spec.capacity)
        after['capacity'] = '>= %d' % spec.capacity
    return after


def build_plan(spec, current, resolved):
    """Plan for (spec, current volume, resolved sources).

    ``resolved`` carries what the manager looked up: ``backing`` (path, format, capacity),
    ``clone`` (format, capacity) and ``checksum`` ((algo, hex) of the import source).
    """
    plan = Plan(spec.subject)
    plan.warnings = []
    plan.before = _view(current)
    temp = current.temp
    tname = temp_name(spec.name)
    if spec.state == 'absent':
        if current.exists:
            plan.add('delete', 'delete the volume %s' % current.path)
        if temp_ours(temp):
            plan.add('drop_temp', 'delete the temporary volume %s left by an interrupted reimport' % tname)
        elif temp is not None:
            plan.warnings.append(_not_ours_warning(spec, tname))
        plan.after = {'exists': False}
        return plan
    after = dict(plan.before)
    wanted = wanted_checksum(resolved)
    if incomplete(current.record, current):
        if spec.import_from:
            users = resolved.get('users')
            if users:
                many = len(users) > 1
                raise VirtkitError('%s: refusing to delete the volume of an interrupted import: the running guest%s %s '
                                   'use%s it (nothing was changed)'
                                   % (spec.subject, 's' if many else '', ', '.join(users), '' if many else 's'))
            plan.add('drop_incomplete', 'delete the volume %s: an import into it by an earlier run was interrupted '
                     '(its import record says so)' % current.path)
            current = Current(temp=temp)  # then import as if it were missing
        else:
            plan.warnings.append('%s: holds an interrupted import of %s; left alone: set import_from to import it '
                                 'again, or state: absent to delete it' % (spec.subject, current.record.get('source')))
    if not current.exists:
        if spec.import_from and temp_usable(spec, temp, wanted):
            plan.add('restore', 'restore the volume from the verified temporary volume %s (%s, %s) left by an '
                     'interrupted reimport' % (tname, spec.source_label, wanted or 'unverified'),
                     checksum=resolved.get('checksum'))
            after = _plan_grow(plan, spec, {'exists': True, 'source': spec.source_label})
        elif spec.import_from:
            if temp_ours(temp):
                plan.add('drop_temp', 'delete the temporary volume %s left by an interrupted reimport (it does not '
                         'hold %s)' % (tname, wanted or 'a verified copy of %s' % spec.source_label))
            elif temp is not None:
                plan.warnings.append(_not_ours_warning(spec, tname))
            plan.add('import_image', 'import %s (%s) into the volume' % (spec.source_label, wanted or 'unverified'),
                     checksum=resolved.get('checksum'))
            after = _plan_grow(plan, spec, {'exists': True, 'source': spec.source_label})
        elif spec.clone_from:
            clone = resolved['clone']
            fmt = spec.format or clone['format'] or 'raw'
            capacity = spec.capacity or clone['capacity']
            if capacity < clone['capacity'] and not spec.allow_shrink:
                raise VirtkitError('%s: capacity %s is smaller than the clone source (%s)' % (
                    spec.subject, _human(capacity), _human(clone['capacity'])))
            xml = _storage.volume_xml_text(spec.name, round_capacity(capacity, fmt), fmt)
            plan.add('clone', 'clone %s/%s as %s' % (spec.backing_pool, spec.clone_from, fmt),
                     xml=xml, source=spec.clone_from)
            after = {'exists': True, 'format': fmt, 'capacity': round_capacity(capacity, fmt)}
        elif spec.backing_volume or spec.backing_file:
            back = resolved['backing']
            capacity = round_capacity(spec.capacity or back['capacity'], 'qcow2')
            if capacity < back['capacity']:
                raise VirtkitError('%s: capacity %s is smaller than the backing store %s (%s)' % (
                    spec.subject, _human(capacity), back['path'], _human(back['capacity'])))
            xml = _storage.volume_xml_text(spec.name, capacity, 'qcow2', backing=back['path'],
                                           backing_format=back['format'])
            plan.add('create', 'create a qcow2 overlay on %s' % back['path'], xml=xml)
            after = {'exists': True, 'format': 'qcow2', 'capacity': capacity, 'backing': back['path']}
        else:
            if not spec.capacity:
                raise VirtkitError('%s: a new volume needs capacity (or import_from, clone_from, '
                                   'backing_volume or backing_file)' % spec.subject)
            fmt = spec.format or 'qcow2'
            capacity = round_capacity(spec.capacity, fmt)
            plan.add('create', 'create a %s %s volume' % (_human(capacity), fmt),
                     xml=_storage.volume_xml_text(spec.name, capacity, fmt))
            after = {'exists': True, 'format': fmt, 'capacity': capacity}
        plan.after = after
        return plan

    # The volume exists: check what cannot change, then resize or re-import.
    if spec.format and spec.format != current.format and not spec.import_from:
        raise VirtkitError('%s: the volume is %s; its format cannot change to %s (remove it first)'
                           % (spec.subject, current.format, spec.format))
    if spec.backing_volume or spec.backing_file:
        want = resolved['backing']['path']
        if current.backing != want:
            raise VirtkitError('%s: the volume\'s backing store is %s, not %s; it cannot change in place '
                               '(remove the volume first)' % (spec.subject, current.backing or 'none', want))
    reimported = False
    if spec.import_from:
        checksum = resolved.get('checksum')
        record = current.record if record_matches(current.record, current) else None
        have = record.get('checksum') if record else None
        if needs_reimport(spec, current, resolved):
            why = ('it was imported from %s with %s' % (record.get('source'), have) if record
                   else 'no import record matches it (not imported by this module, or changed since)')
            if spec.reimport:
                users = resolved.get('users')
                if users:
                    raise VirtkitError('%s: refusing to reimport: the running guest%s %s use%s the volume; shut %s '
                                       'down first (nothing was changed)' % (
                                           spec.subject, 's' if len(users) > 1 else '', ', '.join(users),
                                           '' if len(users) > 1 else 's', 'them' if len(users) > 1 else 'it'))
                if temp_usable(spec, temp, wanted):
                    reuse = ' (reusing the verified image in %s, left by an interrupted reimport)' % tname
                else:
                    reuse = ''
                    if temp is not None and not temp_ours(temp):
                        raise VirtkitError('%s: refusing to reimport: a volume named %s exists but no import record '
                                           'of this module matches it; delete it first (nothing was changed)'
                                           % (spec.subject, tname))
                    if temp is not None:
                        plan.add('drop_temp', 'delete the temporary volume %s left by an interrupted reimport (it '
                                 'does not hold %s)' % (tname, wanted or 'a verified copy of %s' % spec.source_label))
                    plan.add('import_temp', 'import %s (%s) into the temporary volume %s and verify it (the volume '
                             'is left alone until then)' % (spec.source_label, wanted or 'unverified', tname),
                             checksum=checksum)
                plan.add('replace', 'replace the volume with the new image%s: delete it (%s), copy %s into its '
                         'name, delete %s' % (reuse, why, tname, tname), checksum=checksum)
                after = {'exists': True, 'source': spec.source_label}
                reimported = True
            else:
                left = (' (the temporary volume %s of an interrupted reimport is left too)' % tname
                        if temp is not None else '')
                plan.warnings.append('%s: exists and %s; wanted %s. Left alone%s: set reimport: true to replace it'
                                     % (spec.subject, why, wanted or 'an unverified import', left))
        elif temp_ours(temp):
            plan.add('drop_temp', 'delete the temporary volume %s left by an interrupted reimport (the volume '
                     'already holds %s)' % (tname, wanted))
        elif temp is not None:
            plan.warnings.append(_not_ours_warning(spec, tname))
    if spec.capacity:
        fmt = current.format
        want = round_capacity(spec.capacity, fmt)
        if reimported:
            _plan_grow(plan, spec, {})
        elif want > current.capacity:
            plan.add('resize', 'grow the volume from %s to %s' % (_human(current.capacity), _human(want)),
                     capacity=want, shrink=False)
            after['capacity'] = want
        elif want < current.capacity:
            if not spec.allow_shrink:
                raise VirtkitError('%s: refusing to shrink the volume from %s to %s (data beyond the new end '
                                   'is lost); set allow_shrink: true to force it'
                                   % (spec.subject, _human(current.capacity), _human(want)))
            plan.add('resize', 'shrink the volume from %s to %s' % (_human(current.capacity), _human(want)),
                     capacity=want, shrink=True)
            after['capacity'] = want
    plan.after = after
    return plan


def _view(current):
    if not current.exists:
        return {'exists': False}
    view = {'exists': True, 'format': current.format, 'capacity': current.capacity, 'path': current.path}
    if current.backing:
        view['backing'] = current.backing
    if incomplete(current.record, current):
        view['import'] = 'interrupted'
    elif current.record and current.record.get('state') != IMPORTING:
        view['source'] = current.record.get('source')
        view['source_checksum'] = current.record.get('checksum')
    return view


# ------------------------------------------------------------------ manager

def volume_facts(connection, vol, subject):
    root = parse(connection.call(subject, 'read volume', vol.XMLDesc, 0))
    capacity, physical = _storage.volume_sizes(connection, vol, subject)
    info = connection.call(subject, 'read volume', vol.info)
    store = root.find('backingStore')
    backing = None
    if store is not None and store.findtext('path'):
        fmt = store.find('format')
        backing = {'path': store.findtext('path'), 'format': fmt.get('type') if fmt is not None else None}
    return {
        'name': root.findtext('name'),
        'path': root.findtext('target/path'),
        'key': root.findtext('key'),
        'format': _storage.volume_format(root),
        'capacity': capacity,
        'allocation': info[2],
        'physical': physical,
        'backing_store': backing,
    }


class VolumeManager:
    def __init__(self, connection):
        self.c = connection
        self.conn = connection.conn
        self.prefetched = None

    def _pool(self, name, subject, need_active=True):
        pool = self.c.pool(name)
        if pool is None:
            raise VirtkitError('%s: the storage pool %s does not exist' % (subject, name))
        if need_active and not self.c.call(name, 'read state', pool.isActive):
            raise VirtkitError('%s: the storage pool %s is not running; start it (libvirt_pool state=running)'
                               % (subject, name))
        return pool

    def read(self, spec):
        self.pool = None
        self.stale_temp_record = False
        if spec.state == 'absent' and self.c.pool(spec.pool) is None:
            return Current()  # no pool, so no volume: nothing to delete
        self.pool = self._pool(spec.pool, spec.subject)
        self.pool_uuid = self.c.call(spec.pool, 'read uuid', self.pool.UUIDString)
        vol = self.c.volume(self.pool, spec.name)
        self.vol = vol
        # The temporary volume of a reimport is only ever ours with its record, written
        # before it is created: no record (a local read), no lookup on the host.
        record = _fetch.read_record(spec.cache_dir, self.pool_uuid, temp_name(spec.name))
        temp = self._read_volume(spec, temp_name(spec.name), record=record) if record is not None else None
        self.stale_temp_record = record is not None and temp is None
        if vol is None:
            return Current(temp=temp)
        current = self._read_volume(spec, spec.name, vol)
        current.temp = temp
        return current

    def _read_volume(self, spec, name, vol=None, record=None):
        """Current of volume ``name`` (with its import record), or None when it does not exist."""
        vol = vol or self.c.volume(self.pool, name)
        if vol is None:
            return None
        f = volume_facts(self.c, vol, '%s/%s' % (spec.pool, name))
        if record is None:
            record = _fetch.read_record(spec.cache_dir, self.pool_uuid, name)
        return Current(True, f['format'], f['capacity'], f['physical'], f['path'],
                       (f['backing_store'] or {}).get('path'), record)

    def resolve(self, spec, current):
        resolved = {}
        if spec.state == 'absent':
            return resolved
        if spec.backing_volume:
            pool = self.pool if spec.backing_pool == spec.pool else self._pool(spec.backing_pool, spec.subject)
            vol = self.c.volume(pool, spec.backing_volume)
            if vol is None:
                raise VirtkitError('%s: the backing volume %s/%s does not exist'
                                   % (spec.subject, spec.backing_pool, spec.backing_volume))
            f = volume_facts(self.c, vol, spec.subject)
            resolved['backing'] = {'path': f['path'], 'format': spec.backing_format or f['format'] or 'raw',
                                   'capacity': f['capacity']}
        elif spec.backing_file:
            vol = self.c.volume_by_path(spec.backing_file)
            if vol is not None:
                f = volume_facts(self.c, vol, spec.subject)
                resolved['backing'] = {'path': spec.backing_file, 'format': spec.backing_format or f['format'],
                                       'capacity': f['capacity']}
            elif self.c.is_local and os.path.isfile(spec.backing_file):
                fmt, size = _fetch.image_info(spec.backing_file)
                resolved['backing'] = {'path': spec.backing_file, 'format': spec.backing_format or fmt,
                                       'capacity': size}
            elif current.exists or (spec.backing_format and spec.capacity):
                resolved['backing'] = {'path': spec.backing_file, 'format': spec.backing_format, 'capacity': 0}
            else:
                raise VirtkitError('%s: the backing file %s is neither a libvirt volume nor a file on this host; '
                                   'set backing_format and capacity to use it anyway' % (spec.subject, spec.backing_file))
        if spec.clone_from and not current.exists:
            vol = self.c.volume(self.pool, spec.clone_from)
            if vol is None:
                raise VirtkitError('%s: the clone source %s/%s does not exist' % (spec.subject, spec.pool, spec.clone_from))
            f = volume_facts(self.c, vol, spec.subject)
            resolved['clone'] = {'format': f['format'], 'capacity': f['capacity']}
        if spec.import_from and spec.checksum:
            resolved['checksum'] = _fetch.resolve_checksum(spec.checksum_option, spec.import_from, spec.timeout,
                                                           spec.validate_certs)
        if (spec.reimport and needs_reimport(spec, current, resolved)) or (
                spec.import_from and incomplete(current.record, current)):
            # A running guest holds the volume open: replacing it under the guest would
            # corrupt what the guest sees. Backing chains count (an overlay on this volume).
            resolved['users'] = _libvirt.disk_users(self.c, current.path, spec.pool, spec.name)
        return resolved

    def run(self, params, check_mode=False):
        spec = validate(params)
        self.spec = spec
        current = self.read(spec)
        self.current = current
        plan = build_plan(spec, current, self.resolve(spec, current))
        result = plan.result()
        result.pop('pending_restart', None)
        result.pop('pending_restart_fields', None)
        imports = [a for a in plan.actions if a.op in ('import_image', 'import_temp')]
        if imports and check_mode:
            self._check_source(imports[0].params['checksum'])
        elif imports:
            # Fetch and verify before anything on the host changes: a missing source or a
            # bad checksum fails the run with the host untouched.
            self.prefetched = self._prefetch(imports[0].params['checksum'])
        self.warnings = list(plan.warnings)
        if not check_mode:
            if self.pool is not None and (not current.exists or stale_importing(current.record, current)):
                # No volume, or one replaced since an interrupted import: no record of ours can
                # describe it, and a stale one must not match a volume made later by someone else.
                _fetch.drop_record(spec.cache_dir, self.pool_uuid, spec.name)
            if self.stale_temp_record:
                # The record of a temporary volume that is gone: it must not match one made later.
                _fetch.drop_record(spec.cache_dir, self.pool_uuid, temp_name(spec.name))
            for action in plan.actions:
                getattr(self, '_op_' + action.op)(**action.params)
        if self.warnings:
            result['warnings'] = self.warnings
        vol = self.c.volume(self.pool, spec.name) if spec.state == 'present' and self.pool is not None else None
        result['volume'] = self.describe(vol) if vol is not None else {}
        return result

    def describe(self, vol):
        f = volume_facts(self.c, vol, self.spec.subject)
        f['pool'] = self.spec.pool
        record = _fetch.read_record(self.spec.cache_dir, self.pool_uuid, self.spec.name)
        current = Current(True, f['format'], f['capacity'], f['physical'], f['path'])
        f['source'] = record.get('source') if record_matches(record, current) else None
        f['source_checksum'] = record.get('checksum') if record_matches(record, current) else None
        return f

    # ------------------------------------------------------------ operations

    def _call(self, operation, func, *args):
        return self.c.call(self.spec.subject, operation, func, *args)

    def _op_create(self, xml):
        self.vol = self._call('create volume', self.pool.createXML, xml, 0)

    def _op_clone(self, xml, source):
        src = self.c.volume(self.pool, source)
        if src is None:
            raise VirtkitError('%s: the clone source %s disappeared' % (self.spec.subject, source))
        self.vol = self._call('clone volume', self.pool.createXMLFrom, xml, src, 0)

    def _op_drop_incomplete(self):
        vol = self.c.volume(self.pool, self.spec.name)
        if vol is not None:
            self._call('delete the volume of an interrupted import', vol.delete, 0)
        _fetch.drop_record(self.spec.cache_dir, self.pool_uuid, self.spec.name)
        self.vol = None

    def _op_delete(self):
        vol = self.c.volume(self.pool, self.spec.name)
        if vol is not None:
            self._call('delete volume', vol.delete, 0)
        _fetch.drop_record(self.spec.cache_dir, self.pool_uuid, self.spec.name)

    def _op_resize(self, capacity, shrink):
        flags = _libvirt.libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if shrink else 0
        self._call('resize volume', self.vol.resize, capacity, flags)
        record = self.current.record
        if record_matches(record, self.current):
            # Keep the import record valid: the resize is ours, not a change of content.
            f = volume_facts(self.c, self.vol, self.spec.subject)
            record.update(capacity=f['capacity'], physical=f['physical'])
            _fetch.write_record(self.spec.cache_dir, self.pool_uuid, self.spec.name, record)

    def _op_grow_to(self, capacity):
        vol = self.c.volume(self.pool, self.spec.name)
        have = _storage.volume_sizes(self.c, vol, self.spec.subject)[0]
        fmt = _storage.volume_format(parse(self._call('read volume', vol.XMLDesc, 0)))
        want = round_capacity(capacity, fmt)
        if want > have:
            self._call('resize volume', vol.resize, want, 0)
            self.c.call(self.spec.pool, 'refresh pool', self.pool.refresh, 0)
        self._write_record(vol)

    def _check_source(self, checksum):
        """Check mode: fail like the real run would when a local source file is missing."""
        if not self.spec.controller_source:  # a controller file was checked by the action plugin
            _fetch.check_local_source(self.spec.import_from, checksum, self.spec.cache_dir)

    def _prefetch(self, checksum):
        """(path, size) of the verified image to upload, fetched into the cache."""
        spec = self.spec
        try:
            path = _fetch.fetch(spec.import_from, checksum, spec.cache_dir, spec.timeout, spec.validate_certs)
        except VirtkitError as err:
            if not spec.controller_source:
                raise
            # Name the controller file, not its temporary copy on the host.
            raise VirtkitError(str(err).replace(spec.import_from, spec.source_label))
        fmt, _virtual = _fetch.image_info(path)
        if spec.format and spec.format != fmt:
            raise VirtkitError('%s: %s is a %s image, not %s' % (spec.subject, spec.source_label, fmt, spec.format))
        size = os.path.getsize(path)
        if size == 0:
            raise VirtkitError('%s: %s is empty' % (spec.subject, spec.source_label))
        return path, size

    def _op_import_image(self, checksum):
        """First import: an "importing" record, the volume, the upload read back, then the complete record."""
        spec = self.spec
        path, size = self.prefetched or self._prefetch(checksum)
        self.import_checksum = checksum
        record = self._begin_import(spec.name, (size, _fetch.image_info(path)[1]))
        vol = None
        try:
            vol = self._call('create volume', self.pool.createXML, _storage.volume_xml_text(spec.name, size, 'raw'), 0)
            self._confirm_path(spec.name, vol, record)
            self.vol = self._upload_verified(spec.name, vol, path, size)
            self._write_record(self.vol)
        except VirtkitError as err:
            raise self._fail_import(str(err), vol)
        except OSError as err:
            raise self._fail_import('%s: cannot read %s: %s' % (spec.subject, path, err.strerror or err), vol)
        except BaseException:
            # Interrupted (Ctrl-C, module timeout): leave nothing half-made. Interrupted while
            # libvirt was creating the volume, it may exist: the record stays to prove it ours
            # (the next run drops the record if there is no volume).
            if vol is not None:
                self._discard_import(spec.name, vol)
            raise

    def _begin_import(self, name, capacities):
        """Write the "importing" record of volume ``name`` before it is created; returns the record.

        Its path is predicted from the pool (a directory, file system or LVM pool puts the
        volume at ``<target path>/<name>``) and corrected right after the volume is created.
        """
        if getattr(self, '_pool_root', None) is None:
            root = parse(self.c.call(self.spec.pool, 'read pool', self.pool.XMLDesc, 0))
            self._pool_root = (root.get('type'), root.findtext('target/path'))
        kind, target = self._pool_root
        checksum = getattr(self, 'import_checksum', None)
        record = {
            'state': IMPORTING, 'source': self.spec.source_label,
            'checksum': '%s:%s' % checksum if checksum else None,
            'path': '%s/%s' % (target.rstrip('/'), name) if kind in _PATH_POOLS and target else None,
            'capacities': sorted(set(int(c) for c in capacities)),
        }
        _fetch.write_record(self.spec.cache_dir, self.pool_uuid, name, record)
        return record

    def _confirm_path(self, name, vol, record):
        path = self.c.call('%s/%s' % (self.spec.pool, name), 'read volume path', vol.path)
        if path != record['path']:
            record['path'] = path
            _fetch.write_record(self.spec.cache_dir, self.pool_uuid, name, record)

    def _upload_verified(self, name, vol, path, size):
        """Upload the image file into ``vol``, read it back and compare; returns the refreshed volume."""
        subject = '%s/%s' % (self.spec.pool, name)
        digest = hashlib.sha256()

        def chunks():
            with open(path, 'rb') as handle:
                for block in iter(lambda: handle.read(_storage.CHUNK), b''):
                    digest.update(block)
                    yield block

        _storage.stream_send(self.c, vol, chunks(), size, subject)
        self.c.call(self.spec.pool, 'refresh pool', self.pool.refresh, 0)
        vol = self.c.volume(self.pool, name)
        if vol is None:
            raise VirtkitError('%s: the volume disappeared after the upload' % subject)
        # Read the content back: what is recorded as imported is what was verified.
        if _storage.stream_digest(self.c, vol, size, subject) != digest.hexdigest():
            raise VirtkitError('%s: verification failed: the uploaded content differs from %s'
                               % (subject, self.spec.source_label))
        self.upload_sha256 = digest.hexdigest()
        return vol

    def _discard_import(self, name, vol):
        """Delete the volume this run created for an import, and its record; an error line when that failed.

        When the volume cannot be deleted its "importing" record stays: it proves the
        volume is ours, so the next run deletes it.
        """
        if vol is not None:
            try:
                vol.delete(0)
            except _libvirt.libvirt.libvirtError as err:
                return _libvirt.explain(err, '%s/%s' % (self.spec.pool, name), 'delete volume')
        _fetch.drop_record(self.spec.cache_dir, self.pool_uuid, name)
        return None

    def _fail_import(self, message, vol):
        problem = self._discard_import(self.spec.name, vol)
        if vol is None:
            return VirtkitError(message)
        if problem is None:
            return VirtkitError('%s; the partial volume %s was removed' % (message, self.spec.name))
        return VirtkitError('%s; the partial volume %s could not be removed (%s); a rerun removes it'
                            % (message, self.spec.name, problem))

    def _write_record(self, vol, name=None, **extra):
        f = volume_facts(self.c, vol, self.spec.subject)
        checksum = getattr(self, 'import_checksum', None)
        record = {
            'source': self.spec.source_label,
            'checksum': '%s:%s' % checksum if checksum else None,
            'path': f['path'], 'capacity': f['capacity'], 'physical': f['physical'],
        }
        record.update(extra)
        _fetch.write_record(self.spec.cache_dir, self.pool_uuid, name or self.spec.name, record)

    # ------------------------------------------------------------ reimport through a temporary volume

    @property
    def _temp(self):
        return temp_name(self.spec.name)

    def _drop_temp(self):
        """Delete the temporary volume and its record; an error line (str) when that failed, else None."""
        try:
            vol = self.c.volume(self.pool, self._temp)
            if vol is not None:
                vol.delete(0)
        except _libvirt.libvirt.libvirtError as err:
            return _libvirt.explain(err, '%s/%s' % (self.spec.pool, self._temp), 'delete volume')
        except VirtkitError as err:
            return str(err)
        _fetch.drop_record(self.spec.cache_dir, self.pool_uuid, self._temp)
        return None

    def _fail_before_replacing(self, message):
        """Failure before the old volume was touched: remove the temporary volume, say so."""
        problem = self._drop_temp()
        if problem is None:
            tail = 'the volume is unchanged; the temporary volume %s was removed' % self._temp
        else:
            tail = ('the volume is unchanged; the temporary volume %s could not be removed (%s); a rerun removes it'
                    % (self._temp, problem))
        return VirtkitError('%s; %s' % (message, tail))

    def _op_drop_temp(self):
        problem = self._drop_temp()
        if problem is not None:
            raise VirtkitError(problem)

    def _op_import_temp(self, checksum):
        """Upload the verified image into the temporary volume and check it there."""
        spec = self.spec
        path, size = self.prefetched or self._prefetch(checksum)
        subject = '%s/%s' % (spec.pool, self._temp)
        self.import_checksum = checksum
        # Ours from its first byte: a run killed midway leaves a volume the next run may delete.
        record = self._begin_import(self._temp, (size, _fetch.image_info(path)[1]))
        vol = None
        try:
            vol = self.c.call(subject, 'create volume', self.pool.createXML,
                              _storage.volume_xml_text(self._temp, size, 'raw'), 0)
            self._confirm_path(self._temp, vol, record)
            # What the replacement copies is what was verified.
            vol = self._upload_verified(self._temp, vol, path, size)
            self._write_record(vol, self._temp, verified=True, sha256=self.upload_sha256)
        except VirtkitError as err:
            raise self._fail_staging(str(err), vol)
        except OSError as err:
            raise self._fail_staging('%s: cannot read %s: %s' % (subject, path, err.strerror or err), vol)
        except BaseException:
            # Interrupted (Ctrl-C, module timeout): leave nothing half-made. Interrupted while
            # libvirt was creating it, the volume may exist: its record stays to prove it ours.
            if vol is not None:
                self._discard_import(self._temp, vol)
            raise

    def _fail_staging(self, message, vol):
        """Failure while staging the new image: remove what this run created (only that), say so."""
        problem = self._discard_import(self._temp, vol)
        if vol is None:
            # Nothing was created; a volume of that name is someone else's: never deleted.
            if self.c.volume(self.pool, self._temp) is not None:
                return VirtkitError('%s; the volume is unchanged; a volume named %s exists that this module cannot '
                                    'prove it made: it is left alone, delete it to reimport' % (message, self._temp))
            return VirtkitError('%s; the volume is unchanged; no temporary volume was left' % message)
        if problem is None:
            return VirtkitError('%s; the volume is unchanged; the temporary volume %s was removed'
                                % (message, self._temp))
        return VirtkitError('%s; the volume is unchanged; the temporary volume %s could not be removed (%s); a rerun '
                            'removes it' % (message, self._temp, problem))

    def _check_space(self, vol, need):
        """Refuse to delete the old volume when the pool cannot hold the copy of the new image.

        The copy needs about the temporary volume's allocation; the pool has its free
        space plus what deleting the old volume frees. A pool that reports no capacity
        (size unknown to libvirt) is not checked.
        """
        self.c.call(self.spec.pool, 'refresh pool', self.pool.refresh, 0)
        _state, capacity, _allocation, available = self.c.call(self.spec.pool, 'read pool size', self.pool.info)
        freed = self.c.call(self.spec.subject, 'read volume', vol.info)[2]
        if capacity and available + freed < need:
            raise VirtkitError('%s: not enough space in the pool %s to copy the new image into place (needs %s, '
                               '%s free once the old volume is deleted)' % (
                                   self.spec.subject, self.spec.pool, _mib(need), _mib(available + freed)))

    def _op_replace(self, checksum):
        self._replace(checksum, old=True)

    def _op_restore(self, checksum):
        self._replace(checksum, old=False)

    def _replace(self, checksum, old):
        """Delete the old volume (``old``), copy the temporary volume into its name, delete it."""
        spec = self.spec
        temp = self.c.volume(self.pool, self._temp)
        if temp is None:
            raise VirtkitError('%s: the temporary volume %s disappeared before it replaced the volume; the volume is '
                               'unchanged' % (spec.subject, self._temp))
        f = volume_facts(self.c, temp, '%s/%s' % (spec.pool, self._temp))
        if old:
            vol = self.c.volume(self.pool, spec.name)
            if vol is not None:
                try:
                    self._check_space(vol, f['allocation'])
                    self._call('delete the old volume', vol.delete, 0)
                except VirtkitError as err:
                    raise self._fail_before_replacing(str(err))
            _fetch.drop_record(spec.cache_dir, self.pool_uuid, spec.name)
        xml = _storage.volume_xml_text(spec.name, f['capacity'], f['format'] or 'raw')
        self.import_checksum = checksum
        try:
            # A copy cut off by a kill is recognised (and redone) by the next run.
            record = self._begin_import(spec.name, (f['capacity'],))
            self.vol = self._call('copy %s into place' % self._temp, self.pool.createXMLFrom, xml, temp, 0)
            self._confirm_path(spec.name, self.vol, record)
            self.c.call(spec.pool, 'refresh pool', self.pool.refresh, 0)
            self.vol = self.c.volume(self.pool, spec.name)
            if self.vol is None:
                raise VirtkitError('%s: the copy of %s is missing after it was made' % (spec.subject, self._temp))
            self._write_record(self.vol)
        except VirtkitError as err:
            raise VirtkitError('%s; %s the verified new image is kept in the temporary volume %s: rerun the task '
                               'to restore the volume from it' % (
                                   err, 'the old volume was deleted and' if old else 'the volume is missing;',
                                   self._temp))
        problem = self._drop_temp()
        if problem is not None:
            self.warnings.append('%s: replaced, but the temporary volume %s could not be removed (%s); a rerun '
                                 'removes it' % (spec.subject, self._temp, problem))


def list_volumes(connection, pool_name, name=None, cache_dir=DEFAULT_CACHE):
    """Facts of one volume or of every volume in a pool (libvirt_volume_info)."""
    pool = connection.pool(pool_name)
    if pool is None:
        raise VirtkitError('%s: the storage pool does not exist' % pool_name)
    if not connection.call(pool_name, 'read state', pool.isActive):
        raise VirtkitError('%s: the storage pool is not running; its volumes cannot be listed' % pool_name)
    uuid = connection.call(pool_name, 'read uuid', pool.UUIDString)
    names = [name] if name else sorted(connection.call(pool_name, 'list volumes', pool.listVolumes))
    out = []
    for n in names:
        vol = connection.volume(pool, n)
        if vol is None:
            continue
        f = volume_facts(connection, vol, '%s/%s' % (pool_name, n))
        f['pool'] = pool_name
        record = _fetch.read_record(cache_dir, uuid, n)
        ok = record_matches(record, Current(True, f['format'], f['capacity'], f['physical'], f['path']))
        f['source'] = record.get('source') if ok else None
        f['source_checksum'] = record.get('checksum') if ok else None
        out.append(f)
    return out
