"""The outbox's queue: every operation on the stored messages, in one transaction each.

Group commit: one fsync per commit, amortised: every public write is one transaction
for a batch. The one exception is :meth:`Outbox.ack`: deletes of delivered rows are
fsynced at most once a second, since losing one only means sending that message again.

Bounds: ``max_rows`` and ``max_bytes``, enforced in the transaction that would exceed
them (:mod:`~edge_agent.outbox.bounds` chooses what goes).

Claims live in RAM only: after a restart every row is unclaimed and is sent again if it
was not deleted, which is at-least-once.

Opening, recovery, the counters, write transactions and write failures are
:class:`~edge_agent.outbox.base.OutboxBase`'s (edge_agent/outbox/base.py): this module is
the queue on top of it, one object with one lock.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import edge_agent.outbox.bounds as bounds
import edge_agent.outbox.dead_letters as dead_letters
import edge_agent.outbox.gaps as gaps
import edge_agent.outbox.lifecycles as lifecycles
from edge_agent.encode import encode_gap_notice
from edge_agent.outbox.base import Deltas, OutboxBase
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
from edge_agent.outbox.sqlite import CHUNK, OutboxError
from edge_agent.types import MessageClass, OutboundMessage

if TYPE_CHECKING:
    from edge_agent.config import OutboxConfig

_log = logging.getLogger("edge_agent.outbox")  # one logger name for the whole package

_ACK_FSYNC_INTERVAL_S = 1.0


class Outbox(OutboxBase):
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
        monotonic: Callable[[], float] | None = None,
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
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.ttl_s: dict[MessageClass, float] = ttl
        self.dead_letter_max_rows = dead_letter_max_rows
        super().__init__(path, lock_timeout_s=lock_timeout_s, clock=clock, monotonic=monotonic)
        self._urgent_epoch = 0  # bumped when urgent rows may have become claimable
        self._claimed: set[int] = set()
        self._last_fsync_s = -float("inf")  # monotonic time of the last fsynced commit
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

    # -- the disk -------------------------------------------------------------

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

    # -- writing --------------------------------------------------------------

    def enqueue(self, message: OutboundMessage) -> StoredMessage:
        return self.enqueue_many([message])[0]

    def enqueue_many(
        self, messages: Sequence[OutboundMessage], *, burn: bool = True
    ) -> list[StoredMessage]:
        """Store ``messages`` durably in one transaction, giving each the next ``seq``.

        Returns once the batch is on disk. Raises ``ValueError`` (storing nothing, using
        no seq) if a message is malformed, and :class:`OutboxFull` / :class:`OutboxError`
        if the disk refuses the write: then nothing is stored, the seqs are burnt and
        reported as ``unstored`` -- unless ``burn`` is False: a caller that keeps the
        messages to try again, and calls :meth:`report_unstored` if it gives up. A
        returned message may already have been evicted if the outbox was full of more
        important ones; ``stats()`` counts it.
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
            now_s = self._now_locked()
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
                if burn:
                    self._burn_locked([item.message_class.value for item in stored])
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

    def report_unstored(self, messages: Sequence[OutboundMessage]) -> None:
        """Messages a caller held after ``enqueue_many(..., burn=False)`` failed and now
        gives up on: they use seqs, reported as ``unstored`` like a failed enqueue's."""
        with self._lock:
            self._check_open()
            self._burn_locked([m.message_class.value for m in messages])

    def _over_cap(self, deltas: Deltas) -> bool:
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
        self, victims: Sequence[bounds.Victim], reason: str, deltas: Deltas
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

    def _evict_locked(self, deltas: Deltas) -> dict[str, int]:
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

    def _expire_locked(self, now_s: float, deltas: Deltas) -> dict[str, int]:
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
            now_s = self._now_locked()
            if not self._restamp_due and not bounds.any_expired(self._conn, self.ttl_s, now_s):
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
            now_s = self._now_locked()
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
            now_s = self._now_locked()
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

    def _trim_dead_letters_locked(self, deltas: Deltas) -> None:
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
            self._restamp_before_read_locked()
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
            self._restamp_before_read_locked()
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

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
