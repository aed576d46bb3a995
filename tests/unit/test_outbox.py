"""The durable outbox: seq, persistence, claims, eviction, TTL, gap notices, dead letters,
write failures, corruption recovery."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes.clock import FakeClock

from edge_agent.config import OutboxConfig
from edge_agent.outbox import Outbox, OutboxError, OutboxFull, StoredMessage
from edge_agent.types import MessageClass, OutboundMessage

A, E, S, T = MessageClass.ALERT, MessageClass.EVENT, MessageClass.STATE, MessageClass.THUMBNAIL


def _event(n: int, cls: MessageClass = E) -> OutboundMessage:
    return OutboundMessage(
        topic=f"city/s/d/events/cam{n % 3}",
        message_class=cls,
        json_body={"v": 1, "n": n},
        user_properties=(("schema", "event"),),
    )


def _open(path: Path, clock: Callable[[], float] | None = None, **caps: Any) -> Outbox:
    return Outbox(
        path,
        max_bytes=caps.pop("max_bytes", 1 << 24),
        max_rows=caps.pop("max_rows", 10_000),
        **({"clock": clock} if clock else {}),
        **caps,
    )


def seqs(box: Outbox) -> list[int]:
    return [m.seq for m in box.pending(100_000)]


def assert_accounts_balance(box: Outbox) -> None:
    """Every seq is stored, delivered or counted as dropped: nothing silent."""
    s = box.stats()
    assert s.enqueued_total == (
        s.acked_total + s.depth_rows + s.evicted_total + s.expired_total + s.dead_lettered_total
    )
    assert s.last_seq == s.enqueued_total + s.unstored_total


# -- seq and payloads ------------------------------------------------------------------


def test_seq_is_contiguous_and_inserted_into_compact_json(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    first = box.enqueue_many([_event(i) for i in range(5)])
    second = box.enqueue(_event(5))
    assert [m.seq for m in [*first, second]] == [1, 2, 3, 4, 5, 6]
    assert first[0].payload == b'{"v":1,"n":0,"seq":1}'
    assert json.loads(second.payload) == {"v": 1, "n": 5, "seq": 6}
    assert second.user_properties == (("schema", "event"),)
    assert box.stats().last_seq == 6


def test_encoder_cannot_set_seq_or_historical(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    stored = box.enqueue(OutboundMessage("t", E, json_body={"seq": 99, "historical": True, "x": 1}))
    assert stored.payload == b'{"x":1,"seq":1}'


def test_binary_body_is_stored_verbatim(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    jpeg = bytes(range(256))
    stored = box.enqueue(
        OutboundMessage(
            topic="t/thumb", message_class=T, binary_body=jpeg, content_type="image/jpeg"
        )
    )
    (pending,) = box.pending(10)
    assert pending == stored
    assert pending.payload == jpeg and pending.content_type == "image/jpeg"


def test_malformed_message_stores_nothing_and_burns_no_seq(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    bad = OutboundMessage(topic="t", message_class=E)  # no body at all
    with pytest.raises(ValueError, match="exactly one"):
        box.enqueue_many([_event(1), bad])
    nan = OutboundMessage(topic="t", message_class=E, json_body={"x": float("nan")})
    with pytest.raises(ValueError):
        box.enqueue(nan)
    status = OutboundMessage(topic="t", message_class=MessageClass.STATUS, json_body={})
    with pytest.raises(ValueError, match="never buffered"):
        box.enqueue(status)
    assert box.depth() == 0
    assert box.enqueue(_event(2)).seq == 1


def test_pending_is_in_seq_order_and_honours_the_cursor(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    box.enqueue_many([_event(i) for i in range(10)])
    head = box.pending(4)
    assert [m.seq for m in head] == [1, 2, 3, 4]
    rest = box.pending(100, after_row_id=head[-1].row_id)
    assert [m.seq for m in rest] == list(range(5, 11))


def test_ack_deletes_and_counts(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    stored = box.enqueue_many([_event(i) for i in range(10)])
    box.ack([m.row_id for m in stored[:4]] + [999_999])  # unknown ids are ignored
    stats = box.stats()
    assert (stats.depth_rows, stats.acked_total, stats.enqueued_total) == (6, 4, 10)
    assert stats.depth_bytes == sum(len(m.payload) + len(m.topic) for m in stored[4:])
    assert seqs(box) == list(range(5, 11))
    assert_accounts_balance(box)


def test_seq_and_counters_survive_reopen_even_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = _open(path)
    stored = box.enqueue_many([_event(i) for i in range(3)])
    box.ack([m.row_id for m in stored])
    box.close()
    box = _open(path)
    again = box.enqueue(_event(3))
    assert again.seq == 4  # never reused after a restart
    assert again.row_id > stored[-1].row_id  # a publisher cursor never skips new rows
    assert box.stats().acked_total == 3


def test_unacked_messages_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = _open(path)
    stored = box.enqueue_many([_event(i) for i in range(5)])
    box.close()
    box = _open(path)
    assert box.pending(100) == stored
    assert box.stats().depth_bytes == sum(len(m.payload) + len(m.topic) for m in stored)


def test_from_config_takes_caps_and_ttls(tmp_path: Path) -> None:
    config = OutboxConfig.model_validate(
        {"path": str(tmp_path / "o.db"), "max_rows": 123, "ttl_s": {"thumbnail": 60}}
    )
    box = Outbox.from_config(config)
    assert (box.max_rows, box.max_bytes) == (123, config.max_bytes)
    assert box.ttl_s[T] == 60 and box.ttl_s[A] == config.ttl_s.alert


# -- claims: the publisher's view ----------------------------------------------------


def test_claim_gives_urgent_and_normal_streams_in_seq_order(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    box.enqueue_many([_event(0, E), _event(1, A), _event(2, T), _event(3, A), _event(4, S)])
    urgent = box.claim(10, urgent=True)
    rest = box.claim(10, urgent=False)
    assert [m.seq for m in urgent] == [2, 4] and all(m.urgent for m in urgent)
    assert [m.seq for m in rest] == [1, 3, 5] and not any(m.urgent for m in rest)
    # Claimed rows are not handed out twice, even from the start of the table.
    assert box.claim(10, urgent=False) == [] and box.unclaimed() == 0
    box.release([rest[1].row_id])
    assert [m.seq for m in box.claim(10, urgent=False)] == [3]


def test_claim_skips_claimed_rows_and_still_fills_the_batch(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    stored = box.enqueue_many([_event(i) for i in range(10)])
    first = box.claim(3, urgent=False)
    box.release([first[1].row_id])  # a hole in the claimed run
    again = box.claim(4, urgent=False, after_row_id=0)
    assert [m.seq for m in again] == [2, 4, 5, 6]
    assert [m.seq for m in stored] == list(range(1, 11))


# -- eviction and gap ranges ---------------------------------------------------------


def test_eviction_drops_lowest_priority_then_oldest_and_records_gaps(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", max_rows=5)
    for i, cls in enumerate([A, T, E, T, S]):
        box.enqueue(_event(i, cls))
    box.enqueue_many([_event(5, E), _event(6, E)])
    # two over the cap: both thumbnails go (oldest first), alerts and events stay
    assert seqs(box) == [1, 3, 5, 6, 7]
    box.enqueue(_event(7, E))
    assert seqs(box) == [1, 3, 6, 7, 8]  # then the state
    box.enqueue(_event(8, A))
    assert seqs(box) == [1, 6, 7, 8, 9]  # then the oldest event
    stats = box.stats()
    assert stats.evicted_by_class == {"thumbnail": 2, "state": 1, "event": 1}
    assert (stats.evicted_total, stats.depth_rows, stats.gap_seqs_unreported) == (4, 5, 4)
    # Adjacent lost seqs merge into one range whatever their class.
    assert box.gap_ranges() == [
        (2, 5, {"evicted": {"thumbnail": 2, "event": 1, "state": 1}}),
    ]
    assert_accounts_balance(box)


def test_eviction_by_bytes_and_counts_persist(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    big = OutboundMessage(
        topic="t", message_class=T, binary_body=b"x" * 999, content_type="image/jpeg"
    )
    box = _open(path, max_bytes=3000)
    box.enqueue_many([big, big, big])  # 3 x 1000 bytes: exactly at the cap
    assert box.stats().evicted_total == 0
    box.enqueue(_event(1))
    stats = box.stats()
    assert stats.evicted_by_class == {"thumbnail": 1}
    assert stats.depth_bytes <= 3000
    box.close()
    reopened = _open(path, max_bytes=3000)
    assert reopened.stats().evicted_by_class == {"thumbnail": 1}
    assert reopened.gap_ranges() == [(1, 1, {"evicted": {"thumbnail": 1}})]


def test_new_low_priority_message_is_evicted_when_full_of_alerts(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", max_rows=2)
    box.enqueue_many([_event(0, A), _event(1, A)])
    box.enqueue(_event(2, T))
    assert seqs(box) == [1, 2]
    assert box.stats().evicted_by_class == {"thumbnail": 1}
    assert box.gap_ranges() == [(3, 3, {"evicted": {"thumbnail": 1}})]


def test_claimed_rows_are_never_evicted(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", max_rows=3)
    box.enqueue_many([_event(0, T), _event(1, T), _event(2, T)])
    in_flight = box.claim(1, urgent=False)  # seq 1 is being delivered
    box.enqueue(_event(3, E))
    assert seqs(box) == [1, 3, 4]  # seq 2, the oldest *unclaimed* thumbnail, went
    box.ack([in_flight[0].row_id])
    assert box.gap_ranges() == [(2, 2, {"evicted": {"thumbnail": 1}})]


# -- TTL ----------------------------------------------------------------------------


def test_ttl_expires_by_class_and_reports_gaps(tmp_path: Path) -> None:
    clock = FakeClock()
    box = _open(tmp_path / "o.db", clock, ttl_s={T: 60.0, S: 120.0, E: 600.0})
    box.enqueue_many([_event(0, T), _event(1, S), _event(2, E), _event(3, A)])
    clock.now_s += 61
    box.enqueue(_event(4, T))  # young
    assert box.expire() == {"thumbnail": 1}
    assert seqs(box) == [2, 3, 4, 5]
    clock.now_s += 60
    assert box.expire() == {"state": 1}
    clock.now_s += 10_000
    assert box.expire() == {"event": 1, "thumbnail": 1}  # alerts have no TTL here
    assert seqs(box) == [4]
    stats = box.stats()
    assert stats.expired_by_class == {"event": 1, "state": 1, "thumbnail": 2}
    assert box.gap_ranges() == [
        (1, 3, {"expired": {"event": 1, "state": 1, "thumbnail": 1}}),
        (5, 5, {"expired": {"thumbnail": 1}}),
    ]
    assert box.expire() == {}
    assert_accounts_balance(box)


def test_claimed_rows_do_not_expire(tmp_path: Path) -> None:
    clock = FakeClock()
    box = _open(tmp_path / "o.db", clock, ttl_s={E: 10.0})
    box.enqueue_many([_event(0), _event(1)])
    box.claim(1, urgent=False)
    clock.now_s += 11
    assert box.expire() == {"event": 1}
    assert seqs(box) == [1]


def test_a_full_outbox_drops_expired_rows_before_evicting_live_ones(tmp_path: Path) -> None:
    clock = FakeClock()
    box = _open(tmp_path / "o.db", clock, max_rows=3, ttl_s={E: 10.0})
    box.enqueue_many([_event(0, E), _event(1, T), _event(2, T)])
    clock.now_s += 11
    box.enqueue(_event(3, T))  # over the cap: the stale event goes, not a thumbnail
    assert seqs(box) == [2, 3, 4]
    assert box.stats().expired_by_class == {"event": 1}
    assert box.stats().evicted_by_class == {}


# -- gap notices --------------------------------------------------------------------


def test_gap_notice_lists_ranges_has_its_own_seq_and_is_urgent(tmp_path: Path) -> None:
    clock = FakeClock()
    box = _open(tmp_path / "o.db", clock, max_rows=3)
    box.enqueue_many([_event(i, T if i % 2 else E) for i in range(6)])
    # rows 1..6: E T E T E T -> the three thumbnails (2, 4, 6) are evicted
    assert seqs(box) == [1, 3, 5]
    notice = box.issue_gap_notice("city/s/d/gaps")
    assert notice is not None
    assert (notice.seq, notice.topic, notice.is_gap_notice, notice.urgent) == (
        7,
        "city/s/d/gaps",
        True,
        True,
    )
    assert json.loads(notice.payload) == {
        "v": 1,
        "ts": clock.now_s,
        "gaps": [
            {"from": 2, "to": 2, "evicted": {"thumbnail": 1}},
            {"from": 4, "to": 4, "evicted": {"thumbnail": 1}},
            {"from": 6, "to": 6, "evicted": {"thumbnail": 1}},
        ],
        "seq": 7,
    }
    assert box.gap_ranges() == [] and box.stats().gap_seqs_unreported == 0
    assert [m.seq for m in box.claim(10, urgent=True)] == [7]
    # At most one notice outstanding: more drops wait for the next one.
    box.enqueue_many([_event(7, T), _event(8, T)])
    assert box.notice_wanted() is False
    assert box.issue_gap_notice("city/s/d/gaps") is None
    box.ack([notice.row_id])
    assert box.notice_wanted() is True
    second = box.issue_gap_notice("city/s/d/gaps")
    assert second is not None and second.seq == 10
    # The notice row counts towards the cap too: the oldest event made room for it.
    assert json.loads(second.payload)["gaps"] == [
        {"from": 1, "to": 1, "evicted": {"event": 1}},
        {"from": 8, "to": 9, "evicted": {"thumbnail": 2}},
    ]
    assert box.stats().gap_notices_total == 2
    assert_accounts_balance(box)


def test_notices_are_never_evicted_nor_expired(tmp_path: Path) -> None:
    clock = FakeClock()
    box = _open(tmp_path / "o.db", clock, max_rows=2, ttl_s={A: 1.0})
    box.enqueue_many([_event(0, T), _event(1, T), _event(2, T)])
    notice = box.issue_gap_notice("g")
    assert notice is not None
    box.enqueue_many([_event(3, A), _event(4, A)])
    clock.now_s += 100
    box.expire()
    assert notice.seq in seqs(box)


def test_no_notice_when_nothing_was_dropped(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    box.enqueue(_event(1))
    assert box.issue_gap_notice("g") is None and not box.notice_wanted()


# -- dead letters -------------------------------------------------------------------


def test_dead_letter_moves_aside_counts_and_reports(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", dead_letter_max_rows=2)
    stored = box.enqueue_many([_event(i, T if i == 1 else E) for i in range(5)])
    claimed = box.claim(5, urgent=False)
    box.dead_letter([(claimed[1], "refused: too large"), (claimed[2], "refused: not authorised")])
    assert seqs(box) == [1, 4, 5]
    letters = box.dead_letters()
    assert [(d.seq, d.message_class, d.reason) for d in letters] == [
        (3, "event", "refused: not authorised"),
        (2, "thumbnail", "refused: too large"),
    ]
    assert letters[1].payload == stored[1].payload
    stats = box.stats()
    assert stats.dead_lettered_by_class == {"event": 1, "thumbnail": 1}
    assert box.gap_ranges() == [(2, 3, {"refused": {"event": 1, "thumbnail": 1}})]
    box.dead_letter([(claimed[3], "refused")])  # the table keeps the newest 2
    assert [d.seq for d in box.dead_letters()] == [4, 3]
    assert box.stats().dead_letter_rows == 2
    assert_accounts_balance(box)


def test_a_refused_notice_puts_its_ranges_back_and_reports_itself(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", max_rows=1)
    box.enqueue_many([_event(0, T), _event(1, T)])  # seq 1 evicted
    notice = box.issue_gap_notice("g")
    assert notice is not None and notice.seq == 3
    box.dead_letter([(notice, "refused: not authorised")])
    assert box.gap_ranges() == [
        (1, 1, {"evicted": {"thumbnail": 1}}),
        (3, 3, {"refused": {"gaps": 1}}),
    ]
    assert box.notice_wanted()
    assert_accounts_balance(box)


# -- write failures (full disk, I/O error) -----------------------------------------


class FaultyConnection:
    """Wraps the outbox's SQLite connection; fails writes while ``failing`` is set."""

    def __init__(self, conn: sqlite3.Connection, message: str) -> None:
        self._conn = conn
        self.message = message
        self.failing = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self.failing and sql.lstrip().upper().startswith(("INSERT", "DELETE", "COMMIT")):
            raise sqlite3.OperationalError(self.message)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _faulty(box: Outbox, message: str = "database or disk is full") -> FaultyConnection:
    faulty = FaultyConnection(box._conn, message)
    box._conn = faulty  # type: ignore[assignment]
    return faulty


