"""The documented MQTT API (docs/schemas, docs/asyncapi.yaml, docs/mqtt-api.md) against the code
that produces it: the payloads the agent really builds validate, what goes on the wire has the
documented topics, QoS, retain flags and MQTT 5 properties, and wrong payloads do not validate.

The wire is observed by letting the real ``Publisher`` drain a real ``Outbox`` into a stand-in
for paho's client (never connected to anything): the payloads, ``historical`` flags and packed
MQTT 5 properties are exactly those a broker would receive."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator, ValidationError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent import encode, mqtt, stats
from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.app import PREVIEW_EXPIRY_S, Agent, birth_payload, new_boot_id
from edge_agent.config import parse_config
from edge_agent.encode import (
    Topics,
    encode_alert,
    encode_counts,
    encode_event,
    encode_state,
    encode_thumbnail,
    interrupted_end,
)
from edge_agent.events import EventEngine
from edge_agent.indicator import Condition, NoIndicator
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher, PublisherStats
from edge_agent.outbox import DURABLE_CLASSES, GAP_REASONS, NOTICE_CLASS, Outbox, OutboxStats
from edge_agent.remote import (
    COMMANDS,
    MAX_PREVIEW_FPS,
    MAX_PREVIEW_S,
    CommandHandler,
    EmptyCommand,
    PreviewCommand,
    SnapshotCommand,
)
from edge_agent.rules import build_rules
from edge_agent.rules.testing import RuleDriver, Seen, standing
from edge_agent.stats import CameraStats, build_stats, encode_stats, stats_expiry_s
from edge_agent.track import TrackUpdate
from edge_agent.types import (
    Box,
    Frame,
    Lifecycle,
    MessageClass,
    ObjectEvent,
    OutboundMessage,
    SourceHealth,
    Thumbnail,
    Track,
)
from edge_agent.zones import Zone, zones_from_config

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAYLOAD_SCHEMAS = ("event", "alert", "state", "counts", "gaps", "status", "stats")
REPLY_SCHEMAS = ("reply-ping", "reply-status", "reply-preview", "reply-error")
SCHEMA_NAMES = PAYLOAD_SCHEMAS + REPLY_SCHEMAS
ROOT = "city/demo-plaza/pi-001"
TOPICS = Topics(ROOT)
IMAGE = np.full((270, 480, 3), 90, np.uint8)
BOOT = "8a5aae99"


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (DOCS / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def stored_json(outbox: Outbox, message: OutboundMessage) -> dict[str, Any]:
    """The JSON body exactly as the outbox stores it (it inserts ``seq``)."""
    body: dict[str, Any] = json.loads(outbox.enqueue(message).payload)
    return body


# -- what the agent produces, from its real parts ---------------------------------------------


def lifecycle_events() -> list[ObjectEvent]:
    """new → update (entered a zone) → end for one person, from the real event engine."""
    engine = EventEngine(
        "cam1",
        labels_of_interest=["person"],
        # No inertia: one sighting inside is enough (tests/unit/test_events.py has inertia).
        zones=[
            Zone("pavement", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)), inertia_frames=1)
        ],
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
    return [stored_json(outbox, encode_event(TOPICS, e, boot)) for e in lifecycle_events()]


def camera_config() -> dict[str, Any]:
    return {
        "id": "cam1",
        "source": {"kind": "sim"},
        "zones": [{"name": "yard", "polygon": [[0.0, 0.7], [1.0, 0.7], [1.0, 1.0], [0.0, 1.0]]}],
        "rules": [
            {"kind": "intrusion", "zone": "yard", "min_duration_s": 0.4, "end_grace_s": 0.4},
            {"kind": "line_crossing", "name": "kerb", "a": [0.1, 0.6], "b": [0.9, 0.6]},
        ],
    }


def rule_outputs() -> tuple[list[Alert], list[CountReport]]:
    """A person walks down into the yard over the kerb line, stands, and is gone: the real
    intrusion and line-crossing rules, configured as a site would configure them."""
    config = parse_config({"site_id": "s", "device_id": "d", "cameras": [camera_config()]})
    camera = config.cameras[0]
    rules = build_rules(camera.rules, zones=zones_from_config(camera.zones), timezone="UTC")
    driver = RuleDriver(rules, camera_id="cam1")

    def scene(t_s: float) -> list[Seen]:
        if t_s >= 6.0:
            return []
        y = 0.3 + 0.6 * min(t_s, 3.0) / 3.0
        return [Seen(4, "person", standing(0.5, y, height=0.3))]

    outputs = [output for _, output in driver.run(8.0, scene)] + [driver.finish()]
    alerts = [a for o in outputs for a in o.alerts]
    counts = [c for o in outputs for c in o.counts]
    assert [a.lifecycle for a in alerts] == [Lifecycle.NEW, Lifecycle.END]
    assert counts and sum(n for c in counts for n in c.counts["in"].values()) == 1
    return alerts, counts


def more_alerts() -> list[Alert]:
    """Values the rules may send that one walk does not: a crowd update, no box, no zone."""
    crowd = Alert(
        alert_id="1750248017.400-886dec",
        lifecycle=Lifecycle.UPDATE,
        camera_id="plaza-north",
        kind="crowd",
        rule="crowd-promenade",
        zone="promenade",
        start_s=1750248017.4,
        end_s=None,
        frame_time_s=1750248091.0,
        labels=("person",) * 6,
        track_ids=(1, 2, 3, 4, 5, 9),
        box=Box(0.05, 0.4833, 0.8594, 0.9389),
        detail={"persons": 6},
    )
    return [crowd, replace(crowd, kind="loitering", box=None, zone=None, detail={"dwell_s": 1.5})]


def scene_states() -> list[SceneState]:
    return [
        SceneState(
            "cam1", "flood", "flooded", 1750248135.0, 1750248145.0, 0.53391, {"share": 0.5339}
        ),
        SceneState("cam1", "tamper", "frozen", 1750248061.0, 1750248066.0, None, {}),
        SceneState(
            "cam1",
            "congestion-yard",
            "free",
            1750248067.6,
            1750248077.6,
            0.0,
            {"zone": "yard", "vehicles": 0, "mean_speed_heights_per_s": None, "ok": True},
        ),
    ]


def durable_messages() -> list[OutboundMessage]:
    """One of every kind of durable message the pipeline hands to the outbox."""
    events = lifecycle_events()
    alerts, counts = rule_outputs()
    thumbnail = Thumbnail(events[0].event_id, "cam1", b"\xff\xd8\xff\xe0jpeg", 0.7)
    return [
        *(encode_event(TOPICS, e, BOOT) for e in events),
        encode_thumbnail(TOPICS, thumbnail),
        *(encode_alert(TOPICS, a, BOOT) for a in [*alerts, *more_alerts()]),
        *(encode_state(TOPICS, s, BOOT) for s in scene_states()),
        *(encode_counts(TOPICS, c, BOOT) for c in counts),
    ]


def agent_config_dict(**extra: Any) -> dict[str, Any]:
    return {
        "site_id": "demo-plaza",
        "device_id": "pi-001",
        "cameras": [camera_config(), {"id": "cam2", "source": {"kind": "sim"}}],
        **extra,
    }


def agent_birth(outbox_reset: Path | None = None) -> dict[str, object]:
    """The birth payload the real Agent builds (without loading a model to build an Agent)."""
    return birth_payload(
        parse_config(agent_config_dict()), new_boot_id(), outbox_reset=outbox_reset
    )


# -- the wire: the real publisher draining into a stand-in for paho's client --------------------


@dataclass(frozen=True)
class Sent:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None
    user_properties: list[tuple[str, str]]
    expiry_s: int | None
    correlation: bytes | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.payload)
        return body

    def prop(self, name: str) -> str | None:
        return dict(self.user_properties).get(name)


def decode(properties: Properties | None) -> dict[str, Any]:
    """MQTT 5 properties as a broker would read them (hand-packed ones are unpacked)."""
    if properties is None:
        return {"content_type": None, "user_properties": [], "expiry_s": None, "correlation": None}
    if type(properties) is not Properties:
        unpacked = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        unpacked.unpack(properties.pack())  # type: ignore[no-untyped-call]
        properties = unpacked
    return {
        "content_type": getattr(properties, "ContentType", None),
        "user_properties": [(str(k), str(v)) for k, v in getattr(properties, "UserProperty", [])],
        "expiry_s": getattr(properties, "MessageExpiryInterval", None),
        "correlation": getattr(properties, "CorrelationData", None),
    }


@dataclass
class FakePaho:
    """Records what the publisher hands to paho."""

    sent: list[Sent] = field(default_factory=list)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> SimpleNamespace:
        self.sent.append(Sent(topic, bytes(payload), qos, retain, **decode(properties)))
        return SimpleNamespace(rc=0, mid=len(self.sent))


def new_publisher(
    outbox: Outbox,
    *,
    age_s: float = 0.0,
    birth: Mapping[str, object] | None = None,
    commands: mqtt.CommandCallback | None = None,
    protocol: mqtt.Protocol = "5",
) -> tuple[Publisher, FakePaho]:
    """A publisher that believes it is connected; ``age_s`` moves its clock ahead so that
    everything in the outbox is that old when it is sent."""
    publisher = Publisher(
        MqttSettings(host="127.0.0.1", port=1, client_id="schema-test", protocol=protocol),
        outbox,
        status_topic=TOPICS.status,
        birth_payload=birth or agent_birth(),
        max_inflight=1000,
        drain=DrainSettings.unlimited(historical_after_s=60.0),
        commands=commands,
        clock=lambda: time.time() + age_s,
    )
    fake = FakePaho()
    publisher._client = fake  # type: ignore[assignment]
    publisher._connected = True
    return publisher, fake


def drain(outbox: Outbox, *, age_s: float = 0.0, protocol: mqtt.Protocol = "5") -> list[Sent]:
    publisher, fake = new_publisher(outbox, age_s=age_s, protocol=protocol)
    caught_up, _ = publisher._publish_more()
    assert caught_up and outbox.unclaimed() == 0
    return fake.sent


def status_payloads(outbox: Outbox, birth: Mapping[str, object]) -> dict[str, dict[str, Any]]:
    """online/stopped as published, offline as the Last Will composes it."""
    publisher, _ = new_publisher(outbox, birth=birth)
    return {
        "online": json.loads(publisher._status_payload("online")),
        "stopped": json.loads(publisher._status_payload("stopped")),
        "offline": json.loads(publisher._status_payload("offline", with_time=False)),
    }


def schema_of(sent: Sent) -> str:
    """Which schema a durable message on the wire claims (topic level, then user property)."""
    kind = sent.topic[len(ROOT) + 1 :].split("/")[0]
    if kind == "events":
        schema = sent.prop("schema") or ""
        assert schema.startswith("edge-agent/") and schema.endswith("/1"), sent.topic
        return schema.split("/")[1]
    return {"state": "state", "counts": "counts", "gaps": "gaps", "thumbs": "thumbnail"}[kind]


def gap_notice_scenario(tmp_path: Path) -> Outbox:
    """An outbox that expired, evicted and had one message refused: three drop reasons."""
    now = [time.time()]  # the publisher's clock is the real one (plus an offset)

    def advance(seconds: float) -> None:
        now[0] += seconds

    box = Outbox(
        tmp_path / "gaps.db",
        max_bytes=1 << 20,
        max_rows=5,
        ttl_s={MessageClass.THUMBNAIL: 10.0},
        clock=lambda: now[0],
    )
    events = lifecycle_events()
    box.enqueue(encode_thumbnail(TOPICS, Thumbnail(events[0].event_id, "cam1", b"\xff\xd8", 0.7)))
    advance(20.0)
    assert box.expire() == {"thumbnail": 1}
    for _ in range(2):
        box.enqueue_many([encode_event(TOPICS, e, BOOT) for e in events])  # 6 rows: 1 evicted
    (claimed,) = box.claim(1, urgent=False)
    box.dead_letter([(claimed, "refused by the broker: Not authorized (0x87)")])
    return box


# -- the schema files themselves ------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_json_schema_2020_12_and_draft_07(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:edge-agent:schema:{name}:1"
    Draft202012Validator.check_schema(schema)
    # Written with keywords that mean the same in draft-07, for tools that know only that.
    Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_examples_validate_under_both_drafts(name: str) -> None:
    schema = load_schema(name)
    assert schema["examples"]
    for example in schema["examples"]:
        Draft202012Validator(schema).validate(example)
        Draft7Validator(schema).validate(example)


@pytest.mark.parametrize("name", PAYLOAD_SCHEMAS)
def test_schema_version_matches_the_code(name: str) -> None:
    assert encode.SCHEMA_VERSION == mqtt.SCHEMA_VERSION == stats.STATS_VERSION == 1
    assert load_schema(name)["properties"]["v"]["const"] == encode.SCHEMA_VERSION


def test_durable_schemas_know_seq_and_historical_and_nothing_else_does() -> None:
    for name in ("event", "alert", "state", "counts", "gaps"):
        properties = load_schema(name)["properties"]
        assert "seq" in load_schema(name)["required"], name
        assert properties["historical"] == {
            "description": properties["historical"]["description"],
            "const": True,
        }, name
        assert "historical" not in load_schema(name)["required"], name
    for name in ("status", "stats", *REPLY_SCHEMAS):
        assert not {"seq", "historical"} & set(load_schema(name)["properties"]), name


def test_reply_status_shares_the_stats_shapes() -> None:
    stats_defs = load_schema("stats")["$defs"]
    reply_defs = load_schema("reply-status")["$defs"]
    for name in ("outbox", "camera", "source", "byClass"):
        assert reply_defs[name] == stats_defs[name], name


def test_drop_reasons_and_classes_in_the_schemas_are_the_outbox_s() -> None:
    classes = {c.value for c in DURABLE_CLASSES} | {NOTICE_CLASS}
    gaps = load_schema("gaps")["$defs"]
    reasons = set(gaps["range"]["properties"]) - {"from", "to"}
    assert reasons == set(GAP_REASONS)
    assert set(gaps["byClass"]["propertyNames"]["enum"]) == classes
    assert set(load_schema("stats")["$defs"]["byClass"]["propertyNames"]["enum"]) == classes


def test_stats_schema_lists_every_key_as_required() -> None:
    """So a key the code stops sending, or starts sending, fails validation."""
    schema = load_schema("stats")
    parts = [schema, *(schema["$defs"][d] for d in ("outbox", "camera", "source", "publisher"))]
    for part in parts:
        assert set(part["required"]) == set(part["properties"]), part.get("description")


# -- what the code produces validates ------------------------------------------------------


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


@pytest.mark.parametrize("age_s", [0.0, 3600.0], ids=["live", "historical"])
def test_every_durable_message_validates_as_sent(outbox: Outbox, age_s: float) -> None:
    outbox.enqueue_many(durable_messages())
    sent = drain(outbox, age_s=age_s)
    assert len(sent) == len(durable_messages())
    kinds = set()
    for message in sent:
        kind = schema_of(message)
        kinds.add(kind)
        seq = message.prop("seq")
        assert seq is not None
        if kind == "thumbnail":
            assert message.payload.startswith(b"\xff\xd8")
            assert message.prop("event_id") == message.topic.rsplit("/", 1)[1]
            continue
        body = message.json()
        validator(kind).validate(body)
        assert body["seq"] == int(seq)
        if age_s:
            assert body["historical"] is True and message.prop("historical") == "true"
        else:
            assert "historical" not in body and message.prop("historical") is None
    assert kinds == {"event", "thumbnail", "alert", "state", "counts"}


def test_alerts_are_sent_before_the_backlog_and_share_the_events_topic(outbox: Outbox) -> None:
    outbox.enqueue_many(durable_messages())
    sent = drain(outbox)
    kinds = [schema_of(m) for m in sent]
    first_other = next(i for i, k in enumerate(kinds) if k != "alert")
    assert set(kinds[:first_other]) == {"alert"} and "alert" not in kinds[first_other:]
    for message in sent[:first_other]:
        assert message.topic == TOPICS.events(message.json()["camera"])
        assert message.json()["kind"] != "object"


def test_mqtt5_properties_are_as_documented(outbox: Outbox) -> None:
    """content type; user properties v, seq, historical (only when true), then the message's own."""
    outbox.enqueue_many(durable_messages())
    for age_s in (0.0, 3600.0):
        for message in drain(outbox, age_s=age_s):
            kind = schema_of(message)
            own = [("event_id", message.topic.rsplit("/", 1)[1])]
            if kind != "thumbnail":
                own = [("schema", f"edge-agent/{kind}/1")]
            historical = [("historical", "true")] if age_s else []
            seq = [("seq", message.prop("seq") or "")]
            assert message.user_properties == [("v", "1"), *seq, *historical, *own]
            expected_type = "image/jpeg" if kind == "thumbnail" else "application/json"
            assert message.content_type == expected_type
            assert message.expiry_s is None  # durable messages never expire at the broker
        outbox.enqueue_many(durable_messages())


