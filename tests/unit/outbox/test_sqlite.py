"""Opening the file: corruption, unreadable files, old schema, locks, PRAGMAs."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from fakes.outbox import event, open_outbox

from edge_agent.outbox import Outbox, OutboxError


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


def test_a_directory_in_place_of_the_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.mkdir()
    (path / "something").write_text("x")
    box = open_outbox(path)
    assert box.recovered_from is not None and (box.recovered_from / "something").exists()
    assert box.enqueue(event(1)).seq == 1


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
