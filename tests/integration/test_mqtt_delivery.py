"""Outbox + Publisher against a real mosquitto: order, properties, status, outages."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from edge_agent.broker import LocalBroker
from edge_agent.mqtt import MqttSettings, Publisher, ReceivedMessage, Subscriber
from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage

TIMEOUT_S = 20.0


class Inbox:
    """Thread-safe list of what a Subscriber received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []

    def __call__(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def on(self, suffix: str) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self._messages if m.topic.endswith(suffix) or suffix in m.topic]

    def event_seqs(self) -> list[int]:
        return [int(m.json()["seq"]) for m in self.on("/events/")]

    def states(self) -> list[str]:
        return [str(m.json()["state"]) for m in self.on("/status")]


def first_arrivals(seqs: list[int]) -> list[int]:
    """Seqs in order of first arrival: at-least-once may repeat, it must not reorder."""
    seen: set[int] = set()
    order = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order


@pytest.fixture
def root() -> str:
    return f"city/site{uuid.uuid4().hex[:8]}/dev1"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", max_bytes=1 << 24, max_rows=100_000)
    yield box
    box.close()


def events(root: str, start: int, count: int) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            topic=f"{root}/events/cam1",
            message_class=MessageClass.EVENT,
            json_body={"v": 1, "id": f"e{i}", "lifecycle": "new"},
            user_properties=(("schema", "event"),),
        )
        for i in range(start, start + count)
    ]


def make_publisher(broker: LocalBroker, outbox: Outbox, root: str, **settings: object) -> Publisher:
    return Publisher(
        MqttSettings(
            host=broker.host,
            port=broker.port,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
            **settings,  # type: ignore[arg-type]
        ),
        outbox,
        status_topic=f"{root}/status",
        birth_payload={"version": "test", "boot": "b1"},
    )


def make_subscriber(broker: LocalBroker, root: str, inbox: Inbox, **kwargs: object) -> Subscriber:
    kwargs.setdefault("client_id", f"sub-{uuid.uuid4().hex[:8]}")
    return Subscriber(broker.host, broker.port, [f"{root}/#"], on_message=inbox, **kwargs)  # type: ignore[arg-type]