def test_mqtt_3_1_1_carries_no_properties_but_the_same_payloads(outbox: Outbox) -> None:
    outbox.enqueue_many(durable_messages())
    for message in drain(outbox, age_s=3600.0, protocol="3.1.1"):
        assert message.user_properties == [] and message.content_type is None
        if not message.topic.startswith(f"{ROOT}/thumbs/"):
            body = message.json()
            assert body["historical"] is True and body["seq"] >= 1


def test_a_gap_notice_after_expiry_eviction_and_refusal_validates(tmp_path: Path) -> None:
    box = gap_notice_scenario(tmp_path)
    try:
        publisher, _ = new_publisher(box)
        notice = box.issue_gap_notice(publisher.gaps_topic)
        assert notice is not None and notice.topic == f"{ROOT}/gaps"
        assert publisher.gaps_topic == f"{ROOT}/gaps"
        body = json.loads(notice.payload)
        validator("gaps").validate(body)
        reasons = {r for item in body["gaps"] for r in item if r not in ("from", "to")}
        assert reasons == {"expired", "evicted", "refused"}
        previous_to = 0
        for item in body["gaps"]:
            assert previous_to < item["from"] <= item["to"] < body["seq"]
            lost = sum(n for r in reasons & set(item) for n in item[r].values())
            assert lost == item["to"] - item["from"] + 1
            previous_to = item["to"]
        (sent, *rest) = drain(box, age_s=120.0)  # 100 s after the notice: historical
        assert sent.topic == notice.topic and sent.qos == 1 and not sent.retain
        assert sent.user_properties[-1] == ("schema", "edge-agent/gaps/1")
        validator("gaps").validate(sent.json())
        assert sent.json()["historical"] is True
        assert rest  # the events that were kept follow the notice
    finally:
        box.close()


