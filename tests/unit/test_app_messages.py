"""What the running agent (edge_agent.app) says over MQTT: the birth, command replies,
stats and previews, sent through the real publisher into a fake paho client (fakes.mqtt)
and held against the documented API (docs/schemas, docs/asyncapi.yaml)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from api_contract import (
    BOOT,
    IMAGE,
    ROOT,
    TIMEOUT_S,
    TOPICS,
    agent_birth,
    agent_config_dict,
    asyncapi,
    check_wrong,
    mutations,
    new_publisher,
    running,
    stats_inputs,
    status_payloads,
    validator,
)
from fakes.mqtt import FakeClient, Sent, command_message
from gpiozero.pins.mock import MockFactory
from helpers import wait_until

from edge_agent.analyzers import build_analyzers
from edge_agent.analyzers.config import FloodAnalyzerConfig, ReferenceStoreConfig
from edge_agent.app import PREVIEW_EXPIRY_S, Agent
from edge_agent.config import PreviewConfig, StatusLedConfig, parse_config
from edge_agent.indicator import LED_RETRY_FIRST_S, Condition, NoIndicator, RetryingLed, StatusLed
from edge_agent.mqtt import Publisher
from edge_agent.outbox import Outbox
from edge_agent.privacy import PrivacyConfig
from edge_agent.recording import ClipStore, RetentionCaps
from edge_agent.recording.commands import ClipCommands
from edge_agent.remote import (
    CommandHandler,
    Reply,
)
from edge_agent.service.reload import ReloadOutcome
from edge_agent.stats import build_stats, stats_expiry_s
from edge_agent.types import Frame
from edge_agent.worker import CameraWorker


class AgentStandIn:
    """The running agent's command target without cameras or a model: the methods that
    build replies and publish stats are the real ``Agent``'s."""

    status_report = Agent.status_report
    recording_report = Agent.recording_report
    snapshot_jpeg = Agent.snapshot_jpeg
    set_preview = Agent.set_preview
    set_references = Agent.set_references
    camera_ids = Agent.camera_ids
    publish_stats = Agent.publish_stats
    announce = Agent.announce
    _worker = Agent._worker
    _on_command = Agent._on_command

    def __init__(self, publisher: Publisher | None = None) -> None:
        self.boot_id = BOOT
        self.config = parse_config(agent_config_dict(stats_interval_s=30.0))
        self.topics = TOPICS
        self.publisher = publisher
        self.commands = CommandHandler(self)
        self.clips = None  # no recording
        self.recording_unavailable: str | None = None
        self.updater = None  # no updates
        self.indicator = NoIndicator()
        self._preview_lock = threading.Lock()
        frame = Frame("cam1", 0, 1_764_448_000.0, 0.0, IMAGE)
        flood = FloodAnalyzerConfig(region={"box": (0.0, 0.5, 1.0, 1.0)})
        analyzers = build_analyzers(  # in memory: nothing written
            [flood], camera_id="cam1", references=ReferenceStoreConfig(directory=None)
        )
        self.workers = [  # the real worker's preview methods; no source, mailbox or model
            CameraWorker(
                config=SimpleNamespace(  # type: ignore[arg-type]
                    id="cam1", preview=PreviewConfig(), privacy=PrivacyConfig()
                ),
                source=None,  # type: ignore[arg-type]
                mailbox=None,  # type: ignore[arg-type]
                pipeline=SimpleNamespace(analyzers=analyzers),  # type: ignore[arg-type]
                latest=frame,
            ),
            CameraWorker(
                config=SimpleNamespace(  # type: ignore[arg-type]
                    id="cam2", preview=PreviewConfig(), privacy=PrivacyConfig()
                ),
                source=None,  # type: ignore[arg-type]
                mailbox=None,  # type: ignore[arg-type]
                pipeline=SimpleNamespace(analyzers=()),  # type: ignore[arg-type]
            ),
        ]

    def reload_config(self) -> dict[str, object]:
        """As ``Agent.reload_config`` replies when the file changed a camera."""
        path = "/etc/edge-agent/config.yaml"
        return ReloadOutcome(True, changed=("cameras",), path=path).reply_body()

    def condition(self, now_s: float) -> Condition:
        return Condition.UPLINK_DOWN

    def stats_body(self, **_options: object) -> dict[str, object]:
        outbox, publisher, cameras = stats_inputs()
        return build_stats(
            boot_id=self.boot_id,
            uptime_s=12.3,
            outbox=outbox,
            publisher=publisher,
            cameras=cameras,
            condition=self.condition(0.0).value,
        )


def command(
    name: str, body: object = None, *, retain: bool = False, **properties: object
) -> SimpleNamespace:
    """A command as paho hands it to the publisher."""
    return command_message(f"{ROOT}/cmd/{name}", body, retain=retain, **properties)


class Device(NamedTuple):
    publisher: Publisher
    fake: FakeClient
    target: AgentStandIn
    replies: list[Reply | None]  # what the agent's command callback returned, in order


