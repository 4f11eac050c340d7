# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and result pieces shared by every module.

A module first builds a :class:`Plan` from the current and the desired state with pure
code. Check mode returns the plan; a normal run hands the very same plan to an executor
that runs :attr:`Plan.actions` in order. Check mode and real runs cannot disagree.
"""

from __future__ import annotations


class Action:
    """One step of a plan: ``op`` names the executor method, ``params`` its arguments."""

    __slots__ = ('op', 'summary', 'params', 'changes')

    def __init__(self, op, summary, changes=True, **params):
        self.op = op
        self.summary = summary
        self.params = params
        # Some steps (waits, reads) are part of the plan but change nothing.
        self.changes = changes

    def describe(self):
        return {'action': self.op, 'summary': self.summary}

    def __repr__(self):
        return 'Action(%r, %r)' % (self.op, self.summary)


class Plan:
    """What a run would do: ordered actions, a readable diff, restart needs."""

    def __init__(self, name):
        self.name = name
        self.actions = []
        self.before = {}
        self.after = {}
        self.pending_restart = []

    def add(self, op, summary, changes=True, **params):
        action = Action(op, summary, changes=changes, **params)
        self.actions.append(action)
        return action

    @property
    def changed(self):
        return any(action.changes for action in self.actions)

    def describe(self):
        return [action.describe() for action in self.actions if action.changes]

    def result(self):
        """The keys every module returns for a plan: changed, actions, restarts, diff."""
        return {
            'changed': self.changed,
            'actions': self.describe(),
            'pending_restart': bool(self.pending_restart),
            'pending_restart_fields': list(self.pending_restart),
            'diff': self.diff(),
        }

    def diff(self):
        """Ansible's diff dictionary: before/after texts a human can read."""
        return {
            'before_header': '%s (before)' % self.name,
            'after_header': '%s (after)' % self.name,
            'before': _render(self.before),
            'after': _render(self.after),
        }


def _render(sections):
    """Render ``{'state': 'running', 'xml': '<domain>...'}`` as diffable text."""
    lines = []
    for key in sorted(sections):
        value = sections[key]
        if value is None:
            continue
        if isinstance(value, str) and '\n' in value:
            lines.append('%s:' % key)
            lines.extend('  ' + line for line in value.rstrip('\n').split('\n'))
        else:
            lines.append('%s: %s' % (key, value))
    return '\n'.join(lines) + ('\n' if lines else '')


def run_module(module, body):
    """Run ``body()`` for a module: VirtkitError becomes a one-line ``fail_json``.

    The ``diff`` key of the result is dropped unless diff mode is on.
    """
    from ansible_collections.virtkit.guests.plugins.module_utils._errors import VirtkitError
    try:
        result = body()
    except VirtkitError as err:
        module.fail_json(msg=str(err), **err.details)
    if not getattr(module, '_diff', False):
        result.pop('diff', None)
    module.exit_json(**result)