def test_every_status_the_publisher_composes_validates(outbox: Outbox) -> None:
    payloads = status_payloads(outbox, agent_birth())
    check = validator("status")
    for state, body in payloads.items():
        check.validate(body)
        assert body["state"] == state and "outbox_reset" not in body
    assert "ts" not in payloads["offline"] and "ts" in payloads["online"]
    assert payloads["online"]["cameras"] == ["cam1", "cam2"]


def test_a_reset_outbox_is_told_in_every_status_of_the_run(outbox: Outbox) -> None:
    moved = Path("/var/lib/edge-agent/outbox.db.corrupt-20251130T101500Z")
    birth = agent_birth(outbox_reset=moved)
    assert birth["outbox_reset"] == str(moved)
    for body in status_payloads(outbox, birth).values():
        validator("status").validate(body)
        assert body["outbox_reset"] == str(moved)


def test_status_is_retained_qos1_with_properties(outbox: Outbox) -> None:
    publisher, fake = new_publisher(outbox)
    publisher._on_connect(
        fake,  # type: ignore[arg-type]
        None,
        SimpleNamespace(session_present=False),  # type: ignore[arg-type]
        SimpleNamespace(is_failure=False),  # type: ignore[arg-type]
        None,
    )
    (birth,) = fake.sent
    assert (birth.topic, birth.qos, birth.retain) == (TOPICS.status, 1, True)
    assert birth.content_type == "application/json" and birth.user_properties == [("v", "1")]
    validator("status").validate(birth.json())