def test_full_disk_raises_outbox_full_keeps_what_is_stored_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _open(tmp_path / "o.db")
    before = box.enqueue_many([_event(i) for i in range(3)])
    faulty = _faulty(box)
    faulty.failing = True
    with caplog.at_level(logging.WARNING, logger="edge_agent.outbox"):
        with pytest.raises(OutboxFull, match="disk full during enqueue"):
            box.enqueue_many([_event(3), _event(4, T)])
        with pytest.raises(OutboxFull):
            box.enqueue(_event(5))
        with pytest.raises(OutboxFull):
            box.ack([before[0].row_id])
        assert box.pending(100) == before  # nothing stored was touched
        stats = box.stats()
        assert stats.write_failures == 3 and stats.last_error is not None
        assert stats.unstored_by_class == {"event": 2, "thumbnail": 1}
        assert stats.gap_seqs_unreported == 3
        assert [r.levelname for r in caplog.records] == ["ERROR"]  # loud once, not per write
        faulty.failing = False
        after = box.enqueue(_event(6))
    assert after.seq == 7  # 4..6 were burnt, not reused
    assert "writable again" in caplog.text
    assert box.gap_ranges() == [(4, 6, {"unstored": {"event": 2, "thumbnail": 1}})]
    assert_accounts_balance(box)
    box.close()
    reopened = _open(tmp_path / "o.db")
    assert reopened.stats().unstored_by_class == {"event": 2, "thumbnail": 1}
    assert reopened.enqueue(_event(7)).seq == 8


