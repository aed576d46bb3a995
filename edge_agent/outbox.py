"""Durable, bounded store-and-forward for everything a subscriber must not miss.

docs/delivery.md states the guarantees in an operator's words; this docstring says how.

The pipeline enqueues; the MQTT publisher claims rows, publishes them and acknowledges
(deletes) what the broker acknowledged. paho only queues in RAM, so this SQLite file is
what makes delivery survive broker outages, agent crashes and power loss.

Durability: WAL mode with ``synchronous=FULL`` (in WAL mode ``NORMAL`` only syncs at
checkpoints, so a power cut could lose commits that had already returned). One fsync per
commit, amortised by group commit: every public write is one transaction for a batch.
The one exception is :meth:`Outbox.ack`: deletes of delivered rows are fsynced at most
once a second, since losing one only means sending that message again.

Sequence numbers: every message gets the next per-device ``seq`` from the ``meta``
table, in the same transaction as the insert, so ``seq`` is never reused. Every ``seq``
ends in exactly one of: delivered (acknowledged by the broker), or *reported*: listed in
a gap notice with the reason it was dropped (``evicted``, ``expired``, ``refused`` by
the broker, or ``unstored`` because the disk could not take it). That is what lets a
consumer tell "lost" from "late".

Gap notices: dropped seqs are recorded as merged ranges in the ``gaps`` table in the
transaction that drops them. When the publisher is connected it asks for a notice
(:meth:`Outbox.issue_gap_notice`): one transaction turns the pending ranges into an
ordinary outbox row with a ``seq`` of its own, so the notice is as durable as any event.
Notice rows jump the queue and are never evicted or expired; at most one exists at a
time, so they cannot fill the disk.

Classes and priority, highest first: ALERT > EVENT > STATE > THUMBNAIL. STATUS, previews
and stats are never buffered (the publisher sends them directly). Alerts and notices
are *urgent*: the publisher reads them before anything else ("live alerts jump the
queue").

Bounds: ``max_rows`` and ``max_bytes`` (payload plus topic bytes, not file size). When
a write would exceed either, rows past their class TTL go first, then the lowest
priority, oldest first. A new low-priority message can itself be the one evicted. Rows
the publisher has claimed (read, in flight, or acknowledged but not yet deleted; at most
a few hundred) are never evicted or expired: they are being delivered.

Claims live in RAM only: after a restart every row is unclaimed and is sent again if it
was not deleted, which is at-least-once.

Write failures (full disk, I/O error): the transaction is rolled back, so nothing
already stored is touched, and :class:`OutboxFull` / :class:`OutboxError` is raised. The
seqs a failed enqueue would have used are burnt and reported as ``unstored`` by the next
write that succeeds.

Threading: one SQLite connection guarded by one lock; every critical section is one
short transaction, so the pipeline never waits long for the publisher or the reverse.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.types import MessageClass, OutboundMessage

if TYPE_CHECKING:
    from edge_agent.config import OutboxConfig

__all__ = [
    "DURABLE_CLASSES",
    "EVICTION_PRIORITY",
    "GAP_REASONS",
    "NOTICE_CLASS",
    "DeadLetter",
    "Outbox",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "StoredMessage",
]

_log = logging.getLogger(__name__)

_SCHEMA_VERSION = 2  # 1: walking skeleton (no gaps, dead letters); upgraded in place

DURABLE_CLASSES = (
    MessageClass.ALERT,
    MessageClass.EVENT,
    MessageClass.STATE,
    MessageClass.THUMBNAIL,
)
"""The classes the outbox stores. STATUS (and previews, stats) are never buffered."""

# Lower number = more important = evicted later.
EVICTION_PRIORITY: dict[MessageClass, int] = {
    MessageClass.ALERT: 0,
    MessageClass.EVENT: 1,
    MessageClass.STATE: 2,
    MessageClass.THUMBNAIL: 3,
}
LIFECYCLE_CLASSES = frozenset({MessageClass.EVENT, MessageClass.ALERT})
"""Classes whose messages follow a new/update/end lifecycle by ``id``."""
_NOTICE_PRIORITY = -1  # gap notices: first out, never evicted nor expired
_URGENT_MAX_PRIORITY = 0  # priority <= this jumps the queue (notices and alerts)
NOTICE_CLASS = "gaps"
"""Class name a refused gap notice's own seq is counted under."""