def stats_inputs() -> tuple[OutboxStats, PublisherStats, dict[str, CameraStats]]:
    outbox = OutboxStats(
        depth_rows=12,
        depth_bytes=3456,
        enqueued_total=100,
        acked_total=80,
        evicted_by_class={"thumbnail": 5},
        last_seq=103,
        expired_by_class={"state": 2},
        dead_lettered_by_class={"event": 1, "gaps": 1},
        unstored_by_class={"alert": 3},
        gap_seqs_unreported=4,
        gap_notices_total=2,
        write_failures=1,
        last_error="disk full during enqueue: database or disk is full",
        recovered_from="/var/lib/edge-agent/outbox.db.corrupt-20240101T000000",
    )
    publisher = PublisherStats(
        published_total=90,
        acked_total=80,
        reconnects=3,
        inflight=7,
        connected=True,
        historical_total=12,
        paced=True,
        session_present=True,
        volatile_dropped=2,
        last_error="disconnected: Unspecified error",
    )
    cameras = {
        "cam1": CameraStats(
            fps=4.9876,
            detector_runs=120,
            inference_ms=41.234,
            motion_ratio=0.123456,
            source=SourceHealth(connected=True, frames_read=300, reconnects=1),
        ),
        "cam2": CameraStats(
            fps=0.0,
            detector_runs=0,
            inference_ms=float("nan"),  # did not run: null, never NaN
            motion_ratio=None,
            source=SourceHealth(False, 0, 4, last_error="rtsp://admin:***@10.0.0.7/: timeout"),
        ),
    }
    return outbox, publisher, cameras


def test_stats_from_the_real_builder_validate(tmp_path: Path) -> None:
    outbox_stats, publisher_stats, cameras = stats_inputs()
    body = build_stats(
        boot_id=BOOT,
        uptime_s=61.04,
        outbox=outbox_stats,
        publisher=publisher_stats,
        cameras=cameras,
        disk_free_bytes=-1,
    )
    wire = json.loads(encode_stats(body))
    validator("stats").validate(wire)
    assert wire["cameras"]["cam2"]["inference_ms"] is None
    # And from a real outbox that dropped messages, and a real (idle) publisher.
    box = gap_notice_scenario(tmp_path)
    try:
        publisher, _ = new_publisher(box)
        body = build_stats(
            boot_id=BOOT,
            uptime_s=5.0,
            outbox=box.stats(),
            publisher=publisher.stats(),
            cameras={"cam1": cameras["cam1"]},
            disk_free_bytes=123456789,
        )
        wire = json.loads(encode_stats(body))
        validator("stats").validate(wire)
        drops = wire["outbox"]
        assert (drops["evicted"], drops["expired"], drops["dead_lettered"]) == (
            {"event": 1},
            {"thumbnail": 1},
            {"event": 1},
        )
    finally:
        box.close()


