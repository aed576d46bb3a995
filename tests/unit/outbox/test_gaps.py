"""Gap notices: ranges of lost seqs, one urgent notice at a time, never dropped."""

from __future__ import annotations

import json
from pathlib import Path

from fakes.clock import FakeClock
from fakes.outbox import assert_accounts_balance, event, open_outbox, seqs

from edge_agent.types import MessageClass

A, E, T = MessageClass.ALERT, MessageClass.EVENT, MessageClass.THUMBNAIL


def test_gap_notice_lists_ranges_has_its_own_seq_and_is_urgent(tmp_path: Path) -> None:
    clock = FakeClock()
    box = open_outbox(tmp_path / "o.db", clock, max_rows=3)
    box.enqueue_many([event(i, T if i % 2 else E) for i in range(6)])
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
    box.enqueue_many([event(7, T), event(8, T)])
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
    box = open_outbox(tmp_path / "o.db", clock, max_rows=2, ttl_s={A: 1.0})
    box.enqueue_many([event(0, T), event(1, T), event(2, T)])
    notice = box.issue_gap_notice("g")
    assert notice is not None
    box.enqueue_many([event(3, A), event(4, A)])
    clock.now_s += 100
    box.expire()
    assert notice.seq in seqs(box)


def test_no_notice_when_nothing_was_dropped(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.enqueue(event(1))
    assert box.issue_gap_notice("g") is None and not box.notice_wanted()