def test_events_arrive_in_seq_order_with_user_properties(
    broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    inbox = Inbox()
    sub = make_subscriber(broker, root, inbox)
    sub.start(TIMEOUT_S)
    # Some rows exist before the publisher starts, as after an agent restart.
    outbox.enqueue_many(events(root, 0, 50))
    pub = make_publisher(broker, outbox, root)
    pub.start()
    for start in range(50, 300, 25):
        outbox.enqueue_many(events(root, start, 25))
        pub.wake()
    try:
        wait_until(lambda: len(inbox.event_seqs()) >= 300, TIMEOUT_S, "300 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
    finally:
        pub.stop(5)
        sub.stop()
    assert inbox.event_seqs() == list(range(1, 301))
    for message in inbox.on("/events/"):
        body = message.json()
        assert message.qos == 1
        assert message.content_type == "application/json"
        assert message.user_properties == (
            ("v", "1"),
            ("seq", str(body["seq"])),
            ("schema", "event"),
        )
        assert body["id"] == f"e{body['seq'] - 1}"
    stats = pub.stats()
    assert (stats.published_total, stats.acked_total, stats.inflight) == (300, 300, 0)
    assert outbox.stats().acked_total == 300


def test_mqtt_311_delivers_without_properties(
    broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    inbox = Inbox()
    sub = make_subscriber(broker, root, inbox, protocol="3.1.1")
    sub.start(TIMEOUT_S)
    pub = make_publisher(broker, outbox, root, protocol="3.1.1")
    pub.start()
    outbox.enqueue_many(events(root, 0, 20))
    pub.wake()
    try:
        wait_until(lambda: len(inbox.event_seqs()) >= 20, TIMEOUT_S, "20 events over 3.1.1")
    finally:
        pub.stop(5)
        sub.stop()
    assert inbox.event_seqs() == list(range(1, 21))
    assert all(m.user_properties == () for m in inbox.on("/events/"))


def test_birth_is_retained_and_clean_stop_says_stopped_without_will(
    broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    pub = make_publisher(broker, outbox, root)
    pub.start()
    wait_until(lambda: pub.connected, TIMEOUT_S, "publisher to connect")
    # A subscriber that arrives later still learns the device is online (retained).
    late = Inbox()
    sub = make_subscriber(broker, root, late)
    sub.start(TIMEOUT_S)
    try:
        wait_until(lambda: late.states(), TIMEOUT_S, "retained birth")
        (birth,) = late.on("/status")
        assert birth.retain
        body = birth.json()
        assert (body["v"], body["state"], body["version"], body["boot"]) == (
            1,
            "online",
            "test",
            "b1",
        )

        pub.stop(5)
        wait_until(lambda: "stopped" in late.states(), TIMEOUT_S, "'stopped' status")
        # A marker published after the stop: if the broker had sent the will, the
        # 'offline' would arrive before it.
        marker = Publisher(
            MqttSettings(broker.host, broker.port, f"marker-{uuid.uuid4().hex[:6]}"),
            outbox,
            status_topic=f"{root}/marker/status",
            birth_payload={},
        )
        marker.start()
        wait_until(lambda: late.on("/marker/status"), TIMEOUT_S, "marker")
        marker.stop(5)
    finally:
        sub.stop()
    assert late.states()[:2] == ["online", "stopped"]
    assert "offline" not in late.states()

    # And what a newcomer sees retained is "stopped".
    newcomer = Inbox()
    sub2 = Subscriber(
        broker.host,
        broker.port,
        [f"{root}/status"],
        client_id=f"n-{uuid.uuid4().hex[:6]}",
        on_message=newcomer,
    )
    sub2.start(TIMEOUT_S)
    try:
        wait_until(lambda: newcomer.states(), TIMEOUT_S, "retained status")
    finally:
        sub2.stop()
    assert newcomer.states() == ["stopped"]


CRASHING_AGENT = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from edge_agent.mqtt import MqttSettings, Publisher
    from edge_agent.outbox import Outbox

    port, outbox_path, root = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    box = Outbox(outbox_path, max_bytes=1 << 20, max_rows=1000)
    pub = Publisher(
        MqttSettings("127.0.0.1", port, "crashing-agent", keepalive_s=60),
        box,
        status_topic=root + "/status",
        birth_payload={"boot": "doomed"},
    )
    pub.start()
    threading.Event().wait()  # run until killed
    """
)


def test_last_will_says_offline_when_the_agent_dies(
    broker: LocalBroker, tmp_path: Path, root: str
) -> None:
    inbox = Inbox()
    sub = make_subscriber(broker, root, inbox)
    sub.start(TIMEOUT_S)
    agent = subprocess.Popen(
        [sys.executable, "-c", CRASHING_AGENT, str(broker.port), str(tmp_path / "o.db"), root]
    )
    try:
        wait_until(lambda: "online" in inbox.states(), TIMEOUT_S, "agent's birth")
        agent.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must send the will
        agent.wait(TIMEOUT_S)
        wait_until(lambda: "offline" in inbox.states(), TIMEOUT_S, "last will")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        sub.stop()
    assert inbox.states() == ["online", "offline"]
    offline = inbox.on("/status")[-1]
    assert offline.json() == {"v": 1, "state": "offline", "boot": "doomed"}
    assert offline.user_properties == (("v", "1"),)


def persistent_subscriber(broker: LocalBroker, root: str, inbox: Inbox) -> Subscriber:
    """A consumer whose session (and queued QoS 1 messages) survives its own absence."""
    return make_subscriber(
        broker,
        root,
        inbox,
        clean_start=False,
        session_expiry_s=300,
        reconnect_min_delay_s=1,
        reconnect_max_delay_s=1,
    )


def test_broker_outage_loses_nothing_and_keeps_seq_order(
    private_broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    """Acceptance: stop the broker, keep producing, restart it, receive every one in order."""
    inbox = Inbox()
    sub = persistent_subscriber(private_broker, root, inbox)
    sub.start(TIMEOUT_S)
    pub = make_publisher(private_broker, outbox, root)
    pub.start()
    try:
        outbox.enqueue_many(events(root, 0, 20))
        pub.wake()
        wait_until(lambda: len(inbox.event_seqs()) >= 20, TIMEOUT_S, "events before the outage")

        private_broker.stop()
        wait_until(lambda: not pub.connected and not sub.connected, TIMEOUT_S, "both to notice")
        for start in range(20, 60, 5):  # the pipeline keeps producing; wake() never blocks
            outbox.enqueue_many(events(root, start, 5))
            pub.wake()
        assert outbox.depth() == 40

        private_broker.start()
        wait_until(lambda: len(set(inbox.event_seqs())) >= 60, TIMEOUT_S, "all 60 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
        assert pub.stats().reconnects >= 1
    finally:
        pub.stop(5)
        sub.stop()
    assert first_arrivals(inbox.event_seqs()) == list(range(1, 61))


def test_broker_restart_in_the_middle_of_a_backlog(
    private_broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    """Restart while messages are in flight: duplicates allowed, loss and reordering not."""
    inbox = Inbox()
    sub = persistent_subscriber(private_broker, root, inbox)
    sub.start(TIMEOUT_S)
    outbox.enqueue_many(events(root, 0, 3000))
    pub = make_publisher(private_broker, outbox, root)
    pub.start()
    try:
        wait_until(lambda: inbox.event_seqs(), TIMEOUT_S, "the drain to begin")
        private_broker.restart()
        wait_until(lambda: len(set(inbox.event_seqs())) >= 3000, TIMEOUT_S, "all 3000 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
        assert pub.stats().reconnects >= 1
    finally:
        pub.stop(5)
        sub.stop()
    assert first_arrivals(inbox.event_seqs()) == list(range(1, 3001))


def test_subscriber_reports_unreachable_broker(broker: LocalBroker) -> None:
    from edge_agent.broker import free_loopback_port
    from edge_agent.mqtt import SubscriberError

    sub = Subscriber(
        "127.0.0.1", free_loopback_port(), ["x/#"], client_id="lonely", on_message=print
    )
    with pytest.raises(SubscriberError, match="cannot connect"):
        sub.start(2)


def test_publisher_never_blocks_without_a_broker(outbox: Outbox, root: str) -> None:
    from edge_agent.broker import free_loopback_port

    pub = Publisher(
        MqttSettings("127.0.0.1", free_loopback_port(), "nobody-home"),
        outbox,
        status_topic=f"{root}/status",
        birth_payload={},
    )
    pub.start()
    outbox.enqueue_many(events(root, 0, 5))
    pub.wake()
    pub.stop(0.5)
    assert outbox.depth() == 5  # kept for the next start
    assert not pub.connected
    assert json.loads(outbox.pending(1)[0].payload)["seq"] == 1