class AgentStandIn:
    """The running agent's command target without cameras or a model: the methods that
    build replies and publish stats are the real ``Agent``'s."""

    status_report = Agent.status_report
    snapshot_jpeg = Agent.snapshot_jpeg
    set_preview = Agent.set_preview
    camera_ids = Agent.camera_ids
    publish_stats = Agent.publish_stats
    _worker = Agent._worker
    _on_command = Agent._on_command

    def __init__(self, publisher: Publisher | None = None) -> None:
        self.boot_id = BOOT
        self.config = parse_config(agent_config_dict(stats_interval_s=30.0))
        self.topics = TOPICS
        self.publisher = publisher
        self.commands = CommandHandler(self)
        self.indicator = NoIndicator()
        self._preview_lock = threading.Lock()
        frame = Frame("cam1", 0, 1_764_448_000.0, 0.0, IMAGE)
        self.workers = [
            SimpleNamespace(config=SimpleNamespace(id="cam1"), latest=frame, preview=None),
            SimpleNamespace(config=SimpleNamespace(id="cam2"), latest=None, preview=None),
        ]

    def condition(self, now_s: float) -> Condition:
        return Condition.UPLINK_DOWN

    def stats_body(self, **_options: object) -> dict[str, object]:
        outbox, publisher, cameras = stats_inputs()
        return build_stats(
            boot_id=self.boot_id, uptime_s=12.3, outbox=outbox, publisher=publisher, cameras=cameras
        )


def command(
    name: str, body: object = None, *, retain: bool = False, **properties: object
) -> SimpleNamespace:
    """A command as paho hands it to the publisher."""
    payload = b"" if body is None else json.dumps(body).encode()
    return SimpleNamespace(
        topic=f"{ROOT}/cmd/{name}",
        payload=payload,
        retain=retain,
        properties=SimpleNamespace(**properties) if properties else None,
    )


@pytest.fixture
def device(outbox: Outbox) -> tuple[Publisher, FakePaho, AgentStandIn]:
    target = AgentStandIn()
    publisher, fake = new_publisher(outbox, commands=target._on_command)
    target.publisher = publisher
    return publisher, fake, target


def send(device: tuple[Publisher, FakePaho, AgentStandIn], message: SimpleNamespace) -> list[Sent]:
    publisher, fake, _ = device
    before = len(fake.sent)
    publisher._on_command(fake, None, message)  # type: ignore[arg-type]
    return fake.sent[before:]


REPLY_TO = f"{ROOT}/reply/centre-7"


@pytest.mark.parametrize(
    ("name", "body", "schema"),
    [
        ("ping", None, "reply-ping"),
        ("ping", {}, "reply-ping"),
        ("status", {}, "reply-status"),
        ("preview", {"camera": "cam1", "seconds": 30, "fps": 2}, "reply-preview"),
        ("preview", {"camera": "cam1", "on": False}, "reply-preview"),
        ("preview", {"camera": "cam9"}, "reply-error"),
        ("preview", {"camera": "cam1", "fps": 50}, "reply-error"),
        ("snapshot", {"camera": "cam2"}, "reply-error"),
        ("snapshot", {"camera": "cam1", "colour": "red"}, "reply-error"),
        ("ping", [1, 2], "reply-error"),
        ("reboot", {}, "reply-error"),
    ],
)
def test_command_replies_validate_and_go_where_documented(
    device: tuple[Publisher, FakePaho, AgentStandIn], name: str, body: object, schema: str
) -> None:
    (reply,) = send(device, command(name, body, ResponseTopic=REPLY_TO, CorrelationData=b"c-1"))
    assert (reply.topic, reply.qos, reply.retain) == (REPLY_TO, 1, False)
    assert (reply.content_type, reply.expiry_s, reply.correlation) == (
        "application/json",
        60,
        b"c-1",
    )
    validator(schema).validate(reply.json())


def test_a_snapshot_reply_is_a_jpeg(device: tuple[Publisher, FakePaho, AgentStandIn]) -> None:
    (reply,) = send(device, command("snapshot", {"camera": "cam1", "width_px": 320}))
    assert reply.content_type == "image/jpeg" and reply.payload.startswith(b"\xff\xd8\xff")
    assert reply.topic == f"{ROOT}/reply/snapshot" and reply.correlation is None


@pytest.mark.parametrize(
    "response_topic", [None, "centre/inbox", f"{ROOT}/replies", "city/other-site/pi-9/reply/x"]
)
def test_a_reply_goes_under_the_device_s_own_reply_topic_or_to_reply_name(
    device: tuple[Publisher, FakePaho, AgentStandIn], response_topic: str | None
) -> None:
    properties = {"ResponseTopic": response_topic} if response_topic else {}
    (reply,) = send(device, command("ping", **properties))
    assert reply.topic == f"{ROOT}/reply/ping"


def test_retained_commands_are_ignored(device: tuple[Publisher, FakePaho, AgentStandIn]) -> None:
    assert send(device, command("preview", {"camera": "cam1"}, retain=True)) == []
    assert device[2].workers[0].preview is None and device[2].commands.refused == 1


def test_the_device_listens_on_cmd_plus_at_qos1(outbox: Outbox) -> None:
    publisher, fake = new_publisher(outbox, commands=lambda *_: None)
    subscriptions: list[tuple[str, int]] = []
    fake.subscribe = lambda topic, qos: subscriptions.append((topic, qos))  # type: ignore[attr-defined]
    publisher._on_connect(
        fake,  # type: ignore[arg-type]
        None,
        SimpleNamespace(session_present=True),  # type: ignore[arg-type]
        SimpleNamespace(is_failure=False),  # type: ignore[arg-type]
        None,
    )
    assert subscriptions == [(f"{ROOT}/cmd/+", 1)]


