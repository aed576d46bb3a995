"""The running agent (simulated camera, real SSD model) over a real mosquitto, with a
privacy mask: thumbnails, snapshot replies and preview frames, as the command centre gets
them, are black where the mask lies."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as paho
import pytest
from fakes.mqtt import Inbox
from helpers import wait_until
from hw_sim.scenes import required_media
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from privacy_checks import BAND, assert_masked, covered, decode
from realdata import require_media, require_model

from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config
from edge_agent.events import thumbnail_context
from edge_agent.types import Box

SCENARIO = "person_walks_in"
WIDTH, HEIGHT = 480, 270
TIMEOUT_S = 60.0
TRIANGLE = [(0.05, 0.05), (0.6, 0.1), (0.3, 0.6)]
MASKS = [BAND, TRIANGLE]


def user_property(message: paho.MQTTMessage, name: str) -> str | None:
    for key, value in getattr(message.properties, "UserProperty", []) or []:
        if key == name:
            return str(value)
    return None


@dataclass
class Site:
    agent: Agent
    client: paho.Client
    inbox: Inbox[paho.MQTTMessage]
    root: str

    def command(self, name: str, body: dict[str, object], correlation: bytes) -> None:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = f"{self.root}/reply/centre"
        properties.CorrelationData = correlation
        info = self.client.publish(
            f"{self.root}/cmd/{name}", json.dumps(body), qos=1, properties=properties
        )
        info.wait_for_publish(timeout=10.0)

    def reply(self, correlation: bytes) -> paho.MQTTMessage | None:
        for message in self.inbox.at(f"{self.root}/reply/centre"):
            if getattr(message.properties, "CorrelationData", None) == correlation:
                return message
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, broker: LocalBroker) -> Iterator[Site]:
    require_model("ssd_mobilenet_v1")
    for media in required_media(SCENARIO):
        require_media(media)
    site_id = f"priv-{uuid.uuid4().hex[:8]}"
    root = f"city/{site_id}/dev-1"
    config = parse_config(
        {
            "site_id": site_id,
            "device_id": "dev-1",
            "cameras": [
                {
                    "id": "cam1",
                    "fps": 5,
                    "source": {
                        "kind": "sim",
                        "scenario": SCENARIO,
                        "width": WIDTH,
                        "height": HEIGHT,
                        "realtime": False,
                        "loop": False,  # the last frame stays for snapshots and previews
                    },
                    "privacy": {"masks": [list(p) for p in MASKS]},
                }
            ],
            "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "city"},
            "outbox": {"path": str(tmp_path_factory.mktemp("privacy") / "outbox.db")},
        },
        "<test>",
    )
    inbox: Inbox[paho.MQTTMessage] = Inbox()
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=f"centre-{site_id}", protocol=paho.MQTTv5
    )
    subscribed = threading.Event()
    client.on_message = lambda _c, _u, message: inbox(message)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(f"{root}/#", qos=1)
    wait_until(subscribed.is_set, 10.0, "the centre's subscription")
    agent = Agent(config)
    agent.start()
    try:
        wait_until(lambda: agent.publisher.commands_ready, TIMEOUT_S, "the agent listening")
        yield Site(agent, client, inbox, root)
    finally:
        agent.stop()
        client.loop_stop()
        client.disconnect()


def whole_frame(jpeg: bytes, what: str) -> int:
    image = decode(jpeg)
    height, width = image.shape[:2]
    # A smaller picture is the frame scaled: the crop is the whole frame.
    mask = covered(MASKS, (WIDTH, HEIGHT), (0, 0, WIDTH, HEIGHT), (height, width))
    return assert_masked(image, mask, what=what)


def test_thumbnails_over_mqtt_are_black_where_the_mask_lies(site: Site) -> None:
    events_topic, thumbs = f"{site.root}/events/cam1", f"{site.root}/thumbs/cam1/"
    wait_until(
        lambda: any(json.loads(m.payload)["type"] == "end" for m in site.inbox.at(events_topic)),
        TIMEOUT_S,
        "the person's event to end",
    )
    wait_until(
        lambda: any(m.topic.startswith(thumbs) for m in site.inbox.all()),
        TIMEOUT_S,
        "a thumbnail",
    )
    events = [json.loads(m.payload) for m in site.inbox.at(events_topic)]
    thumbnails = [m for m in site.inbox.all() if m.topic.startswith(thumbs)]
    for message in thumbnails:
        event_id, seq = message.topic[len(thumbs) :], int(str(user_property(message, "seq")))
        # Its event: the last message of that event stored before it (new or update).
        event = max(
            (e for e in events if e["id"] == event_id and e["seq"] < seq), key=lambda e: e["seq"]
        )
        image = decode(message.payload)
        crop = thumbnail_context(Box(*event["box"])).to_pixels(WIDTH, HEIGHT)
        mask = covered(MASKS, (WIDTH, HEIGHT), crop, image.shape[:2])
        assert_masked(image, mask, what=f"thumbnail {message.topic}")


def test_a_snapshot_reply_is_black_where_the_mask_lies(site: Site) -> None:
    site.command("snapshot", {"camera": "cam1", "width_px": 480}, b"snap-full")
    site.command("snapshot", {"camera": "cam1", "width_px": 320}, b"snap-small")
    for correlation in (b"snap-full", b"snap-small"):
        wait_until(lambda c=correlation: site.reply(c) is not None, TIMEOUT_S, "the snapshot")
        reply = site.reply(correlation)
        assert reply is not None and reply.properties.ContentType == "image/jpeg"
        whole_frame(reply.payload, f"snapshot {correlation!r}")


def test_preview_frames_are_black_where_the_mask_lies(site: Site) -> None:
    # The byte budget sends a still scene's frame only every 5 s (edge_agent/preview.py).
    site.command("preview", {"camera": "cam1", "seconds": 10, "fps": 2}, b"prev")
    topic = f"{site.root}/preview/cam1"
    wait_until(lambda: len(site.inbox.at(topic)) >= 1, TIMEOUT_S, "preview frames")
    for index, message in enumerate(site.inbox.at(topic)):
        whole_frame(message.payload, f"preview frame {index}")
