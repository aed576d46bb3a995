"""edge_agent.encode: the topics and payloads the agent builds are the documented ones
(docs/schemas, docs/asyncapi.yaml)."""

from __future__ import annotations

import json
import re
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
    rule_outputs,
    stored_json,
    validator,
    wire_events,
)
from jsonschema import Draft202012Validator

from edge_agent import encode
from edge_agent.encode import (
    SCHEMA_VERSION,
    Topics,
    encode_alert,
    encode_event,
    encode_gap_notice,
    interrupted_end,
)
from edge_agent.outbox import Outbox
from edge_agent.remote import (
    COMMANDS,
)
from edge_agent.types import MessageClass


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
        "update": topics.update,
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


GAPS_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "gaps.schema.json"


def test_a_gap_notice_lists_each_range_with_its_counts_and_is_urgent() -> None:
    ranges = [
        (2, 4, {"evicted": {"thumbnail": 2}, "expired": {"event": 1}}),
        (9, 9, {"refused": {"gaps": 1}}),
    ]
    notice = encode_gap_notice("city/s/d/gaps", ranges, 1_700_000_000.12345)
    assert notice.json_body == {
        "v": SCHEMA_VERSION,
        "ts": 1_700_000_000.123,
        "gaps": [
            {"from": 2, "to": 4, "evicted": {"thumbnail": 2}, "expired": {"event": 1}},
            {"from": 9, "to": 9, "refused": {"gaps": 1}},
        ],
    }
    assert (notice.topic, notice.message_class, notice.qos, notice.retain) == (
        "city/s/d/gaps",
        MessageClass.ALERT,
        1,
        False,
    )
    assert notice.user_properties == (("schema", "edge-agent/gaps/1"),)
    # What the outbox stores: the same body with the notice's own seq appended.
    schema = json.loads(GAPS_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator(schema).validate({**notice.json_body, "seq": 10})
