"""Durable store-and-forward for everything a subscriber must not miss (DESIGN.md §5).

The pipeline enqueues; the MQTT publisher reads in ``seq`` order and deletes what the
broker acknowledged. paho only queues in RAM, so this SQLite file is what makes
delivery survive broker outages, agent crashes and power loss.

Durability: the database runs in WAL mode with ``synchronous=FULL``. In WAL mode
``NORMAL`` only syncs at checkpoints, so a power cut could lose commits that had
already returned; ``FULL`` fsyncs the WAL on every commit, so once
:meth:`Outbox.enqueue_many` returns the messages are on disk. The cost (one fsync per
commit) is amortised by group commit: :meth:`Outbox.enqueue_many` and
:meth:`Outbox.ack` each take one transaction for a whole batch.

Sequence numbers: every message gets the next per-device ``seq`` from a counter in the
``meta`` table, updated in the same transaction as the insert, so ``seq`` is contiguous
and never reused, even after a restart or after every row was deleted. Row ids use
``AUTOINCREMENT`` for the same reason: the publisher's read cursor (``after_row_id``)
must never see a new row get an id below one it already read. Rows are inserted in
``seq`` order, so row id order is ``seq`` order.

Eviction (bounded disk): when a batch would push the outbox past ``max_rows`` or
``max_bytes`` (payload plus topic bytes), rows are deleted lowest priority first and,
within a class, oldest first. Priority, highest first: ALERT > EVENT > STATE >
THUMBNAIL > STATUS (status should never be buffered; if it is, it goes first). The new
batch is inserted before evicting, so a new low-priority message can itself be the one
evicted when the outbox is full of more important ones. Every eviction is counted by
class (persisted in ``meta``) so a consumer that sees a ``seq`` gap can learn why.
Per-class TTLs are not implemented yet.

Threading: one SQLite connection guarded by one lock. Writes serialise inside SQLite
anyway, a single connection keeps the in-memory counters (last seq, depth) exactly in
step with the file, and every critical section is one short transaction (well under a
millisecond here, one fsync), so the pipeline thread never waits long for the
publisher's acks or the other way round.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent.types import MessageClass, OutboundMessage

_log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1

# Lower number = more important = evicted later.
EVICTION_PRIORITY: dict[MessageClass, int] = {
    MessageClass.ALERT: 0,
    MessageClass.EVENT: 1,
    MessageClass.STATE: 2,
    MessageClass.THUMBNAIL: 3,
    MessageClass.STATUS: 4,
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    message_class TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at_s REAL NOT NULL,
    content_type TEXT NOT NULL,
    user_properties TEXT NOT NULL,
    size_bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_eviction ON messages (priority DESC, row_id ASC);
"""

_SELECT_COLUMNS = (
    "row_id, seq, topic, payload, qos, retain, message_class, created_at_s, "
    "content_type, user_properties"
)

_ACK_CHUNK = 500  # ids per DELETE statement (SQLite's variable limit is 999 on old builds)


class OutboxError(Exception):
    """The outbox could not store or read messages."""


@dataclass(frozen=True)
class StoredMessage:
    """A message in the outbox, with the ``seq`` it will be delivered under."""

    row_id: int
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    message_class: MessageClass
    created_at_s: float
    content_type: str
    user_properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OutboxStats:
    """Counters over the life of the outbox file (they persist across restarts)."""

    depth_rows: int
    depth_bytes: int
    enqueued_total: int
    acked_total: int
    evicted_by_class: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted_by_class.values())


def _size_of(topic: str, payload: bytes) -> int:
    return len(payload) + len(topic.encode("utf-8"))


def _encode_payload(message: OutboundMessage, seq: int) -> bytes:
    has_json = message.json_body is not None
    has_binary = message.binary_body is not None
    if has_json == has_binary:
        raise ValueError(
            f"message for {message.topic!r} must have exactly one of json_body and binary_body"
        )
    if message.json_body is not None:
        body = dict(message.json_body)
        body["seq"] = seq
        # allow_nan=False: NaN/Infinity are not JSON; fail here, not in a consumer.
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    assert message.binary_body is not None
    return bytes(message.binary_body)


