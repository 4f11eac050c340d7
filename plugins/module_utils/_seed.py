# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cloud-init NoCloud seed ISOs: render, build in memory (pycdlib), plan, store.

The ISO is byte-for-byte deterministic for the same input: the files are added in a
fixed order and every timestamp pycdlib would take from the clock is a fixed instant.
Contents never leave this module except as digests and sizes.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import traceback

from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
from ansible_collections.virtkit.guests.plugins.module_utils._resource import Plan
from ansible_collections.virtkit.guests.plugins.module_utils._storage import stream_digest, upload_volume, volume_sizes

try:
    import pycdlib
    import pycdlib.dates
    import pycdlib.headervd
    import pycdlib.pycdlib
    import pycdlib.utils
except ImportError:
    pycdlib = None
    PYCDLIB_IMPORT_ERROR = traceback.format_exc()
else:
    PYCDLIB_IMPORT_ERROR = None

try:
    import yaml
except ImportError:
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    YAML_IMPORT_ERROR = None

VOLUME_LABEL = 'cidata'
# 2000-01-01T00:00:00Z: every date in the ISO (volume descriptors, directory records,
# Rock Ridge TF entries) is this instant, in UTC.
FIXED_EPOCH = 946684800.0
# The NoCloud file names, in the order they are written, and their ISO9660 level-3 names.
FILES = (
    ('meta-data', 'META_DATA.;1'),
    ('network-config', 'NETWORK_CONFIG.;1'),
    ('user-data', 'USER_DATA.;1'),
    ('vendor-data', 'VENDOR_DATA.;1'),
)
OPTION_OF = {'user-data': 'user_data', 'meta-data': 'meta_data',
             'network-config': 'network_config', 'vendor-data': 'vendor_data'}

ARGUMENT_SPEC = {
    'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    'path': {'type': 'path'},
    'pool': {'type': 'str'},
    'name': {'type': 'str'},
    'user_data': {'type': 'raw', 'no_log': True},
    'meta_data': {'type': 'raw'},
    'network_config': {'type': 'raw', 'no_log': True},
    'vendor_data': {'type': 'raw', 'no_log': True},
    'instance_id': {'type': 'str'},
    'hostname': {'type': 'str'},
    'mode': {'type': 'raw', 'default': '0600'},
}
MUTUALLY_EXCLUSIVE = [('path', 'pool'), ('path', 'name')]
REQUIRED_ONE_OF = [('path', 'pool')]
REQUIRED_TOGETHER = [('pool', 'name')]


CONTENT_OPTIONS = ('user_data', 'network_config', 'vendor_data')
MASK = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def _leaves(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


def conceal_content(module):
    """Keep the no_log contents out of results without mangling the results.

    ``no_log`` on a dict option makes Ansible mask every leaf value of it (``2``,
    ``true``, ``curl``...) as a substring of every returned string, which would turn the
    digests and paths this module returns into garbage. The contents never reach a result
    here (only digests do), so their leaves are taken off the mask list, and the options
    themselves are replaced by Ansible's mask in ``module.params`` so that the
    ``invocation`` of every result (success or failure) shows the mask. Returns the real
    parameters for the module's own use.
    """
    params = dict(module.params)
    leaves = set()
    for option in CONTENT_OPTIONS:
        if params.get(option) is not None:
            leaves.update(_leaves(params[option]))
            module.params[option] = MASK
    module.no_log_values.difference_update(leaves)
    return params


def require_libs(module):
    from ansible.module_utils.basic import missing_required_lib
    if pycdlib is None:
        module.fail_json(msg=missing_required_lib('pycdlib'), exception=PYCDLIB_IMPORT_ERROR)
    if yaml is None:
        module.fail_json(msg=missing_required_lib('PyYAML'), exception=YAML_IMPORT_ERROR)


# ------------------------------------------------------------------ rendering

def _yaml(data):
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True, allow_unicode=True, width=1000)


def _text(value):
    if isinstance(value, bytes):
        return value
    return str(value).encode('utf-8')


