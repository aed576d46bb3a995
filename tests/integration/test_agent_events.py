"""The real agent (simulated camera, real SSD model) against a real mosquitto, checked as a
command-centre consumer sees it: exactly the API that docs/mqtt-api.md and docs/schemas/ promise."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes.mqtt import Inbox
from helpers import wait_until
from hw_sim.scenes import required_media
from jsonschema import Draft202012Validator
from realdata import require_media, require_model

from edge_agent import __version__
from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import AgentConfig, parse_config
from edge_agent.mqtt import MqttSettings, ReceivedMessage, Subscriber

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
TIMEOUT_S = 60.0
SCENARIO = "person_walks_in"  # empty street, one person walks in, stands, walks out
JPEG_MAGIC = b"\xff\xd8\xff"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def agent_config(tmp_path: Path, broker: LocalBroker, site_id: str) -> AgentConfig:
    return parse_config(
        {
            "site_id": site_id,
            "device_id": "pi-001",
            "cameras": [
                {
                    "id": "cam1",
                    "fps": 5,
                    "source": {
                        "kind": "sim",
                        "scenario": SCENARIO,
                        "width": 480,
                        "height": 270,
                        "realtime": False,
                        "loop": False,
                    },
                    "zones": [
                        {"name": "pavement", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
                    ],
                }
            ],
            "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "city"},
            "outbox": {"path": str(tmp_path / "outbox.db")},
        },
        "<test>",
    )


def subscribe(broker: LocalBroker, topic: str, inbox: Inbox) -> Subscriber:
    subscriber = Subscriber(
        MqttSettings.consumer(broker.host, broker.port, f"sub-{uuid.uuid4().hex[:8]}"),
        [topic],
        inbox,
    )
    subscriber.start(timeout_s=TIMEOUT_S)
    return subscriber


class Running:
    """The agent on its own device root, with an inbox subscribed to all of that root
    before the agent started."""

    def __init__(self, agent: Agent, inbox: Inbox, root: str) -> None:
        self.agent = agent
        self.inbox = inbox
        self.root = root
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.agent.stop()


@pytest.fixture
def running(tmp_path: Path, broker: LocalBroker) -> Iterator[Running]:
    require_model("ssd_mobilenet_v1")
    for media in required_media(SCENARIO):  # the footage the simulator cuts its person from
        require_media(media)
    config = agent_config(tmp_path, broker, f"site-{uuid.uuid4().hex[:8]}")
    inbox = Inbox()
    with subscribe(broker, f"{config.topic_root}/#", inbox):
        agent = Agent(config)
        run = Running(agent, inbox, config.topic_root)
        try:
            agent.start()
            yield run
        finally:
            run.stop()


def retained_status(broker: LocalBroker, root: str) -> ReceivedMessage:
    """What a consumer that subscribes now gets on the device's status topic."""
    inbox = Inbox()
    with subscribe(broker, f"{root}/status", inbox):
        wait_until(lambda: inbox.all(), TIMEOUT_S, "the retained status")
    return inbox.all()[0]


def test_a_consumer_sees_status_events_and_thumbnails_as_documented(
    running: Running, broker: LocalBroker
) -> None:
    agent, inbox, root = running.agent, running.inbox, running.root
    event_schema, status_schema = validator("event"), validator("status")

    # -- birth: retained, online, describing this run
    wait_until(lambda: inbox.statuses(), TIMEOUT_S, "the birth status")
    birth = inbox.under("status")[0]
    assert birth.topic == f"{root}/status"
    assert birth.qos == 1
    assert birth.content_type == "application/json"
    assert birth.user_property("v") == "1"
    online = birth.json()
    status_schema.validate(online)
    assert online["state"] == "online"
    assert online["boot"] == agent.boot_id
    assert online["version"] == __version__
    assert online["site"] == agent.config.site_id and online["device"] == "pi-001"
    assert online["cameras"] == ["cam1"] and online["model"] == "ssd_mobilenet_v1"
    late = retained_status(broker, root)
    assert late.retain, "status must be retained: a consumer subscribing later gets it at once"
    assert late.json()["state"] == "online" and late.json()["boot"] == agent.boot_id

    # -- the person walks in, stands, walks out: an event lifecycle that ends
    wait_until(
        lambda: any(e["type"] == "end" and e["label"] == "person" for e in inbox.events()),
        TIMEOUT_S,
        "the end of the person's event",
    )
    running.stop()
    wait_until(
        lambda: [s["state"] for s in inbox.statuses()] == ["online", "stopped"],
        TIMEOUT_S,
        "status stopped after agent.stop()",
    )

    # -- status after a clean stop: 'stopped' (not the Last Will's 'offline'), retained
    stopped = inbox.under("status")[-1]
    status_schema.validate(stopped.json())
    assert stopped.json()["boot"] == agent.boot_id
    assert retained_status(broker, root).json()["state"] == "stopped"

    # -- events: schema, topic, MQTT 5 properties, lifecycle per id
    event_messages = inbox.under("events")
    assert event_messages, "no events at all"
    lifecycles: dict[str, list[str]] = {}
    for message in event_messages:
        body = message.json()
        event_schema.validate(body)
        assert message.topic == f"{root}/events/cam1" and body["camera"] == "cam1"
        assert message.qos == 1
        assert message.content_type == "application/json"
        assert message.user_property("v") == "1"
        assert message.user_property("seq") == str(body["seq"])
        assert message.user_property("schema") == "edge-agent/event/1"
        assert body["boot"] == agent.boot_id
        lifecycles.setdefault(body["id"], []).append(body["type"])
    assert any(e["label"] == "person" for e in inbox.events())
    for event_id, steps in lifecycles.items():
        assert steps[0] == "new" and steps[-1] == "end", (event_id, steps)
        assert set(steps[1:-1]) <= {"update"}, (event_id, steps)

    # -- thumbnails: every 'new' with thumb true is followed by its JPEG
    thumbnails = inbox.under("thumbs")
    for message in thumbnails:
        assert message.content_type == "image/jpeg"
        assert message.qos == 1
        assert message.user_property("v") == "1"
        assert message.payload.startswith(JPEG_MAGIC)
        image = cv2.imdecode(np.frombuffer(message.payload, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.size > 0, f"undecodable JPEG on {message.topic}"
        assert message.topic == f"{root}/thumbs/cam1/{message.user_property('event_id')}"
    news = [m for m in event_messages if m.json()["type"] == "new"]
    assert news and all(m.json()["thumb"] is True for m in news)
    for new in news:
        event_id, new_seq = new.json()["id"], new.json()["seq"]
        own = [
            int(str(t.user_property("seq")))
            for t in thumbnails
            if t.topic == f"{root}/thumbs/cam1/{event_id}"
        ]
        assert own, f"no thumbnail for event {event_id}"
        assert min(own) > new_seq, "a thumbnail must come after its event's 'new'"

    # -- seq: events and thumbnails share one per-device counter, contiguous, in order
    durable = [m for m in inbox.all() if m.topic.split("/")[3] in ("events", "thumbs")]
    seqs = [int(str(m.user_property("seq"))) for m in durable]
    assert seqs == list(range(1, len(durable) + 1)), seqs
