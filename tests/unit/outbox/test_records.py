"""What is stored: seq inserted into compact JSON, binary bodies verbatim, malformed
messages refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.outbox import event, open_outbox

from edge_agent.types import MessageClass, OutboundMessage

E, T = MessageClass.EVENT, MessageClass.THUMBNAIL


def test_seq_is_contiguous_and_inserted_into_compact_json(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    first = box.enqueue_many([event(i) for i in range(5)])
    second = box.enqueue(event(5))
    assert [m.seq for m in [*first, second]] == [1, 2, 3, 4, 5, 6]
    assert first[0].payload == b'{"v":1,"n":0,"seq":1}'
    assert json.loads(second.payload) == {"v": 1, "n": 5, "seq": 6}
    assert second.user_properties == (("schema", "event"),)
    assert box.stats().last_seq == 6


def test_encoder_cannot_set_seq_or_historical(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
    stored = box.enqueue(OutboundMessage("t", E, json_body={"seq": 99, "historical": True, "x": 1}))
    assert stored.payload == b'{"x":1,"seq":1}'


def test_binary_body_is_stored_verbatim(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db")
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
    box = open_outbox(tmp_path / "o.db")
    bad = OutboundMessage(topic="t", message_class=E)  # no body at all
    with pytest.raises(ValueError, match="exactly one"):
        box.enqueue_many([event(1), bad])
    nan = OutboundMessage(topic="t", message_class=E, json_body={"x": float("nan")})
    with pytest.raises(ValueError):
        box.enqueue(nan)
    status = OutboundMessage(topic="t", message_class=MessageClass.STATUS, json_body={})
    with pytest.raises(ValueError, match="never buffered"):
        box.enqueue(status)
    assert box.depth() == 0
    assert box.enqueue(event(2)).seq == 1