GAP_REASONS = ("evicted", "expired", "refused", "unstored")

_MAX_RANGES_PER_NOTICE = 500  # keeps one notice well under 64 KiB
_FAILURE_LOG_INTERVAL_S = 60.0
_ACK_FSYNC_INTERVAL_S = 1.0

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
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (message_class, created_at_s);
CREATE TABLE IF NOT EXISTS gaps (
    seq_from INTEGER PRIMARY KEY,
    seq_to INTEGER NOT NULL UNIQUE,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS open_lifecycles (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    message_class TEXT NOT NULL,
    body TEXT NOT NULL,
    user_properties TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    message_class TEXT NOT NULL,
    created_at_s REAL NOT NULL,
    content_type TEXT NOT NULL,
    user_properties TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at_s REAL NOT NULL
);
"""

_SELECT_COLUMNS = (
    "row_id, seq, topic, payload, qos, retain, message_class, created_at_s, "
    "content_type, user_properties, priority"
)

_CHUNK = 500  # ids per IN (...) statement (SQLite's variable limit is 999 on old builds)

# seq, class name, reason
_GapEntry = tuple[int, str, str]
# reason -> class name -> count
_Detail = dict[str, dict[str, int]]


class OutboxError(Exception):
    """The outbox could not store or read messages (I/O error, closed, unusable file)."""


class OutboxFull(OutboxError):
    """The disk holding the outbox is full: the write was rolled back, nothing was stored."""


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
    is_gap_notice: bool = False

    @property
    def urgent(self) -> bool:
        """Alerts and gap notices: delivered before anything else, never paced."""
        return self.is_gap_notice or self.message_class is MessageClass.ALERT

    @property
    def size_bytes(self) -> int:
        return _size_of(self.topic, self.payload)


@dataclass(frozen=True)
class DeadLetter:
    """A message the broker refused, kept aside for inspection (never retried)."""

    seq: int
    topic: str
    payload: bytes
    message_class: str
    created_at_s: float
    reason: str
    dead_at_s: float


@dataclass(frozen=True)
class OutboxStats:
    """Counters over the life of the outbox file (they persist across restarts)."""

    depth_rows: int
    depth_bytes: int
    enqueued_total: int
    acked_total: int
    evicted_by_class: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    expired_by_class: dict[str, int] = field(default_factory=dict)
    dead_lettered_by_class: dict[str, int] = field(default_factory=dict)
    unstored_by_class: dict[str, int] = field(default_factory=dict)
    gap_seqs_unreported: int = 0  # dropped seqs not yet listed in a published notice
    gap_notices_total: int = 0
    dead_letter_rows: int = 0  # kept for inspection now (oldest trimmed past the limit)
    write_failures: int = 0  # failed write transactions since this process opened it
    last_error: str | None = None
    recovered_from: str | None = None  # a corrupt file found at open was moved here

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted_by_class.values())

    @property
    def expired_total(self) -> int:
        return sum(self.expired_by_class.values())

    @property
    def dead_lettered_total(self) -> int:
        return sum(self.dead_lettered_by_class.values())

    @property
    def unstored_total(self) -> int:
        return sum(self.unstored_by_class.values())


def _size_of(topic: str, payload: bytes) -> int:
    return len(payload) + len(topic.encode("utf-8"))


def _compact(body: Mapping[str, object]) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON; fail here, not in a consumer.
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _encode_payload(message: OutboundMessage, seq: int) -> bytes:
    """JSON bodies get ``seq`` as their last key (``historical`` is the publisher's)."""
    has_json = message.json_body is not None
    has_binary = message.binary_body is not None
    if has_json == has_binary:
        raise ValueError(
            f"message for {message.topic!r} must have exactly one of json_body and binary_body"
        )
    if message.json_body is not None:
        body = {k: v for k, v in message.json_body.items() if k not in ("seq", "historical")}
        body["seq"] = seq
        return _compact(body)
    assert message.binary_body is not None
    return bytes(message.binary_body)


@functools.lru_cache(maxsize=256)
def _parse_user_properties(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _is_disk_full(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return int(code) & 0xFF == 13  # SQLITE_FULL
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return "full" in str(error).lower()


def _merge_detail(into: _Detail, other: Mapping[str, Mapping[str, int]]) -> None:
    for reason, by_class in other.items():
        slot = into.setdefault(reason, {})
        for cls, count in by_class.items():
            slot[cls] = slot.get(cls, 0) + int(count)


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
        """Where a corrupt or unreadable outbox found at open was moved to, or None."""
        self.recovery_reason: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as error:
            if _is_busy(error):
                raise OutboxError(
                    f"outbox {self.path} is locked: is another edge-agent using it? ({error})"
                ) from error
            if _is_environmental(error):
                # A full disk or an I/O error says nothing about the file: keep it (and the
                # messages in it) for when the disk is fixed; never reset a healthy outbox.
                raise OutboxError(
                    f"outbox {self.path} cannot be opened: {error}. Free disk space or fix "
                    "the storage, then start again; the stored messages are kept."
                ) from error
            self.recovered_from = self._move_aside(error)
            self.recovery_reason = str(error)
            self._conn = self._open()
        self._counters: dict[str, int] = {
            str(k): int(v) for k, v in self._conn.execute("SELECT key, value FROM meta")
        }
        self._dirty: set[str] = set()  # counters changed in RAM only (burnt seqs)
        rows, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages"
        ).fetchone()
        self._counters["mem:depth_rows"] = int(rows)
        self._counters["mem:depth_bytes"] = int(size)
        (gap_seqs,) = self._conn.execute(
            "SELECT COALESCE(SUM(seq_to - seq_from + 1), 0) FROM gaps"
        ).fetchone()
        self._counters["mem:gap_seqs"] = int(gap_seqs)
        (notices,) = self._conn.execute(
            "SELECT COUNT(*) FROM messages WHERE priority < 0"
        ).fetchone()
        self._counters["mem:notice_rows"] = int(notices)
        (dead,) = self._conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        self._counters["mem:dead_letter_rows"] = int(dead)
        self._urgent_epoch = 0  # bumped when urgent rows may have become claimable
        self._claimed: set[int] = set()
        self._last_fsync_s = -float("inf")  # monotonic time of the last fsynced commit
        self._unstored_pending: list[_GapEntry] = []
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

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
        conn = sqlite3.connect(
            str(self.path),
            isolation_level=None,
            check_same_thread=False,
            timeout=self._lock_timeout_s,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # The WAL is truncated back to this after a checkpoint: bounded disk.
            conn.execute("PRAGMA journal_size_limit=4194304")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check failed: {check}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"outbox schema version {version} is newer than this agent's"
                    f" ({_SCHEMA_VERSION})"
                )
            conn.executescript(_SCHEMA)
            if version != _SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
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
        try:
            self.path.rename(target)
            for suffix in ("-wal", "-shm"):
                sibling = self.path.with_name(self.path.name + suffix)
                if sibling.exists():
                    sibling.rename(target.with_name(target.name + suffix))
        except OSError as move_error:
            raise OutboxError(
                f"outbox {self.path} is unusable ({error}) and could not be moved aside"
                f" ({move_error}); move or delete it by hand"
            ) from move_error
        _log.error(
            "OUTBOX RESET: %s is corrupt or unreadable (%s); kept it as %s for inspection and "
            "started an empty outbox. Messages stored in it were NOT delivered; seq restarts "
            "at 1.",
            self.path,
            error,
            target,
        )
        return target

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

    def _set_meta(self, key: str, value: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def _count(self, key: str) -> int:
        return self._counters.get(key, 0)

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def _transaction(self, what: str) -> Iterator[dict[str, int]]:
        """One write transaction; yields a dict of counter deltas applied on commit.

        Counters named ``mem:...`` live in RAM only; the others are persisted in
        ``meta`` in the same transaction. On any SQLite error the transaction is rolled
        back and :class:`OutboxError` (or :class:`OutboxFull`) is raised; RAM state is
        untouched, because callers only update it after the ``with`` block.
        """
        conn = self._conn
        deltas: dict[str, int] = {}
        flushed_unstored = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._unstored_pending:
                self._add_gaps_locked(self._unstored_pending, deltas)
                flushed_unstored = True
            yield deltas
            for key in self._dirty | deltas.keys():
                if not key.startswith("mem:"):
                    self._set_meta(key, self._count(key) + deltas.get(key, 0))
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
        for key, delta in deltas.items():
            self._counters[key] = self._count(key) + delta
        self._dirty.clear()
        if flushed_unstored:
            self._unstored_pending = []
        if self._failing_since_s is not None:
            _log.warning(
                "outbox %s is writable again after %d failed write(s); %d message(s) could "
                "not be stored meanwhile (reported as 'unstored' gaps)",
                self.path,
                self._write_failures,
                sum(v for k, v in self._counters.items() if k.startswith("unstored:")),
            )
            self._failing_since_s = None

    def _rollback_quietly(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as error:  # SQLite may already have rolled back itself
            _log.debug("rollback after a failed write: %s", error)

    def _write_failed(self, what: str, error: BaseException) -> OutboxError:
        full = _is_disk_full(error)
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
            stored = [
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
                for seq, message in enumerate(messages, start=first_seq)
            ]
            result: list[StoredMessage] = []
            evicted: dict[str, int] = {}
            try:
                with self._transaction("enqueue") as deltas:
                    for item in stored:
                        size = item.size_bytes
                        cursor = self._conn.execute(
                            "INSERT INTO messages (seq, topic, payload, qos, retain,"
                            " message_class, priority, created_at_s, content_type,"
                            " user_properties, size_bytes)"
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
                        self._track_lifecycle_locked(messages[item.seq - first_seq])
                        _add(deltas, "mem:depth_rows", 1)
                        _add(deltas, "mem:depth_bytes", size)
                        result.append(replace(item, row_id=cursor.lastrowid))
                    _add(deltas, "last_seq", len(stored))
                    _add(deltas, "enqueued_total", len(stored))
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

    def _track_lifecycle_locked(self, message: OutboundMessage) -> None:
        """Remember the last ``new``/``update`` of each event or alert until its ``end``,
        in the same transaction as the message: a restart can then end what a crash or
        power cut left open (``open_lifecycles``)."""
        body = message.json_body
        if message.message_class not in LIFECYCLE_CLASSES or body is None:
            return
        lifecycle_id, step = body.get("id"), body.get("type")
        if not isinstance(lifecycle_id, str):
            return
        if step == "end":
            self._conn.execute("DELETE FROM open_lifecycles WHERE id = ?", (lifecycle_id,))
        elif step in ("new", "update"):
            self._conn.execute(
                "INSERT OR REPLACE INTO open_lifecycles"
                " (id, topic, message_class, body, user_properties) VALUES (?, ?, ?, ?, ?)",
                (
                    lifecycle_id,
                    message.topic,
                    message.message_class.value,
                    json.dumps(body),
                    json.dumps([list(p) for p in message.user_properties]),
                ),
            )

    def open_lifecycles(self) -> list[OutboundMessage]:
        """The last ``new``/``update`` of every event and alert whose ``end`` was never
        stored (the previous run died with them open), in the order of their last step."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT topic, message_class, body, user_properties FROM open_lifecycles"
                " ORDER BY rowid"
            ).fetchall()
        return [
            OutboundMessage(
                topic=topic,
                message_class=MessageClass(message_class),
                qos=1,
                json_body=json.loads(body),
                user_properties=_parse_user_properties(user_properties),
            )
            for topic, message_class, body, user_properties in rows
        ]

    def _burn_locked(self, stored: Sequence[StoredMessage]) -> None:
        """A failed enqueue: its seqs are used up and reported as 'unstored' later."""
        self._counters["last_seq"] = self._count("last_seq") + len(stored)
        self._dirty.add("last_seq")
        for item in stored:
            key = f"unstored:{item.message_class.value}"
            self._counters[key] = self._count(key) + 1
            self._dirty.add(key)
            self._unstored_pending.append((item.seq, item.message_class.value, "unstored"))

    def _over_cap(self, deltas: Mapping[str, int]) -> bool:
        rows = self._count("mem:depth_rows") + deltas.get("mem:depth_rows", 0)
        size = self._count("mem:depth_bytes") + deltas.get("mem:depth_bytes", 0)
        return rows > self.max_rows or size > self.max_bytes

    def _delete_rows_locked(self, victims: Sequence[tuple[int, int, str, int]]) -> None:
        """Delete (row_id, seq, class, size) rows in chunks."""
        ids = [v[0] for v in victims]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            self._conn.execute(f"DELETE FROM messages WHERE row_id IN ({marks})", chunk)

    def _drop_locked(
        self, victims: Sequence[tuple[int, int, str, int]], reason: str, deltas: dict[str, int]
    ) -> dict[str, int]:
        by_class: dict[str, int] = {}
        if not victims:
            return by_class
        self._delete_rows_locked(victims)
        for _row_id, _seq, cls, size in victims:
            by_class[cls] = by_class.get(cls, 0) + 1
            _add(deltas, "mem:depth_rows", -1)
            _add(deltas, "mem:depth_bytes", -size)
        for cls, n in by_class.items():
            _add(deltas, f"{reason}:{cls}", n)
        self._add_gaps_locked([(seq, cls, reason) for _r, seq, cls, _s in victims], deltas)
        return by_class

    def _evict_locked(self, deltas: dict[str, int]) -> dict[str, int]:
        """Delete lowest-priority, oldest unclaimed rows until under both caps."""
        rows = self._count("mem:depth_rows") + deltas.get("mem:depth_rows", 0)
        size = self._count("mem:depth_bytes") + deltas.get("mem:depth_bytes", 0)
        victims: list[tuple[int, int, str, int]] = []
        cursor = self._conn.execute(
            "SELECT row_id, seq, message_class, size_bytes FROM messages"
            " WHERE priority >= 0 ORDER BY priority DESC, row_id ASC"
        )
        for row_id, seq, cls, row_size in cursor:
            if rows <= self.max_rows and size <= self.max_bytes:
                break
            if row_id in self._claimed:
                continue  # being delivered right now: delivery wins
            victims.append((int(row_id), int(seq), str(cls), int(row_size)))
            rows -= 1
            size -= int(row_size)
        cursor.close()
        return self._drop_locked(victims, "evicted", deltas)

    def _expire_locked(self, now_s: float, deltas: dict[str, int]) -> dict[str, int]:
        victims: list[tuple[int, int, str, int]] = []
        for cls, ttl in self.ttl_s.items():
            for row_id, seq, row_size in self._conn.execute(
                "SELECT row_id, seq, size_bytes FROM messages"
                " WHERE message_class = ? AND priority >= 0 AND created_at_s < ?",
                (cls.value, now_s - ttl),
            ):
                if row_id not in self._claimed:
                    victims.append((int(row_id), int(seq), cls.value, int(row_size)))
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
            # One index seek per class (messages_by_age); the common case finds nothing
            # and costs no write transaction at all.
            if not any(
                self._conn.execute(
                    "SELECT 1 FROM messages WHERE message_class = ? AND created_at_s < ?"
                    " AND priority >= 0 LIMIT 1",
                    (cls.value, now_s - ttl),
                ).fetchone()
                for cls, ttl in self.ttl_s.items()
            ):
                return {}
            with self._transaction("expire") as deltas:
                expired = self._expire_locked(now_s, deltas)
        if expired:
            _log.warning(
                "outbox: dropped %s past their TTL (reported on the gaps topic)",
                ", ".join(f"{n} {cls}" for cls, n in sorted(expired.items())),
            )
        return expired

    def _add_gaps_locked(self, entries: Sequence[_GapEntry], deltas: dict[str, int]) -> None:
        """Record dropped seqs as ranges, merged with adjacent pending ranges."""
        ordered = sorted(entries)
        index = 0
        while index < len(ordered):
            first = ordered[index][0]
            detail: _Detail = {}
            last = first - 1
            while index < len(ordered) and ordered[index][0] == last + 1:
                seq, cls, reason = ordered[index]
                _merge_detail(detail, {reason: {cls: 1}})
                last = seq
                index += 1
            self._add_gap_range_locked(first, last, detail, deltas)

    def _add_gap_range_locked(
        self, first: int, last: int, detail: _Detail, deltas: dict[str, int]
    ) -> None:
        conn = self._conn
        merged: _Detail = {}
        _merge_detail(merged, detail)
        new_first, new_last = first, last
        left = conn.execute(
            "SELECT seq_from, detail FROM gaps WHERE seq_to = ?", (first - 1,)
        ).fetchone()
        if left is not None:
            new_first = int(left[0])
            _merge_detail(merged, json.loads(left[1]))
            conn.execute("DELETE FROM gaps WHERE seq_from = ?", (new_first,))
        right = conn.execute(
            "SELECT seq_to, detail FROM gaps WHERE seq_from = ?", (last + 1,)
        ).fetchone()
        if right is not None:
            new_last = int(right[0])
            _merge_detail(merged, json.loads(right[1]))
            conn.execute("DELETE FROM gaps WHERE seq_from = ?", (last + 1,))
        conn.execute(
            "INSERT INTO gaps (seq_from, seq_to, detail) VALUES (?, ?, ?)",
            (new_first, new_last, json.dumps(merged, sort_keys=True, separators=(",", ":"))),
        )
        _add(deltas, "mem:gap_seqs", last - first + 1)

    def issue_gap_notice(self, topic: str) -> StoredMessage | None:
        """Turn pending gap ranges into one durable, urgent notice row (or None).

        None when nothing is pending or a notice is still waiting to be delivered (at
        most one at a time: notices cannot pile up during an outage). The payload is
        ``{"v":1,"ts":...,"gaps":[{"from":a,"to":b,"<reason>":{"<class>":n}}],"seq":s}``;
        every seq from ``a`` to ``b`` is lost and the counts in
        each range add up to ``b - a + 1``.
        """
        with self._lock:
            self._check_open()
            if self._count("mem:gap_seqs") == 0 or self._count("mem:notice_rows") > 0:
                return None
            now_s = self._clock()
            with self._transaction("gap notice") as deltas:
                ranges = self._conn.execute(
                    "SELECT seq_from, seq_to, detail FROM gaps ORDER BY seq_from LIMIT ?",
                    (_MAX_RANGES_PER_NOTICE,),
                ).fetchall()
                if not ranges:
                    return None
                gaps: list[dict[str, object]] = []
                covered = 0
                for seq_from, seq_to, detail in ranges:
                    gaps.append({"from": int(seq_from), "to": int(seq_to), **json.loads(detail)})
                    covered += int(seq_to) - int(seq_from) + 1
                seq = self._count("last_seq") + deltas.get("last_seq", 0) + 1
                payload = _compact({"v": 1, "ts": round(now_s, 3), "gaps": gaps, "seq": seq})
                size = _size_of(topic, payload)
                cursor = self._conn.execute(
                    "INSERT INTO messages (seq, topic, payload, qos, retain, message_class,"
                    " priority, created_at_s, content_type, user_properties, size_bytes)"
                    " VALUES (?, ?, ?, 1, 0, ?, ?, ?, 'application/json', ?, ?)",
                    (
                        seq,
                        topic,
                        payload,
                        MessageClass.ALERT.value,
                        _NOTICE_PRIORITY,
                        now_s,
                        json.dumps([["schema", "edge-agent/gaps/1"]]),
                        size,
                    ),
                )
                last_range = int(ranges[-1][0])
                self._conn.execute("DELETE FROM gaps WHERE seq_from <= ?", (last_range,))
                assert cursor.lastrowid is not None
                row_id = cursor.lastrowid
                for key, delta in (
                    ("last_seq", 1),
                    ("enqueued_total", 1),
                    ("gap_notices_total", 1),
                    ("mem:depth_rows", 1),
                    ("mem:depth_bytes", size),
                    ("mem:notice_rows", 1),
                    ("mem:gap_seqs", -covered),
                ):
                    _add(deltas, key, delta)
            self._urgent_epoch += 1
        _log.info("gap notice seq %d lists %d lost seq(s) in %d range(s)", seq, covered, len(gaps))
        return StoredMessage(
            row_id=row_id,
            seq=seq,
            topic=topic,
            payload=payload,
            qos=1,
            retain=False,
            message_class=MessageClass.ALERT,
            created_at_s=now_s,
            content_type="application/json",
            user_properties=(("schema", "edge-agent/gaps/1"),),
            is_gap_notice=True,
        )

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
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                # SELECT then DELETE rather than DELETE ... RETURNING (SQLite >= 3.35).
                rows, size, notices = self._conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0),"
                    " COALESCE(SUM(priority < 0), 0) FROM messages"
                    f" WHERE row_id IN ({marks})",
                    chunk,
                ).fetchone()
                self._conn.execute(f"DELETE FROM messages WHERE row_id IN ({marks})", chunk)
                _add(deltas, "acked_total", int(rows))
                _add(deltas, "mem:depth_rows", -int(rows))
                _add(deltas, "mem:depth_bytes", -int(size))
                _add(deltas, "mem:notice_rows", -int(notices))
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
                entries: list[_GapEntry] = []
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
                    self._conn.execute(
                        "INSERT OR REPLACE INTO dead_letters (seq, topic, payload, qos, retain,"
                        " message_class, created_at_s, content_type, user_properties, reason,"
                        " dead_at_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            message.seq,
                            message.topic,
                            message.payload,
                            message.qos,
                            int(message.retain),
                            cls,
                            message.created_at_s,
                            message.content_type,
                            props,
                            reason,
                            now_s,
                        ),
                    )
                    self._conn.execute("DELETE FROM messages WHERE row_id = ?", (message.row_id,))
                    _add(deltas, "mem:depth_rows", -1)
                    _add(deltas, "mem:depth_bytes", -size)
                    _add(deltas, "mem:dead_letter_rows", 1)
                    _add(deltas, f"refused:{cls}", 1)
                    entries.append((message.seq, cls, "refused"))
                    if priority < 0:
                        _add(deltas, "mem:notice_rows", -1)
                        self._restore_notice_ranges_locked(message.payload, deltas)
                self._add_gaps_locked(entries, deltas)
                self._trim_dead_letters_locked(deltas)
            self._claimed.difference_update(m.row_id for m, _ in refused)

    def _restore_notice_ranges_locked(self, payload: bytes, deltas: dict[str, int]) -> None:
        for item in json.loads(payload).get("gaps", []):
            first, last = int(item["from"]), int(item["to"])
            detail = {k: v for k, v in item.items() if k in GAP_REASONS}
            self._add_gap_range_locked(first, last, detail, deltas)

    def _trim_dead_letters_locked(self, deltas: dict[str, int]) -> None:
        rows = self._count("mem:dead_letter_rows") + deltas.get("mem:dead_letter_rows", 0)
        excess = rows - self.dead_letter_max_rows
        if excess > 0:
            self._conn.execute(
                "DELETE FROM dead_letters WHERE seq IN"
                " (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)",
                (excess,),
            )
            _add(deltas, "mem:dead_letter_rows", -excess)

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
                    f"SELECT {_SELECT_COLUMNS} FROM messages WHERE row_id > ?"
                    f" AND +priority > {_URGENT_MAX_PRIORITY} ORDER BY row_id ASC LIMIT ?",
                    (cursor_id, limit - len(result)),
                ).fetchall()
                if not rows:
                    break
                cursor_id = int(rows[-1][0])
                for row in rows:
                    if int(row[0]) not in self._claimed:
                        result.append(_row_to_message(row))
            self._claimed.update(m.row_id for m in result)
        return result

    def _claim_urgent(self, limit: int) -> list[StoredMessage]:
        result: list[StoredMessage] = []
        with self._lock:
            self._check_open()
            cursor = self._conn.execute(
                f"SELECT {_SELECT_COLUMNS} FROM messages INDEXED BY messages_by_eviction"
                f" WHERE priority <= {_URGENT_MAX_PRIORITY} ORDER BY priority ASC, row_id ASC"
            )
            for row in cursor:
                if int(row[0]) not in self._claimed:
                    result.append(_row_to_message(row))
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
                f"SELECT {_SELECT_COLUMNS} FROM messages WHERE row_id > ?"
                " ORDER BY row_id ASC LIMIT ?",
                (after_row_id if after_row_id is not None else 0, limit),
            ).fetchall()
        return [_row_to_message(row) for row in rows]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent refused messages, newest first (for inspection)."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT seq, topic, payload, message_class, created_at_s, reason, dead_at_s"
                " FROM dead_letters ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(int(s), str(t), bytes(p), str(c), float(ca), str(r), float(d))
            for s, t, p, c, ca, r, d in rows
        ]

    def gap_ranges(self) -> list[tuple[int, int, _Detail]]:
        """Dropped seq ranges not yet turned into a notice (for tests and tools)."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT seq_from, seq_to, detail FROM gaps ORDER BY seq_from"
            ).fetchall()
        return [(int(a), int(b), json.loads(d)) for a, b, d in rows]

    @property
    def urgent_epoch(self) -> int:
        """Changes whenever urgent rows may have become claimable: a cheap check."""
        return self._urgent_epoch

    def notice_wanted(self) -> bool:
        """Dropped seqs are waiting to be reported and no notice is outstanding."""
        with self._lock:
            return self._count("mem:gap_seqs") > 0 and self._count("mem:notice_rows") == 0

    def unclaimed(self) -> int:
        """Rows nobody is delivering yet (0 means the publisher has everything)."""
        with self._lock:
            return self._count("mem:depth_rows") - len(self._claimed)

    def depth(self) -> int:
        with self._lock:
            return self._count("mem:depth_rows")

    def stats(self) -> OutboxStats:
        with self._lock:

            def by_class(prefix: str) -> dict[str, int]:
                return {
                    k[len(prefix) :]: v
                    for k, v in sorted(self._counters.items())
                    if k.startswith(prefix) and v
                }

            return OutboxStats(
                depth_rows=self._count("mem:depth_rows"),
                depth_bytes=self._count("mem:depth_bytes"),
                enqueued_total=self._count("enqueued_total"),
                acked_total=self._count("acked_total"),
                evicted_by_class=by_class("evicted:"),
                last_seq=self._count("last_seq"),
                expired_by_class=by_class("expired:"),
                dead_lettered_by_class=by_class("refused:"),
                unstored_by_class=by_class("unstored:"),
                gap_seqs_unreported=self._count("mem:gap_seqs") + len(self._unstored_pending),
                gap_notices_total=self._count("gap_notices_total"),
                dead_letter_rows=self._count("mem:dead_letter_rows"),
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


def _add(deltas: dict[str, int], key: str, value: int) -> None:
    deltas[key] = deltas.get(key, 0) + value


_ENVIRONMENTAL_CODES = frozenset({3, 7, 8, 10, 13})  # PERM, NOMEM, READONLY, IOERR, FULL
_ENVIRONMENTAL_WORDS = ("disk is full", "disk i/o error", "readonly", "out of memory")


def _is_environmental(error: sqlite3.DatabaseError) -> bool:
    """A failure of the disk or the machine, not of the file's contents."""
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return (code & 0xFF) in _ENVIRONMENTAL_CODES
    text = str(error).lower()
    return any(word in text for word in _ENVIRONMENTAL_WORDS)


def _is_busy(error: BaseException) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _row_to_message(row: Any) -> StoredMessage:
    (row_id, seq, topic, payload, qos, retain, cls, created, ctype, props, priority) = row
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
        user_properties=_parse_user_properties(props),
        is_gap_notice=int(priority) < 0,
    )


def disk_free_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (for stats), or -1 if unknown."""
    try:
        return int(shutil.disk_usage(path if path.is_dir() else path.parent).free)
    except OSError:
        return -1
