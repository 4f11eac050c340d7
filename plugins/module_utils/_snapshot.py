# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt domain snapshots: XML, plan with pure code, execute the same plan, facts.

A revert is recorded in the guest's metadata (``<vksnap:reverted name=... state=.../>`` in
our own namespace, ``state`` being the ``revert_state`` asked for): a rerun is not changed
while that snapshot is still the current one and the record names it and the same
``revert_state``. Creating another snapshot makes that one current, so a later revert to
the first runs again; so does a revert to the same snapshot with another ``revert_state``.
The guest's power state at rerun time is not compared (it may have been started or stopped
on purpose since). A record without ``state`` (written before it was recorded) matches any
``revert_state``, so an upgrade never reverts a guest again by surprise. A revert asked to
end ``running`` or ``paused`` is recorded only once the guest is seen in that state. The
record lives in the persistent config of a persistent guest and in the live XML of a
transient one.

Reverting to an external snapshot (disk-only overlays or external memory) needs libvirt 9.9
or later; on an older daemon the plan refuses it with one line, before anything is touched.
"""

from __future__ import annotations

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._libvirt import error_code, explain, libvirt
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._xml import Editor, parse, to_string

try:
    from lxml import etree
except ImportError:  # pragma: no cover - reported by the module
    etree = None

MARK_NS = 'https://virtkit.dev/xmlns/snapshot/1'
MARK_PREFIX = 'vksnap'

ARGUMENT_SPEC = {
    'domain': {'type': 'str', 'required': True},
    'name': {'type': 'str', 'required': True},
    'state': {'type': 'str', 'choices': ['present', 'absent', 'reverted'], 'default': 'present'},
    'description': {'type': 'str'},
    'disk_only': {'type': 'bool', 'default': False},
    'force_revert': {'type': 'bool', 'default': False},
    'revert_state': {'type': 'str', 'choices': ['snapshot', 'running', 'paused']},
}


# libvirt reverts external snapshots since 9.9.0 (getLibVersion() encoding).
EXTERNAL_REVERT_VERSION = 9009000


def _flag(name):
    return getattr(libvirt, name, 0) if libvirt is not None else 0


def version_string(version):
    """``9000000`` -> ``'9.0.0'`` (libvirt's getLibVersion() encoding)."""
    return '%d.%d.%d' % (version // 1000000, version // 1000 % 1000, version % 1000)


def is_external(facts):
    """True when a snapshot (its facts) keeps any disk or its memory outside the qcow2 disks."""
    return facts.get('memory') == 'external' or any(
        disk.get('snapshot') == 'external' for disk in facts.get('disks') or [])


def revert_flags(revert_state):
    """The ``virDomainRevertToSnapshot`` flags for ``revert_state``.

    ``snapshot`` (0): the guest ends in the state the snapshot was taken in (shut off,
    running or paused), whatever it is now. ``running``/``paused`` start (or keep) the guest
    in that state, also from a snapshot taken shut off.
    """
    return {'running': _flag('VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING'),
            'paused': _flag('VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED')}.get(revert_state, 0)


def metadata_flags(persistent, active, write=False):
    """Where the revert record is read from / written to.

    Persistent guests keep it in the persistent config (and, when written on a running
    guest, in the live XML too); transient guests have only live XML: libvirt refuses
    AFFECT_CONFIG on them. Reading takes exactly one of the two.
    """
    if not persistent:
        return _flag('VIR_DOMAIN_AFFECT_LIVE')
    flags = _flag('VIR_DOMAIN_AFFECT_CONFIG')
    if write and active:
        flags |= _flag('VIR_DOMAIN_AFFECT_LIVE')
    return flags


class SnapshotSpec:
    def __init__(self, params):
        self.domain = params['domain']
        self.name = params['name']
        self.state = params['state']
        self.description = params.get('description')
        self.disk_only = bool(params.get('disk_only'))
        self.force_revert = bool(params.get('force_revert'))
        self.revert_state = params.get('revert_state') or 'snapshot'
        if not self.name or '/' in self.name:
            raise VirtkitError('%s: snapshot name %r is empty or contains "/"' % (self.domain, self.name))
        if self.state != 'present' and (self.disk_only or self.description is not None):
            raise VirtkitError('%s: description and disk_only apply to state=present only' % self.domain)
        if self.state != 'reverted' and (self.force_revert or params.get('revert_state')):
            raise VirtkitError('%s: force_revert and revert_state apply to state=reverted only' % self.domain)


def validate(params):
    return SnapshotSpec(params)


def snapshot_xml(spec):
    """The ``<domainsnapshot>`` a new snapshot is created from."""
    root = etree.Element('domainsnapshot')
    etree.SubElement(root, 'name').text = spec.name
    if spec.description is not None:
        etree.SubElement(root, 'description').text = spec.description
    if spec.disk_only:
        etree.SubElement(root, 'memory').set('snapshot', 'no')
    return root


def snapshot_facts(xml, current=False):
    """Facts of one snapshot from its XML (``getXMLDesc``)."""
    root = parse(xml, 'snapshot XML')
    memory = root.find('memory')
    disks = []
    for disk in root.findall('disks/disk'):
        source = disk.find('source')
        disks.append({'target': disk.get('name'), 'snapshot': disk.get('snapshot'),
                      'file': source.get('file') if source is not None else None})
    creation = root.findtext('creationTime')
    return {
        'name': root.findtext('name'),
        'description': root.findtext('description'),
        'state': root.findtext('state'),
        'parent': root.findtext('parent/name'),
        'creation_time': int(creation) if creation else None,
        'memory': memory.get('snapshot') if memory is not None else None,
        'disks': disks,
        'current': bool(current),
    }


class Current:
    """The guest and the named snapshot as read now."""

    def __init__(self, domain_exists=False, snapshot=None, current_name=None, reverted_to=None,
                 domain_state=None, libvirt_version=None, reverted_state=None):
        self.domain_exists = domain_exists
        self.snapshot = snapshot          # facts dict or None
        self.current_name = current_name  # the domain's current snapshot
        self.reverted_to = reverted_to    # our metadata record of the last revert
        self.reverted_state = reverted_state  # its revert_state; None: no record, or one from before it was kept
        self.domain_state = domain_state
        self.libvirt_version = libvirt_version  # the daemon's, read only for reverts


def _view(spec, current):
    snap = current.snapshot
    if snap is None:
        return {'snapshot': 'absent'}
    view = {'snapshot': 'present', 'description': snap.get('description'),
            'current': current.current_name == spec.name}
    if spec.state == 'reverted':
        view['reverted_to'] = current.reverted_to or '(none)'
        if current.reverted_to is None:
            view['revert_state'] = '(none)'
        else:
            view['revert_state'] = current.reverted_state or '(not recorded)'
    return view


def already_reverted(spec, current):
    """True when the record says the guest was reverted to ``spec.name`` with ``spec.revert_state``
    and that snapshot is still the current one (a record without a state matches any)."""
    return (current.current_name == spec.name and current.reverted_to == spec.name and
            current.reverted_state in (None, spec.revert_state))


def build_plan(spec, current):
    """Pure: (spec, current) -> Plan. Check mode returns it; a real run executes it."""
    if not current.domain_exists:
        if spec.state == 'absent':
            plan = Plan('%s/%s' % (spec.domain, spec.name))
            plan.before = plan.after = {'snapshot': 'absent'}
            return plan
        raise VirtkitError('%s: the guest does not exist (snapshot %s)' % (spec.domain, spec.name))
    plan = Plan('%s/%s' % (spec.domain, spec.name))
    plan.before = _view(spec, current)
    after = dict(plan.before)
    snap = current.snapshot
    if spec.state == 'absent':
        if snap is not None:
            plan.add('delete', 'delete snapshot %s of %s' % (spec.name, spec.domain))
            after = {'snapshot': 'absent'}
    elif spec.state == 'present':
        if snap is None:
            if spec.disk_only:
                kind = 'disk-only (external overlays)'
            elif current.domain_state in ('running', 'paused'):
                kind = 'with memory'
            else:
                kind = 'of the disks'
            plan.add('create', 'create snapshot %s of %s %s' % (spec.name, spec.domain, kind))
            after = {'snapshot': 'present', 'description': spec.description, 'current': True}
        elif spec.description is not None and snap.get('description') != spec.description:
            plan.add('set_description', 'set the description of snapshot %s' % spec.name,
                     description=spec.description)
            after['description'] = spec.description
    else:  # reverted
        if snap is None:
            raise VirtkitError('%s: cannot revert to snapshot %s: it does not exist' % (spec.domain, spec.name))
        if spec.force_revert or not already_reverted(spec, current):
            if (is_external(snap) and current.libvirt_version is not None and
                    current.libvirt_version < EXTERNAL_REVERT_VERSION):
                raise VirtkitError('%s: cannot revert to snapshot %s: it is external (disk-only or external memory) '
                                   'and reverting external snapshots needs libvirt 9.9 or later; this host runs %s'
                                   % (spec.domain, spec.name, version_string(current.libvirt_version)))
            plan.add('revert', 'revert %s to snapshot %s%s' % (
                spec.domain, spec.name, '' if spec.revert_state == 'snapshot' else ' (ending %s)' % spec.revert_state))
            after.update({'current': True, 'reverted_to': spec.name, 'revert_state': spec.revert_state})
    plan.after = after
    return plan


class SnapshotManager:
    """Reads, plans and executes snapshot changes over one :class:`Connection`."""

    def __init__(self, connection):
        self.c = connection
        self.dom = None

    def _call(self, operation, func, *args):
        return self.c.call(self.subject, operation, func, *args)

    def _lookup_snapshot(self, name):
        try:
            return self.dom.snapshotLookupByName(name, 0)
        except libvirt.libvirtError as err:
            if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return None
            raise VirtkitError(explain(err, self.subject, 'snapshot lookup'))

    def _current_name(self):
        try:
            if not self.dom.hasCurrentSnapshot(0):
                return None
            return self.dom.snapshotCurrent(0).getName()
        except libvirt.libvirtError as err:
            if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return None
            raise VirtkitError(explain(err, self.subject, 'read the current snapshot'))

    def _reverted_to(self, persistent, active):
        flags = metadata_flags(persistent, active)
        try:
            text = self.dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, MARK_NS, flags)
        except libvirt.libvirtError as err:
            if error_code(err) == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None, None
            raise VirtkitError(explain(err, self.subject, 'read metadata'))
        record = parse(text, 'snapshot metadata')
        return record.get('name'), record.get('state')

    def _power_state(self):
        """``(state name, active, persistent)``; the name is paused, running or shutoff."""
        state = self._call('read state', self.dom.state)[0]
        active = self._call('read state', self.dom.isActive)
        persistent = self._call('read persistence', self.dom.isPersistent)
        if state == libvirt.VIR_DOMAIN_PAUSED:
            state_name = 'paused'
        elif active:
            state_name = 'running'  # also blocked, suspended to RAM, crashed but kept
        else:
            state_name = 'shutoff'
        return state_name, active, persistent

    def read(self, domain, name, reverting=False):
        self.subject = domain
        self.dom = self.c.domain(domain)
        if self.dom is None:
            return Current(False)
        state_name, active, persistent = self._power_state()
        current_name = self._current_name()
        snap = self._lookup_snapshot(name)
        facts = None
        if snap is not None:
            facts = snapshot_facts(self._call('read snapshot %s' % name, snap.getXMLDesc, 0),
                                   current_name == name)
        version = self._call('read the libvirt version', self.c.conn.getLibVersion) if reverting else None
        reverted_to, reverted_state = self._reverted_to(persistent, active)
        return Current(True, facts, current_name, reverted_to, state_name, version, reverted_state)

    def run(self, params, check_mode=False):
        spec = validate(params)
        current = self.read(spec.domain, spec.name, spec.state == 'reverted')
        plan = build_plan(spec, current)
        result = {'changed': plan.changed, 'actions': plan.describe(), 'diff': plan.diff()}
        if not check_mode:
            self.spec = spec
            for action in plan.actions:
                getattr(self, '_op_' + action.op)(**action.params)
            if plan.changed:
                current = self.read(spec.domain, spec.name)
                self.confirm(spec, current)
        # In check mode: the snapshot as it is now (empty when it does not exist yet).
        result['snapshot'] = current.snapshot or {}
        return result

    def confirm(self, spec, current):
        snap = current.snapshot
        if spec.state == 'absent' and snap is not None:
            raise VirtkitError('%s: snapshot %s is still there after delete' % (spec.domain, spec.name))
        if spec.state == 'present' and (snap is None or (spec.description is not None and
                                                         snap.get('description') != spec.description)):
            raise VirtkitError('%s: snapshot %s was not created as asked' % (spec.domain, spec.name))
        if spec.state == 'reverted' and current.domain_exists and current.current_name != spec.name:
            raise VirtkitError('%s: snapshot %s is not the current one after the revert (current: %s)'
                               % (spec.domain, spec.name, current.current_name))

    # ------------------------------------------------------------ operations

    def _op_create(self):
        xml = to_string(snapshot_xml(self.spec))
        flags = _flag('VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY') if self.spec.disk_only else 0
        if self.spec.disk_only and self.dom.isActive():
            flags |= _flag('VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC')
        self._call('create snapshot %s' % self.spec.name, self.dom.snapshotCreateXML, xml, flags)

    def _op_set_description(self, description):
        snap = self._lookup_snapshot(self.spec.name)
        root = parse(self._call('read snapshot', snap.getXMLDesc, _flag('VIR_DOMAIN_SNAPSHOT_XML_SECURE')))
        ed = Editor(root)
        el = ed.child(root, 'description', 'description')
        ed.text(el, description, 'description')
        flags = _flag('VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE')
        if self._current_name() == self.spec.name:
            flags |= _flag('VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT')
        self._call('redefine snapshot %s' % self.spec.name, self.dom.snapshotCreateXML, to_string(root), flags)

    def _op_delete(self):
        snap = self._lookup_snapshot(self.spec.name)
        if snap is not None:
            self._call('delete snapshot %s' % self.spec.name, snap.delete, 0)

    def _op_revert(self):
        snap = self._lookup_snapshot(self.spec.name)
        if snap is None:
            raise VirtkitError('%s: cannot revert to snapshot %s: it disappeared' % (self.spec.domain, self.spec.name))
        wanted = self.spec.revert_state
        self._call('revert to snapshot %s' % self.spec.name, self.dom.revertToSnapshot, snap, revert_flags(wanted))
        try:
            state_name, active, persistent = self._power_state()
        except VirtkitError:
            if self.c.domain(self.spec.domain) is not None:
                raise
            state_name = None  # a transient guest reverted to shut off is gone
        if wanted in ('running', 'paused') and state_name != wanted:
            # not recorded: a rerun reverts again
            raise VirtkitError('%s: after the revert to snapshot %s the guest is %s, not %s as revert_state asks'
                               % (self.spec.domain, self.spec.name, state_name or 'gone', wanted))
        if state_name is None:
            return
        root = etree.Element('reverted')
        root.set('name', self.spec.name)
        root.set('state', wanted)
        affect = metadata_flags(persistent, active, write=True)
        self._call('record the revert in metadata', self.dom.setMetadata, libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                   to_string(root), MARK_PREFIX, MARK_NS, affect)

    # ------------------------------------------------------------ info

    def list(self, domain, name=None):
        self.subject = domain
        self.dom = self.c.domain(domain)
        if self.dom is None:
            raise VirtkitError('%s: the guest does not exist' % domain)
        current_name = self._current_name()
        if name is not None:
            snaps = [s for s in [self._lookup_snapshot(name)] if s is not None]
        else:
            snaps = self._call('list snapshots', self.dom.listAllSnapshots, 0)
        facts = [snapshot_facts(self._call('read snapshot', s.getXMLDesc, 0), s.getName() == current_name)
                 for s in snaps]
        facts.sort(key=lambda f: (f['creation_time'] or 0, f['name']))
        return {'snapshots': facts, 'current': current_name}
