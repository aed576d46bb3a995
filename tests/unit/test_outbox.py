"""The durable outbox: seq, persistence, acks, eviction, corruption recovery."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage


def _event(n: int, cls: MessageClass = MessageClass.EVENT) -> OutboundMessage:
    return OutboundMessage(
        topic=f"city/s/d/events/cam{n % 3}",
        message_class=cls,
        json_body={"v": 1, "n": n},
        user_properties=(("schema", "event"),),
    )


def _open(path: Path, **caps: int) -> Outbox:
    return Outbox(
        path, max_bytes=caps.get("max_bytes", 1 << 24), max_rows=caps.get("max_rows", 10_000)
    )


def test_seq_is_contiguous_and_inserted_into_compact_json(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    first = box.enqueue_many([_event(i) for i in range(5)])
    second = box.enqueue(_event(5))
    assert [m.seq for m in [*first, second]] == [1, 2, 3, 4, 5, 6]
    assert first[0].payload == b'{"v":1,"n":0,"seq":1}'
    assert json.loads(second.payload) == {"v": 1, "n": 5, "seq": 6}
    assert second.user_properties == (("schema", "event"),)
    assert box.stats().last_seq == 6


def test_binary_body_is_stored_verbatim(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    jpeg = bytes(range(256))
    stored = box.enqueue(
        OutboundMessage(
            topic="t/thumb",
            message_class=MessageClass.THUMBNAIL,
            binary_body=jpeg,
            content_type="image/jpeg",
        )
    )
    (pending,) = box.pending(10)
    assert pending == stored
    assert pending.payload == jpeg and pending.content_type == "image/jpeg"


def test_malformed_message_stores_nothing(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db")
    bad = OutboundMessage(topic="t", message_class=MessageClass.EVENT)  # no body at all
    with pytest.raises(ValueError, match="exactly one"):
        box.enqueue_many([_event(1), bad])
    nan = OutboundMessage(
        topic="t", message_class=MessageClass.EVENT, json_body={"x": float("nan")}
    )
    with pytest.raises(ValueError):
        box.enqueue(nan)
    assert box.depth() == 0
    assert box.enqueue(_event(2)).seq == 1  # no seq was burnt


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
    assert stats.depth_rows == 6
    assert stats.acked_total == 4
    assert stats.enqueued_total == 10
    assert stats.depth_bytes == sum(len(m.payload) + len(m.topic) for m in stored[4:])
    assert [m.seq for m in box.pending(100)] == list(range(5, 11))


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


def test_eviction_drops_lowest_priority_then_oldest_and_counts(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", max_rows=5)
    box.enqueue(_event(0, MessageClass.ALERT))
    box.enqueue(_event(1, MessageClass.THUMBNAIL))
    box.enqueue(_event(2, MessageClass.EVENT))
    box.enqueue(_event(3, MessageClass.THUMBNAIL))
    box.enqueue(_event(4, MessageClass.STATE))
    box.enqueue_many([_event(5, MessageClass.EVENT), _event(6, MessageClass.EVENT)])
    # two over the cap: both thumbnails go (oldest first), alerts and events stay
    assert [m.seq for m in box.pending(100)] == [1, 3, 5, 6, 7]
    box.enqueue(_event(7, MessageClass.EVENT))
    assert [m.seq for m in box.pending(100)] == [1, 3, 6, 7, 8]  # then the state
    box.enqueue(_event(8, MessageClass.ALERT))
    assert [m.seq for m in box.pending(100)] == [1, 6, 7, 8, 9]  # then the oldest event
    stats = box.stats()
    assert stats.evicted_by_class == {"thumbnail": 2, "state": 1, "event": 1}
    assert stats.evicted_total == 4
    assert stats.depth_rows == 5


def test_eviction_by_bytes_and_counts_persist(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    big = OutboundMessage(
        topic="t",
        message_class=MessageClass.THUMBNAIL,
        binary_body=b"x" * 999,
        content_type="image/jpeg",
    )
    box = _open(path, max_bytes=3000)
    box.enqueue_many([big, big, big])  # 3 x 1000 bytes: exactly at the cap
    assert box.stats().evicted_total == 0
    box.enqueue(_event(1))
    stats = box.stats()
    assert stats.evicted_by_class == {"thumbnail": 1}
    assert stats.depth_bytes <= 3000
    box.close()
    assert _open(path, max_bytes=3000).stats().evicted_by_class == {"thumbnail": 1}


def test_new_low_priority_message_is_evicted_when_full_of_alerts(tmp_path: Path) -> None:
    box = _open(tmp_path / "o.db", max_rows=2)
    box.enqueue_many([_event(0, MessageClass.ALERT), _event(1, MessageClass.ALERT)])
    box.enqueue(_event(2, MessageClass.THUMBNAIL))
    assert [m.seq for m in box.pending(10)] == [1, 2]
    assert box.stats().evicted_by_class == {"thumbnail": 1}


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
    assert "corrupt" in caplog.text
    assert box.enqueue(_event(1)).seq == 1
    assert box.depth() == 1


def test_healthy_file_is_not_flagged(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    _open(path).close()
    box = _open(path)
    assert box.recovered_from is None
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []


def test_wal_and_full_sync_are_in_force(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = _open(path)
    box.enqueue(_event(1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # synchronous is per connection: check the outbox's own
    assert box._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_concurrent_enqueue_and_ack_keep_seq_contiguous(tmp_path: Path) -> None:
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
            while not (done.is_set() and not box.pending(1, after_row_id=cursor)):
                rows = box.pending(50, after_row_id=cursor)
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
