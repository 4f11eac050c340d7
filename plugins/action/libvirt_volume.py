# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for libvirt_volume: imports a file from the controller (remote_src=false).

The module first plans in check mode; only when that plan imports the image is the file
sent to the host's temporary directory, so a rerun with an unchanged checksum transfers
nothing. The module records and returns the controller path as the volume's source
(the private option ``_original_source``), not the temporary copy. Everything else is
the module's own work.
"""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

MODULE = 'virtkit.guests.libvirt_volume'


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        args.pop('_original_source', None)  # private: only this plugin sets it
        source = args.get('import_from')
        remote_src = boolean(args.get('remote_src', True), strict=False)
        if remote_src or not source or re.match(r'^[a-z]+://', str(source)):
            result.update(self._execute_module(MODULE, module_args=args, task_vars=task_vars))
            return result
        try:
            local = self._find_needle('files', source)
        except AnsibleError as err:
            result.update(failed=True, msg='import_from: %s is not a file on the controller (%s)' % (source, err))
            return result
        local = os.path.abspath(local)
        args.update(remote_src=True, _original_source=local)
        try:
            # Plan first: the volume may already hold this image (same checksum).
            probe = dict(args, import_from=local)
            check_mode = self._task.check_mode
            self._task.check_mode = True
            try:
                planned = self._execute_module(MODULE, module_args=probe, task_vars=task_vars)
            finally:
                self._task.check_mode = check_mode
            needs_file = any(a.get('action') in ('import_image', 'import_temp') for a in planned.get('actions') or [])
            if planned.get('failed') or check_mode:
                result.update(planned)
                return result
            if not needs_file:
                result.update(self._execute_module(MODULE, module_args=probe, task_vars=task_vars))
                return result
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            remote = self._connection._shell.join_path(tmpdir, os.path.basename(local))
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote))
            result.update(self._execute_module(MODULE, module_args=dict(args, import_from=remote),
                                               task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
