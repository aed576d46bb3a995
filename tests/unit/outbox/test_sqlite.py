"""Opening the file: corruption, unreadable files, old schema, locks, PRAGMAs."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from fakes.outbox import event, open_outbox

from edge_agent.outbox import Outbox, OutboxError, sqlite


@pytest.mark.parametrize(
    "garbage", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 5000]
)
def test_corrupt_file_is_moved_aside_and_a_fresh_outbox_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="edge_agent.outbox"):
        box = Outbox(path, max_bytes=1 << 20, max_rows=100, clock=lambda: 1_700_000_000.0)
    assert box.recovered_from == tmp_path / "outbox.db.corrupt-20231114T221320"
    assert box.recovered_from.read_bytes() == garbage
    assert "OUTBOX RESET" in caplog.text and caplog.records[0].levelname == "ERROR"
    assert box.stats().recovered_from == str(box.recovered_from)
    assert box.enqueue(event(1)).seq == 1
    assert box.depth() == 1


def test_truncated_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue_many([event(i) for i in range(2000)])
    box.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    reopened = open_outbox(path)
    assert reopened.recovered_from is not None and reopened.depth() == 0


def _nothing_moved_aside(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if "corrupt" in p.name]


def test_a_directory_in_place_of_the_file_is_an_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.mkdir()
    (path / "something").write_text("x")
    with pytest.raises(OutboxError, match=r"is a directory; remove it or point outbox\.path"):
        open_outbox(path)
    assert (path / "something").read_text() == "x"
    assert _nothing_moved_aside(tmp_path)


def test_a_fifo_in_place_of_the_file_is_an_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    os.mkfifo(path)
    with pytest.raises(OutboxError, match="not a regular file"):
        open_outbox(path)
    assert stat.S_ISFIFO(path.stat().st_mode)
    assert _nothing_moved_aside(tmp_path)


def test_a_parent_that_is_a_file_is_an_error_saying_so(tmp_path: Path) -> None:
    parent = tmp_path / "state"
    parent.write_text("not a directory")
    with pytest.raises(OutboxError, match=re.escape(f"{parent} is not a directory")):
        open_outbox(parent / "sub" / "o.db")
    assert parent.read_text() == "not a directory"
    assert _nothing_moved_aside(tmp_path)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("unable to open database file", 14),  # SQLITE_CANTOPEN: wrong owner, missing dir
        ("attempt to write a readonly database", 8),  # SQLITE_READONLY: read-only mount
        ("access permission denied", 3),  # SQLITE_PERM
        ("unable to open database file", None),  # no error code: judged by the text
        ("some error SQLite has not told us about", 1),  # SQLITE_ERROR: not corruption
    ],
)
def test_a_file_sqlite_cannot_open_is_kept_with_its_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str, code: int | None
) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue_many([event(i) for i in range(25)])
    box.close()
    before = path.read_bytes()
    failure = sqlite3.OperationalError(message)
    failure.sqlite_errorcode = code  # type: ignore[attr-defined]

    def cannot_open(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise failure

    monkeypatch.setattr(sqlite3, "connect", cannot_open)
    with pytest.raises(OutboxError, match="the stored messages are kept"):
        open_outbox(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _nothing_moved_aside(tmp_path)
    again = open_outbox(path)
    assert again.depth() == 25 and again.enqueue(event(99)).seq == 26


def test_a_file_of_another_owner_is_kept_and_the_error_says_chown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the agent may not write (checked so even as root, which permission bits do
    not stop): ``os.access`` answers as it would for a service user facing a file root left
    behind (0644, owned by root)."""
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue_many([event(i) for i in range(25)])
    box.close()
    before = path.read_bytes()
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != path)
    with pytest.raises(OutboxError, match=r"not readable and writable .* chown it"):
        open_outbox(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and _nothing_moved_aside(tmp_path)
    assert open_outbox(path).depth() == 25


def test_an_outbox_on_a_read_only_filesystem_is_kept_and_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue(event(1))
    box.close()
    real_statvfs = os.statvfs

    def read_only(folder: object) -> object:
        real = real_statvfs(folder)  # type: ignore[arg-type]
        return type("Statvfs", (), {"f_flag": real.f_flag | os.ST_RDONLY})()

    monkeypatch.setattr(os, "statvfs", read_only)
    with pytest.raises(OutboxError, match="read-only filesystem; remount it read-write"):
        open_outbox(path)
    monkeypatch.undo()
    assert _nothing_moved_aside(tmp_path) and open_outbox(path).depth() == 1


def test_the_outbox_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue(event(1))
    files = [path, tmp_path / "o.db-wal", tmp_path / "o.db-shm"]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    box.close()


def test_an_outbox_left_readable_by_others_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path)  # as an older agent made it: 0644 under umask 022
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    path.chmod(0o644)
    (tmp_path / "o.db-wal").chmod(0o644)
    box = open_outbox(path)
    box.enqueue(event(1))
    conn.close()
    for name in ("o.db", "o.db-wal", "o.db-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    box.close()


def test_a_corrupt_file_after_a_fresh_start_is_still_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(os.urandom(8192))
    box = open_outbox(path)
    assert box.recovered_from is not None
    assert box.recovered_from.stat().st_size == 8192
    box.enqueue(event(1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_outbox_from_a_newer_agent_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    box = open_outbox(path)
    assert box.recovered_from is not None and box.recovery_reason is not None
    assert "newer" in box.recovery_reason


def test_a_locked_outbox_is_an_error_not_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    open_outbox(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OutboxError, match="locked"):
            Outbox(path, max_bytes=1 << 20, max_rows=100, lock_timeout_s=0.1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not [p for p in tmp_path.iterdir() if "corrupt" in p.name]


def test_healthy_file_is_not_flagged(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    open_outbox(path).close()
    box = open_outbox(path)
    assert box.recovered_from is None
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []


def test_the_page_cache_is_held_small(tmp_path: Path) -> None:
    conn = sqlite.connect(tmp_path / "o.db", lock_timeout_s=1.0)
    try:
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -sqlite.CACHE_KIB
        assert sqlite.CACHE_KIB < 2000  # below SQLite's default (bench/README.md, memory)
    finally:
        conn.close()


SKELETON_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE messages (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL UNIQUE,
    topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
    message_class TEXT NOT NULL, priority INTEGER NOT NULL, created_at_s REAL NOT NULL,
    content_type TEXT NOT NULL, user_properties TEXT NOT NULL, size_bytes INTEGER NOT NULL);
CREATE INDEX messages_by_eviction ON messages (priority DESC, row_id ASC);
INSERT INTO meta VALUES ('last_seq', 7), ('enqueued_total', 7), ('acked_total', 6);
INSERT INTO messages VALUES (7, 7, 't', X'7B7D', 1, 0, 'event', 1, 1.0, 'application/json',
    '[]', 3);
PRAGMA user_version=1;
"""


def test_a_walking_skeleton_outbox_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path)
    conn.executescript(SKELETON_SCHEMA)
    conn.close()
    box = open_outbox(path)
    assert box.recovered_from is None
    assert [(m.seq, m.payload) for m in box.pending(10)] == [(7, b"{}")]
    assert box.enqueue(event(1)).seq == 8
    assert box.stats().acked_total == 6


def test_wal_and_full_sync_are_in_force(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue(event(1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # synchronous is per connection: check the outbox's own
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Acks may skip their fsync (at most a second's worth), but never leave it off.
    for _ in range(3):
        box.ack([m.row_id for m in box.enqueue_many([event(2), event(3)])])
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_full_disk_at_start_keeps_the_outbox_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    box.enqueue_many([event(i) for i in range(5)])
    box.close()
    before = path.read_bytes()
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]

    def failing_open(self: Outbox) -> sqlite3.Connection:
        raise full

    monkeypatch.setattr(Outbox, "_open", failing_open)
    with pytest.raises(OutboxError, match="stored messages are kept"):
        open_outbox(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if "corrupt" in p.name]
    assert open_outbox(path).depth() == 5
