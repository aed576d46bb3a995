"""Bounds: eviction by priority and age, TTL expiry; claimed rows are never dropped."""

from __future__ import annotations

from pathlib import Path

from fakes.clock import FakeClock
from fakes.outbox import assert_accounts_balance, event, open_outbox, seqs

from edge_agent.types import MessageClass, OutboundMessage

A, E, S, T = MessageClass.ALERT, MessageClass.EVENT, MessageClass.STATE, MessageClass.THUMBNAIL


# -- eviction and gap ranges -------------------------------------------------------


def test_eviction_drops_lowest_priority_then_oldest_and_records_gaps(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", max_rows=5)
    for i, cls in enumerate([A, T, E, T, S]):
        box.enqueue(event(i, cls))
    box.enqueue_many([event(5, E), event(6, E)])
    # two over the cap: both thumbnails go (oldest first), alerts and events stay
    assert seqs(box) == [1, 3, 5, 6, 7]
    box.enqueue(event(7, E))
    assert seqs(box) == [1, 3, 6, 7, 8]  # then the state
    box.enqueue(event(8, A))
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
    box = open_outbox(path, max_bytes=3000)
    box.enqueue_many([big, big, big])  # 3 x 1000 bytes: exactly at the cap
    assert box.stats().evicted_total == 0
    box.enqueue(event(1))
    stats = box.stats()
    assert stats.evicted_by_class == {"thumbnail": 1}
    assert stats.depth_bytes <= 3000
    box.close()
    reopened = open_outbox(path, max_bytes=3000)
    assert reopened.stats().evicted_by_class == {"thumbnail": 1}
    assert reopened.gap_ranges() == [(1, 1, {"evicted": {"thumbnail": 1}})]


def test_new_low_priority_message_is_evicted_when_full_of_alerts(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", max_rows=2)
    box.enqueue_many([event(0, A), event(1, A)])
    box.enqueue(event(2, T))
    assert seqs(box) == [1, 2]
    assert box.stats().evicted_by_class == {"thumbnail": 1}
    assert box.gap_ranges() == [(3, 3, {"evicted": {"thumbnail": 1}})]


def test_claimed_rows_are_never_evicted(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", max_rows=3)
    box.enqueue_many([event(0, T), event(1, T), event(2, T)])
    in_flight = box.claim(1, urgent=False)  # seq 1 is being delivered
    box.enqueue(event(3, E))
    assert seqs(box) == [1, 3, 4]  # seq 2, the oldest *unclaimed* thumbnail, went
    box.ack([in_flight[0].row_id])
    assert box.gap_ranges() == [(2, 2, {"evicted": {"thumbnail": 1}})]


# -- TTL ---------------------------------------------------------------------------


def test_ttl_expires_by_class_and_reports_gaps(tmp_path: Path) -> None:
    clock = FakeClock()
    box = open_outbox(tmp_path / "o.db", clock, ttl_s={T: 60.0, S: 120.0, E: 600.0})
    box.enqueue_many([event(0, T), event(1, S), event(2, E), event(3, A)])
    clock.now_s += 61
    box.enqueue(event(4, T))  # young
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
    box = open_outbox(tmp_path / "o.db", clock, ttl_s={E: 10.0})
    box.enqueue_many([event(0), event(1)])
    box.claim(1, urgent=False)
    clock.now_s += 11
    assert box.expire() == {"event": 1}
    assert seqs(box) == [1]


def test_a_full_outbox_drops_expired_rows_before_evicting_live_ones(tmp_path: Path) -> None:
    clock = FakeClock()
    box = open_outbox(tmp_path / "o.db", clock, max_rows=3, ttl_s={E: 10.0})
    box.enqueue_many([event(0, E), event(1, T), event(2, T)])
    clock.now_s += 11
    box.enqueue(event(3, T))  # over the cap: the stale event goes, not a thumbnail
    assert seqs(box) == [2, 3, 4]
    assert box.stats().expired_by_class == {"event": 1}
    assert box.stats().evicted_by_class == {}
