"""The outbox itself: one SQLite connection, one lock, every queue operation.

Group commit: one fsync per commit, amortised: every public write is one transaction
for a batch. The one exception is :meth:`Outbox.ack`: deletes of delivered rows are
fsynced at most once a second, since losing one only means sending that message again.

Bounds: ``max_rows`` and ``max_bytes``, enforced in the transaction that would exceed
them (:mod:`~edge_agent.outbox.bounds` chooses what goes).

Claims live in RAM only: after a restart every row is unclaimed and is sent again if it
was not deleted, which is at-least-once.

Write failures (full disk, I/O error): the transaction is rolled back, so nothing
already stored is touched, and :class:`OutboxFull` / :class:`OutboxError` is raised. The
seqs a failed enqueue would have used are burnt and reported as ``unstored`` by the next
write that succeeds.

Counters: those that must survive a restart (``last_seq``, totals, drops by class) are
kept in the ``meta`` table under string keys, in the transaction that changes them; what
the tables hold now (:class:`_Depth`) is kept in RAM and recounted at open.

Threading: one SQLite connection guarded by one lock; every critical section is one
short transaction, so the pipeline never waits long for the publisher or the reverse.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import edge_agent.outbox.bounds as bounds
import edge_agent.outbox.dead_letters as dead_letters
import edge_agent.outbox.gaps as gaps
import edge_agent.outbox.lifecycles as lifecycles
import edge_agent.outbox.sqlite as sqlite
from edge_agent.encode import encode_gap_notice
from edge_agent.outbox.records import (
    EVICTION_PRIORITY,
    NOTICE_CLASS,
    NOTICE_PRIORITY,
    SELECT_COLUMNS,
    URGENT_MAX_PRIORITY,
    DeadLetter,
    OutboxStats,
    StoredMessage,
    dump_user_properties,
    row_to_message,
    stored_message,
)
from edge_agent.outbox.sqlite import CHUNK, OutboxError, OutboxFull
from edge_agent.types import MessageClass, OutboundMessage

if TYPE_CHECKING:
    from edge_agent.config import OutboxConfig

_log = logging.getLogger("edge_agent.outbox")  # one logger name for the whole package

_FAILURE_LOG_INTERVAL_S = 60.0
_ACK_FSYNC_INTERVAL_S = 1.0


@dataclass
class _Depth:
    """What the tables hold now, kept in RAM (recounted from the tables at open).

    The store keeps one for its current state, and each transaction one of changes,
    added to the store's on commit.
    """

    rows: int = 0
    size_bytes: int = 0
    gap_seqs: int = 0  # in the gap ledger, not yet in a notice
    notice_rows: int = 0  # gap notices waiting to be delivered (at most one)
    dead_letter_rows: int = 0

    def __add__(self, other: _Depth) -> _Depth:
        return _Depth(
            rows=self.rows + other.rows,
            size_bytes=self.size_bytes + other.size_bytes,
            gap_seqs=self.gap_seqs + other.gap_seqs,
            notice_rows=self.notice_rows + other.notice_rows,
            dead_letter_rows=self.dead_letter_rows + other.dead_letter_rows,
        )


@dataclass
class _Deltas:
    """The changes one write transaction makes to the counters, applied on commit."""

    depth: _Depth = field(default_factory=_Depth)
    meta: dict[str, int] = field(default_factory=dict)  # persisted counters, by key

    def count(self, key: str, value: int) -> None:
        self.meta[key] = self.meta.get(key, 0) + value


class Outbox:
    """A durable, bounded queue of outbound MQTT messages (see the module docstring).

    >>> import tempfile
    >>> from edge_agent.types import MessageClass, OutboundMessage
    >>> box = Outbox(Path(tempfile.mkdtemp()) / "o.db", max_bytes=1 << 20, max_rows=100)
    >>> stored = box.enqueue(OutboundMessage("t/e", MessageClass.EVENT, json_body={"v": 1}))
    >>> stored.seq, stored.payload
    (1, b'{"v":1,"seq":1}')
    >>> box.ack([stored.row_id]); box.depth()
    0
    >>> box.close()
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_rows: int,
        ttl_s: Mapping[MessageClass, float] | None = None,
        dead_letter_max_rows: int = 1000,
        lock_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0 or max_rows <= 0:
            raise ValueError("max_bytes and max_rows must be positive")
        if dead_letter_max_rows < 0:
            raise ValueError("dead_letter_max_rows must not be negative")
        ttl = dict(ttl_s or {})
        for cls, value in ttl.items():
            if cls not in EVICTION_PRIORITY:
                raise ValueError(f"no TTL for {cls.value!r}: it is never buffered")
            if not value > 0:
                raise ValueError(f"TTL for {cls.value} must be positive, not {value}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.ttl_s: dict[MessageClass, float] = ttl
        self.dead_letter_max_rows = dead_letter_max_rows
        self._lock_timeout_s = lock_timeout_s  # another process holding the file
        self._clock = clock
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
        self._depth = _Depth(
            rows=int(rows),
            size_bytes=int(size),
            gap_seqs=gaps.pending_seqs(self._conn),
            notice_rows=int(notices),
            dead_letter_rows=dead_letters.count(self._conn),
        )
        self._urgent_epoch = 0  # bumped when urgent rows may have become claimable
        self._claimed: set[int] = set()
        self._last_fsync_s = -float("inf")  # monotonic time of the last fsynced commit
        self._unstored_pending: list[gaps.GapEntry] = []
        self._write_failures = 0
        self._failing_since_s: float | None = None
        self._last_failure_log_s = -float("inf")
        self._last_error: str | None = None
        self._closed = False
        self._warn_if_disk_too_small()

    @classmethod
    def from_config(cls, config: OutboxConfig, *, clock: Callable[[], float] = time.time) -> Outbox:
        ttl = config.ttl_s
        return cls(
            config.path,
            max_bytes=config.max_bytes,
            max_rows=config.max_rows,
            ttl_s={
                MessageClass.ALERT: ttl.alert,
                MessageClass.EVENT: ttl.event,
                MessageClass.STATE: ttl.state,
                MessageClass.THUMBNAIL: ttl.thumbnail,
            },
            clock=clock,
        )

    # -- opening and recovery -------------------------------------------------

    def _open(self) -> sqlite3.Connection:  # a method, so a test can make opening fail
        return sqlite.connect(self.path, lock_timeout_s=self._lock_timeout_s)

    def _warn_if_disk_too_small(self) -> None:
        try:
            usage = shutil.disk_usage(self.path.parent)
            own = self.path.stat().st_size
        except OSError:
            return
        if usage.free + own < self.max_bytes:
            _log.warning(
                "outbox %s: max_bytes is %d but only %d bytes are free on its filesystem; "
                "a long outage will fill the disk before the cap (writes then fail loudly)",
                self.path,
                self.max_bytes,
                usage.free + own,
            )

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def _count(self, key: str) -> int:
        return self._meta.get(key, 0)

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def _transaction(self, what: str) -> Iterator[_Deltas]:
        """One write transaction; yields the counter changes, applied on commit.

        ``deltas.depth`` lives in RAM only; ``deltas.meta`` is persisted in ``meta`` in
        the same transaction. On any SQLite error the transaction is rolled back and
        :class:`OutboxError` (or :class:`OutboxFull`) is raised; RAM state is untouched,
        because callers only update it after the ``with`` block.
        """
        conn = self._conn
        deltas = _Deltas()
        flushed_unstored = False
        try:
            conn.execute("BEGIN IMMEDIATE")
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

    # -- writing --------------------------------------------------------------

    def enqueue(self, message: OutboundMessage) -> StoredMessage:
        return self.enqueue_many([message])[0]

    def enqueue_many(self, messages: Sequence[OutboundMessage]) -> list[StoredMessage]:
        """Store ``messages`` durably in one transaction, giving each the next ``seq``.

        Returns once the batch is on disk. Raises ``ValueError`` (storing nothing, using
        no seq) if a message is malformed, and :class:`OutboxFull` / :class:`OutboxError`
        if the disk refuses the write: then nothing is stored, the seqs are burnt and
        reported as ``unstored``. A returned message may already have been evicted if
        the outbox was full of more important ones; ``stats()`` counts it.
        """
        if not messages:
            return []
        for message in messages:
            if message.message_class not in EVICTION_PRIORITY:
                raise ValueError(
                    f"{message.message_class.value} messages are never buffered; "
                    "the publisher sends them directly"
                )
            if message.qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, not {message.qos}")
        with self._lock:
            self._check_open()
            now_s = self._clock()
            first_seq = self._count("last_seq") + 1
            stored = [  # row ids filled in below
                stored_message(message, seq, now_s)
                for seq, message in enumerate(messages, start=first_seq)
            ]
            result: list[StoredMessage] = []
            evicted: dict[str, int] = {}
            try:
                with self._transaction("enqueue") as deltas:
                    for item in stored:
                        row_id = self._insert_locked(item, EVICTION_PRIORITY[item.message_class])
                        lifecycles.track(self._conn, messages[item.seq - first_seq])
                        deltas.depth.rows += 1
                        deltas.depth.size_bytes += item.size_bytes
                        result.append(replace(item, row_id=row_id))
                    deltas.count("last_seq", len(stored))
                    deltas.count("enqueued_total", len(stored))
                    if self._over_cap(deltas):
                        self._expire_locked(now_s, deltas)
                    if self._over_cap(deltas):
                        evicted = self._evict_locked(deltas)
            except OutboxError:
                self._burn_locked(stored)
                raise
            self._last_fsync_s = time.monotonic()
            if any(item.urgent for item in result):
                self._urgent_epoch += 1
        if evicted:
            _log.warning(
                "outbox full (max_rows=%d, max_bytes=%d): evicted %s (reported on the gaps topic)",
                self.max_rows,
                self.max_bytes,
                ", ".join(f"{n} {cls}" for cls, n in sorted(evicted.items())),
            )
        return result

    def _insert_locked(self, item: StoredMessage, priority: int) -> int:
        """Insert one message row; its ``row_id``."""
        cursor = self._conn.execute(
            "INSERT INTO messages (seq, topic, payload, qos, retain, message_class, priority,"
            " created_at_s, content_type, user_properties, size_bytes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.seq,
                item.topic,
                item.payload,
                item.qos,
                int(item.retain),
                item.message_class.value,
                priority,
                item.created_at_s,
                item.content_type,
                dump_user_properties(item.user_properties),
                item.size_bytes,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def open_lifecycles(self) -> list[OutboundMessage]:
        """The last ``new``/``update`` of every event and alert whose ``end`` was never
        stored (the previous run died with them open), in the order of their last step."""
        with self._lock:
            self._check_open()
            return lifecycles.last_steps(self._conn)

    def _burn_locked(self, stored: Sequence[StoredMessage]) -> None:
        """A failed enqueue: its seqs are used up and reported as 'unstored' later."""
        self._meta["last_seq"] = self._count("last_seq") + len(stored)
        self._dirty.add("last_seq")
        for item in stored:
            key = f"unstored:{item.message_class.value}"
            self._meta[key] = self._count(key) + 1
            self._dirty.add(key)
            self._unstored_pending.append((item.seq, item.message_class.value, "unstored"))

    def _over_cap(self, deltas: _Deltas) -> bool:
        depth = self._depth + deltas.depth
        return depth.rows > self.max_rows or depth.size_bytes > self.max_bytes

    def _delete_rows_locked(self, victims: Sequence[bounds.Victim]) -> None:
        """Delete the victims' rows in chunks."""
        ids = [v.row_id for v in victims]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            self._conn.execute(f"DELETE FROM messages WHERE row_id IN ({marks})", chunk)

    def _drop_locked(
        self, victims: Sequence[bounds.Victim], reason: str, deltas: _Deltas
    ) -> dict[str, int]:
        by_class: dict[str, int] = {}
        if not victims:
            return by_class
        self._delete_rows_locked(victims)
        for victim in victims:
            cls = victim.message_class
            by_class[cls] = by_class.get(cls, 0) + 1
            deltas.depth.rows -= 1
            deltas.depth.size_bytes -= victim.size_bytes
        for cls, n in by_class.items():
            deltas.count(f"{reason}:{cls}", n)
        dropped = [(v.seq, v.message_class, reason) for v in victims]
        deltas.depth.gap_seqs += gaps.add_gaps(self._conn, dropped)
        return by_class

    def _evict_locked(self, deltas: _Deltas) -> dict[str, int]:
        """Delete lowest-priority, oldest unclaimed rows until under both caps."""
        depth = self._depth + deltas.depth
        victims = bounds.eviction_victims(
            self._conn,
            rows=depth.rows,
            size_bytes=depth.size_bytes,
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            claimed=self._claimed,
        )
        return self._drop_locked(victims, "evicted", deltas)

    def _expire_locked(self, now_s: float, deltas: _Deltas) -> dict[str, int]:
        victims = bounds.expired_victims(self._conn, self.ttl_s, now_s, self._claimed)
        return self._drop_locked(victims, "expired", deltas)

    def expire(self) -> dict[str, int]:
        """Drop unclaimed rows older than their class TTL; returns counts by class.

        The publisher calls this about once a second; enqueue also does it before
        evicting anything, so expired rows make room first.
        """
        if not self.ttl_s:
            return {}
        with self._lock:
            self._check_open()
            now_s = self._clock()
            if not bounds.any_expired(self._conn, self.ttl_s, now_s):
                return {}
            with self._transaction("expire") as deltas:
                expired = self._expire_locked(now_s, deltas)
        if expired:
            _log.warning(
                "outbox: dropped %s past their TTL (reported on the gaps topic)",
                ", ".join(f"{n} {cls}" for cls, n in sorted(expired.items())),
            )
        return expired

    def issue_gap_notice(self, topic: str) -> StoredMessage | None:
        """Turn pending gap ranges into one durable, urgent notice row (or None).

        None when nothing is pending or a notice is still waiting to be delivered (at
        most one at a time: notices cannot pile up during an outage). The payload is
        :func:`edge_agent.encode.gap_notice_body`'s, with the notice's own ``seq``.
        """
        with self._lock:
            self._check_open()
            if self._depth.gap_seqs == 0 or self._depth.notice_rows > 0:
                return None
            now_s = self._clock()
            with self._transaction("gap notice") as deltas:
                ranges = gaps.ranges(self._conn, gaps.MAX_RANGES_PER_NOTICE)
                if not ranges:
                    return None
                covered = sum(last - first + 1 for first, last, _detail in ranges)
                seq = self._count("last_seq") + deltas.meta.get("last_seq", 0) + 1
                notice = encode_gap_notice(topic, ranges, now_s)
                stored = stored_message(notice, seq, now_s, is_gap_notice=True)
                stored = replace(stored, row_id=self._insert_locked(stored, NOTICE_PRIORITY))
                gaps.forget_through(self._conn, ranges[-1][0])
                for key in ("last_seq", "enqueued_total", "gap_notices_total"):
                    deltas.count(key, 1)
                deltas.depth.rows += 1
                deltas.depth.size_bytes += stored.size_bytes
                deltas.depth.notice_rows += 1
                deltas.depth.gap_seqs -= covered
            self._urgent_epoch += 1
        _log.info(
            "gap notice seq %d lists %d lost seq(s) in %d range(s)", seq, covered, len(ranges)
        )
        return stored

    def ack(self, row_ids: Iterable[int]) -> None:
        """Delete delivered messages in one transaction; unknown ids are ignored."""
        ids = sorted(set(row_ids))
        if not ids:
            return
        with self._lock:
            self._check_open()
            # Deletes are fsynced at most once a second: a power cut can only undo the
            # last second of acks, which means sending those again (at-least-once). Any
            # later fsync (an enqueue's) makes them durable too, since the WAL is written
            # in order. Saves one fsync per batch on the drain path (1-20 ms on an SD card).
            now_s = time.monotonic()
            if now_s - self._last_fsync_s < _ACK_FSYNC_INTERVAL_S:
                self._conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._ack_locked(ids)
                finally:
                    self._conn.execute("PRAGMA synchronous=FULL")
            else:
                self._ack_locked(ids)
                self._last_fsync_s = now_s

    def _ack_locked(self, ids: Sequence[int]) -> None:
        with self._transaction("ack") as deltas:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                marks = ",".join("?" * len(chunk))
                # SELECT then DELETE rather than DELETE ... RETURNING (SQLite >= 3.35).
                rows, size, notices = self._conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0),"
                    " COALESCE(SUM(priority < 0), 0) FROM messages"
                    f" WHERE row_id IN ({marks})",
                    chunk,
                ).fetchone()
                self._conn.execute(f"DELETE FROM messages WHERE row_id IN ({marks})", chunk)
                deltas.count("acked_total", int(rows))
                deltas.depth.rows -= int(rows)
                deltas.depth.size_bytes -= int(size)
                deltas.depth.notice_rows -= int(notices)
        self._claimed.difference_update(ids)

    def dead_letter(self, refused: Sequence[tuple[StoredMessage, str]]) -> None:
        """Move messages the broker refused aside: kept for inspection, reported as gaps.

        They are never retried, so one bad message cannot block the queue. A refused gap
        notice puts its ranges back (to be re-issued) and reports its own seq.
        """
        if not refused:
            return
        with self._lock:
            self._check_open()
            now_s = self._clock()
            with self._transaction("dead letter") as deltas:
                entries: list[gaps.GapEntry] = []
                for message, reason in refused:
                    row = self._conn.execute(
                        "SELECT size_bytes, priority, user_properties FROM messages"
                        " WHERE row_id = ?",
                        (message.row_id,),
                    ).fetchone()
                    if row is None:
                        continue  # already gone (acknowledged or dropped)
                    size, priority, props = int(row[0]), int(row[1]), str(row[2])
                    cls = NOTICE_CLASS if priority < 0 else message.message_class.value
                    dead_letters.keep(
                        self._conn,
                        message,
                        class_name=cls,
                        user_properties=props,
                        reason=reason,
                        now_s=now_s,
                    )
                    self._conn.execute("DELETE FROM messages WHERE row_id = ?", (message.row_id,))
                    deltas.depth.rows -= 1
                    deltas.depth.size_bytes -= size
                    deltas.depth.dead_letter_rows += 1
                    deltas.count(f"refused:{cls}", 1)
                    entries.append((message.seq, cls, "refused"))
                    if priority < 0:
                        deltas.depth.notice_rows -= 1
                        restored = gaps.restore_notice_ranges(self._conn, message.payload)
                        deltas.depth.gap_seqs += restored
                deltas.depth.gap_seqs += gaps.add_gaps(self._conn, entries)
                self._trim_dead_letters_locked(deltas)
            self._claimed.difference_update(m.row_id for m, _ in refused)

    def _trim_dead_letters_locked(self, deltas: _Deltas) -> None:
        rows = self._depth.dead_letter_rows + deltas.depth.dead_letter_rows
        excess = rows - self.dead_letter_max_rows
        if excess > 0:
            dead_letters.trim(self._conn, excess)
            deltas.depth.dead_letter_rows -= excess

    # -- reading and claiming -------------------------------------------------

    def claim(self, limit: int, *, urgent: bool, after_row_id: int = 0) -> list[StoredMessage]:
        """Up to ``limit`` unclaimed rows of one stream, now claimed.

        ``urgent=True``: gap notices first, then alerts in ``seq`` order (``after_row_id``
        is ignored: urgent rows are few); ``False``: everything else in ``seq`` order
        after ``after_row_id``. Claimed rows are exempt from eviction and expiry until
        :meth:`ack`, :meth:`dead_letter` or :meth:`release`.
        """
        if limit <= 0:
            return []
        if urgent:
            return self._claim_urgent(limit)
        result: list[StoredMessage] = []
        with self._lock:
            self._check_open()
            cursor_id = after_row_id
            while len(result) < limit:
                # "+priority" keeps SQLite on the row-id scan, not on the priority index.
                rows = self._conn.execute(
                    f"SELECT {SELECT_COLUMNS} FROM messages WHERE row_id > ?"
                    f" AND +priority > {URGENT_MAX_PRIORITY} ORDER BY row_id ASC LIMIT ?",
                    (cursor_id, limit - len(result)),
                ).fetchall()
                if not rows:
                    break
                cursor_id = int(rows[-1][0])
                for row in rows:
                    if int(row[0]) not in self._claimed:
                        result.append(row_to_message(row))
            self._claimed.update(m.row_id for m in result)
        return result

    def _claim_urgent(self, limit: int) -> list[StoredMessage]:
        result: list[StoredMessage] = []
        with self._lock:
            self._check_open()
            cursor = self._conn.execute(
                f"SELECT {SELECT_COLUMNS} FROM messages INDEXED BY messages_by_eviction"
                f" WHERE priority <= {URGENT_MAX_PRIORITY} ORDER BY priority ASC, row_id ASC"
            )
            for row in cursor:
                if int(row[0]) not in self._claimed:
                    result.append(row_to_message(row))
                    if len(result) >= limit:
                        break
            cursor.close()
            self._claimed.update(m.row_id for m in result)
        return result

    def release(self, row_ids: Iterable[int]) -> None:
        """Give up claims (e.g. a publisher stopping) so the rows can be claimed again."""
        with self._lock:
            self._claimed.difference_update(row_ids)
            self._urgent_epoch += 1

    def pending(self, limit: int, *, after_row_id: int | None = None) -> list[StoredMessage]:
        """Up to ``limit`` stored messages in ``seq`` order after a cursor (read only)."""
        if limit <= 0:
            return []
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                f"SELECT {SELECT_COLUMNS} FROM messages WHERE row_id > ?"
                " ORDER BY row_id ASC LIMIT ?",
                (after_row_id if after_row_id is not None else 0, limit),
            ).fetchall()
        return [row_to_message(row) for row in rows]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent refused messages, newest first (for inspection)."""
        with self._lock:
            self._check_open()
            return dead_letters.newest(self._conn, limit)

    def gap_ranges(self) -> list[gaps.GapRange]:
        """Dropped seq ranges not yet turned into a notice (for tests and tools)."""
        with self._lock:
            self._check_open()
            return gaps.ranges(self._conn)

    @property
    def urgent_epoch(self) -> int:
        """Changes whenever urgent rows may have become claimable: a cheap check."""
        return self._urgent_epoch

    def notice_wanted(self) -> bool:
        """Dropped seqs are waiting to be reported and no notice is outstanding."""
        with self._lock:
            return self._depth.gap_seqs > 0 and self._depth.notice_rows == 0

    def unclaimed(self) -> int:
        """Rows nobody is delivering yet (0 means the publisher has everything)."""
        with self._lock:
            return self._depth.rows - len(self._claimed)

    def depth(self) -> int:
        with self._lock:
            return self._depth.rows

    def stats(self) -> OutboxStats:
        with self._lock:

            def by_class(prefix: str) -> dict[str, int]:
                return {
                    k[len(prefix) :]: v
                    for k, v in sorted(self._meta.items())
                    if k.startswith(prefix) and v
                }

            return OutboxStats(
                depth_rows=self._depth.rows,
                depth_bytes=self._depth.size_bytes,
                enqueued_total=self._count("enqueued_total"),
                acked_total=self._count("acked_total"),
                evicted_by_class=by_class("evicted:"),
                last_seq=self._count("last_seq"),
                expired_by_class=by_class("expired:"),
                dead_lettered_by_class=by_class("refused:"),
                unstored_by_class=by_class("unstored:"),
                gap_seqs_unreported=self._depth.gap_seqs + len(self._unstored_pending),
                gap_notices_total=self._count("gap_notices_total"),
                dead_letter_rows=self._depth.dead_letter_rows,
                write_failures=self._write_failures,
                last_error=self._last_error,
                recovered_from=str(self.recovered_from) if self.recovered_from else None,
            )

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

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
