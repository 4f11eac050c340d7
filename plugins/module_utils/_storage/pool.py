# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_pool: argument spec, validation, XML build/merge, plan and manager.

Pure parts (spec, XML, plan) never talk to libvirt; :class:`PoolManager` reads the
current pool, builds the plan and executes it (or returns it in check mode).
"""

from __future__ import annotations

import re

from ansible_collections.virtkit.guests.plugins.module_utils import _libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._xml import Editor, canonical, parse, to_string

try:
    from lxml import etree
except ImportError:  # pragma: no cover - reported by the module
    etree = None

POOL_TYPES = ('dir', 'logical', 'netfs')
NETFS_FORMATS = ('auto', 'nfs', 'cifs', 'glusterfs')

ARGUMENT_SPEC = dict(
    _libvirt.LIBVIRT_ARGS,
    name={'type': 'str', 'required': True},
    state={'type': 'str', 'default': 'running', 'choices': ['present', 'running', 'stopped', 'absent']},
    type={'type': 'str', 'choices': list(POOL_TYPES)},
    path={'type': 'path'},
    mode={'type': 'raw'},
    owner={'type': 'raw'},
    group={'type': 'raw'},
    source_devices={'type': 'list', 'elements': 'path'},
    source_name={'type': 'str'},
    source_host={'type': 'str'},
    source_dir={'type': 'str'},
    source_format={'type': 'str', 'choices': list(NETFS_FORMATS)},
    autostart={'type': 'bool'},
    build={'type': 'bool', 'default': True},
    refresh={'type': 'bool', 'default': False},
    restart_policy={'type': 'str', 'default': 'never', 'choices': ['never', 'if_needed']},
    delete_volumes={'type': 'bool', 'default': False},
)

# Settings libvirt only applies when the pool starts (path, source, directory permissions).
RESTART_FIELDS = ('path', 'mode', 'owner', 'group', 'source_devices', 'source_name',
                  'source_host', 'source_dir', 'source_format')
_SOURCE_OPTIONS = {
    'dir': (),
    'logical': ('source_devices', 'source_name'),
    'netfs': ('source_host', 'source_dir', 'source_format'),
}


class PoolSpec:
    """The validated request; ``None`` means "not set, leave alone"."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _id(value, option, kind):
    if value is None:
        return None
    if isinstance(value, bool):
        raise VirtkitError('%s: expected a numeric %s id or a name, got %r' % (option, kind, value))
    if isinstance(value, int):
        if value < 0:
            raise VirtkitError('%s: must not be negative, got %r' % (option, value))
        return str(value)
    text = str(value).strip()
    if text.isdigit():
        return str(int(text))
    try:
        if kind == 'user':
            import pwd
            return str(pwd.getpwnam(text).pw_uid)
        import grp
        return str(grp.getgrnam(text).gr_gid)
    except KeyError:
        raise VirtkitError('%s: no %s named %r on the host running the module (names resolve there, '
                           'not on the libvirt host); use a numeric id' % (option, kind, text))


def _mode(value):
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        raise VirtkitError("mode: quote it as an octal string such as '0755' "
                           "(YAML reads 0755 as the integer %d)" % value)
    text = str(value).strip()
    if not re.match(r'^0?[0-7]{3}$', text):
        raise VirtkitError("mode: expected an octal string such as '0755', got %r" % (value,))
    return '0' + text[-3:]


