"""The documented MQTT API (docs/schemas, docs/asyncapi.yaml, docs/mqtt-api.md) and the code
that produces it: helpers shared by the tests that hold one against the other
(tests/unit/test_docs_schemas.py, test_encode.py, mqtt/test_publisher.py, test_stats.py,
test_remote.py, test_app_messages.py).

The wire is observed by letting the real ``Publisher`` drain a real ``Outbox`` into
:class:`fakes.mqtt.FakeClient` (never connected to anything): the payloads, ``historical``
flags and packed MQTT 5 properties are exactly those a broker would receive."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fakes.mqtt import FakeClient, Sent
from helpers import wait_until
from jsonschema import Draft202012Validator, ValidationError

from edge_agent import mqtt
from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.app import birth_payload, new_boot_id
from edge_agent.config import parse_config
from edge_agent.encode import (
    Topics,
    encode_alert,
    encode_counts,
    encode_event,
    encode_state,
    encode_thumbnail,
)
from edge_agent.events import EventEngine
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher, PublisherStats
from edge_agent.outbox import Outbox, OutboxStats
from edge_agent.rules import build_rules
from edge_agent.rules.testing import RuleDriver, Seen, standing
from edge_agent.stats import CameraStats
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

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAYLOAD_SCHEMAS = ("event", "alert", "state", "counts", "gaps", "status", "stats", "update")
REPLY_SCHEMAS = (
    "reply-ping",
    "reply-status",
    "reply-preview",
    "reply-reference",
    "reply-reload",
    "reply-announce",
    "reply-clips",
    "reply-clip",
    "reply-update",
    "reply-error",
)
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

TIMEOUT_S = 10.0


def new_publisher(
    outbox: Outbox,
    *,
    age_s: float = 0.0,
    birth: Mapping[str, object] | None = None,
    on_command: mqtt.CommandCallback | None = None,
    protocol: mqtt.Protocol = "5",
    fake: FakeClient | None = None,
    command_queue_size: int = 8,
) -> tuple[Publisher, FakeClient]:
    """A publisher talking to a :class:`FakeClient` (not started); ``age_s`` moves its
    clock ahead so that everything in the outbox is that old when it is sent."""
    fake = fake or FakeClient()
    publisher = Publisher(
        MqttSettings(host="127.0.0.1", port=1, client_id="schema-test", protocol=protocol),
        outbox,
        TOPICS,
        birth_payload=birth or agent_birth(),
        max_inflight=1000,
        drain=DrainSettings.unlimited(historical_after_s=60.0),
        on_command=on_command,
        command_queue_size=command_queue_size,
        clock=lambda: time.time() + age_s,
        client_factory=fake.factory,
    )
    return publisher, fake


@contextmanager
def running(publisher: Publisher, fake: FakeClient) -> Iterator[None]:
    """The publisher started and connected (its birth sent); stopped on the way out."""
    publisher.start()
    try:
        wait_until(
            lambda: publisher.connected and fake.published_on(TOPICS.status), TIMEOUT_S, "birth"
        )
        yield
    finally:
        publisher.stop()


def drain(outbox: Outbox, *, age_s: float = 0.0, protocol: mqtt.Protocol = "5") -> list[Sent]:
    """Everything in the outbox as the publisher sends it (status messages left out)."""
    publisher, fake = new_publisher(outbox, age_s=age_s, protocol=protocol)
    with running(publisher, fake):
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the outbox drained and acknowledged")
    assert outbox.unclaimed() == 0
    return [sent for sent in fake.sent if sent.topic != TOPICS.status]


def status_payloads(outbox: Outbox, birth: Mapping[str, object]) -> dict[str, dict[str, Any]]:
    """online/stopped as published, offline as the Last Will says it."""
    publisher, fake = new_publisher(outbox, birth=birth)
    with running(publisher, fake):
        pass
    online, stopped = (sent.json() for sent in fake.published_on(TOPICS.status))
    assert fake.will is not None and fake.will.topic == TOPICS.status
    return {"online": online, "stopped": stopped, "offline": fake.will.json()}


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
        broker="broker-b.city.example:8883",
        broker_moves=1,
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


# -- wrong payloads -------------------------------------------------------------------------


def mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "extra field", {**body, "colour": "red"}
    for key in body:
        # the only optional keys (clip: v1 devices from before recording send none; update:
        # from before signed updates; broker: from before the brokers list)
        optional = (
            "historical",
            "outbox_reset",
            "clip",
            "clip_reason",
            "recording",
            "update",
            "broker",
            "broker_moves",
        )
        if key not in optional:
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
    yield "a clip on a new", {**body, "type": "new", "end": None, "clip": {"id": "cam1-1-ab"}}
    yield "a clip without an id", {**body, "type": "end", "end": 1.0, "clip": {}}
    no_reason = {"clip": None, "clip_reason": ""}
    yield "an empty clip reason", {**body, "type": "end", "end": 1.0, **no_reason}


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
    yield "unknown condition", changed(("condition",), "fine")
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


# -- the AsyncAPI document and the prose ---------------------------------------------------


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
    "replyReference": "reply-reference",
    "replyReload": "reply-reload",
    "replyAnnounce": "reply-announce",
    "replyClips": "reply-clips",
    "replyClipHold": "reply-clip",
    "replyClipRelease": "reply-clip",
    "replyUpdateBegin": "reply-update",
    "replyUpdateChunk": "reply-update",
    "replyUpdateCommit": "reply-update",
    "replyUpdateFetch": "reply-update",
    "update": "update",
    "replyError": "reply-error",
}


DOC_BLOCK = re.compile(r"(?:<!-- schema: ([\w-]+) -->\n)?```json\n(.*?)\n```", re.DOTALL)


def json_documents(text: str) -> list[Any]:
    """One JSON value, or JSON lines."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


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