def render_user_data(value, option='user_data'):
    """A dict becomes ``#cloud-config`` YAML; text is used as given (it needs its header)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return ('#cloud-config\n' + _yaml(value)).encode('utf-8')
    if isinstance(value, str):
        head = value.lstrip()[:40].lower()
        if not (head.startswith('#') or head.startswith('content-type:') or head.startswith('mime-version:')):
            raise VirtkitError('%s: text must start with a header cloud-init knows (#cloud-config, '
                               '#!, #include, ...) or be MIME multipart; give a dict to have it '
                               'rendered as #cloud-config' % option)
        return _text(value)
    raise VirtkitError('%s: must be a dict (rendered as #cloud-config YAML) or text, not %s'
                       % (option, type(value).__name__))


def render_network_config(value):
    if value is None:
        return None
    if isinstance(value, dict):
        if 'version' not in value and 'network' not in value:
            raise VirtkitError('network_config: needs a "version" key (1 or 2) or a top-level "network" key')
        return _yaml(value).encode('utf-8')
    if isinstance(value, str):
        return _text(value)
    raise VirtkitError('network_config: must be a dict (rendered as YAML) or text, not %s' % type(value).__name__)


def default_instance_id(params):
    if params.get('name'):
        base = params['name']
    else:
        base = os.path.basename(params['path'] or '')
        base = base.rsplit('.', 1)[0] if '.' in base else base
    return 'iid-' + (base or 'seed')


def render_meta_data(params):
    value = params.get('meta_data')
    if isinstance(value, str):
        if params.get('instance_id') or params.get('hostname'):
            raise VirtkitError('meta_data: instance_id and hostname can only be merged into a dict meta_data, '
                               'not into text; put them in the text')
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise VirtkitError('meta_data: not valid YAML: %s' % ' '.join(str(err).split()))
        if not isinstance(parsed, dict) or not parsed.get('instance-id'):
            raise VirtkitError('meta_data: text must be a YAML mapping with an instance-id')
        return _text(value), str(parsed['instance-id'])
    if value is not None and not isinstance(value, dict):
        raise VirtkitError('meta_data: must be a dict or YAML text, not %s' % type(value).__name__)
    data = dict(value or {})
    if params.get('instance_id'):
        data['instance-id'] = params['instance_id']
    data.setdefault('instance-id', default_instance_id(params))
    if params.get('hostname'):
        data['local-hostname'] = params['hostname']
    return _yaml(data).encode('utf-8'), str(data['instance-id'])


def parse_mode(value):
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            raise VirtkitError('mode: %r is not an octal file mode such as 0600' % (value,))
    if mode < 0 or mode > 0o7777:
        raise VirtkitError('mode: %r is not an octal file mode such as 0600' % (value,))
    return mode


class Seed:
    """The validated request: where it goes and the rendered files (never shown)."""

    def __init__(self, params):
        self.state = params['state']
        self.path = params.get('path')
        self.pool = params.get('pool')
        self.volume = params.get('name')
        self.mode = parse_mode(params.get('mode', '0600'))
        self.files = {}
        self.instance_id = None
        if self.path is not None and not os.path.isabs(self.path):
            raise VirtkitError('path: %s is not an absolute path' % self.path)
        if self.state == 'absent':
            return
        if params.get('user_data') is None:
            raise VirtkitError('user_data is required with state=present (an empty dict gives an empty #cloud-config)')
        self.files['user-data'] = render_user_data(params['user_data'])
        self.files['meta-data'], self.instance_id = render_meta_data(params)
        net = render_network_config(params.get('network_config'))
        if net is not None:
            self.files['network-config'] = net
        vendor = render_user_data(params.get('vendor_data'), 'vendor_data')
        if vendor is not None:
            self.files['vendor-data'] = vendor

    @property
    def target(self):
        return self.path if self.path else '%s/%s' % (self.pool, self.volume)


def validate(params):
    return Seed(params)


# ------------------------------------------------------------------ the ISO

class _FixedClock:
    """Stands in for the ``time`` module inside pycdlib while an ISO is built."""

    def __init__(self, real):
        self._real = real

    def time(self):
        return FIXED_EPOCH

    def localtime(self, secs=None):
        return self._real.gmtime(FIXED_EPOCH if secs is None else secs)

    def __getattr__(self, name):
        return getattr(self._real, name)


_PATCHED_MODULES = ('pycdlib', 'headervd', 'dates', 'utils')


def build_iso(files):
    """The seed ISO for ``files`` ({'user-data': bytes, ...}) as bytes.

    ISO9660 level 3 with Rock Ridge 1.09 and Joliet level 3 (what genisoimage -J -r
    gives), volume label ``cidata``, files at the root in a fixed order, every date fixed.
    """
    if pycdlib is None:
        raise VirtkitError('pycdlib is not installed')
    modules = [getattr(pycdlib, name) for name in _PATCHED_MODULES]
    saved = [module.time for module in modules]
    try:
        for module in modules:
            module.time = _FixedClock(saved[0])
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, vol_ident=VOLUME_LABEL, sys_ident='LINUX',
                app_ident_str='virtkit.guests cloud_init_seed', joliet=3, rock_ridge='1.09')
        for name, iso_name in FILES:
            if name not in files:
                continue
            data = files[name]
            iso.add_fp(io.BytesIO(data), len(data), '/' + iso_name, rr_name=name,
                       joliet_path='/' + name, file_mode=0o100444)
        out = io.BytesIO()
        iso.write_fp(out)
        iso.close()
    finally:
        for module, original in zip(modules, saved):
            module.time = original
    return out.getvalue()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def describe_files(files):
    return dict((name, {'sha256': sha256(data), 'size': len(data)}) for name, data in sorted(files.items()))


# ------------------------------------------------------------------ current state and plan

class Current:
    """What is stored now: ``exists``, the ISO digest and, for files, the mode."""

    def __init__(self, exists=False, digest=None, mode=None, size=None, path=None):
        self.exists = exists
        self.digest = digest
        self.mode = mode
        self.size = size
        self.path = path


def read_file(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Current(False)
    except OSError as err:
        raise VirtkitError('%s: cannot read: %s' % (path, err.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise VirtkitError('%s: exists and is not a regular file' % path)
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except OSError as err:
        raise VirtkitError('%s: cannot read: %s' % (path, err.strerror))
    return Current(True, sha256(data), stat.S_IMODE(st.st_mode), len(data), path)


def build_plan(seed, current, iso=None):
    plan = Plan(seed.target)
    plan.before = {'state': 'present' if current.exists else 'absent'}
    if current.exists:
        plan.before['sha256'] = current.digest
        if seed.path and current.mode is not None:
            plan.before['mode'] = '%04o' % current.mode
    if seed.state == 'absent':
        plan.after = {'state': 'absent'}
        if current.exists:
            plan.add('delete_file' if seed.path else 'delete_volume', 'delete the seed %s' % seed.target)
        return plan
    digest = sha256(iso)
    plan.after = {'state': 'present', 'sha256': digest, 'instance_id': seed.instance_id}
    if current.exists:
        plan.before['instance_id'] = seed.instance_id if current.digest == digest else '(unknown)'
    for name, info in describe_files(seed.files).items():
        plan.after['%s_sha256' % name.replace('-', '_')] = info['sha256']
    if seed.path:
        plan.after['mode'] = '%04o' % seed.mode
    if not current.exists or current.digest != digest:
        if seed.path:
            plan.add('write_file', 'write the seed ISO %s (%d bytes)' % (seed.path, len(iso)))
        else:
            plan.add('upload_volume', 'upload the seed ISO to volume %s (%d bytes)' % (seed.target, len(iso)))
    elif seed.path and current.mode != seed.mode:
        plan.add('chmod', 'set mode %04o on %s' % (seed.mode, seed.path))
    return plan


def write_atomic(path, data, mode):
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise VirtkitError('%s: cannot write the seed: directory %s does not exist' % (path, directory))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise VirtkitError('%s: cannot write the seed: %s' % (path, err.strerror))


# ------------------------------------------------------------------ the run

MAX_VOLUME_READ = 64 * 1024 * 1024


class SeedManager:
    """Plans and stores a seed; ``connect()`` opens the libvirt connection for pools only."""

    def __init__(self, connect=None):
        self._connect = connect
        self.c = None

    def connection(self):
        if self.c is None:
            self.c = self._connect()
        return self.c

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None

    def read_volume(self, seed):
        c = self.connection()
        pool = c.pool(seed.pool)
        if pool is None:
            if seed.state == 'absent':
                return Current(False)
            raise VirtkitError('%s: the storage pool %s does not exist' % (seed.target, seed.pool))
        if not c.call(seed.pool, 'read pool state', pool.isActive):
            raise VirtkitError('%s: the storage pool %s is not running' % (seed.target, seed.pool))
        vol = c.volume(pool, seed.volume)
        if vol is None:
            return Current(False)
        path = c.call(seed.target, 'read volume path', vol.path)
        size = volume_sizes(c, vol, seed.target)[1]
        if size > MAX_VOLUME_READ:
            return Current(True, 'too-large-to-be-a-seed', None, size, path)
        return Current(True, stream_digest(c, vol, size, seed.target), None, size, path)

    def run(self, params, check_mode=False):
        seed = validate(params)
        iso = build_iso(seed.files) if seed.state == 'present' else None
        current = read_file(seed.path) if seed.path else self.read_volume(seed)
        plan = build_plan(seed, current, iso)
        result = {'changed': plan.changed, 'actions': plan.describe(), 'diff': plan.diff()}
        if not check_mode:
            self.seed, self.iso = seed, iso
            for action in plan.actions:
                getattr(self, '_op_' + action.op)(**action.params)
            if plan.changed:
                current = read_file(seed.path) if seed.path else self.read_volume(seed)
                if seed.state == 'present' and current.digest != sha256(iso):
                    raise VirtkitError('%s: the stored seed does not match what was written' % seed.target)
                if seed.state == 'absent' and current.exists:
                    raise VirtkitError('%s: the seed is still there after delete' % seed.target)
        if seed.state == 'present':
            result.update({
                'path': current.path if current.exists else (seed.path or None),
                'sha256': sha256(iso),
                'size': len(iso),
                'instance_id': seed.instance_id,
                'files': describe_files(seed.files),
            })
        else:
            result['path'] = seed.path or None
        return result

    def _op_write_file(self):
        write_atomic(self.seed.path, self.iso, self.seed.mode)

    def _op_chmod(self):
        try:
            os.chmod(self.seed.path, self.seed.mode)
        except OSError as err:
            raise VirtkitError('%s: cannot set mode: %s' % (self.seed.path, err.strerror))

    def _op_delete_file(self):
        try:
            os.unlink(self.seed.path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise VirtkitError('%s: cannot delete the seed: %s' % (self.seed.path, err.strerror))

    def _op_upload_volume(self):
        upload_volume(self.connection(), self.seed.pool, self.seed.volume, self.iso, fmt='raw')

    def _op_delete_volume(self):
        c = self.connection()
        pool = c.pool(self.seed.pool)
        vol = c.volume(pool, self.seed.volume) if pool is not None else None
        if vol is not None:
            c.call(self.seed.target, 'delete the volume', vol.delete, 0)
