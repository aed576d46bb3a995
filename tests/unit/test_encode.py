"""edge_agent.encode: the topics and payloads the agent builds are the documented ones
(docs/schemas, docs/asyncapi.yaml)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_contract import (
    BOOT,
    ROOT,
    TOPICS,
    asyncapi,
    check_wrong,
    event_mutations,
    lifecycle_events,
    mutations,
    new_outbox,
    rule_outputs,
    stored_json,
    validator,
    wire_events,
)

from edge_agent import encode
from edge_agent.encode import Topics, encode_alert, encode_event, interrupted_end
from edge_agent.outbox import Outbox
from edge_agent.remote import (
    COMMANDS,
)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = new_outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def test_a_whole_event_lifecycle_from_the_engine_validates(outbox: Outbox) -> None:
    events = wire_events(outbox)
    assert [e["type"] for e in events] == ["new", "update", "end"]
    assert events[1]["zones"] == ["pavement"] and events[2]["end"] is not None
    check = validator("event")
    for body in events:
        check.validate(body)
    assert [e["seq"] for e in events] == [1, 2, 3]


def test_the_end_a_restart_sends_for_what_a_dead_run_left_open_validates(
    outbox: Outbox,
) -> None:
    # A run dies after new/update of an event and an alert; the next one ends them.
    alerts, _ = rule_outputs()
    opened = [encode_event(TOPICS, e, BOOT) for e in lifecycle_events()[:2]]
    opened.append(encode_alert(TOPICS, next(a for a in alerts if a.end_s is None), BOOT))
    outbox.enqueue_many(opened)
    left = outbox.open_lifecycles()
    assert {(m.json_body or {})["type"] for m in left} <= {"new", "update"} and len(left) == 2
    for message in left:
        body = stored_json(outbox, interrupted_end(message))
        kind = "event" if body["kind"] == "object" else "alert"
        validator(kind).validate(body)
        assert (body["type"], body["end_reason"], body["boot"]) == ("end", "restart", BOOT)
        assert body["end"] == body["ts"] == (message.json_body or {})["ts"]
    assert outbox.open_lifecycles() == []


@pytest.mark.parametrize("step", [0, 1, 2], ids=["new", "update", "end"])
def test_wrong_events_fail(outbox: Outbox, step: int) -> None:
    body = wire_events(outbox)[step]
    check_wrong("event", body, (*mutations(body), *event_mutations(body)))  # type: ignore[arg-type]


def test_asyncapi_channels_are_the_topics_the_code_builds(outbox: Outbox) -> None:
    channels = asyncapi()["channels"]
    root = "{prefix}/{site_id}/{device_id}"
    topics = Topics(root)
    assert {
        "status": topics.status,
        "events": topics.events("{camera}"),
        "thumbnails": topics.thumbnail("{camera}", "{event_id}"),
        "state": topics.state("{camera}", "{analyzer}"),
        "counts": topics.counts("{camera}", "{line}"),
        "gaps": topics.gaps,
        "stats": topics.stats,
        "preview": topics.preview("{camera}"),
        "commands": topics.command("{command}"),
        "replies": topics.reply("{reply_to}"),
    } == {name: channel["address"] for name, channel in channels.items()}
    for name, channel in channels.items():
        placeholders = set(re.findall(r"{(\w+)}", channel["address"]))
        assert placeholders == set(channel["parameters"]), name
    assert channels["commands"]["parameters"]["command"]["enum"] == list(COMMANDS)


def test_command_names_come_only_from_the_device_s_own_cmd_topic() -> None:
    assert TOPICS.commands == f"{ROOT}/cmd/+"
    assert TOPICS.command_name(f"{ROOT}/cmd/ping") == "ping"
    for topic in (f"{ROOT}/cmd/", f"{ROOT}/cmd/a/b", f"{ROOT}/cmdx/ping", "city/x/pi-9/cmd/ping"):
        assert TOPICS.command_name(topic) is None, topic
    assert TOPICS.is_reply(f"{ROOT}/reply/centre-7")
    assert not TOPICS.is_reply(f"{ROOT}/replies") and not TOPICS.is_reply("centre/inbox")


def test_status_bodies_put_v_state_and_ts_first_and_ignore_the_birth_s_own() -> None:
    birth = {"v": 9, "state": "odd", "ts": 1.0, "version": "1.2", "boot": BOOT}
    body = encode.status_body("online", birth, ts=1764448000.12345)
    assert body == {"v": 1, "state": "online", "ts": 1764448000.123, "version": "1.2", "boot": BOOT}
    assert list(body)[:3] == ["v", "state", "ts"]
    assert "ts" not in encode.status_body("offline", birth, ts=None)
    assert json.loads(encode.encode_status("stopped", {}, ts=None)) == {"v": 1, "state": "stopped"}
    with pytest.raises(ValueError, match="state"):
        encode.status_body("sleeping", {}, ts=None)
