"""The store: seq and persistence, claims, acks, write failures, concurrency."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from fakes.outbox import assert_accounts_balance, event, make_faulty, open_outbox, seqs

from edge_agent.config import OutboxConfig
from edge_agent.outbox import Outbox, OutboxError, OutboxFull, StoredMessage
from edge_agent.types import MessageClass

A, E, S, T = MessageClass.ALERT, MessageClass.EVENT, MessageClass.STATE, MessageClass.THUMBNAIL


# -- seq and persistence -----------------------------------------------------------


def test_pending_is_in_seq_order_and_honours_the_cursor(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.enqueue_many([event(i) for i in range(10)])
    head = box.pending(4)
    assert [m.seq for m in head] == [1, 2, 3, 4]
    rest = box.pending(100, after_row_id=head[-1].row_id)
    assert [m.seq for m in rest] == list(range(5, 11))


def test_ack_deletes_and_counts(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    stored = box.enqueue_many([event(i) for i in range(10)])
    box.ack([m.row_id for m in stored[:4]] + [999_999])  # unknown ids are ignored
    stats = box.stats()
    assert (stats.depth_rows, stats.acked_total, stats.enqueued_total) == (6, 4, 10)
    assert stats.depth_bytes == sum(len(m.payload) + len(m.topic) for m in stored[4:])
    assert seqs(box) == list(range(5, 11))
    assert_accounts_balance(box)


def test_seq_and_counters_survive_reopen_even_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    stored = box.enqueue_many([event(i) for i in range(3)])
    box.ack([m.row_id for m in stored])
    box.close()
    box = open_outbox(path)
    again = box.enqueue(event(3))
    assert again.seq == 4  # never reused after a restart
    assert again.row_id > stored[-1].row_id  # a publisher cursor never skips new rows
    assert box.stats().acked_total == 3


def test_unacked_messages_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = open_outbox(path)
    stored = box.enqueue_many([event(i) for i in range(5)])
    box.close()
    box = open_outbox(path)
    assert box.pending(100) == stored
    assert box.stats().depth_bytes == sum(len(m.payload) + len(m.topic) for m in stored)


def test_from_config_takes_caps_and_ttls(tmp_path: Path) -> None:
    config = OutboxConfig.model_validate(
        {"path": str(tmp_path / "o.db"), "max_rows": 123, "ttl_s": {"thumbnail": 60}}
    )
    box = Outbox.from_config(config)
    assert (box.max_rows, box.max_bytes) == (123, config.max_bytes)
    assert box.ttl_s[T] == 60 and box.ttl_s[A] == config.ttl_s.alert


# -- claims: the publisher's view --------------------------------------------------


def test_claim_gives_urgent_and_normal_streams_in_seq_order(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.enqueue_many([event(0, E), event(1, A), event(2, T), event(3, A), event(4, S)])
    urgent = box.claim(10, urgent=True)
    rest = box.claim(10, urgent=False)
    assert [m.seq for m in urgent] == [2, 4] and all(m.urgent for m in urgent)
    assert [m.seq for m in rest] == [1, 3, 5] and not any(m.urgent for m in rest)
    # Claimed rows are not handed out twice, even from the start of the table.
    assert box.claim(10, urgent=False) == [] and box.unclaimed() == 0
    box.release([rest[1].row_id])
    assert [m.seq for m in box.claim(10, urgent=False)] == [3]


def test_claim_skips_claimed_rows_and_still_fills_the_batch(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    stored = box.enqueue_many([event(i) for i in range(10)])
    first = box.claim(3, urgent=False)
    box.release([first[1].row_id])  # a hole in the claimed run
    again = box.claim(4, urgent=False, after_row_id=0)
    assert [m.seq for m in again] == [2, 4, 5, 6]
    assert [m.seq for m in stored] == list(range(1, 11))


# -- write failures (full disk, I/O error) -----------------------------------------


def test_full_disk_raises_outbox_full_keeps_what_is_stored_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = open_outbox(tmp_path / "o.db")
    before = box.enqueue_many([event(i) for i in range(3)])
    faulty = make_faulty(box)
    faulty.failing = True
    with caplog.at_level(logging.WARNING, logger="edge_agent.outbox"):
        with pytest.raises(OutboxFull, match="disk full during enqueue"):
            box.enqueue_many([event(3), event(4, T)])
        with pytest.raises(OutboxFull):
            box.enqueue(event(5))
        with pytest.raises(OutboxFull):
            box.ack([before[0].row_id])
        assert box.pending(100) == before  # nothing stored was touched
        stats = box.stats()
        assert stats.write_failures == 3 and stats.last_error is not None
        assert stats.unstored_by_class == {"event": 2, "thumbnail": 1}
        assert stats.gap_seqs_unreported == 3
        assert [r.levelname for r in caplog.records] == ["ERROR"]  # loud once, not per write
        faulty.failing = False
        after = box.enqueue(event(6))
    assert after.seq == 7  # 4..6 were burnt, not reused
    assert "writable again" in caplog.text
    assert box.gap_ranges() == [(4, 6, {"unstored": {"event": 2, "thumbnail": 1}})]
    assert_accounts_balance(box)
    box.close()
    reopened = open_outbox(tmp_path / "o.db")
    assert reopened.stats().unstored_by_class == {"event": 2, "thumbnail": 1}
    assert reopened.enqueue(event(7)).seq == 8


def test_other_write_errors_raise_outbox_error_not_full(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    make_faulty(box, "disk I/O error").failing = True
    with pytest.raises(OutboxError, match="write error") as caught:
        box.enqueue(event(1))
    assert not isinstance(caught.value, OutboxFull)


def test_closed_outbox_raises(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.enqueue(event(1))


# -- concurrency -------------------------------------------------------------------


def test_concurrent_enqueue_claim_and_ack_keep_seq_contiguous(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    errors: list[BaseException] = []
    acked: list[int] = []
    done = threading.Event()

    def producer() -> None:
        try:
            for i in range(200):
                box.enqueue_many([event(i), event(i)])
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