def test_stats_and_previews_are_volatile_with_expiry(
    device: tuple[Publisher, FakePaho, AgentStandIn],
) -> None:
    publisher, fake, target = device
    assert target.publish_stats()
    (sent,) = fake.sent
    assert (sent.topic, sent.qos, sent.retain) == (TOPICS.stats, 0, False)
    assert sent.expiry_s == stats_expiry_s(30.0) == 60
    assert sent.content_type == "application/json"
    assert sent.user_properties == [("v", "1"), ("schema", "edge-agent/stats/1")]
    validator("stats").validate(sent.json())
    # Previews: the agent sends them exactly like this (app.Agent._send_preview).
    jpeg = target.snapshot_jpeg("cam1", 480)
    assert jpeg is not None
    assert publisher.publish_volatile(
        TOPICS.preview("cam1"), jpeg, content_type="image/jpeg", expiry_s=PREVIEW_EXPIRY_S
    )
    preview = fake.sent[-1]
    assert (preview.topic, preview.qos, preview.retain) == (f"{ROOT}/preview/cam1", 0, False)
    assert (preview.expiry_s, preview.content_type) == (10, "image/jpeg")
    # Never buffered: not connected means dropped, and counted.
    publisher._connected = False
    assert not target.publish_stats()
    assert publisher.stats().volatile_dropped == 1


# -- and wrong payloads do not --------------------------------------------------------------


def mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "extra field", {**body, "colour": "red"}
    for key in body:
        if key not in ("historical", "outbox_reset"):  # the only optional keys
            yield f"{key} missing", {k: v for k, v in body.items() if k != key}
    if "v" in body:
        yield "v is a string", {**body, "v": "1"}
        yield "v is 2", {**body, "v": 2}
    if "boot" in body:
        yield "boot not hex", {**body, "boot": "not-hex!"}
    if "seq" in body:
        yield "seq is a float", {**body, "seq": 1.5}
        yield "seq is 0", {**body, "seq": 0}
        yield "seq is a string", {**body, "seq": "3"}
        yield "historical is false", {**body, "historical": False}
        yield "historical is a string", {**body, "historical": "true"}


def lifecycle_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "box has 3 numbers", {**body, "box": [0.1, 0.1, 0.5]}
    yield "box outside the frame", {**body, "box": [0.1, 0.1, 1.2, 0.5]}
    yield "unknown lifecycle", {**body, "type": "started"}
    yield "id with a topic wildcard", {**body, "id": "a/b#"}
    yield "new with an end time", {**body, "type": "new", "end": body["start"] + 1}
    yield "end without an end time", {**body, "type": "end", "end": None}
    yield "camera with a slash", {**body, "camera": "cam/1"}
    yield "an end reason on a new", {**body, "type": "new", "end": None, "end_reason": "restart"}
    yield "an unknown end reason", {**body, "type": "end", "end": 1.0, "end_reason": "crash"}


def event_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from lifecycle_mutations(body)
    yield "score is a string", {**body, "score": "0.9"}
    yield "score above 1", {**body, "score": 1.5}
    yield "zones not a list", {**body, "zones": "pavement"}
    yield "thumb is a number", {**body, "thumb": 1}
    yield "an alert's kind", {**body, "kind": "intrusion"}


def alert_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from lifecycle_mutations(body)
    yield "kind object", {**body, "kind": "object"}
    yield "unknown kind", {**body, "kind": "explosion"}
    yield "tracks of strings", {**body, "tracks": ["1"]}
    yield "labels not a list", {**body, "labels": "person"}
    yield "nested detail", {**body, "detail": {"persons": {"n": 5}}}
    yield "detail a list", {**body, "detail": [1]}
    yield "zone a number", {**body, "zone": 3}


def state_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "state a number", {**body, "state": 2}
    yield "state empty", {**body, "state": ""}
    yield "score a string", {**body, "score": "0.5"}
    yield "since null", {**body, "since": None}
    yield "nested detail", {**body, "detail": {"box": [0, 0, 1, 1]}}
    yield "analyzer with a slash", {**body, "analyzer": "flood/1"}


def counts_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "negative count", {**body, "counts": {"in": {"person": -1}}}
    yield "fractional count", {**body, "counts": {"in": {"person": 1.5}}}
    yield "flat counts", {**body, "counts": {"in": 3}}
    yield "direction with a slash", {**body, "counts": {"in/out": {}}}
    yield "to is a string", {**body, "to": "later"}


def gaps_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    first = body["gaps"][0]
    yield "no ranges", {**body, "gaps": []}
    yield "range without reason", {**body, "gaps": [{"from": 1, "to": 2}]}
    yield "unknown reason", {**body, "gaps": [{**first, "stolen": {"event": 1}}]}
    yield "unknown class", {**body, "gaps": [{"from": 1, "to": 1, "evicted": {"status": 1}}]}
    yield "zero count", {**body, "gaps": [{"from": 1, "to": 1, "evicted": {"event": 0}}]}
    yield "empty reason", {**body, "gaps": [{"from": 1, "to": 1, "evicted": {}}]}
    yield "from is 0", {**body, "gaps": [{**first, "from": 0}]}
    yield "from missing", {**body, "gaps": [{k: v for k, v in first.items() if k != "from"}]}


def stats_mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
        wrong = copy.deepcopy(body)
        where = wrong
        for key in path[:-1]:
            where = where[key]
        if value is KeyError:
            del where[path[-1]]
        else:
            where[path[-1]] = value
        return wrong

    camera = next(iter(body["cameras"]))
    yield "outbox key missing", changed(("outbox", "depth_rows"), KeyError)
    yield "outbox key added", changed(("outbox", "colour"), "red")
    yield "evicted by unknown class", changed(("outbox", "evicted"), {"status": 1})
    yield "depth negative", changed(("outbox", "depth_rows"), -1)
    yield "publisher key missing", changed(("publisher", "inflight"), KeyError)
    yield "connected not boolean", changed(("publisher", "connected"), 1)
    yield "camera source missing", changed(("cameras", camera, "source"), KeyError)
    yield "motion ratio above 1", changed(("cameras", camera, "motion_ratio"), 1.5)
    yield "fps NaN as a string", changed(("cameras", camera, "fps"), "NaN")
    yield "camera id with a slash", changed(("cameras", "a/b"), body["cameras"][camera])