def validate(params):
    """Turn module parameters into a :class:`PoolSpec`; raise one-line errors."""
    name = params['name']
    if not name or '/' in name:
        raise VirtkitError('name: a pool name must be non-empty and must not contain "/", got %r' % (name,))
    ptype = params.get('type')
    if ptype:
        for t, options in _SOURCE_OPTIONS.items():
            if t == ptype:
                continue
            for option in options:
                if params.get(option) not in (None, []) and option not in _SOURCE_OPTIONS[ptype]:
                    raise VirtkitError('%s: only applies to type=%s pools, not type=%s' % (option, t, ptype))
    path = params.get('path')
    if path is not None and not path.startswith('/'):
        raise VirtkitError('path: must be absolute, got %r' % path)
    devices = params.get('source_devices')
    if devices is not None:
        for dev in devices:
            if not dev.startswith('/'):
                raise VirtkitError('source_devices: each device must be an absolute path, got %r' % dev)
    if params.get('source_dir') is not None and not params['source_dir'].startswith('/'):
        raise VirtkitError('source_dir: must be an absolute path on the server, got %r' % params['source_dir'])
    return PoolSpec(
        name=name, state=params['state'], type=ptype, path=path,
        mode=_mode(params.get('mode')),
        owner=_id(params.get('owner'), 'owner', 'user'),
        group=_id(params.get('group'), 'group', 'group'),
        source_devices=devices, source_name=params.get('source_name'),
        source_host=params.get('source_host'), source_dir=params.get('source_dir'),
        source_format=params.get('source_format'),
        autostart=params.get('autostart'), build=params.get('build', True),
        refresh=params.get('refresh', False), restart_policy=params.get('restart_policy', 'never'),
        delete_volumes=params.get('delete_volumes', False),
    )


def check_new(spec):
    """The options a new pool needs, checked before anything is touched."""
    ptype = spec.type or 'dir'
    missing = []
    if ptype in ('dir', 'netfs') and not spec.path:
        missing.append('path')
    if ptype == 'netfs':
        missing.extend(o for o in ('source_host', 'source_dir') if not getattr(spec, o))
    if ptype == 'logical' and not spec.source_devices and not spec.source_name:
        missing.append('source_devices or source_name')
    if missing:
        raise VirtkitError('%s: a new %s pool needs %s' % (spec.name, ptype, ', '.join(missing)))


# ------------------------------------------------------------------ XML

def skeleton(spec):
    ptype = spec.type or 'dir'
    root = etree.Element('pool', type=ptype)
    etree.SubElement(root, 'name').text = spec.name
    if ptype != 'dir':
        etree.SubElement(root, 'source')
    target = etree.SubElement(root, 'target')
    path = spec.path
    if path is None and ptype == 'logical':
        path = '/dev/%s' % (spec.source_name or spec.name)
    if path is not None:
        etree.SubElement(target, 'path').text = path
    if ptype == 'netfs' and spec.source_format is None:
        spec = PoolSpec(**dict(spec.__dict__, source_format='auto'))
    merge(root, spec)
    return root


def _source(ed, root, field):
    src = root.find('source')
    if src is None:
        src = etree.Element('source')
        target = root.find('target')
        if target is not None:
            target.addprevious(src)
        else:
            root.append(src)
        ed.record(field)
    return src


def _ordered_child(ed, parent, tag, field, order):
    """Child ``tag`` of ``parent`` created at its schema position among ``order``."""
    el = parent.find(tag)
    if el is not None:
        return el
    el = etree.Element(tag)
    later = order[order.index(tag) + 1:]
    for sibling in parent:
        if sibling.tag in later:
            sibling.addprevious(el)
            break
    else:
        parent.append(el)
    ed.record(field)
    return el


_SOURCE_ORDER = ['host', 'device', 'dir', 'adapter', 'name', 'format', 'vendor', 'product']


