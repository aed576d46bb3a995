"""The clip commands through ``CommandHandler``: listing, holds, chunks with their
sha256s, and pacing that refuses with ``retry_after_s`` instead of waiting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from api_contract import validator

from edge_agent.recording.commands import ClipCommands
from edge_agent.recording.store import ClipStore, RetentionCaps
from edge_agent.remote import CommandHandler

DATA = bytes(range(256)) * 40  # 10240 bytes


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def handler(tmp_path: Path, clock: Clock) -> CommandHandler:
    store = ClipStore(tmp_path, RetentionCaps(1 << 30, 0, None))
    store.part_path("cam1-1-aa").write_bytes(DATA)
    store.add(clip_id="cam1-1-aa", camera="cam1", start_s=10.0, end_s=20.0, frames=50, events=())
    clips = ClipCommands(store, rate_bytes_per_s=4096, chunk_max_bytes=4096, clock=clock)
    return CommandHandler(object(), clips=clips)  # type: ignore[arg-type]


def body(handler: CommandHandler, name: str, payload: object) -> dict[str, object]:
    reply = handler.handle(name, json.dumps(payload).encode())
    assert reply is not None and reply.content_type == "application/json"
    decoded = json.loads(reply.payload)
    assert isinstance(decoded, dict)
    return decoded


def test_clips_lists_and_filters(handler: CommandHandler) -> None:
    listing = body(handler, "clips", {})
    assert [c["id"] for c in listing["clips"]] == ["cam1-1-aa"]  # type: ignore[index]
    assert listing["stored"] == {"clips": 1, "bytes": len(DATA), "held": 0}
    assert body(handler, "clips", {"camera": "cam2"})["clips"] == []
    assert body(handler, "clips", {"since": 30.0})["clips"] == []
    assert body(handler, "clips", {"camera": "cam/1"})["ok"] is False


def test_hold_and_release(handler: CommandHandler) -> None:
    held = body(handler, "clip_hold", {"id": "cam1-1-aa"})
    assert held["ok"] is True and held["clip"]["held"] is True  # type: ignore[index]
    released = body(handler, "clip_release", {"id": "cam1-1-aa"})
    assert released["clip"]["held"] is False  # type: ignore[index]
    assert body(handler, "clip_hold", {"id": "nope"})["ok"] is False
    validator("reply-error").validate(body(handler, "clip_hold", {"id": "nope"}))


def test_fetch_returns_chunks_with_their_sha256_and_resumes_by_offset(
    handler: CommandHandler, clock: Clock
) -> None:
    received = b""
    while len(received) < len(DATA):
        clock.now_s += 1.0  # the budget refills: 4096 bytes a second
        reply = handler.handle(
            "clip_fetch", json.dumps({"id": "cam1-1-aa", "offset": len(received)}).encode()
        )
        assert reply is not None and reply.ok and reply.content_type == "video/mp4"
        props = dict(reply.user_properties)
        assert props["sha256"] == hashlib.sha256(DATA).hexdigest()
        assert props["chunk_sha256"] == hashlib.sha256(reply.payload).hexdigest()
        assert int(props["offset"]) == len(received) and int(props["size"]) == len(DATA)
        assert len(reply.payload) <= 4096
        received += reply.payload
    assert received == DATA


def test_a_fetch_over_the_budget_is_refused_with_when_to_ask_again(
    handler: CommandHandler, clock: Clock
) -> None:
    first = handler.handle("clip_fetch", b'{"id": "cam1-1-aa", "length": 4096}')
    assert first is not None and first.ok
    refused = body(handler, "clip_fetch", {"id": "cam1-1-aa", "offset": 4096, "length": 4096})
    assert refused["ok"] is False and refused["retry_after_s"] == pytest.approx(1.0)
    validator("reply-error").validate(refused)
    clock.now_s += 1.0
    again = handler.handle("clip_fetch", b'{"id": "cam1-1-aa", "offset": 4096, "length": 4096}')
    assert again is not None and again.ok


def test_a_fetch_past_the_end_or_of_an_unknown_clip_is_refused(handler: CommandHandler) -> None:
    assert body(handler, "clip_fetch", {"id": "cam1-1-aa", "offset": 99999})["ok"] is False
    assert body(handler, "clip_fetch", {"id": "gone"})["ok"] is False
    assert body(handler, "clip_fetch", {"id": "../etc/passwd"})["ok"] is False


def test_a_device_that_does_not_record_says_so() -> None:
    reply = CommandHandler(object()).handle("clips", b"{}")  # type: ignore[arg-type]
    assert reply is not None and not reply.ok
    assert b"does not record" in reply.payload