def check_wrong(
    schema: str, body: dict[str, Any], wrongs: Iterator[tuple[str, dict[str, Any]]]
) -> None:
    check = validator(schema)
    check.validate(body)
    count = 0
    for what, wrong in wrongs:
        count += 1
        with pytest.raises(ValidationError):
            check.validate(wrong)
            pytest.fail(f"{schema} accepted a payload with {what}")
    assert count >= 5


@pytest.mark.parametrize("step", [0, 1, 2], ids=["new", "update", "end"])
def test_wrong_events_fail(outbox: Outbox, step: int) -> None:
    body = wire_events(outbox)[step]
    check_wrong("event", body, (*mutations(body), *event_mutations(body)))  # type: ignore[arg-type]


def test_wrong_alerts_states_and_counts_fail(outbox: Outbox) -> None:
    outbox.enqueue_many(durable_messages())
    checked = set()
    for message in drain(outbox, age_s=3600.0):
        kind = schema_of(message)
        if kind in ("event", "thumbnail"):
            continue
        body = message.json()
        extra = {"alert": alert_mutations, "state": state_mutations, "counts": counts_mutations}
        check_wrong(kind, body, iter([*mutations(body), *extra[kind](body)]))
        checked.add(kind)
    assert checked == {"alert", "state", "counts"}


def test_wrong_gap_notices_and_stats_fail(tmp_path: Path) -> None:
    box = gap_notice_scenario(tmp_path)
    try:
        notice = box.issue_gap_notice(f"{ROOT}/gaps")
        assert notice is not None
        body = json.loads(notice.payload)
        check_wrong("gaps", body, iter([*mutations(body), *gaps_mutations(body)]))
    finally:
        box.close()
    outbox_stats, publisher_stats, cameras = stats_inputs()
    body = json.loads(
        encode_stats(
            build_stats(
                boot_id=BOOT,
                uptime_s=1.0,
                outbox=outbox_stats,
                publisher=publisher_stats,
                cameras=cameras,
                disk_free_bytes=10,
            )
        )
    )
    check_wrong("stats", body, iter([*mutations(body), *stats_mutations(body)]))


@pytest.mark.parametrize("state", ["online", "stopped", "offline"])
def test_wrong_statuses_fail(outbox: Outbox, state: str) -> None:
    body = status_payloads(outbox, agent_birth())[state]
    wrongs = list(mutations(body))
    wrongs += [
        ("unknown state", {**body, "state": "sleeping"}),
        ("cameras not a list", {**body, "cameras": "cam1"}),
        ("no cameras", {**body, "cameras": []}),
        ("started is a string", {**body, "started": "yesterday"}),
        ("outbox_reset empty", {**body, "outbox_reset": ""}),
        ("outbox_reset true", {**body, "outbox_reset": True}),
    ]
    if state == "offline":
        wrongs.append(("offline with a time", {**body, "ts": 1764448000.0}))
    check_wrong("status", body, iter(wrongs))


def test_wrong_replies_fail(device: tuple[Publisher, FakePaho, AgentStandIn]) -> None:
    bodies = {
        "reply-ping": send(device, command("ping"))[0].json(),
        "reply-status": send(device, command("status"))[0].json(),
        "reply-preview": send(device, command("preview", {"camera": "cam1"}))[0].json(),
        "reply-error": send(device, command("preview", {}))[0].json(),
    }
    assert "camera" in bodies["reply-error"]["error"]  # names the missing key
    for name, body in bodies.items():
        wrongs = [*mutations(body), ("ok flipped", {**body, "ok": not body["ok"]})]
        wrongs.append(("v added", {**body, "v": 1}))
        if name == "reply-preview":
            wrongs += [
                ("on without until", {**body, "until": None}),
                ("off with until", {**body, "preview": "off"}),
                ("preview true", {**body, "preview": True}),
            ]
        if name == "reply-status":
            wrongs.append(("outbox key missing", {**body, "outbox": {}}))
            wrongs.append(("unknown condition", {**body, "condition": "fine"}))
        check_wrong(name, body, iter(wrongs))


# -- the AsyncAPI document and the prose agree with the code --------------------------------


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    return document


MESSAGE_SCHEMAS = {
    "status": "status",
    "event": "event",
    "alert": "alert",
    "state": "state",
    "counts": "counts",
    "gaps": "gaps",
    "stats": "stats",
    "replyPing": "reply-ping",
    "replyStatus": "reply-status",
    "replyPreview": "reply-preview",
    "replyError": "reply-error",
}


def test_asyncapi_refers_to_the_schema_files_that_exist() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    refs = {
        name: message["payload"]["schema"]["$ref"]
        for name, message in document["components"]["messages"].items()
        if "schema" in message["payload"]
    }
    assert refs == {m: f"./schemas/{s}.schema.json" for m, s in MESSAGE_SCHEMAS.items()}
    assert set(MESSAGE_SCHEMAS.values()) == set(SCHEMA_NAMES)
    for ref in refs.values():
        assert (DOCS / ref).is_file(), ref