@pytest.fixture
def device(outbox: Outbox) -> Iterator[Device]:
    """The agent's command target behind a started publisher (connected to a fake)."""
    target = AgentStandIn()
    replies: list[Reply | None] = []

    def on_command(name: str, payload: bytes, retained: bool) -> Reply | None:
        reply = target._on_command(name, payload, retained)
        replies.append(reply)
        return reply

    publisher, fake = new_publisher(outbox, on_command=on_command)
    target.publisher = publisher
    with running(publisher, fake):
        yield Device(publisher, fake, target, replies)


def send(device: Device, message: SimpleNamespace) -> list[Sent]:
    """Deliver a command; what the publisher sent in reply (once the agent handled it)."""
    sent_before, handled_before = len(device.fake.sent), len(device.replies)
    device.fake.deliver(message)
    wait_until(lambda: len(device.replies) > handled_before, TIMEOUT_S, "the command handled")
    if device.replies[-1] is not None:
        wait_until(lambda: len(device.fake.sent) > sent_before, TIMEOUT_S, "the reply")
    return device.fake.sent[sent_before:]


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
        ("reference", {"camera": "cam1"}, "reply-reference"),
        (
            "reference",
            {"camera": "cam1", "mode": "frame", "analyzers": ["flood"]},
            "reply-reference",
        ),
        ("reference", {"camera": "cam2"}, "reply-error"),
        ("reference", {"camera": "cam1", "analyzers": ["garbage"]}, "reply-error"),
        ("reload", {}, "reply-reload"),
        ("reload", {"path": "/tmp/other.yaml"}, "reply-error"),  # never another file
        ("announce", {"camera": "cam1"}, "reply-error"),
        ("snapshot", {"camera": "cam2"}, "reply-error"),
        ("snapshot", {"camera": "cam1", "colour": "red"}, "reply-error"),
        ("ping", [1, 2], "reply-error"),
        ("reboot", {}, "reply-error"),
    ],
)
def test_command_replies_validate_and_go_where_documented(
    device: Device, name: str, body: object, schema: str
) -> None:
    (reply,) = send(device, command(name, body, ResponseTopic=REPLY_TO, CorrelationData=b"c-1"))
    assert (reply.topic, reply.qos, reply.retain) == (REPLY_TO, 1, False)
    assert (reply.content_type, reply.expiry_s, reply.correlation) == (
        "application/json",
        60,
        b"c-1",
    )
    validator(schema).validate(reply.json())


def test_a_snapshot_reply_is_a_jpeg(device: Device) -> None:
    (reply,) = send(device, command("snapshot", {"camera": "cam1", "width_px": 320}))
    assert reply.content_type == "image/jpeg" and reply.payload.startswith(b"\xff\xd8\xff")
    assert reply.topic == f"{ROOT}/reply/snapshot" and reply.correlation is None


@pytest.mark.parametrize(
    "response_topic", [None, "centre/inbox", f"{ROOT}/replies", "city/other-site/pi-9/reply/x"]
)
def test_a_reply_goes_under_the_device_s_own_reply_topic_or_to_reply_name(
    device: Device, response_topic: str | None
) -> None:
    properties = {"ResponseTopic": response_topic} if response_topic else {}
    (reply,) = send(device, command("ping", **properties))
    assert reply.topic == f"{ROOT}/reply/ping"


def test_retained_commands_are_ignored(device: Device) -> None:
    assert send(device, command("preview", {"camera": "cam1"}, retain=True)) == []
    assert device[2].workers[0].preview is None and device[2].commands.refused == 1


def test_stats_and_previews_are_volatile_with_expiry(
    device: Device,
) -> None:
    publisher, fake, target, _ = device
    before = len(fake.sent)
    assert target.publish_stats()
    (sent,) = fake.sent[before:]
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
    fake.drop_connection()
    wait_until(lambda: not publisher.connected, TIMEOUT_S, "the link lost")
    assert not target.publish_stats()
    assert publisher.stats().volatile_dropped == 1


def announce(device: Device) -> list[Sent]:
    """Send ``announce``; what the device published, up to its reply."""
    before = len(device.fake.sent)
    send(device, command("announce", ResponseTopic=REPLY_TO))
    wait_until(lambda: device.fake.sent[-1].topic == REPLY_TO, TIMEOUT_S, "the reply")
    return device.fake.sent[before:]


def test_announce_publishes_the_birth_again_and_stats_then_replies(device: Device) -> None:
    publisher, fake, _, _ = device
    (birth,) = fake.published_on(TOPICS.status)
    status_again, stats, reply = announce(device)
    # The same bytes as at connect (same ts: not a reconnect), retained, QoS 1.
    assert (status_again.topic, status_again.payload) == (TOPICS.status, birth.payload)
    assert (status_again.qos, status_again.retain) == (1, True)
    assert (stats.topic, stats.qos) == (TOPICS.stats, 0)
    validator("stats").validate(stats.json())
    validator("reply-announce").validate(reply.json())
    assert reply.json() == {"ok": True, "boot": BOOT, "announced": ["status", "stats"]}
    fake.drop_connection()
    wait_until(lambda: not publisher.connected, TIMEOUT_S, "the link lost")
    assert not publisher.announce()


