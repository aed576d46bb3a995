"""The agent's outbox sink when the disk refuses a write: what it holds, stores later,
drops (counted) and says at a clean stop."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes.clock import FakeClock
from fakes.lifecycle import event_step
from fakes.outbox import assert_accounts_balance, make_faulty, open_outbox

from edge_agent.encode import Encoder, Topics
from edge_agent.outbox import Outbox
from edge_agent.pipeline import FrameOutput
from edge_agent.sinks import OutboxSink
from edge_agent.types import Lifecycle, Thumbnail

ROOT = "city/s/d"


def thumbnail(event_id: str) -> FrameOutput:
    return FrameOutput(thumbnails=(Thumbnail(event_id, "cam1", b"\xff\xd8" + b"j" * 500, 0.9),))


def sink_on(
    box: Outbox, clock: FakeClock | None = None, **caps: int
) -> tuple[OutboxSink, list[int]]:
    """A sink with a retry interval of 1 s on ``clock`` (monotonic; a fake one that the
    test moves, by default one that never moves)."""
    wakes: list[int] = []
    sink = OutboxSink(
        box,
        Encoder(Topics(ROOT), "boot1"),
        lambda: wakes.append(1),
        retry_interval_s=1.0,
        clock=clock or FakeClock(0.0),
        **caps,
    )
    return sink, wakes


def stored_steps(box: Outbox) -> list[tuple[int, str, str]]:
    """(seq, id, type) of every stored event message, in seq order."""
    steps = []
    for message in box.pending(1000):
        if "/events/" in message.topic:
            body = message.payload.decode()
            event_id = body.split('"id":"')[1].split('"')[0]
            kind = body.split('"type":"')[1].split('"')[0]
            steps.append((message.seq, event_id, kind))
    return steps


def open_ids(box: Outbox) -> list[object]:
    return [(m.json_body or {})["id"] for m in box.open_lifecycles()]


def test_an_end_the_full_disk_refused_is_stored_in_order_once_there_is_room(
    tmp_path: Path,
) -> None:
    box = open_outbox(tmp_path / "o.db")
    clock = FakeClock(0.0)
    sink, wakes = sink_on(box, clock)
    sink.emit(event_step("e1", Lifecycle.NEW))
    faulty = make_faulty(box)
    faulty.failing = True
    sink.emit(event_step("e1", Lifecycle.END))
    sink.emit(event_step("e2", Lifecycle.NEW))  # queued behind, not tried: it just failed
    sink.retry()
    assert sink.write_failures == 1
    clock.now_s += 1.0
    sink.retry()  # still full: nothing changes
    assert sink.held == 2 and sink.write_failures == 2 and len(wakes) == 1
    assert stored_steps(box) == [(1, "e1", "new")] and open_ids(box) == ["e1"]
    faulty.failing = False  # space comes back
    sink.retry()  # not yet: at most one try per retry_interval_s
    assert sink.held == 2
    clock.now_s += 1.0
    sink.retry()  # the housekeeping tick: no frame needed
    assert sink.held == 0 and len(wakes) == 2
    # In their order, with the next seqs: none was burnt, so none is reported lost.
    assert stored_steps(box) == [(1, "e1", "new"), (2, "e1", "end"), (3, "e2", "new")]
    assert open_ids(box) == ["e2"]
    stats = box.stats()
    assert stats.unstored_by_class == {} and stats.gap_seqs_unreported == 0
    assert_accounts_balance(box)
    box.close()


def test_held_messages_go_before_newer_ones_at_the_next_emit(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    clock = FakeClock(0.0)
    sink, _ = sink_on(box, clock)
    faulty = make_faulty(box)
    faulty.failing = True
    sink.emit(event_step("e1", Lifecycle.NEW))
    faulty.failing = False
    clock.now_s += 1.0
    sink.emit(event_step("e1", Lifecycle.END))
    assert stored_steps(box) == [(1, "e1", "new"), (2, "e1", "end")] and sink.held == 0
    box.close()


def test_a_clean_stop_stores_what_was_held_and_leaves_nothing_open(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    sink, _ = sink_on(box)
    sink.emit(event_step("e1", Lifecycle.NEW))
    faulty = make_faulty(box)
    faulty.failing = True
    sink.emit(event_step("e1", Lifecycle.END))  # the pipeline's finish() at stop, refused
    faulty.failing = False
    sink.close()  # the agent's stop: one more try
    assert sink.held == 0 and [s[2] for s in stored_steps(box)] == ["new", "end"]
    box.close()
    # The next start finds nothing open, so it sends no end_reason "restart".
    assert open_ids(open_outbox(tmp_path / "o.db")) == []


def test_a_stop_while_the_disk_is_still_full_says_what_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = open_outbox(tmp_path / "o.db")
    sink, _ = sink_on(box)
    sink.emit(event_step("e1", Lifecycle.NEW))
    faulty = make_faulty(box)
    faulty.failing = True
    sink.emit(event_step("e1", Lifecycle.END))
    with caplog.at_level(logging.ERROR, logger="edge_agent.sinks"):
        sink.close()
    assert "stopping with 1 message(s) the disk would not store, 1 of them" in caplog.text
    assert "end_reason restart" in caplog.text
    assert sink.held == 0 and sink.held_dropped == 1
    assert box.stats().unstored_by_class == {"event": 1}  # counted, seq burnt
    # The event stays open, so the next start's end_reason "restart" is the truth.
    assert open_ids(box) == ["e1"]
    box.close()


def test_held_messages_are_bounded_and_what_is_dropped_is_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = open_outbox(tmp_path / "o.db")
    clock = FakeClock(0.0)
    sink, _ = sink_on(box, clock, max_held_messages=3)
    sink.emit(event_step("e1", Lifecycle.NEW))
    faulty = make_faulty(box)
    faulty.failing = True
    with caplog.at_level(logging.ERROR, logger="edge_agent.sinks"):
        sink.emit(thumbnail("e1"))
        sink.emit(event_step("e1", Lifecycle.UPDATE))
        sink.emit(thumbnail("e1"))
        sink.emit(event_step("e1", Lifecycle.END))  # over the cap: the oldest thumbnail goes
        sink.emit(event_step("e2", Lifecycle.NEW))  # and then the other one
    assert "dropping the least important" in caplog.text
    assert sink.held == 3 and sink.held_dropped == 2
    faulty.failing = False
    clock.now_s += 1.0
    sink.retry()
    # Every event step arrived, in order, after the two seqs burnt for the thumbnails.
    assert stored_steps(box) == [
        (1, "e1", "new"),
        (4, "e1", "update"),
        (5, "e1", "end"),
        (6, "e2", "new"),
    ]
    stats = box.stats()
    assert stats.unstored_by_class == {"thumbnail": 2}
    assert box.gap_ranges() == [(2, 3, {"unstored": {"thumbnail": 2}})]
    assert box.issue_gap_notice(f"{ROOT}/gaps") is not None  # reported, not silent
    assert_accounts_balance(box)
    box.close()


def test_a_byte_cap_drops_thumbnails_before_any_event(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    clock = FakeClock(0.0)
    sink, _ = sink_on(box, clock, max_held_bytes=1500)
    faulty = make_faulty(box)
    faulty.failing = True
    for _ in range(4):
        sink.emit(thumbnail("e1"))
    sink.emit(event_step("e1", Lifecycle.END))
    faulty.failing = False
    clock.now_s += 1.0
    sink.retry()
    assert [s[2] for s in stored_steps(box)] == ["end"]
    stored_thumbnails = [m for m in box.pending(100) if "/thumbs/" in m.topic]
    assert len(stored_thumbnails) + sink.held_dropped == 4 and sink.held_dropped >= 2
    assert box.stats().unstored_by_class == {"thumbnail": sink.held_dropped}
    box.close()