def test_other_write_errors_raise_outbox_error_not_full(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    _faulty(box, "disk I/O error").failing = True
    with pytest.raises(OutboxError, match="write error") as caught:
        box.enqueue(_event(1))
    assert not isinstance(caught.value, OutboxFull)


def test_closed_outbox_raises(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.enqueue(_event(1))


# -- opening: corruption, unreadable files, old schema ------------------------------


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
    assert box.enqueue(_event(1)).seq == 1
    assert box.depth() == 1


def test_truncated_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = _open(path)
    box.enqueue_many([_event(i) for i in range(2000)])
    box.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    reopened = _open(path)
    assert reopened.recovered_from is not None and reopened.depth() == 0


def test_a_directory_in_place_of_the_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.mkdir()
    (path / "something").write_text("x")
    box = _open(path)
    assert box.recovered_from is not None and (box.recovered_from / "something").exists()
    assert box.enqueue(_event(1)).seq == 1


def test_an_outbox_from_a_newer_agent_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    box = _open(path)
    assert box.recovered_from is not None and box.recovery_reason is not None
    assert "newer" in box.recovery_reason


def test_a_locked_outbox_is_an_error_not_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    _open(path).close()
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
    _open(path).close()
    box = _open(path)
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
    box = _open(path)
    assert box.recovered_from is None
    assert [(m.seq, m.payload) for m in box.pending(10)] == [(7, b"{}")]
    assert box.enqueue(_event(1)).seq == 8
    assert box.stats().acked_total == 6


def test_wal_and_full_sync_are_in_force(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = _open(path)
    box.enqueue(_event(1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # synchronous is per connection: check the outbox's own
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Acks may skip their fsync (at most a second's worth), but never leave it off.
    for _ in range(3):
        box.ack([m.row_id for m in box.enqueue_many([_event(2), _event(3)])])
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


# -- concurrency ----------------------------------------------------------------------


def test_concurrent_enqueue_claim_and_ack_keep_seq_contiguous(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    errors: list[BaseException] = []
    acked: list[int] = []
    done = threading.Event()

    def producer() -> None:
        try:
            for i in range(200):
                box.enqueue_many([_event(i), _event(i)])
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    def consumer() -> None:
        cursor = 0
        try:
            while not (done.is_set() and box.unclaimed() == 0):
                rows: list[StoredMessage] = box.claim(50, urgent=False, after_row_id=cursor)
                if rows:
                    cursor = rows[-1].row_id
                    acked.extend(m.seq for m in rows)
                    box.ack(m.row_id for m in rows)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert acked == list(range(1, 401))
    assert box.depth() == 0
    assert_accounts_balance(box)


def test_a_full_disk_at_start_keeps_the_outbox_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "o.db"
    box = _open(path)
    box.enqueue_many([_event(i) for i in range(5)])
    box.close()
    before = path.read_bytes()
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]

    def failing_open(self: Outbox) -> sqlite3.Connection:
        raise full

    monkeypatch.setattr(Outbox, "_open", failing_open)
    with pytest.raises(OutboxError, match="stored messages are kept"):
        _open(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if "corrupt" in p.name]
    assert _open(path).depth() == 5


# -- lifecycles left open by a run that died -------------------------------------------


def _step(lifecycle_id: str, step: str, cls: MessageClass = E, ts: float = 1.0) -> OutboundMessage:
    return OutboundMessage(
        topic="city/s/d/events/cam1",
        message_class=cls,
        json_body={"v": 1, "type": step, "id": lifecycle_id, "ts": ts, "end": None},
        user_properties=(("schema", "edge-agent/event/1"),),
    )


def test_open_lifecycles_keep_the_last_step_of_what_has_no_end(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    box.enqueue_many([_step("e1", "new"), _step("a1", "new", A), _event(1, S)])
    box.enqueue_many([_step("e1", "update", ts=2.0), _step("e2", "new"), _step("a1", "end", A)])
    box.close()
    reopened = _open(tmp_path / "o.db")  # what a restart after a crash finds
    left = reopened.open_lifecycles()
    assert [(m.json_body or {})["id"] for m in left] == ["e1", "e2"]
    first = left[0]
    assert first.json_body == {"v": 1, "type": "update", "id": "e1", "ts": 2.0, "end": None}
    assert (first.topic, first.message_class) == ("city/s/d/events/cam1", E)
    assert first.user_properties == (("schema", "edge-agent/event/1"),)
    reopened.enqueue_many([_step("e1", "end"), _step("e2", "end")])
    assert reopened.open_lifecycles() == []


def test_a_step_the_disk_refused_does_not_change_what_is_open(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    box.enqueue(_step("e1", "new"))
    faulty = _faulty(box)
    faulty.failing = True
    with pytest.raises(OutboxFull):
        box.enqueue_many([_step("e1", "end"), _step("e2", "new")])
    faulty.failing = False
    assert [(m.json_body or {})["id"] for m in box.open_lifecycles()] == ["e1"]
