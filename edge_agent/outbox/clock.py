"""The wall clock the outbox stamps its rows with, watched for steps.

A Raspberry Pi has no battery-backed clock: it boots with the time fake-hwclock saved at
the last shutdown (or 1970 without it), and NTP then *steps* it, by hours or years,
forward or now and then back. The outbox stamps each row with the wall time it was stored,
for the TTL and the ``historical`` flag. A row stamped before a forward step would look
that much older: a step of days would expire a whole outage's backlog at once. A row
stamped before a backward step would outlive its TTL.

So every reading is compared with the monotonic clock, which no one steps: when their
difference changes by more than ``STEP_THRESHOLD_S`` the wall clock was stepped, and the
rows this run stored before the step are re-stamped by it (their true age is kept). Rows an
earlier run stored are left alone (their stamps were that run's clock; this run cannot tell
right from wrong), except rows stamped before 2020, which no set clock made: they count
their age from the first write after the clock is set. The payloads' own times (an event's
``ts``) are not changed: they say what the device's clock said when it made them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from edge_agent.types import CLOCK_SET_AFTER_S, MessageClass

STEP_THRESHOLD_S = 1.0
"""A change in (wall - monotonic) beyond this is a step. NTP *slews* small offsets at
most 0.5 ms a second, so slewing reaches this only after half an hour between readings
(the outbox reads the clock about once a second), and is then re-stamped as a step."""

UNSET_BEFORE_S = CLOCK_SET_AFTER_S
"""A stamp before this was made by a clock that was never set (``types.CLOCK_SET_AFTER_S``)."""


class WallClockWatch:
    """Reads the wall clock and says by how much it was stepped since the last reading."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        threshold_s: float = STEP_THRESHOLD_S,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._threshold_s = threshold_s
        self._offset_s: float | None = None  # wall - monotonic, as of the last step

    def read(self) -> tuple[float, float]:
        """``(now_s, step_s)``: the wall time, and the step since the last reading (0.0)."""
        monotonic_s = self._monotonic()
        now_s = self._wall()
        offset_s = now_s - monotonic_s
        if self._offset_s is None:
            self._offset_s = offset_s
            return now_s, 0.0
        step_s = offset_s - self._offset_s
        if abs(step_s) <= self._threshold_s:
            return now_s, 0.0
        self._offset_s = offset_s
        return now_s, step_s


def shift(conn: sqlite3.Connection, *, step_s: float, from_seq: int) -> int:
    """Shift the stamps of rows with ``seq >= from_seq`` by ``step_s`` (inside the
    caller's write transaction); returns how many rows it changed."""
    cursor = conn.execute(
        "UPDATE messages SET created_at_s = created_at_s + ? WHERE seq >= ?",
        (step_s, from_seq),
    )
    return cursor.rowcount


def stamp_unset(conn: sqlite3.Connection, now_s: float) -> int:
    """Give rows stamped by an unset clock the time ``now_s`` (inside the caller's write
    transaction; once a run, when the clock is set). Gap notices are never expired: left."""
    classes = [cls.value for cls in MessageClass]  # by class: the age index, not a scan
    cursor = conn.execute(
        "UPDATE messages SET created_at_s = ? WHERE message_class IN"
        f" ({', '.join('?' * len(classes))}) AND created_at_s < ?",
        (now_s, *classes, UNSET_BEFORE_S),
    )
    return cursor.rowcount