def merge(root, spec):
    """Apply the user-set fields of ``spec`` onto pool XML ``root``; return the Editor."""
    ed = Editor(root)
    target = ed.child(root, 'target', 'path')
    if spec.path is not None:
        ed.text(ed.child(target, 'path', 'path'), spec.path, 'path')
    if any(v is not None for v in (spec.mode, spec.owner, spec.group)):
        perms = ed.child(target, 'permissions', 'mode')
        for field in ('mode', 'owner', 'group'):
            value = getattr(spec, field)
            if value is not None:
                el = _ordered_child(ed, perms, field, field, ['mode', 'owner', 'group', 'label'])
                ed.text(el, value, field)
    if spec.source_devices is not None:
        src = _source(ed, root, 'source_devices')
        have = [d.get('path') for d in src.findall('device')]
        if sorted(have) != sorted(spec.source_devices):
            for d in src.findall('device'):
                src.remove(d)
            anchor = None
            for sibling in src:
                if sibling.tag in _SOURCE_ORDER[2:]:
                    anchor = sibling
                    break
            for path in spec.source_devices:
                dev = etree.Element('device', path=path)
                if anchor is not None:
                    anchor.addprevious(dev)
                else:
                    src.append(dev)
            ed.record('source_devices')
    for field, tag, attr in (('source_host', 'host', 'name'), ('source_dir', 'dir', 'path'),
                             ('source_format', 'format', 'type')):
        value = getattr(spec, field)
        if value is not None:
            src = _source(ed, root, field)
            ed.attr(_ordered_child(ed, src, tag, field, _SOURCE_ORDER), attr, value, field)
    if spec.source_name is not None:
        src = _source(ed, root, 'source_name')
        ed.text(_ordered_child(ed, src, 'name', 'source_name', _SOURCE_ORDER), spec.source_name, 'source_name')
    return ed


def pool_type(root):
    return root.get('type')


def config_view(root):
    """The pool XML without runtime numbers, for diffs."""
    root = parse(to_string(root))
    for tag in ('capacity', 'allocation', 'available'):
        for el in root.findall(tag):
            root.remove(el)
    return canonical(root)


# ------------------------------------------------------------------ plan

class Current:
    def __init__(self, name, exists=False, active=False, autostart=False, inactive_xml=None,
                 live_xml=None, volumes=None):
        self.name = name
        self.exists = exists
        self.active = active
        self.autostart = autostart
        self.inactive_xml = inactive_xml
        self.live_xml = live_xml
        self.volumes = volumes or []

    @property
    def state(self):
        if not self.exists:
            return 'absent'
        return 'running' if self.active else 'stopped'


def build_plan(spec, current):
    plan = Plan(spec.name)
    plan.before = {'state': current.state}
    if current.exists:
        plan.before.update(autostart=current.autostart, xml=config_view(parse(current.inactive_xml)))
    if spec.state == 'absent':
        plan.after = {'state': 'absent'}
        if not current.exists:
            return plan
        if spec.delete_volumes:
            if not current.active:
                plan.add('start', 'start the pool to list its volumes')
            plan.add('delete_volumes', 'delete the volumes in the pool (%s)' % (
                ', '.join(current.volumes) if current.active else 'all'), names=list(current.volumes))
            plan.add('destroy', 'stop the pool')
            if (pool_type(parse(current.inactive_xml))) in ('dir', 'netfs'):
                plan.add('delete', 'remove the pool directory')
        elif current.active:
            plan.add('destroy', 'stop the pool (its volumes stay)')
        plan.add('undefine', 'undefine the pool')
        return plan

    if not current.exists:
        check_new(spec)
        root = skeleton(spec)
        xml = to_string(root)
        plan.add('define', 'define the %s pool' % (spec.type or 'dir'), xml=xml)
        if spec.build and ((spec.type or 'dir') != 'logical' or spec.source_devices):
            plan.add('build', 'build the pool (create its directory or volume group)')
        active = False
        after_xml = config_view(root)
        autostart = False
    else:
        root = parse(current.inactive_xml)
        if spec.type and spec.type != pool_type(root):
            raise VirtkitError('%s: type cannot change from %s to %s; remove the pool first'
                               % (spec.name, pool_type(root), spec.type))
        if pool_type(root) not in POOL_TYPES:
            spec.type = pool_type(root)
        for option in _SOURCE_OPTIONS['logical'] + _SOURCE_OPTIONS['netfs']:
            if getattr(spec, option) is not None and option not in _SOURCE_OPTIONS.get(pool_type(root), ()):
                raise VirtkitError('%s: %s does not apply to this %s pool' % (spec.name, option, pool_type(root)))
        ed = merge(root, spec)
        active = current.active
        autostart = current.autostart
        changed_fields = ed.fields()
        if changed_fields:
            plan.add('define', 'redefine the pool: %s' % ', '.join(changed_fields), xml=to_string(root))
        # What differs from the running pool waits for a restart (also from an earlier run).
        pending = []
        if current.active and current.live_xml:
            pending = merge(parse(current.live_xml), spec).fields()
        pending = [f for f in pending if f in RESTART_FIELDS]
        rebuild = (spec.build and pool_type(root) in ('dir', 'netfs')
                   and any(f in ('path', 'mode', 'owner', 'group') for f in changed_fields + pending))
        if current.active and pending:
            if spec.restart_policy == 'if_needed' and spec.state != 'stopped':
                plan.add('destroy', 'stop the pool to apply %s' % ', '.join(pending))
                if rebuild:
                    plan.add('build', 'build the pool (applies the directory permissions)')
                plan.add('start', 'start the pool again')
            elif spec.state != 'stopped':
                plan.pending_restart = pending
        elif not current.active and rebuild:
            plan.add('build', 'build the pool (applies the directory permissions)')
        after_xml = config_view(root)
        plan.pending_build = bool(current.active and pending and spec.state == 'stopped' and rebuild)
    if spec.autostart is not None and spec.autostart != autostart:
        plan.add('autostart', 'autostart %s' % ('on' if spec.autostart else 'off'), value=spec.autostart)
        autostart = spec.autostart
    started = False
    if spec.state == 'running' and not active:
        plan.add('start', 'start the pool')
        active = started = True
    elif spec.state == 'stopped' and active:
        plan.add('destroy', 'stop the pool')
        active = False
        if getattr(plan, 'pending_build', False):
            plan.add('build', 'build the pool (applies the directory permissions)')
    if spec.refresh and active and not started:
        plan.add('refresh', 'refresh the volume list', changes=False)
    plan.after = {'state': 'running' if active else 'stopped', 'autostart': autostart, 'xml': after_xml}
    return plan


