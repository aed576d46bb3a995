"""Outbox + Publisher against a real mosquitto: order, MQTT 5 properties, priorities,
historical replay, volatile messages, sessions, refusals, and MQTT 3.1.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes.delivery import events, first_arrivals
from fakes.mqtt import Inbox
from helpers import wait_until

from edge_agent.broker import LocalBroker, free_loopback_port
from edge_agent.encode import Topics
from edge_agent.mqtt import (
    DrainSettings,
    MqttSettings,
    Publisher,
    Subscriber,
    SubscriberError,
)
from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage

TIMEOUT_S = 20.0


@pytest.fixture
def root() -> str:
    return f"city/site{uuid.uuid4().hex[:8]}/dev1"


def make_publisher(
    broker: LocalBroker,
    outbox: Outbox,
    root: str,
    *,
    drain: DrainSettings | None = None,
    **settings: object,
) -> Publisher:
    settings.setdefault("client_id", f"pub-{uuid.uuid4().hex[:8]}")
    return Publisher(
        MqttSettings(
            host=broker.host,
            port=broker.port,
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
            **settings,  # type: ignore[arg-type]
        ),
        outbox,
        Topics(root),
        birth_payload={"version": "test", "boot": "b1"},
        drain=drain or DrainSettings.unlimited(),
    )


def make_subscriber(
    broker: LocalBroker, root: str, inbox: Inbox, topic: str = "#", **kwargs: object
) -> Subscriber:
    """A consumer of ``root``'s ``topic`` (all of it by default)."""
    client_id = str(kwargs.pop("client_id", f"sub-{uuid.uuid4().hex[:8]}"))
    settings = MqttSettings.consumer(broker.host, broker.port, client_id, **kwargs)
    return Subscriber(settings, [f"{root}/{topic}"], inbox)


@contextmanager
def delivering(
    broker: LocalBroker, outbox: Outbox, root: str, *, persistent: bool = False
) -> Iterator[tuple[Inbox, Publisher, Subscriber]]:
    """A consumer of ``root`` subscribed first (:func:`persistent_subscriber` if
    ``persistent``), then a publisher draining ``outbox``; both stopped on the way out."""
    inbox = Inbox()
    if persistent:
        sub = persistent_subscriber(broker, root, inbox)
    else:
        sub = make_subscriber(broker, root, inbox)
    sub.start(TIMEOUT_S)
    pub = make_publisher(broker, outbox, root)
    pub.start()
    try:
        yield inbox, pub, sub
    finally:
        pub.stop(5)
        sub.stop()


def persistent_subscriber(broker: LocalBroker, root: str, inbox: Inbox) -> Subscriber:
    """A consumer whose session (and queued QoS 1 messages) survives its own absence."""
    return make_subscriber(
        broker,
        root,
        inbox,
        session_expiry_s=300,
        reconnect_min_delay_s=1,
        reconnect_max_delay_s=1,
    )


# -- order and properties ----------------------------------------------------------


