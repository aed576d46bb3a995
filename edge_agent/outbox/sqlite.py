"""The outbox file: schema, opening with the right PRAGMAs, recovery, error classification.

Durability: WAL mode with ``synchronous=FULL`` (in WAL mode ``NORMAL`` only syncs at
checkpoints, so a power cut could lose commits that had already returned).

Opening checks the file (``PRAGMA quick_check``) and its schema version. A file that is
corrupt, unreadable or from a newer agent is moved aside (``<name>.corrupt-<UTC stamp>``,
with its ``-wal``/``-shm``) and an empty outbox starts; a file that is merely locked by
another process, or on a full or failing disk, is kept and the error raised, since the
file itself may be fine.

This module knows nothing of queues: it is the layer the store stands on.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import time
from pathlib import Path

_log = logging.getLogger("edge_agent.outbox")  # one logger name for the whole package

SCHEMA_VERSION = 2  # 1: walking skeleton (no gaps, dead letters); upgraded in place

SCHEMA = """
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

CHUNK = 500  # ids per IN (...) statement (SQLite's variable limit is 999 on old builds)


class OutboxError(Exception):
    """The outbox could not store or read messages (I/O error, closed, unusable file)."""


class OutboxFull(OutboxError):
    """The disk holding the outbox is full: the write was rolled back, nothing was stored."""


def connect(path: Path, *, lock_timeout_s: float) -> sqlite3.Connection:
    """Open (creating or upgrading) the outbox file; raises ``sqlite3.DatabaseError`` if
    it is corrupt, from a newer agent, locked or on a failing disk (see the classifiers)."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per batch.
    conn = sqlite3.connect(
        str(path),
        isolation_level=None,
        check_same_thread=False,
        timeout=lock_timeout_s,
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
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"outbox schema version {version} is newer than this agent's ({SCHEMA_VERSION})"
            )
        conn.executescript(SCHEMA)
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def move_aside(path: Path, error: Exception, now_s: float) -> Path:
    """Rename an unusable outbox (and its WAL files) out of the way, loudly; where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_s))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        path.rename(target)
        for suffix in ("-wal", "-shm"):
            sibling = path.with_name(path.name + suffix)
            if sibling.exists():
                sibling.rename(target.with_name(target.name + suffix))
    except OSError as move_error:
        raise OutboxError(
            f"outbox {path} is unusable ({error}) and could not be moved aside"
            f" ({move_error}); move or delete it by hand"
        ) from move_error
    _log.error(
        "OUTBOX RESET: %s is corrupt or unreadable (%s); kept it as %s for inspection and "
        "started an empty outbox. Messages stored in it were NOT delivered; seq restarts "
        "at 1.",
        path,
        error,
        target,
    )
    return target


def set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


# -- what an error says about the file -------------------------------------------------


def is_disk_full(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return int(code) & 0xFF == 13  # SQLITE_FULL
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return "full" in str(error).lower()


_ENVIRONMENTAL_CODES = frozenset({3, 7, 8, 10, 13})  # PERM, NOMEM, READONLY, IOERR, FULL
_ENVIRONMENTAL_WORDS = ("disk is full", "disk i/o error", "readonly", "out of memory")


def is_environmental(error: sqlite3.DatabaseError) -> bool:
    """A failure of the disk or the machine, not of the file's contents."""
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return (code & 0xFF) in _ENVIRONMENTAL_CODES
    text = str(error).lower()
    return any(word in text for word in _ENVIRONMENTAL_WORDS)


def is_busy(error: BaseException) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


# -- the disk under the file -------------------------------------------------------------


def disk_free_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (for stats), or -1 if unknown."""
    try:
        return int(shutil.disk_usage(path if path.is_dir() else path.parent).free)
    except OSError:
        return -1