class Outbox:
    """A durable, bounded FIFO of outbound MQTT messages (see the module docstring).

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0 or max_rows <= 0:
            raise ValueError("max_bytes and max_rows must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self._clock = clock
        self._lock = threading.Lock()
        self.recovered_from: Path | None = None
        """Where a corrupt outbox found at open was moved to, or None."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as error:
            self.recovered_from = self._move_aside(error)
            self._conn = self._open()
        self._last_seq = self._meta("last_seq")
        self._enqueued_total = self._meta("enqueued_total")
        self._acked_total = self._meta("acked_total")
        self._evicted: dict[str, int] = {
            cls.value: self._meta(f"evicted:{cls.value}") for cls in MessageClass
        }
        rows, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages"
        ).fetchone()
        self._depth_rows = int(rows)
        self._depth_bytes = int(size)
        self._closed = False

    # -- opening and recovery -------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check failed: {check}")
            conn.executescript(_SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            elif version != _SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"unknown outbox schema version {version}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _move_aside(self, error: Exception) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        self.path.rename(target)
        for suffix in ("-wal", "-shm"):
            sibling = self.path.with_name(self.path.name + suffix)
            if sibling.exists():
                sibling.rename(target.with_name(target.name + suffix))
        _log.error(
            "outbox %s is corrupt (%s); moved it to %s and started an empty outbox. "
            "Messages stored in it were NOT delivered; seq restarts at 1.",
            self.path,
            error,
            target,
        )
        return target

    def _meta(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    # -- writing --------------------------------------------------------------

    def enqueue(self, message: OutboundMessage) -> StoredMessage:
        return self.enqueue_many([message])[0]

    def enqueue_many(self, messages: Sequence[OutboundMessage]) -> list[StoredMessage]:
        """Store ``messages`` durably in one transaction, giving each the next ``seq``.

        Returns once the batch is on disk. Raises ``ValueError`` (storing nothing) if a
        message is malformed. A returned message may already have been evicted if the
        outbox was full of more important ones; ``stats()`` counts it.
        """
        if not messages:
            return []
        for message in messages:
            if message.qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, not {message.qos}")
        with self._lock:
            self._check_open()
            now_s = self._clock()
            stored: list[StoredMessage] = []
            for offset, message in enumerate(messages, start=1):
                seq = self._last_seq + offset
                stored.append(
                    StoredMessage(
                        row_id=0,  # filled in below
                        seq=seq,
                        topic=message.topic,
                        payload=_encode_payload(message, seq),
                        qos=message.qos,
                        retain=message.retain,
                        message_class=message.message_class,
                        created_at_s=now_s,
                        content_type=message.content_type,
                        user_properties=tuple(message.user_properties),
                    )
                )
            result: list[StoredMessage] = []
            added_bytes = 0
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                for item in stored:
                    size = _size_of(item.topic, item.payload)
                    cursor = conn.execute(
                        "INSERT INTO messages (seq, topic, payload, qos, retain, message_class,"
                        " priority, created_at_s, content_type, user_properties, size_bytes)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            item.seq,
                            item.topic,
                            item.payload,
                            item.qos,
                            int(item.retain),
                            item.message_class.value,
                            EVICTION_PRIORITY[item.message_class],
                            item.created_at_s,
                            item.content_type,
                            json.dumps([list(p) for p in item.user_properties]),
                            size,
                        ),
                    )
                    assert cursor.lastrowid is not None
                    added_bytes += size
                    result.append(replace(item, row_id=cursor.lastrowid))
                last_seq = stored[-1].seq
                depth_rows = self._depth_rows + len(stored)
                depth_bytes = self._depth_bytes + added_bytes
                evicted, depth_rows, depth_bytes = self._evict_locked(depth_rows, depth_bytes)
                evicted_counts = dict(self._evicted)
                for cls, count in evicted.items():
                    evicted_counts[cls] += count
                    self._set_meta(f"evicted:{cls}", evicted_counts[cls])
                self._set_meta("last_seq", last_seq)
                self._set_meta("enqueued_total", self._enqueued_total + len(stored))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._last_seq = last_seq
            self._enqueued_total += len(stored)
            self._depth_rows = depth_rows
            self._depth_bytes = depth_bytes
            self._evicted = evicted_counts
        if evicted:
            _log.warning(
                "outbox full (max_rows=%d, max_bytes=%d): evicted %s",
                self.max_rows,
                self.max_bytes,
                ", ".join(f"{n} {cls}" for cls, n in sorted(evicted.items())),
            )
        return result

    def _evict_locked(self, depth_rows: int, depth_bytes: int) -> tuple[dict[str, int], int, int]:
        """Delete lowest-priority, oldest rows until under both caps (inside a transaction)."""
        evicted: dict[str, int] = {}
        if depth_rows <= self.max_rows and depth_bytes <= self.max_bytes:
            return evicted, depth_rows, depth_bytes
        victims: list[int] = []
        rows = self._conn.execute(
            "SELECT row_id, message_class, size_bytes FROM messages"
            " ORDER BY priority DESC, row_id ASC"
        )
        for row_id, cls, size in rows:
            if depth_rows <= self.max_rows and depth_bytes <= self.max_bytes:
                break
            victims.append(int(row_id))
            evicted[str(cls)] = evicted.get(str(cls), 0) + 1
            depth_rows -= 1
            depth_bytes -= int(size)
        rows.close()
        for start in range(0, len(victims), _ACK_CHUNK):
            chunk = victims[start : start + _ACK_CHUNK]
            marks = ",".join("?" * len(chunk))
            self._conn.execute(f"DELETE FROM messages WHERE row_id IN ({marks})", chunk)
        return evicted, depth_rows, depth_bytes

    def ack(self, row_ids: Iterable[int]) -> None:
        """Delete delivered messages in one transaction; unknown ids are ignored."""
        ids = sorted(set(row_ids))
        if not ids:
            return
        with self._lock:
            self._check_open()
            conn = self._conn
            deleted_rows = 0
            deleted_bytes = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                for start in range(0, len(ids), _ACK_CHUNK):
                    chunk = ids[start : start + _ACK_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    # SELECT then DELETE rather than DELETE ... RETURNING (SQLite >= 3.35).
                    rows, size = conn.execute(
                        "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages"
                        f" WHERE row_id IN ({marks})",
                        chunk,
                    ).fetchone()
                    conn.execute(f"DELETE FROM messages WHERE row_id IN ({marks})", chunk)
                    deleted_rows += int(rows)
                    deleted_bytes += int(size)
                if deleted_rows:
                    self._set_meta("acked_total", self._acked_total + deleted_rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._acked_total += deleted_rows
            self._depth_rows -= deleted_rows
            self._depth_bytes -= deleted_bytes

    # -- reading --------------------------------------------------------------

    def pending(self, limit: int, *, after_row_id: int | None = None) -> list[StoredMessage]:
        """Up to ``limit`` stored messages in delivery (``seq``) order, after a cursor."""
        if limit <= 0:
            return []
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                f"SELECT {_SELECT_COLUMNS} FROM messages WHERE row_id > ?"
                " ORDER BY row_id ASC LIMIT ?",
                (after_row_id if after_row_id is not None else 0, limit),
            ).fetchall()
        return [_row_to_message(row) for row in rows]

    def depth(self) -> int:
        with self._lock:
            return self._depth_rows

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(
                depth_rows=self._depth_rows,
                depth_bytes=self._depth_bytes,
                enqueued_total=self._enqueued_total,
                acked_total=self._acked_total,
                evicted_by_class={k: v for k, v in self._evicted.items() if v},
                last_seq=self._last_seq,
            )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row_to_message(row: Any) -> StoredMessage:
    (row_id, seq, topic, payload, qos, retain, cls, created, ctype, props) = row
    return StoredMessage(
        row_id=int(row_id),
        seq=int(seq),
        topic=str(topic),
        payload=bytes(payload),
        qos=int(qos),
        retain=bool(retain),
        message_class=MessageClass(cls),
        created_at_s=float(created),
        content_type=str(ctype),
        user_properties=tuple((str(k), str(v)) for k, v in json.loads(props)),
    )