def test_asyncapi_channels_are_the_topics_the_code_builds(outbox: Outbox) -> None:
    channels = asyncapi()["channels"]
    root = "{prefix}/{site_id}/{device_id}"
    topics = Topics(root)
    publisher, _ = new_publisher(outbox)
    assert {
        "status": topics.status,
        "events": topics.events("{camera}"),
        "thumbnails": topics.thumbnail("{camera}", "{event_id}"),
        "state": topics.state("{camera}", "{analyzer}"),
        "counts": topics.counts("{camera}", "{line}"),
        "gaps": publisher.gaps_topic.replace(ROOT, root),
        "stats": topics.stats,
        "preview": topics.preview("{camera}"),
        "commands": f"{root}/cmd/{{command}}",
        "replies": f"{root}/reply/{{reply_to}}",
    } == {name: channel["address"] for name, channel in channels.items()}
    for name, channel in channels.items():
        placeholders = set(re.findall(r"{(\w+)}", channel["address"]))
        assert placeholders == set(channel["parameters"]), name
    assert channels["commands"]["parameters"]["command"]["enum"] == list(COMMANDS)


def test_asyncapi_qos_retain_and_properties_match_the_wire(outbox: Outbox) -> None:
    document = asyncapi()
    operations = document["operations"]
    schemas = document["components"]["schemas"]
    outbox.enqueue_many(durable_messages())
    operation_of = {
        "event": "publishEvent",
        "alert": "publishAlert",
        "thumbnail": "publishThumbnail",
        "state": "publishState",
        "counts": "publishCounts",
    }
    for message in drain(outbox):
        kind = schema_of(message)
        binding = operations[operation_of[kind]]["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (message.qos, message.retain), kind
        headers = schemas[f"{kind}Properties"]
        sent = {k for k, _ in message.user_properties}
        assert set(headers["required"]) == sent, kind
        assert set(headers["properties"]) == sent | {"historical"}, kind
        if "schema" in headers["properties"]:
            assert headers["properties"]["schema"]["const"] == message.prop("schema")
        channel_messages = document["channels"][
            {"event": "events", "alert": "events", "thumbnail": "thumbnails"}.get(kind, kind)
        ]["messages"]
        assert kind in channel_messages
        assert document["components"]["messages"][kind]["contentType"] == message.content_type
    for name, qos, retain in (
        ("publishStatus", 1, True),
        ("publishGaps", 1, False),
        ("publishStats", 0, False),
        ("publishPreview", 0, False),
    ):
        binding = operations[name]["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (qos, retain), name
    messages = document["components"]["messages"]
    assert messages["preview"]["bindings"]["mqtt"]["messageExpiryInterval"] == PREVIEW_EXPIRY_S
    for name in ("replyPing", "replyStatus", "replyPreview", "replySnapshot", "replyError"):
        assert messages[name]["bindings"]["mqtt"]["messageExpiryInterval"] == 60, name


def test_asyncapi_command_payloads_are_the_device_s_models() -> None:
    schemas = asyncapi()["components"]["schemas"]
    for name, model in (
        ("emptyCommand", EmptyCommand),
        ("snapshotCommand", SnapshotCommand),
        ("previewCommand", PreviewCommand),
    ):
        documented = schemas[name]
        actual = model.model_json_schema()
        assert documented["additionalProperties"] is False
        assert set(documented["properties"]) == set(actual.get("properties", {})), name
        assert set(documented.get("required", [])) == set(actual.get("required", [])), name
        for key, spec in documented["properties"].items():
            real = actual["properties"][key]
            for keyword in ("minimum", "maximum", "exclusiveMinimum", "default", "pattern"):
                assert spec.get(keyword) == real.get(keyword), (name, key, keyword)
    assert schemas["previewCommand"]["properties"]["seconds"]["maximum"] == MAX_PREVIEW_S
    assert schemas["previewCommand"]["properties"]["fps"]["maximum"] == MAX_PREVIEW_FPS


def test_asyncapi_command_examples_are_carried_out() -> None:
    document = asyncapi()
    handler = CommandHandler(AgentStandIn())
    for name, message in document["channels"]["commands"]["messages"].items():
        resolved = document["components"]["messages"][message["$ref"].rsplit("/", 1)[1]]
        assert resolved["examples"], name
        for example in resolved["examples"]:
            reply = handler.handle(name, json.dumps(example["payload"]).encode())
            assert reply is not None and b'"ok":false' not in reply.payload, (name, example)


def test_asyncapi_examples_validate() -> None:
    messages = asyncapi()["components"]["messages"]
    for name, schema in MESSAGE_SCHEMAS.items():
        for example in messages[name].get("examples", []):
            validator(schema).validate(example["payload"])


DOC_BLOCK = re.compile(r"(?:<!-- schema: ([\w-]+) -->\n)?```json\n(.*?)\n```", re.DOTALL)


def json_documents(text: str) -> list[Any]:
    """One JSON value, or JSON lines."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_json_example_in_the_api_reference_validates() -> None:
    """Each ```json block in docs/mqtt-api.md names its schema in a comment above it."""
    text = (DOCS / "mqtt-api.md").read_text(encoding="utf-8")
    seen = set()
    blocks = DOC_BLOCK.findall(text)
    assert blocks
    for schema, block in blocks:
        assert schema, f"a json block without <!-- schema: ... --> above it: {block[:80]}"
        for example in json_documents(block):
            validator(schema).validate(example)
        seen.add(schema)
    assert seen == set(SCHEMA_NAMES)


def classify(example: dict[str, Any]) -> str:
    if "gaps" in example:
        return "gaps"
    if "analyzer" in example:
        return "state"
    if "line" in example and "counts" in example:
        return "counts"
    if "rule" in example:
        return "alert"
    if "label" in example:
        return "event"
    return "status"


@pytest.mark.parametrize("page", ["analytics.md", "analyzers.md", "delivery.md"])
def test_payload_examples_in_the_other_pages_validate(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = [block for _, block in DOC_BLOCK.findall(text)]
    assert blocks
    for block in blocks:
        for example in json_documents(block):
            validator(classify(example)).validate(example)
