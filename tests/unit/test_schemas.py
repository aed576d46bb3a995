"""The documented MQTT API (docs/schemas, docs/asyncapi.yaml, docs/mqtt-api.md) against the code
that produces it: the payloads the agent really builds validate, and wrong ones do not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator, ValidationError

from edge_agent import encode, mqtt
from edge_agent.app import birth_payload, new_boot_id
from edge_agent.config import parse_config
from edge_agent.encode import Topics, encode_event, encode_thumbnail
from edge_agent.events import EventEngine
from edge_agent.mqtt import MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.track import TrackUpdate
from edge_agent.types import Box, Frame, ObjectEvent, OutboundMessage, Thumbnail, Track
from edge_agent.zones import Zone

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_NAMES = ("event", "status")
ROOT = "city/demo-plaza/pi-001"
IMAGE = np.full((270, 480, 3), 90, np.uint8)


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (DOCS / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def stored_json(outbox: Outbox, message: OutboundMessage) -> dict[str, Any]:
    """The JSON body exactly as it goes on the wire (the outbox inserts ``seq``)."""
    body: dict[str, Any] = json.loads(outbox.enqueue(message).payload)
    return body


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", max_bytes=1 << 20, max_rows=1000)
    yield box
    box.close()


def lifecycle_events() -> list[ObjectEvent]:
    """new → update (entered a zone) → end for one person, from the real event engine."""
    engine = EventEngine(
        "cam1",
        labels_of_interest=["person"],
        zones=[Zone("pavement", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))],
    )

    def frame(t_s: float) -> Frame:
        return Frame("cam1", int(t_s * 5), 1_764_448_000.0 + t_s, t_s, IMAGE)

    def person(t_s: float, box: Box) -> Track:
        return Track(7, "person", 0.734567, box, 0.0, t_s, hits=3)

    outside, inside = Box(0.1, 0.1, 0.2, 0.4), Box(0.1, 0.3, 0.2, 0.8)
    steps = [
        engine.update(frame(0.4), TrackUpdate(seen=(person(0.4, outside),), ended=(), live=1)),
        engine.update(frame(1.0), TrackUpdate(seen=(person(1.0, inside),), ended=(), live=1)),
        engine.update(frame(5.0), TrackUpdate(seen=(), ended=(person(1.0, inside),), live=0)),
    ]
    return [event for step in steps for event in step.events]


def wire_events(outbox: Outbox) -> list[dict[str, Any]]:
    boot = new_boot_id()
    return [stored_json(outbox, encode_event(Topics(ROOT), e, boot)) for e in lifecycle_events()]


def agent_birth() -> dict[str, object]:
    """The birth payload the real Agent builds (without loading a model to build an Agent)."""
    config = parse_config(
        {
            "site_id": "demo-plaza",
            "device_id": "pi-001",
            "cameras": [
                {"id": "cam1", "source": {"kind": "sim"}},
                {"id": "cam2", "source": {"kind": "sim"}},
            ],
        }
    )
    return birth_payload(config, new_boot_id())


@pytest.fixture
def publisher(outbox: Outbox) -> Publisher:
    """Never started: only used for the status payloads it composes."""
    return Publisher(
        MqttSettings(host="127.0.0.1", port=1, client_id="schema-test"),
        outbox,
        status_topic=f"{ROOT}/status",
        birth_payload=agent_birth(),
    )


def status_payloads(publisher: Publisher) -> dict[str, dict[str, Any]]:
    """online/stopped as published, offline as the Last Will composes it."""
    return {
        "online": json.loads(publisher._status_payload("online")),
        "stopped": json.loads(publisher._status_payload("stopped")),
        "offline": json.loads(publisher._status_payload("offline", with_time=False)),
    }


# -- the schema files themselves ------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_json_schema_2020_12_and_draft_07(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    # Written with keywords that mean the same in draft-07, for tools that know only that.
    Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_examples_validate(name: str) -> None:
    schema = load_schema(name)
    assert schema["examples"]
    for example in schema["examples"]:
        Draft202012Validator(schema).validate(example)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_version_matches_the_code(name: str) -> None:
    assert load_schema(name)["properties"]["v"]["const"] == encode.SCHEMA_VERSION
    assert encode.SCHEMA_VERSION == mqtt.SCHEMA_VERSION


# -- what the code produces validates ------------------------------------------------------


def test_a_whole_event_lifecycle_from_the_engine_validates(outbox: Outbox) -> None:
    events = wire_events(outbox)
    assert [e["type"] for e in events] == ["new", "update", "end"]
    assert events[1]["zones"] == ["pavement"] and events[2]["end"] is not None
    check = validator("event")
    for body in events:
        check.validate(body)
    assert [e["seq"] for e in events] == [1, 2, 3]


def test_event_message_carries_the_documented_mqtt_shape() -> None:
    (new, *_) = lifecycle_events()
    message = encode_event(Topics(ROOT), new, "0badc0de")
    assert message.topic == f"{ROOT}/events/cam1"
    assert (message.qos, message.retain, message.content_type) == (1, False, "application/json")
    assert dict(message.user_properties) == {"schema": "edge-agent/event/1"}


def test_thumbnail_message_carries_the_documented_mqtt_shape() -> None:
    thumbnail = Thumbnail("1764448000.123-a1b2c3", "cam1", b"\xff\xd8\xff\xe0jpeg", 0.7)
    message = encode_thumbnail(Topics(ROOT), thumbnail)
    assert message.topic == f"{ROOT}/thumbs/cam1/1764448000.123-a1b2c3"
    assert (message.qos, message.retain, message.content_type) == (1, False, "image/jpeg")
    assert message.json_body is None and message.binary_body == thumbnail.jpeg
    assert dict(message.user_properties) == {"event_id": thumbnail.event_id}


def test_every_status_the_publisher_composes_validates(publisher: Publisher) -> None:
    payloads = status_payloads(publisher)
    check = validator("status")
    for state, body in payloads.items():
        check.validate(body)
        assert body["state"] == state
    assert "ts" not in payloads["offline"] and "ts" in payloads["online"]
    assert payloads["online"]["cameras"] == ["cam1", "cam2"]


# -- and wrong payloads do not --------------------------------------------------------------


def mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "extra field", {**body, "colour": "red"}
    for key in body:
        yield f"{key} missing", {k: v for k, v in body.items() if k != key}
    yield "v is a string", {**body, "v": "1"}
    yield "v is 2", {**body, "v": 2}
    yield "boot not hex", {**body, "boot": "not-hex!"}


def event_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from mutations(body)
    yield "score is a string", {**body, "score": "0.9"}
    yield "score above 1", {**body, "score": 1.5}
    yield "box has 3 numbers", {**body, "box": body["box"][:3]}
    yield "box outside the frame", {**body, "box": [0.1, 0.1, 1.2, 0.5]}
    yield "unknown lifecycle", {**body, "type": "started"}
    yield "seq is a float", {**body, "seq": 1.5}
    yield "seq is 0", {**body, "seq": 0}
    yield "zones not a list", {**body, "zones": "pavement"}
    yield "thumb is a number", {**body, "thumb": 1}
    yield "id with a topic wildcard", {**body, "id": "a/b#"}
    yield "new with an end time", {**body, "type": "new", "end": body["start"] + 1}
    yield "end without an end time", {**body, "type": "end", "end": None}


@pytest.mark.parametrize("step", [0, 1, 2], ids=["new", "update", "end"])
def test_wrong_events_fail(outbox: Outbox, step: int) -> None:
    body = wire_events(outbox)[step]
    check = validator("event")
    check.validate(body)
    for what, wrong in event_mutations(body):
        with pytest.raises(ValidationError):
            check.validate(wrong)
            pytest.fail(f"accepted an event with {what}")


@pytest.mark.parametrize("state", ["online", "stopped", "offline"])
def test_wrong_statuses_fail(publisher: Publisher, state: str) -> None:
    body = status_payloads(publisher)[state]
    check = validator("status")
    wrongs = list(mutations(body))
    wrongs += [
        ("unknown state", {**body, "state": "sleeping"}),
        ("cameras not a list", {**body, "cameras": "cam1"}),
        ("no cameras", {**body, "cameras": []}),
        ("started is a string", {**body, "started": "yesterday"}),
    ]
    if state == "offline":
        wrongs.append(("offline with a time", {**body, "ts": 1764448000.0}))
    for what, wrong in wrongs:
        with pytest.raises(ValidationError):
            check.validate(wrong)
            pytest.fail(f"accepted a {state} status with {what}")


# -- the AsyncAPI document and the prose agree with the code --------------------------------


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    return document


def test_asyncapi_refers_to_the_schema_files_that_exist() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    refs = {
        name: message["payload"]["schema"]["$ref"]
        for name, message in document["components"]["messages"].items()
        if "schema" in message["payload"]
    }
    assert refs == {name: f"./schemas/{name}.schema.json" for name in SCHEMA_NAMES}
    for ref in refs.values():
        assert (DOCS / ref).is_file(), ref


def test_asyncapi_channels_are_the_topics_the_code_builds() -> None:
    channels = asyncapi()["channels"]
    topics = Topics("{prefix}/{site_id}/{device_id}")
    assert channels["status"]["address"] == topics.status
    assert channels["events"]["address"] == topics.events("{camera}")
    assert channels["thumbnails"]["address"] == topics.thumbnail("{camera}", "{event_id}")
    for name, channel in channels.items():
        placeholders = set(re.findall(r"{(\w+)}", channel["address"]))
        assert placeholders == set(channel["parameters"]), name


def test_asyncapi_qos_retain_and_properties_match_the_code() -> None:
    document = asyncapi()
    operations = document["operations"]
    (new, *_) = lifecycle_events()
    event = encode_event(Topics(ROOT), new, "0badc0de")
    thumbnail = encode_thumbnail(Topics(ROOT), Thumbnail(new.event_id, "cam1", b"\xff\xd8", 0.7))
    for operation, message in (("publishEvent", event), ("publishThumbnail", thumbnail)):
        binding = operations[operation]["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (message.qos, message.retain), operation
    assert operations["publishStatus"]["bindings"]["mqtt"] == {
        "qos": 1,
        "retain": True,
        "bindingVersion": "0.2.0",
    }
    # The publisher adds v and seq to every outbox message, then the message's own.
    schemas = document["components"]["schemas"]
    for headers, message in (("eventProperties", event), ("thumbnailProperties", thumbnail)):
        sent = {"v", "seq", *dict(message.user_properties)}
        assert set(schemas[headers]["required"]) == sent, headers
        assert set(schemas[headers]["properties"]) == sent, headers
    assert (
        schemas["eventProperties"]["properties"]["schema"]["const"]
        == dict(event.user_properties)["schema"]
    )
    messages = document["components"]["messages"]
    assert messages["event"]["contentType"] == event.content_type
    assert messages["thumbnail"]["contentType"] == thumbnail.content_type


def doc_json_examples() -> list[dict[str, Any]]:
    text = (DOCS / "mqtt-api.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.DOTALL)]


def test_every_json_example_in_the_prose_validates() -> None:
    examples = doc_json_examples()
    kinds = {"status": validator("status"), "event": validator("event")}
    seen = set()
    for example in examples:
        kind = "status" if "state" in example else "event"
        kinds[kind].validate(example)
        seen.add(kind)
    assert seen == set(kinds)
