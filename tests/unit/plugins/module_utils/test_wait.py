# -*- coding: utf-8 -*-
# Copyright: virtkit.guests contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.virtkit.guests.plugins.module_utils._wait import Deadline, WaitTimeout, poll


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self, now=1000.0):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0, 'poll must never sleep zero or negative seconds'
        self.sleeps.append(seconds)
        self.now += seconds


def test_deadline_counts_down_with_the_clock():
    clock = FakeClock()
    deadline = Deadline(10, clock)
    assert deadline.timeout == 10.0
    assert deadline.remaining() == 10.0
    assert deadline.elapsed() == 0.0
    assert not deadline.expired
    clock.now += 4
    assert deadline.remaining() == 6.0
    assert deadline.elapsed() == 4.0
    clock.now += 6
    assert deadline.expired
    assert deadline.remaining() == 0.0
    clock.now += 100
    assert deadline.remaining() == 0.0  # never negative


def test_deadline_zero_and_negative_are_already_expired():
    clock = FakeClock()
    assert Deadline(0, clock).expired
    negative = Deadline(-5, clock)
    assert negative.timeout == 0.0
    assert negative.expired


def test_poll_returns_the_first_truthy_value_without_sleeping():
    clock = FakeClock()
    assert poll(lambda: 'ready', 10, sleep=clock.sleep, clock=clock) == 'ready'
    assert clock.sleeps == []


def test_poll_retries_until_truthy_with_growing_interval():
    clock = FakeClock()
    answers = iter([None, [], 0, '', {'ip': '10.0.0.2'}])
    result = poll(lambda: next(answers), 60, interval=0.25, max_interval=0.5, sleep=clock.sleep, clock=clock)
    assert result == {'ip': '10.0.0.2'}
    # 0.25, then x1.5 each round, capped at max_interval.
    assert clock.sleeps == [0.25, 0.375, 0.5, 0.5]


def test_poll_times_out_with_the_last_observation_and_is_bounded():
    clock = FakeClock()
    calls = []

    def check():
        calls.append(clock.now)
        return [] if len(calls) < 3 else None

    with pytest.raises(WaitTimeout) as err:
        poll(check, 5, interval=1, max_interval=2, sleep=clock.sleep, clock=clock)
    assert err.value.timeout == 5
    assert err.value.last is None
    assert str(err.value) == 'timed out after 5 s'
    # It never sleeps past the deadline and stops right after it.
    assert clock.now - 1000.0 <= 5.0 + 1e-9
    assert sum(clock.sleeps) <= 5.0 + 1e-9
    assert len(calls) <= 10


def test_poll_calls_check_once_even_with_zero_timeout():
    clock = FakeClock()
    calls = []

    def check():
        calls.append(1)
        return False

    with pytest.raises(WaitTimeout) as err:
        poll(check, 0, sleep=clock.sleep, clock=clock)
    assert calls == [1]
    assert err.value.last is False
    assert clock.sleeps == []


def test_poll_with_a_long_timeout_stays_cheap():
    clock = FakeClock()
    calls = []

    def check():
        calls.append(1)

    with pytest.raises(WaitTimeout):
        poll(check, 300, interval=0.25, max_interval=2.0, sleep=clock.sleep, clock=clock)
    # 300 s at most every 2 s: about 150 checks plus the ramp-up, not thousands.
    assert len(calls) < 160
    assert max(clock.sleeps) == 2.0
