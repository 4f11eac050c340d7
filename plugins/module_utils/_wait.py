# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deadlines and bounded polling: every wait in the collection goes through here."""

from __future__ import annotations

import time


class WaitTimeout(Exception):
    """Raised by :func:`poll` when the deadline passes; carries the last observation."""

    def __init__(self, timeout, last=None):
        super().__init__('timed out after %s s' % timeout)
        self.timeout = timeout
        self.last = last


class Deadline:
    """A point in monotonic time; ``Deadline(0)`` is already expired."""

    def __init__(self, timeout, clock=time.monotonic):
        self._clock = clock
        self.timeout = max(0.0, float(timeout))
        self.start = clock()
        self.end = self.start + self.timeout

    def remaining(self):
        return max(0.0, self.end - self._clock())

    def elapsed(self):
        return self._clock() - self.start

    @property
    def expired(self):
        return self._clock() >= self.end


def poll(check, timeout, interval=0.25, max_interval=2.0, sleep=time.sleep, clock=time.monotonic):
    """Call ``check()`` until it returns something truthy or ``timeout`` seconds pass.

    The interval grows by half each round up to ``max_interval`` so short waits answer
    fast and long waits stay cheap. Returns the truthy value; raises :class:`WaitTimeout`
    with the last falsy observation otherwise. ``check`` is always called at least once.
    """
    deadline = Deadline(timeout, clock)
    last = None
    while True:
        last = check()
        if last:
            return last
        if deadline.expired:
            raise WaitTimeout(timeout, last)
        sleep(min(interval, max(deadline.remaining(), 0.01)))
        interval = min(interval * 1.5, max_interval)