# ------------------------------------------------------------------ manager

class PoolManager:
    def __init__(self, connection):
        self.c = connection
        self.conn = connection.conn
        self.pool = None
        self.live_only = False

    def _inactive_xml(self, pool, name):
        text = inactive_xml(self.c, pool, name)
        if text is None:
            # This driver shows only the running config; restart fields cannot be told apart.
            self.live_only = True
            text = self.c.call(name, 'read config', pool.XMLDesc, 0)
        return text

    def read(self, name, with_volumes=False):
        pool = self.c.pool(name)
        self.pool = pool
        if pool is None:
            return Current(name)
        lv = _libvirt.libvirt
        active = bool(self.c.call(name, 'read state', pool.isActive))
        current = Current(
            name, exists=True, active=active,
            autostart=bool(self.c.call(name, 'read autostart', pool.autostart)),
            inactive_xml=self._inactive_xml(pool, name),
            live_xml=self.c.call(name, 'read config', pool.XMLDesc, 0) if active else None)
        if with_volumes and active:
            current.volumes = sorted(self.c.call(name, 'list volumes', pool.listVolumes))
        return current

    def run(self, params, check_mode=False):
        spec = validate(params)
        self.spec = spec
        current = self.read(spec.name, with_volumes=spec.state == 'absent' and spec.delete_volumes)
        plan = build_plan(spec, current)
        result = plan.result()
        # A refresh is a step taken (and listed) even though it does not count as a change.
        result['actions'] = [action.describe() for action in plan.actions]
        if not check_mode:
            for action in plan.actions:
                getattr(self, '_op_' + action.op)(**action.params)
            if spec.state != 'absent' and plan.changed:
                self.confirm(spec)
            if spec.restart_policy == 'if_needed' and any(a.op == 'start' for a in plan.actions):
                result['pending_restart'] = False
                result['pending_restart_fields'] = []
        result['pool'] = {} if (spec.state == 'absent' or (check_mode and not current.exists)) \
            else facts(self.c, spec.name)
        return result

    def confirm(self, spec):
        current = self.read(spec.name)
        if not current.exists:
            raise VirtkitError('%s: the pool disappeared right after it was defined' % spec.name)
        fields = merge(parse(current.inactive_xml), spec).fields()
        if current.active and self.live_only:
            # This driver shows only the running config: restart fields wait for a restart.
            fields = [f for f in fields if f not in RESTART_FIELDS]
        if fields:
            raise VirtkitError('%s: libvirt did not keep %s as set' % (spec.name, ', '.join(fields)))

    def _call(self, operation, func, *args):
        return self.c.call(self.spec.name, operation, func, *args)

    def _op_define(self, xml):
        self.pool = self._call('define', self.conn.storagePoolDefineXML, xml, 0)

    def _op_build(self):
        lv = _libvirt.libvirt
        flags = lv.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE if (self.spec.type or 'dir') == 'logical' else 0
        self._call('build', self.pool.build, flags)

    def _op_start(self):
        self._call('start', self.pool.create, 0)

    def _op_destroy(self):
        self._call('stop', self.pool.destroy)

    def _op_refresh(self):
        self._call('refresh', self.pool.refresh, 0)

    def _op_autostart(self, value):
        self._call('set autostart', self.pool.setAutostart, 1 if value else 0)

    def _op_delete_volumes(self, names):
        self._call('refresh', self.pool.refresh, 0)
        for vol in self._call('list volumes', self.pool.listAllVolumes, 0):
            self.c.call('%s/%s' % (self.spec.name, vol.name()), 'delete volume', vol.delete, 0)

    def _op_delete(self):
        self._call('delete the pool directory', self.pool.delete, 0)

    def _op_undefine(self):
        self._call('undefine', self.pool.undefine)