def test_events_arrive_in_seq_order_with_user_properties(
    broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    # Some rows exist before the publisher starts, as after an agent restart.
    outbox.enqueue_many(events(root, 0, 50))
    with delivering(broker, outbox, root) as (inbox, pub, _):
        for start in range(50, 300, 25):
            outbox.enqueue_many(events(root, start, 25))
            pub.wake()
        wait_until(lambda: len(inbox.event_seqs()) >= 300, TIMEOUT_S, "300 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
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
        assert "historical" not in body  # live traffic
    stats = pub.stats()
    assert (stats.published_total, stats.acked_total, stats.inflight) == (300, 300, 0)
    assert stats.historical_total == 0
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
        assert pub.publish_volatile(
            f"{root}/stats", b'{"v":1}', content_type="application/json", expiry_s=60
        )
        wait_until(lambda: inbox.on("/stats"), TIMEOUT_S, "volatile stats over 3.1.1")
    finally:
        pub.stop(5)
        sub.stop()
    assert inbox.event_seqs() == list(range(1, 21))
    assert all(m.user_properties == () for m in inbox.on("/events/"))
    assert inbox.on("/stats")[0].message_expiry_s is None


# -- status: birth, will, stopped ----------------------------------------------------


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
            Topics(f"{root}/marker"),
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
    sub2 = make_subscriber(broker, root, newcomer, topic="status")
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
    from edge_agent.encode import Topics
    from edge_agent.mqtt import MqttSettings, Publisher
    from edge_agent.outbox import Outbox

    port, outbox_path, root = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    box = Outbox(outbox_path, max_bytes=1 << 20, max_rows=1000)
    pub = Publisher(
        MqttSettings("127.0.0.1", port, "crashing-agent-" + root.split("/")[1], keepalive_s=60),
        box,
        Topics(root),
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


# -- outages --------------------------------------------------------------------------


def test_broker_outage_loses_nothing_and_keeps_seq_order(
    private_broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    """Stop the broker, keep producing, restart it, receive every one in order."""
    with delivering(private_broker, outbox, root, persistent=True) as (inbox, pub, sub):
        outbox.enqueue_many(events(root, 0, 20))
        pub.wake()
        wait_until(lambda: len(inbox.event_seqs()) >= 20, TIMEOUT_S, "events before the outage")

        private_broker.stop()
        wait_until(lambda: not pub.connected and not sub.connected, TIMEOUT_S, "both to notice")
        for start in range(20, 60, 5):  # the pipeline keeps producing; wake() never blocks
            outbox.enqueue_many(events(root, start, 5))
            pub.wake()
        # The 40 new ones, plus any whose PUBACK the stopping broker never sent.
        wait_until(lambda: outbox.depth() == 40 + pub.stats().inflight, TIMEOUT_S, "acks to settle")

        private_broker.start()
        wait_until(lambda: len(set(inbox.event_seqs())) >= 60, TIMEOUT_S, "all 60 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
        assert pub.stats().reconnects >= 1
    assert first_arrivals(inbox.event_seqs()) == list(range(1, 61))


def test_broker_restart_in_the_middle_of_a_backlog(
    private_broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    """Restart while messages are in flight: duplicates allowed, loss and reordering not.

    The session survives (SIGTERM: mosquitto saves it), and the broker says so.
    """
    outbox.enqueue_many(events(root, 0, 3000))
    with delivering(private_broker, outbox, root, persistent=True) as (inbox, pub, _):
        wait_until(lambda: inbox.event_seqs(), TIMEOUT_S, "the drain to begin")
        assert not pub.stats().session_present  # a new session the first time
        private_broker.restart()
        wait_until(lambda: len(set(inbox.event_seqs())) >= 3000, TIMEOUT_S, "all 3000 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
        stats = pub.stats()
        assert stats.reconnects >= 1
        assert stats.session_present  # clean_start=False + session expiry kept it
    assert first_arrivals(inbox.event_seqs()) == list(range(1, 3001))


def test_replay_marks_old_messages_historical_and_alerts_jump_the_queue(
    private_broker: LocalBroker, tmp_path: Path, root: str
) -> None:
    now = [1_700_000_000.0]
    box = Outbox(tmp_path / "o.db", max_bytes=1 << 24, max_rows=10_000, clock=lambda: now[0])
    inbox = Inbox()
    sub = persistent_subscriber(private_broker, root, inbox)
    sub.start(TIMEOUT_S)
    private_broker.stop()  # the uplink is down while these pile up
    box.enqueue_many(events(root, 0, 30))  # seq 1..30, old by the time they are sent
    box.enqueue_many(
        [
            OutboundMessage(
                f"{root}/thumbs/cam1/e{i}",
                MessageClass.THUMBNAIL,
                binary_body=b"\xff\xd8jpeg" + bytes([i]),
                content_type="image/jpeg",
            )
            for i in range(2)
        ]
    )  # seq 31, 32
    now[0] += 3600
    box.enqueue_many(events(root, 100, 2, MessageClass.ALERT))  # seq 33, 34: live alerts
    pub = Publisher(
        MqttSettings(
            private_broker.host,
            private_broker.port,
            f"pub-{uuid.uuid4().hex[:6]}",
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
        ),
        box,
        Topics(root),
        birth_payload={},
        # Slow enough that the backlog is still queued when the alerts are read.
        drain=DrainSettings(rate_msgs_per_s=200, historical_after_s=60),
        clock=lambda: now[0],
    )
    pub.start()
    try:
        private_broker.start()
        wait_until(lambda: box.depth() == 0, TIMEOUT_S, "the backlog to drain")
        wait_until(lambda: len(inbox.event_seqs()) >= 32, TIMEOUT_S, "events and alerts")
        wait_until(lambda: len(inbox.on("/thumbs/")) >= 2, TIMEOUT_S, "thumbnails")
    finally:
        pub.stop(5)
        sub.stop()
        box.close()
    assert first_arrivals(inbox.event_seqs()) == [33, 34, *range(1, 31)]
    for message in inbox.on("/events/"):
        body = message.json()
        old = body["seq"] <= 30
        assert body.get("historical", False) is old
        assert ("historical", "true") in message.user_properties if old else True
        assert message.user_property("historical") == ("true" if old else None)
    thumbs = inbox.on("/thumbs/")
    assert [t.payload for t in thumbs] == [b"\xff\xd8jpeg\x00", b"\xff\xd8jpeg\x01"]
    assert [t.user_property("historical") for t in thumbs] == ["true", "true"]
    assert [t.user_property("seq") for t in thumbs] == ["31", "32"]
    assert pub.stats().historical_total == 32


# -- volatile messages --------------------------------------------------------------------


def test_publish_volatile_carries_expiry_and_is_never_buffered(
    private_broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    inbox = Inbox()
    sub = make_subscriber(private_broker, root, inbox, reconnect_min_delay_s=1)
    sub.start(TIMEOUT_S)
    pub = make_publisher(private_broker, outbox, root)
    assert not pub.publish_volatile(
        f"{root}/stats", b"{}", content_type="application/json", expiry_s=5
    )  # not even started
    pub.start()
    try:
        wait_until(lambda: pub.connected, TIMEOUT_S, "publisher to connect")
        assert pub.publish_volatile(
            f"{root}/preview/cam1", b"\xff\xd8jpeg", content_type="image/jpeg", expiry_s=9.5
        )
        wait_until(lambda: inbox.on("/preview/"), TIMEOUT_S, "the preview")
        private_broker.stop()
        wait_until(lambda: not pub.connected, TIMEOUT_S, "publisher to notice")
        assert not pub.publish_volatile(
            f"{root}/stats", b"{}", content_type="application/json", expiry_s=5
        )
        assert outbox.depth() == 0  # nothing was buffered
    finally:
        pub.stop(1)
        sub.stop()
    (preview,) = inbox.on("/preview/")
    assert preview.payload == b"\xff\xd8jpeg" and preview.qos == 0
    assert preview.content_type == "image/jpeg"
    assert preview.message_expiry_s is not None and 1 <= preview.message_expiry_s <= 10
    assert preview.user_properties == (("v", "1"),)
    stats = pub.stats()
    assert (stats.volatile_sent, stats.volatile_dropped) == (1, 2)


# -- the broker says no ----------------------------------------------------------------


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, str]]:
    """A broker that lets anyone write under the root except ``{root}/forbidden/#``."""
    root = f"city/acl{uuid.uuid4().hex[:6]}/dev1"
    acl = tmp_path / "acl"
    allowed = ("events/#", "status", "gaps", "thumbs/#")
    acl.write_text("".join(f"topic readwrite {root}/{topic}\n" for topic in allowed))
    broker = LocalBroker(extra_config=f"acl_file {acl}")
    try:
        broker.start()
        yield broker, root
    finally:
        broker.close()


def test_refused_messages_are_dead_lettered_reported_and_never_block(
    acl_broker: tuple[LocalBroker, str], outbox: Outbox
) -> None:
    broker, root = acl_broker
    forbidden = [
        OutboundMessage(f"{root}/forbidden/{i}", MessageClass.EVENT, json_body={"id": i})
        for i in range(2)
    ]
    outbox.enqueue_many(
        [*events(root, 0, 3), forbidden[0], *events(root, 3, 2), forbidden[1], *events(root, 5, 3)]
    )  # seq 1-3 ok, 4 not authorised, 5-6 ok, 7 not authorised, 8-10 ok
    with delivering(broker, outbox, root) as (inbox, pub, _):
        wait_until(lambda: len(inbox.event_seqs()) >= 8, TIMEOUT_S, "the 8 acceptable events")
        wait_until(lambda: set(inbox.reported_seqs()) == {4, 7}, TIMEOUT_S, "gap notices")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
    # mosquitto 2.0 also drops the link after a denied publish (often losing that PUBACK):
    # what was in flight then is sent again (at-least-once), never out of order, and a
    # seq reported lost never arrives.
    assert first_arrivals(inbox.event_seqs()) == [1, 2, 3, 5, 6, 8, 9, 10]
    assert not set(inbox.reported_seqs()) & set(inbox.event_seqs())
    # One notice or two (the second refusal may come after the first notice went out);
    # each with a seq of its own, following the last event's.
    notices = {n.json()["seq"]: n for n in inbox.on("/gaps")}
    assert sorted(notices) == list(range(11, 11 + len(notices)))
    for seq, notice in notices.items():
        assert notice.user_property("seq") == str(seq)
        for gap in notice.json()["gaps"]:
            assert gap == {"from": gap["from"], "to": gap["from"], "refused": {"event": 1}}
    letters = outbox.dead_letters()
    assert [d.seq for d in letters] == [7, 4]
    # Refused with 0x87, or (PUBACK lost to the broker's reset) set aside as the message
    # the broker kept dropping the link on.
    assert all("(0x87)" in d.reason or "lost the connection" in d.reason for d in letters)
    assert json.loads(letters[0].payload) == {"id": 1, "seq": 7}
    assert outbox.stats().dead_lettered_by_class == {"event": 2}
    assert pub.stats().rejected_total == 2


def enqueue_a_thumbnail_among_events(outbox: Outbox, root: str, size_bytes: int) -> None:
    """Four events with a thumbnail of ``size_bytes`` between the second and third: the
    thumbnail gets seq 3."""
    thumbnail = OutboundMessage(
        f"{root}/thumbs/cam1/e1",
        MessageClass.THUMBNAIL,
        binary_body=b"x" * size_bytes,
        content_type="image/jpeg",
    )
    outbox.enqueue_many([*events(root, 0, 2), thumbnail, *events(root, 2, 2)])


def test_a_message_that_makes_the_broker_drop_the_link_is_set_aside(
    outbox: Outbox, root: str
) -> None:
    """mosquitto 2.0's message_size_limit closes the connection instead of refusing the
    message, and announces no limit: paho would resend it forever."""
    with LocalBroker(extra_config="message_size_limit 2000") as broker:
        enqueue_a_thumbnail_among_events(outbox, root, 5000)
        with delivering(broker, outbox, root) as (inbox, pub, _):
            wait_until(lambda: len(inbox.event_seqs()) >= 4, 3 * TIMEOUT_S, "4 events")
            wait_until(lambda: inbox.on("/gaps"), TIMEOUT_S, "the gap notice")
        assert first_arrivals(inbox.event_seqs()) == [1, 2, 4, 5]
        assert inbox.reported_seqs() == [3]
        (letter,) = outbox.dead_letters()
        assert letter.seq == 3 and "lost the connection 3 times" in letter.reason
        assert pub.stats().reconnects >= 3


def test_messages_over_the_brokers_maximum_packet_size_are_set_aside(
    tmp_path: Path, outbox: Outbox, root: str
) -> None:
    """mosquitto disconnects a client that sends an oversized packet; paho would resend
    it on every reconnect. The publisher checks the CONNACK's limit first."""
    with LocalBroker(extra_config="max_packet_size 3000") as broker:
        enqueue_a_thumbnail_among_events(outbox, root, 4000)
        with delivering(broker, outbox, root) as (inbox, pub, _):
            wait_until(lambda: len(inbox.event_seqs()) >= 4, TIMEOUT_S, "4 events")
            wait_until(lambda: inbox.on("/gaps"), TIMEOUT_S, "the gap notice")
        assert inbox.event_seqs() == [1, 2, 4, 5]
        assert inbox.reported_seqs() == [3]
        stats = pub.stats()
        assert stats.broker_maximum_packet_bytes == 3000 and stats.reconnects == 0
        (letter,) = outbox.dead_letters()
        assert "too large for the broker" in letter.reason


def test_the_brokers_receive_maximum_caps_the_inflight_window(outbox: Outbox, root: str) -> None:
    with LocalBroker(extra_config="max_inflight_messages 3") as broker:
        outbox.enqueue_many(events(root, 0, 500))
        with delivering(broker, outbox, root) as (inbox, pub, _):
            wait_until(lambda: len(inbox.event_seqs()) >= 500, TIMEOUT_S, "500 events")
        assert inbox.event_seqs() == list(range(1, 501))
        stats = pub.stats()
        assert stats.broker_receive_maximum == 3 and stats.reconnects == 0


# -- odds and ends ------------------------------------------------------------------------


def test_subscriber_reports_unreachable_broker(broker: LocalBroker) -> None:
    sub = Subscriber(
        MqttSettings.consumer("127.0.0.1", free_loopback_port(), "lonely"), ["x/#"], print
    )
    with pytest.raises(SubscriberError, match="cannot connect"):
        sub.start(2)


def test_publisher_never_blocks_without_a_broker(outbox: Outbox, root: str) -> None:
    pub = Publisher(
        MqttSettings("127.0.0.1", free_loopback_port(), "nobody-home"),
        outbox,
        Topics(root),
        birth_payload={},
    )
    pub.start()
    outbox.enqueue_many(events(root, 0, 5))
    pub.wake()
    pub.stop(0.5)
    assert outbox.depth() == 5  # kept for the next start
    assert outbox.unclaimed() == 5  # and nobody holds a claim on them
    assert not pub.connected
    assert json.loads(outbox.pending(1)[0].payload)["seq"] == 1
