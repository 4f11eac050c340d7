# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side timestamps for the benchmarks under benchmarks/ (not part of the collection).

Records, for every task, the monotonic time its start was announced and the time each loop
item's and the task's final result reached the controller, with the item's changed/failed
flags. Costs one time.perf_counter() call and a list append per event, the same for every
task, so it cannot favour one side of a comparison. At the end of the run it writes
everything as JSON to the file named by the environment variable VIRTKIT_BENCH_TIMES.
"""

from __future__ import annotations

DOCUMENTATION = r'''
name: virtkit_bench_timer
type: aggregate
short_description: Record task and loop item timestamps for the virtkit.guests benchmarks
description:
  - Writes task start and result timestamps (time.perf_counter) as JSON to the file named by
    the environment variable E(VIRTKIT_BENCH_TIMES) when the playbook ends.
requirements:
  - enable in configuration (ANSIBLE_CALLBACKS_ENABLED=virtkit_bench_timer)
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'virtkit_bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tasks = []
        self._by_uuid = {}

    def _record(self, task_uuid):
        return self._by_uuid.get(task_uuid)

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.perf_counter()
        entry = {'name': task.get_name(), 'start': now, 'end': None, 'items': [],
                 'changed': None, 'failed': None}
        self._tasks.append(entry)
        self._by_uuid[task._uuid] = entry

    def _item(self, result, failed):
        now = time.perf_counter()
        entry = self._record(result._task._uuid)
        if entry is None:
            return
        res = result._result
        item = {'t': now, 'changed': bool(res.get('changed')), 'failed': failed}
        if res.get('ansible_job_id') and not res.get('finished'):
            item['async_started'] = True  # an async job launched (poll 0): its result comes later
        if isinstance(res.get('stat'), dict):
            item['exists'] = res['stat'].get('exists')
        if failed:
            item['msg'] = str(res.get('msg', ''))[:500]
        entry['items'].append(item)

    def v2_runner_item_on_ok(self, result):
        self._item(result, False)

    def v2_runner_item_on_failed(self, result):
        self._item(result, True)

    def _final(self, result, failed):
        now = time.perf_counter()
        entry = self._record(result._task._uuid)
        if entry is None:
            return
        res = result._result
        entry['end'] = now
        entry['changed'] = bool(res.get('changed'))
        entry['failed'] = failed
        if not entry['items']:  # not a loop: the task is its own single item
            item = {'t': now, 'changed': entry['changed'], 'failed': failed}
            if isinstance(res.get('stat'), dict):
                item['exists'] = res['stat'].get('exists')
            if failed:
                item['msg'] = str(res.get('msg', ''))[:500]
            entry['items'].append(item)

    def v2_runner_on_ok(self, result):
        self._final(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._final(result, True)

    def v2_runner_on_unreachable(self, result):
        self._final(result, True)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('VIRTKIT_BENCH_TIMES')
        if not path:
            return
        with open(path, 'w') as handle:
            json.dump({'tasks': self._tasks}, handle, indent=1)
