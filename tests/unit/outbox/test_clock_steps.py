"""Wall-clock steps (a Pi without RTC, set by NTP after boot) and the outbox's TTL.

The wall clock and the monotonic clock are both fakes: a step moves the wall clock only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fakes.clock import FakeClock
from fakes.outbox import assert_accounts_balance, event, open_outbox, seqs

from edge_agent.outbox import Outbox
from edge_agent.outbox.clock import WallClockWatch
from edge_agent.types import MessageClass

A, E, T = MessageClass.ALERT, MessageClass.EVENT, MessageClass.THUMBNAIL
DAY_S = 86_400.0
FAKE_HWCLOCK_S = 1_780_000_000.0  # the time fake-hwclock saved at the last shutdown


class Clocks:
    """A wall clock and a monotonic clock that advance together; ``step`` moves the wall."""

    def __init__(self, wall_s: float) -> None:
        self.wall = FakeClock(wall_s)
        self.monotonic = FakeClock(100.0)

    def advance(self, seconds: float) -> None:
        self.wall.now_s += seconds
        self.monotonic.now_s += seconds

    def step(self, seconds: float) -> None:
        self.wall.now_s += seconds


def _box(path: Path, clocks: Clocks, **caps: Any) -> Outbox:
    return open_outbox(path, clocks.wall, monotonic=clocks.monotonic, **caps)


def test_a_forward_step_of_days_does_not_expire_what_is_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks(FAKE_HWCLOCK_S)
    box = _box(tmp_path / "o.db", clocks, ttl_s={T: DAY_S, E: 3 * DAY_S, A: 7 * DAY_S})
    box.enqueue_many([event(0, E), event(1, T), event(2, A)])  # no network, no NTP yet
    clocks.advance(60)
    with caplog.at_level(logging.WARNING, "edge_agent.outbox"):
        clocks.step(10 * DAY_S)  # the post had been powered off for ten days
        assert box.expire() == {}
    assert "wall clock was stepped by +864000 s" in caplog.text
    assert seqs(box) == [1, 2, 3]
    # their ages are true again: 60 s, plus what passes from now on
    stored = box.pending(10)
    assert all(clocks.wall.now_s - m.created_at_s == pytest.approx(60.0) for m in stored)
    clocks.advance(DAY_S)  # the thumbnail's TTL passes, measured from when it was stored
    assert box.expire() == {"thumbnail": 1}
    assert seqs(box) == [1, 3]
    assert_accounts_balance(box)


def test_a_step_from_1970_keeps_the_backlog_and_its_ttl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks(30.0)  # no fake-hwclock: the kernel's epoch
    with caplog.at_level(logging.WARNING, "edge_agent.outbox"):
        box = _box(tmp_path / "o.db", clocks, ttl_s={E: 3 * DAY_S})
    assert "the wall clock says 1970-01-01 00:00:30 UTC: it is not set" in caplog.text
    box.enqueue(event(0))
    clocks.advance(5)
    box.enqueue(event(1))
    clocks.step(FAKE_HWCLOCK_S)
    box.enqueue(event(2))  # the step is applied by the first write after it
    assert seqs(box) == [1, 2, 3]
    assert [round(clocks.wall.now_s - m.created_at_s) for m in box.pending(10)] == [5, 0, 0]
    clocks.advance(3 * DAY_S - 1)
    assert box.expire() == {"event": 1}  # stored 5 s earlier: past its TTL first
    assert seqs(box) == [2, 3]


def test_a_backward_step_does_not_keep_rows_past_their_ttl(tmp_path: Path) -> None:
    clocks = Clocks(FAKE_HWCLOCK_S)
    box = _box(tmp_path / "o.db", clocks, ttl_s={E: 600.0})
    box.enqueue(event(0))
    clocks.step(-6 * 3600)  # the clock had run six hours ahead
    clocks.advance(601)
    assert box.expire() == {"event": 1}
    assert seqs(box) == []


def test_rows_an_earlier_run_stamped_with_an_unset_clock_count_from_when_it_is_set(
    tmp_path: Path,
) -> None:
    clocks = Clocks(30.0)
    box = _box(tmp_path / "o.db", clocks, ttl_s={E: 600.0})
    box.enqueue(event(0))
    box.close()  # power cut before NTP answered; the next boot has a set clock
    clocks = Clocks(FAKE_HWCLOCK_S)
    box = _box(tmp_path / "o.db", clocks, ttl_s={E: 600.0})
    assert box.expire() == {}
    assert seqs(box) == [1]
    clocks.advance(601)
    assert box.expire() == {"event": 1}


def test_rows_an_earlier_run_stamped_with_a_set_clock_keep_their_stamps(tmp_path: Path) -> None:
    clocks = Clocks(FAKE_HWCLOCK_S)
    box = _box(tmp_path / "o.db", clocks, ttl_s={E: 3 * DAY_S})
    box.enqueue(event(0))
    box.close()
    # powered off for four days; this boot starts at the fake-hwclock save, then NTP
    clocks = Clocks(FAKE_HWCLOCK_S + 60)
    box = _box(tmp_path / "o.db", clocks, ttl_s={E: 3 * DAY_S})
    box.enqueue(event(1))
    clocks.step(4 * DAY_S)
    assert box.expire() == {"event": 1}  # the earlier run's row is truly four days old
    assert seqs(box) == [2]  # this run's row is a second old


def test_slewing_below_the_threshold_is_not_a_step() -> None:
    clocks = Clocks(FAKE_HWCLOCK_S)
    watch = WallClockWatch(clocks.wall, clocks.monotonic)
    assert watch.read() == (FAKE_HWCLOCK_S, 0.0)
    clocks.advance(1.0)
    clocks.step(0.0005)
    assert watch.read()[1] == 0.0
    clocks.step(-2.5)
    assert watch.read()[1] == pytest.approx(-2.4995)
    assert watch.read()[1] == 0.0  # said once


def test_without_a_monotonic_clock_a_fake_wall_clock_is_taken_as_it_is(tmp_path: Path) -> None:
    wall = FakeClock(FAKE_HWCLOCK_S)
    box = open_outbox(tmp_path / "o.db", wall, ttl_s={E: 10.0})
    box.enqueue(event(0))
    wall.now_s += 11
    assert box.expire() == {"event": 1}


@pytest.mark.parametrize("urgent", [False, True])
def test_rows_claimed_after_a_step_carry_their_true_age(tmp_path: Path, urgent: bool) -> None:
    # The broker comes back as NTP sets the clock: the publisher claims before any write
    # has re-stamped; 'historical' is decided from the claimed rows' stamps.
    clocks = Clocks(0.0)  # 1970: no battery clock, no fake-hwclock
    box = _box(tmp_path / "o.db", clocks)
    box.enqueue_many([event(0, A if urgent else E)])
    clocks.advance(10)
    clocks.step(FAKE_HWCLOCK_S)
    (claimed,) = box.claim(10, urgent=urgent)
    assert clocks.wall.now_s - claimed.created_at_s == pytest.approx(10.0)
