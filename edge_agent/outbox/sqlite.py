"""The outbox file: schema, opening with the right PRAGMAs, recovery, error classification.

Durability: WAL mode with ``synchronous=FULL`` (in WAL mode ``NORMAL`` only syncs at
checkpoints, so a power cut could lose commits that had already returned).

Opening checks the file (``PRAGMA quick_check``) and its schema version. Only a file
SQLite itself reports as corrupt or not a database, or one from a newer agent, is moved
aside (``<name>.corrupt-<UTC stamp>``, with its ``-wal``/``-shm``) and an empty outbox
starts. A file that cannot be opened (permissions, wrong owner, a directory or other
non-file at the path, a read-only, full or failing disk) or is merely locked by another
process is kept and the error raised: the environment is at fault, not the file, and the
messages in it must survive until it is fixed.

The file and its ``-wal``/``-shm`` are owner-only (0600): they hold thumbnails of people.

SQLite's page cache is held at ``CACHE_KIB`` instead of its 2 MB default: the queue's
working set is the few pages at its two ends, other reads come from the kernel's page
cache; with a broker away for two minutes the default's growth was +2.2 MB of the agent's
high-water (bench/README.md, memory), and no CPU difference was measurable.

This module knows nothing of queues: it is the layer the store stands on.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path

_log = logging.getLogger("edge_agent.outbox")  # one logger name for the whole package

SCHEMA_VERSION = 2  # 1: walking skeleton (no gaps, dead letters); upgraded in place
CACHE_KIB = 512  # SQLite's page cache for the outbox's one connection (default 2000)

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


class UnusableFile(sqlite3.DatabaseError):
    """The file opened but cannot be used as this agent's outbox (failed check, newer schema)."""


FILE_MODE = 0o600  # owner-only: the outbox holds thumbnails of people
_WAL_SUFFIXES = ("-wal", "-shm")


def prepare(path: Path) -> None:
    """Make sure ``path`` can hold the outbox, creating it owner-only if it is missing.

    Raises :class:`OutboxError` saying what to fix when the environment is at fault (a
    parent that cannot be created, a directory or other non-file at the path, a file or
    directory this user may not read and write); nothing is moved, renamed or deleted.
    """
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner-only, as the file
    except OSError as error:
        blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
        why = (
            f"{blocker} is not a directory"
            if blocker is not None and not blocker.is_dir()
            else str(error)
        )
        raise OutboxError(
            f"outbox {path}: cannot create its directory {parent} ({why}); create it for "
            "the agent's user or point outbox.path elsewhere"
        ) from error
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise OutboxError(
            f"outbox {path} cannot be examined ({error}); check the permissions of "
            f"{parent} for the agent's user (uid {os.geteuid()})"
        ) from error
    if info is not None and not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise OutboxError(
            f"outbox {path} is {kind}; remove it or point outbox.path elsewhere "
            "(nothing was moved or deleted)"
        )
    if _read_only_filesystem(parent):
        raise OutboxError(
            f"outbox {path} is on a read-only filesystem; remount it read-write or point "
            "outbox.path at writable storage (the stored messages are kept)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutboxError(
            f"outbox {path}: its directory {parent} is not writable by the agent's user "
            f"(uid {os.geteuid()}; the outbox needs to create its -wal and -shm files "
            f"there): chown/chmod {parent} or point outbox.path elsewhere"
        )
    if info is not None and not os.access(path, os.R_OK | os.W_OK):
        raise OutboxError(
            f"outbox {path} is not readable and writable by the agent's user (uid "
            f"{os.geteuid()}; the file belongs to uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}): chown it to the agent's user and chmod 600 "
            "it; the stored messages are kept"
        )
    if info is None:
        try:  # an empty file is an empty database; SQLite's own would be 0644
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
        except FileExistsError:
            pass  # created meanwhile: connect() decides
        except OSError as error:
            raise OutboxError(
                f"outbox {path} cannot be created ({error}); check {parent}"
            ) from error


def _read_only_filesystem(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False  # unknown: let the access checks and SQLite say what is wrong


def restrict_mode(path: Path) -> None:
    """Make the outbox and its WAL files owner-only (an older agent left them 0644)."""
    for file in (path, *(path.with_name(path.name + s) for s in _WAL_SUFFIXES)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(mode & 0o700)
                _log.warning("outbox %s was mode %04o; made it owner-only", file, mode)
        except FileNotFoundError:
            continue
        except OSError as error:
            _log.warning("outbox %s: could not make it owner-only (%s)", file, error)


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
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # negative: KiB, not pages
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise UnusableFile(f"quick_check failed: {check}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UnusableFile(
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
    """Rename a corrupt outbox (and its WAL files) out of the way, loudly; where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_s))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        path.rename(target)
        for suffix in _WAL_SUFFIXES:
            sibling = path.with_name(path.name + suffix)
            if sibling.exists():
                sibling.rename(target.with_name(target.name + suffix))
    except OSError as move_error:
        raise OutboxError(
            f"outbox {path} is unusable ({error}) and could not be moved aside"
            f" ({move_error}); move or delete it by hand"
        ) from move_error
    _log.error(
        "OUTBOX RESET: %s is corrupt (%s); kept it as %s for inspection and "
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


_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_CORRUPT_WORDS = ("malformed", "not a database")


def is_corrupt(error: sqlite3.DatabaseError) -> bool:
    """SQLite says the file's contents are unusable: the only case that moves it aside."""
    if isinstance(error, UnusableFile):
        return True
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(error).lower()
    return any(word in text for word in _CORRUPT_WORDS)


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
