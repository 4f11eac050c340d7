# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The second run is a no-op, as a property: the planner on what libvirt said of every row of
tests/integration/targets/libvirt_domain_noop at each of its rerun points.

fixtures/noop/<step>/<row>.json holds the row's options as the target rendered them,
``.facts.json`` what libvirt said (state, autostart, persistence), ``.live.xml`` and
``.inactive.xml`` the XML libvirt wrote, all captured from the real guests (libvirt 9.0.0,
QEMU 7.2) after they had settled: ``created`` after the create, ``restarted`` after a
stop and start through the module (a new QEMU process), ``reset`` after ``virsh reset``
(the same QEMU process), ``defined`` for the rows this host cannot start (defined only).
"""

from __future__ import annotations

import json
import os
from copy import deepcopy

import pytest
import yaml

from ansible_collections.virtkit.guests.plugins.module_utils._xml import parse, to_string
from ansible_collections.virtkit.guests.plugins.module_utils._domain import merge as xmerge
from ansible_collections.virtkit.guests.plugins.module_utils._domain.plan import (
    LIVE_NS, Current, LiveRequests, build_plan)
from ansible_collections.virtkit.guests.tests.unit.helpers import spec_of

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'fixtures', 'noop')
TARGET = os.path.join(HERE, '..', '..', '..', '..', 'integration', 'targets', 'libvirt_domain_noop',
                      'defaults', 'main.yml')
STEPS = ('defined', 'created', 'restarted', 'reset')
RUNNING_STEPS = STEPS[1:]


def _read(step, row, suffix):
    path = os.path.join(FIXTURES, step, row + suffix)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def cases():
    result = []
    for step in STEPS:
        for entry in sorted(os.listdir(os.path.join(FIXTURES, step))):
            if entry.endswith('.json') and not entry.endswith('.facts.json'):
                result.append((step, entry[:-len('.json')]))
    return result


def current_of(step, row):
    facts = json.loads(_read(step, row, '.facts.json'))
    inactive, live = _read(step, row, '.inactive.xml'), _read(step, row, '.live.xml')
    nvram = xmerge.nvram_path(parse(live).find('os')) if live else None
    return Current(row, True, facts['state'], inactive, live, facts['autostart'], facts['persistent'],
                   nvram=nvram, default_nvram=None)


def plan_of(step, row, current=None):
    options = json.loads(_read(step, row, '.json'))
    current = current or current_of(step, row)
    spec = spec_of(parse(current.inactive_xml).find('os/type').get('machine'), **options)
    return build_plan(spec, current, virt_type='qemu')


def test_every_row_of_the_target_has_its_captured_xml():
    with open(TARGET) as handle:
        defaults = yaml.safe_load(handle)
    captured = {step: {row for s, row in cases() if s == step} for step in STEPS}
    started = {row['name'] for row in defaults['noop_rows']}
    assert started and all(captured[step] == started for step in RUNNING_STEPS)
    assert captured['defined'] == {row['name'] for row in defaults['noop_defined_rows']}


@pytest.mark.parametrize('step,row', cases(), ids=['%s-%s' % case for case in cases()])
def test_the_rerun_of_every_row_plans_nothing(step, row):
    plan = plan_of(step, row)
    assert plan.actions == [] and not plan.changed
    assert plan.pending_restart == [] and plan.merged_xml is None
    assert plan.before == plan.after


@pytest.mark.parametrize('step', RUNNING_STEPS)
def test_a_guest_without_balloon_driver_is_at_its_maximum_with_the_start_recorded(step):
    """What makes the no-balloon row a no-op: the live XML says the guest is at its maximum
    (QEMU started it there and nothing moved it), and the module recorded at the start that
    libvirt asked the balloon for the memory. Without that record the rerun asks again."""
    current = current_of(step, 'vk-noop-noballoon')
    live = parse(current.live_xml)
    assert xmerge.read_kib(live.find('currentMemory')) == xmerge.read_kib(live.find('memory')) == 512 * 1024
    assert LiveRequests.read(live).balloon == (256 * 1024, 512 * 1024)
    plan = plan_of(step, 'vk-noop-noballoon')
    assert len(plan.warnings) == 1 and 'the guest is at 512 MiB, not at the 256 MiB' in plan.warnings[0]

    unrecorded = deepcopy(live)
    unrecorded.find('metadata').remove(unrecorded.find('metadata/{%s}live' % LIVE_NS))
    asked = plan_of(step, 'vk-noop-noballoon', Current(
        current.name, True, 'running', current.inactive_xml, to_string(unrecorded), current.autostart))
    assert [action.op for action in asked.actions] == ['set_memory']


@pytest.mark.parametrize('step', RUNNING_STEPS)
def test_a_guest_with_balloon_driver_reached_its_target_quietly(step):
    current = current_of(step, 'vk-noop-rich')
    live = parse(current.live_xml)
    assert xmerge.read_kib(live.find('currentMemory')) == 256 * 1024
    assert xmerge.read_kib(live.find('memory')) == 512 * 1024
    assert plan_of(step, 'vk-noop-rich').warnings == []
