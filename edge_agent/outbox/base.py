"""The outbox's file and its transactions, under the queue (:mod:`~edge_agent.outbox.store`)
as persist-queue puts ``sqlbase`` under its queues: one object, one lock.

Write failures (full disk, I/O error): the transaction is rolled back, so nothing
already stored is touched, and :class:`OutboxFull` / :class:`OutboxError` is raised. The
seqs a failed enqueue would have used are burnt and reported as ``unstored`` by the next
write that succeeds (unless the caller keeps the messages to retry, and burns them only
if it gives up: ``OutboxSink``).

Counters: those that must survive a restart (``last_seq``, totals, drops by class) are
kept in the ``meta`` table under string keys, in the transaction that changes them; what
the tables hold now (:class:`Depth`) is kept in RAM and recounted at open.

Threading: one SQLite connection guarded by one lock; every critical section is one
short transaction, so the pipeline never waits long for the publisher or the reverse.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import edge_agent.outbox.clock as wall_clock
import edge_agent.outbox.dead_letters as dead_letters
import edge_agent.outbox.gaps as gaps
import edge_agent.outbox.sqlite as sqlite
from edge_agent.outbox.sqlite import OutboxError, OutboxFull

_log = logging.getLogger("edge_agent.outbox")  # one logger name for the whole package

_FAILURE_LOG_INTERVAL_S = 60.0


@dataclass
class Depth:
    """What the tables hold now, kept in RAM (recounted from the tables at open).

    The store keeps one for its current state, and each transaction one of changes,
    added to the store's on commit.
    """

    rows: int = 0
    size_bytes: int = 0
    gap_seqs: int = 0  # in the gap ledger, not yet in a notice
    notice_rows: int = 0  # gap notices waiting to be delivered (at most one)
    dead_letter_rows: int = 0

    def __add__(self, other: Depth) -> Depth:
        return Depth(
            rows=self.rows + other.rows,
            size_bytes=self.size_bytes + other.size_bytes,
            gap_seqs=self.gap_seqs + other.gap_seqs,
            notice_rows=self.notice_rows + other.notice_rows,
            dead_letter_rows=self.dead_letter_rows + other.dead_letter_rows,
        )


@dataclass
class Deltas:
    """The changes one write transaction makes to the counters, applied on commit."""

    depth: Depth = field(default_factory=Depth)
    meta: dict[str, int] = field(default_factory=dict)  # persisted counters, by key

    def count(self, key: str, value: int) -> None:
        self.meta[key] = self.meta.get(key, 0) + value


class OutboxBase:
    """The file, its counters and one write transaction at a time; what is stored in it,
    and in which order it leaves, is :class:`~edge_agent.outbox.store.Outbox`'s."""

    def __init__(
        self,
        path: Path,
        *,
        lock_timeout_s: float,
        clock: Callable[[], float],
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.path = Path(path)
        self._lock_timeout_s = lock_timeout_s  # another process holding the file
        self._clock = clock
        # Steps of the wall clock (NTP on a Pi without RTC): watched only with a
        # monotonic clock to compare against (time.time's is time.monotonic).
        if monotonic is None and clock is time.time:
            monotonic = time.monotonic
        self._clock_watch = (
            None if monotonic is None else wall_clock.WallClockWatch(clock, monotonic)
        )
        self._step_pending_s = 0.0  # applied to this run's rows by the next write
        self._unset_stamps_checked = self._clock_watch is None  # rows stamped before 2020
        self._lock = threading.Lock()
        self.recovered_from: Path | None = None
        """Where a corrupt outbox found at open was moved to, or None."""
        self.recovery_reason: str | None = None
        sqlite.prepare(self.path)  # a directory, wrong owner...: OutboxError, nothing moved
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as error:
            if sqlite.is_busy(error):
                raise OutboxError(
                    f"outbox {self.path} is locked: is another edge-agent using it? ({error})"
                ) from error
            if not sqlite.is_corrupt(error):
                # Permissions, a full disk or an I/O error say nothing about the file: keep
                # it (and the messages in it) for when that is fixed; only a file SQLite
                # calls corrupt is reset.
                raise OutboxError(
                    f"outbox {self.path} cannot be opened: {error}. Check that it and its "
                    f"directory are readable and writable by the agent's user (uid "
                    f"{os.geteuid()}) and that the disk is writable and not full, then start "
                    "again; the stored messages are kept."
                ) from error
            self.recovered_from = sqlite.move_aside(self.path, error, self._clock())
            self.recovery_reason = str(error)
            sqlite.prepare(self.path)
            self._conn = self._open()
        sqlite.restrict_mode(self.path)
        # Counters persisted in the meta table, by key: "last_seq", "evicted:<class>"...
        self._meta: dict[str, int] = {
            str(k): int(v) for k, v in self._conn.execute("SELECT key, value FROM meta")
        }
        self._dirty: set[str] = set()  # meta counters changed in RAM only (burnt seqs)
        rows, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages"
        ).fetchone()
        (notices,) = self._conn.execute(
            "SELECT COUNT(*) FROM messages WHERE priority < 0"
        ).fetchone()
        self._depth = Depth(
            rows=int(rows),
            size_bytes=int(size),
            gap_seqs=gaps.pending_seqs(self._conn),
            notice_rows=int(notices),
            dead_letter_rows=dead_letters.count(self._conn),
        )
        self._unstored_pending: list[gaps.GapEntry] = []
        self._write_failures = 0
        self._failing_since_s: float | None = None
        self._last_failure_log_s = -float("inf")
        self._last_error: str | None = None
        self._closed = False
        self._first_seq_this_run = self._count("last_seq") + 1
        if self._clock_watch is not None and self._clock() < wall_clock.UNSET_BEFORE_S:
            _log.warning(
                "the wall clock says %s UTC: it is not set (no battery clock, NTP has not "
                "answered yet); event times are wrong and TLS fails until it is. Messages "
                "stored meanwhile keep their true age when it is set",
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self._clock())),
            )

    # -- opening and recovery -------------------------------------------------

    def _open(self) -> sqlite3.Connection:  # a method, so a test can make opening fail
        return sqlite.connect(self.path, lock_timeout_s=self._lock_timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def _count(self, key: str) -> int:
        return self._meta.get(key, 0)

    # -- the wall clock -------------------------------------------------------

    def _now_locked(self) -> float:
        """The wall time to stamp and judge ages with; a step since the last reading is
        noted, and the next write transaction re-stamps this run's rows by it."""
        if self._clock_watch is None:
            return self._clock()
        now_s, step_s = self._clock_watch.read()
        if step_s:
            self._step_pending_s += step_s
            _log.warning(
                "outbox: the wall clock was stepped by %+.0f s (NTP setting the clock?); "
                "the messages stored since start keep their true age for TTL and "
                "'historical' (their payload times are the old clock's)",
                step_s,
            )
        return now_s

    @property
    def _restamp_due(self) -> bool:
        if self._step_pending_s:
            return True
        return not self._unset_stamps_checked and self._clock() >= wall_clock.UNSET_BEFORE_S

    def _restamp_locked(self, conn: sqlite3.Connection) -> None:
        if self._step_pending_s:
            wall_clock.shift(conn, step_s=self._step_pending_s, from_seq=self._first_seq_this_run)
        now_s = self._clock()
        set_now = not self._unset_stamps_checked and now_s >= wall_clock.UNSET_BEFORE_S
        if set_now and wall_clock.stamp_unset(conn, now_s):
            _log.warning(
                "outbox: messages stamped by a clock that was not set (before 2020) "
                "count their age for TTL from now"
            )

    def _restamp_before_read_locked(self) -> None:
        """Before rows are read for sending: a step not yet applied is applied now, so the
        stamps the publisher judges 'historical' by are true (it reads the same wall
        clock). A write that fails leaves them as they are: said by the write error."""
        self._now_locked()
        if self._restamp_due:
            try:
                with self._transaction("re-stamp"):
                    pass
            except OutboxError:
                pass

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def _transaction(self, what: str) -> Iterator[Deltas]:
        """One write transaction; yields the counter changes, applied on commit.

        ``deltas.depth`` lives in RAM only; ``deltas.meta`` is persisted in ``meta`` in
        the same transaction. On any SQLite error the transaction is rolled back and
        :class:`OutboxError` (or :class:`OutboxFull`) is raised; RAM state is untouched,
        because callers only update it after the ``with`` block.
        """
        conn = self._conn
        deltas = Deltas()
        flushed_unstored = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            restamped = self._restamp_due
            if restamped:
                self._restamp_locked(conn)
            if self._unstored_pending:
                deltas.depth.gap_seqs += gaps.add_gaps(conn, self._unstored_pending)
                flushed_unstored = True
            yield deltas
            for key in self._dirty | deltas.meta.keys():
                sqlite.set_meta(conn, key, self._count(key) + deltas.meta.get(key, 0))
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback_quietly()
            raise self._write_failed(what, error) from error
        except OSError as error:  # e.g. the WAL could not grow
            self._rollback_quietly()
            raise self._write_failed(what, error) from error
        except BaseException:
            self._rollback_quietly()
            raise
        for key, delta in deltas.meta.items():
            self._meta[key] = self._count(key) + delta
        self._depth = self._depth + deltas.depth
        self._dirty.clear()
        if restamped:
            self._step_pending_s = 0.0
            self._unset_stamps_checked |= self._clock() >= wall_clock.UNSET_BEFORE_S
        if flushed_unstored:
            self._unstored_pending = []
        if self._failing_since_s is not None:
            _log.warning(
                "outbox %s is writable again after %d failed write(s); %d message(s) could "
                "not be stored meanwhile (reported as 'unstored' gaps)",
                self.path,
                self._write_failures,
                sum(v for k, v in self._meta.items() if k.startswith("unstored:")),
            )
            self._failing_since_s = None

    def _rollback_quietly(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as error:  # SQLite may already have rolled back itself
            _log.debug("rollback after a failed write: %s", error)

    def _write_failed(self, what: str, error: BaseException) -> OutboxError:
        full = sqlite.is_disk_full(error)
        self._write_failures += 1
        kind = "disk full" if full else "write error"
        self._last_error = f"{kind} during {what}: {error}"
        now_s = time.monotonic()
        if self._failing_since_s is None:
            self._failing_since_s = now_s
            self._last_failure_log_s = now_s
            _log.error(
                "outbox %s: %s during %s (%s). Nothing already stored is affected; new "
                "messages cannot be stored until this is fixed.",
                self.path,
                kind,
                what,
                error,
            )
        elif now_s - self._last_failure_log_s >= _FAILURE_LOG_INTERVAL_S:
            self._last_failure_log_s = now_s
            _log.error(
                "outbox %s: still failing (%s); %d failed write(s) so far",
                self.path,
                error,
                self._write_failures,
            )
        message = f"outbox {self.path}: {kind} during {what}: {error}"
        return OutboxFull(message) if full else OutboxError(message)

    def _burn_locked(self, class_names: Sequence[str]) -> None:
        """Messages that will never be stored: their seqs are used up and reported as
        ``unstored`` by the next write that succeeds (in RAM until then)."""
        first_seq = self._count("last_seq") + 1
        self._meta["last_seq"] = first_seq - 1 + len(class_names)
        self._dirty.add("last_seq")
        for seq, class_name in enumerate(class_names, start=first_seq):
            key = f"unstored:{class_name}"
            self._meta[key] = self._count(key) + 1
            self._dirty.add(key)
            self._unstored_pending.append((seq, class_name, "unstored"))

    @property
    def accepting_writes(self) -> bool:
        """False from a failed write until the next one that succeeds (the watchdog's test)."""
        return self._failing_since_s is None and not self._closed

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._unstored_pending:
                    _log.error(
                        "outbox closing with %d unstored seq(s) not yet recorded; they will "
                        "be reused after restart (they were never delivered)",
                        len(self._unstored_pending),
                    )
                self._conn.close()
