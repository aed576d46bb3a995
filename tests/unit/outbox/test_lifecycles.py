"""Lifecycles left open by a run that died."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.outbox import event, make_faulty, open_outbox

from edge_agent.outbox import OutboxFull
from edge_agent.types import MessageClass, OutboundMessage

A, E, S = MessageClass.ALERT, MessageClass.EVENT, MessageClass.STATE


def _step(lifecycle_id: str, step: str, cls: MessageClass = E, ts: float = 1.0) -> OutboundMessage:
    return OutboundMessage(
        topic="city/s/d/events/cam1",
        message_class=cls,
        json_body={"v": 1, "type": step, "id": lifecycle_id, "ts": ts, "end": None},
        user_properties=(("schema", "edge-agent/event/1"),),
    )


def test_open_lifecycles_keep_the_last_step_of_what_has_no_end(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.enqueue_many([_step("e1", "new"), _step("a1", "new", A), event(1, S)])
    box.enqueue_many([_step("e1", "update", ts=2.0), _step("e2", "new"), _step("a1", "end", A)])
    box.close()
    reopened = open_outbox(tmp_path / "o.db")  # what a restart after a crash finds
    left = reopened.open_lifecycles()
    assert [(m.json_body or {})["id"] for m in left] == ["e1", "e2"]
    first = left[0]
    assert first.json_body == {"v": 1, "type": "update", "id": "e1", "ts": 2.0, "end": None}
    assert (first.topic, first.message_class) == ("city/s/d/events/cam1", E)
    assert first.user_properties == (("schema", "edge-agent/event/1"),)
    reopened.enqueue_many([_step("e1", "end"), _step("e2", "end")])
    assert reopened.open_lifecycles() == []


def test_a_step_the_disk_refused_does_not_change_what_is_open(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    box.enqueue(_step("e1", "new"))
    faulty = make_faulty(box)
    faulty.failing = True
    with pytest.raises(OutboxFull):
        box.enqueue_many([_step("e1", "end"), _step("e2", "new")])
    faulty.failing = False
    assert [(m.json_body or {})["id"] for m in box.open_lifecycles()] == ["e1"]