def test_the_status_reply_names_the_broker_in_use(device: Device) -> None:
    (reply,) = send(device, command("status"))
    body = reply.json()
    validator("reply-status").validate(body)
    _, publisher, _ = stats_inputs()  # what the stand-in's stats say
    assert (body["broker"], body["broker_moves"]) == ("broker-b.city.example:8883", 1)
    assert (publisher.broker, publisher.broker_moves) == ("broker-b.city.example:8883", 1)


def test_the_status_reply_says_the_led_is_unavailable_while_its_pin_is_retried(
    device: Device,
) -> None:
    pins = MockFactory()
    selftest = StatusLed(17, pin_factory=pins)  # a technician's self-test holds the pin
    now_s = [0.0]
    led = RetryingLed(
        StatusLedConfig(pin=17), "pin 17 in use", pin_factory=pins, clock=lambda: now_s[0]
    )
    device.target.indicator = led
    try:
        now_s[0] += LED_RETRY_FIRST_S
        led.show(Condition.OK)  # the housekeeping's pass: tried again, still held
        body = send(device, command("status"))[0].json()
        validator("reply-status").validate(body)
        assert "in use" in body["status_led_unavailable"]
        assert body["status_led"].startswith("error: ")

        selftest.close()
        now_s[0] += 60.0
        led.show(Condition.OK)
        body = send(device, command("status"))[0].json()
        validator("reply-status").validate(body)
        assert "status_led_unavailable" not in body
        assert body["status_led"] == "pin 17"
    finally:
        led.close()
        pins.close()


def test_wrong_replies_fail(device: Device) -> None:
    bodies = {
        "reply-ping": send(device, command("ping"))[0].json(),
        "reply-status": send(device, command("status"))[0].json(),
        "reply-preview": send(device, command("preview", {"camera": "cam1"}))[0].json(),
        "reply-reference": send(device, command("reference", {"camera": "cam1"}))[0].json(),
        "reply-reload": send(device, command("reload"))[0].json(),
        "reply-announce": announce(device)[-1].json(),
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
        if name == "reply-reference":
            wrongs += [
                ("no analyzers", {**body, "analyzers": []}),
                ("unknown mode", {**body, "mode": "now"}),
                ("analyzer not a name", {**body, "analyzers": ["a/b"]}),
            ]
        if name == "reply-status":
            wrongs.append(("outbox key missing", {**body, "outbox": {}}))
            wrongs.append(("unknown condition", {**body, "condition": "fine"}))
        check_wrong(name, body, iter(wrongs))


class UpdatesStandIn:
    """Takes every valid update command (the examples cannot carry a signed release)."""

    def begin(self, archive_id: str, size: int, sha256: str) -> dict[str, object]:
        return {"ok": True, "id": archive_id, "have": 0, "size": size}

    def chunk(
        self, archive_id: str, offset: int, data: str, sha256: str | None
    ) -> dict[str, object]:
        return {"ok": True, "id": archive_id, "have": offset + len(data)}

    def commit(self, archive_id: str, *, kind: str | None = None) -> dict[str, object]:
        return {"ok": True, "kind": "config", "version": "7", "previous": "6", "state": "switching"}

    def fetch(self, archive_id: str, url: str, size: int, sha256: str) -> dict[str, object]:
        return self.commit(archive_id)


def test_asyncapi_command_examples_are_carried_out(tmp_path: Path) -> None:
    document = asyncapi()
    store = ClipStore(tmp_path, RetentionCaps(1 << 30, 0, None))  # the examples' clip
    store.part_path("cam1-1764448000123-a1b2").write_bytes(b"\0" * 100_000)
    store.add(
        clip_id="cam1-1764448000123-a1b2",
        camera="cam1",
        start_s=1.0,
        end_s=2.0,
        frames=1,
        events=(),
    )
    clips = ClipCommands(store, rate_bytes_per_s=1 << 20, chunk_max_bytes=1 << 20)
    target = AgentStandIn()
    target.publisher = SimpleNamespace(  # type: ignore[assignment]
        announce=lambda: True, publish_volatile=lambda *_a, **_k: True
    )
    handler = CommandHandler(target, clips=clips, updates=UpdatesStandIn())
    for name, message in document["channels"]["commands"]["messages"].items():
        resolved = document["components"]["messages"][message["$ref"].rsplit("/", 1)[1]]
        assert resolved["examples"], name
        for example in resolved["examples"]:
            reply = handler.handle(name, json.dumps(example["payload"]).encode())
            assert reply is not None and b'"ok":false' not in reply.payload, (name, example)


def test_a_reset_outbox_is_told_in_every_status_of_the_run(outbox: Outbox) -> None:
    moved = Path("/var/lib/edge-agent/outbox.db.corrupt-20251130T101500Z")
    birth = agent_birth(outbox_reset=moved)
    assert birth["outbox_reset"] == str(moved)
    for body in status_payloads(outbox, birth).values():
        validator("status").validate(body)
        assert body["outbox_reset"] == str(moved)