def inactive_xml(connection, pool, name):
    """The persistent config, or None when the driver lacks the INACTIVE flag (the test driver)."""
    lv = _libvirt.libvirt
    try:
        return pool.XMLDesc(lv.VIR_STORAGE_XML_INACTIVE)
    except lv.libvirtError as err:
        if _libvirt.error_code(err) not in (lv.VIR_ERR_INVALID_ARG, lv.VIR_ERR_NO_SUPPORT):
            raise VirtkitError(_libvirt.explain(err, name, 'read config'))
    return None


def facts(connection, name):
    """What libvirt_pool and libvirt_pool_info return for one pool."""
    pool = connection.pool(name)
    if pool is None:
        return {}
    lv = _libvirt.libvirt
    active = bool(connection.call(name, 'read state', pool.isActive))
    text = None if active else inactive_xml(connection, pool, name)
    root = parse(text or connection.call(name, 'read config', pool.XMLDesc, 0))
    info = connection.call(name, 'read info', pool.info)
    perms = root.find('target/permissions')
    src = root.find('source')
    source = {}
    if src is not None and len(src):
        source = {
            'devices': [d.get('path') for d in src.findall('device')],
            'name': src.findtext('name'),
            'host': src.find('host').get('name') if src.find('host') is not None else None,
            'dir': src.find('dir').get('path') if src.find('dir') is not None else None,
            'format': src.find('format').get('type') if src.find('format') is not None else None,
        }
    return {
        'name': name,
        'uuid': root.findtext('uuid'),
        'type': root.get('type'),
        'state': 'running' if active else 'stopped',
        'autostart': bool(connection.call(name, 'read autostart', pool.autostart)),
        'persistent': bool(connection.call(name, 'read persistence', pool.isPersistent)),
        'path': root.findtext('target/path'),
        'mode': perms.findtext('mode') if perms is not None else None,
        'owner': perms.findtext('owner') if perms is not None else None,
        'group': perms.findtext('group') if perms is not None else None,
        'source': source,
        'capacity': info[1],
        'allocation': info[2],
        'available': info[3],
        'volumes': sorted(connection.call(name, 'list volumes', pool.listVolumes)) if active else [],
    }
