"""The agent's delivery against each broker implementation: mosquitto (MQTT 5 and 3.1.1)
and RabbitMQ's MQTT plugin (3.1.1). Events arrive in ``seq`` order; a reconnect sends
nothing twice that the broker had acknowledged, and a cut mid-backlog loses nothing;
commands make the round trip. (test_mqtt_delivery.py covers the rest against mosquitto.)"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import paho.mqtt.client as paho
import pytest
from fakes.delivery import events, first_arrivals
from fakes.mqtt import Inbox
from helpers import wait_until
from hw_sim.netproxy import NetProxy

from edge_agent.broker import LocalBroker
from edge_agent.encode import Topics
from edge_agent.mqtt import DrainSettings, MqttSettings, Protocol, Publisher, Subscriber
from edge_agent.outbox import Outbox
from edge_agent.remote import Reply

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    protocol: Protocol


@pytest.fixture(
    params=[("mosquitto", "5"), ("mosquitto", "3.1.1"), ("rabbitmq", "3.1.1")],
    ids=lambda p: f"{p[0]}-mqtt{p[1]}",
)
def target(request: pytest.FixtureRequest) -> Target:
    """A running broker of each implementation (session-scoped: started once)."""
    name, protocol = request.param
    broker = request.getfixturevalue("broker" if name == "mosquitto" else "rabbitmq")
    return Target(name, broker.host, broker.port, protocol)


@pytest.fixture
def root() -> str:
    return f"city/site{uuid.uuid4().hex[:8]}/dev1"


class Link:
    """A consumer of ``root`` on ``target`` and a publisher draining ``outbox`` to it,
    through a :class:`NetProxy` the test can cut."""

    def __init__(self, target: Target, outbox: Outbox, root: str, **publisher: object) -> None:
        self.inbox: Inbox = Inbox()
        self.sub = Subscriber(
            MqttSettings.consumer(
                target.host, target.port, f"sub-{uuid.uuid4().hex[:8]}", protocol=target.protocol
            ),
            [f"{root}/#"],
            self.inbox,
        )
        self.proxy = NetProxy(target.host, target.port)
        self.pub = Publisher(
            MqttSettings(
                self.proxy.host,
                self.proxy.port,
                f"pub-{uuid.uuid4().hex[:8]}",
                protocol=target.protocol,
                reconnect_min_delay_s=0.2,
                reconnect_max_delay_s=0.5,
            ),
            outbox,
            Topics(root),
            birth_payload={"boot": "b1"},
            **publisher,  # type: ignore[arg-type]
        )

    def __enter__(self) -> Link:
        self.sub.start(TIMEOUT_S)
        self.pub.start()
        wait_until(lambda: self.pub.connected, TIMEOUT_S, "the publisher to connect")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pub.stop(5)
        self.sub.stop()
        self.proxy.close()

    def cut(self) -> None:
        """Reset the publisher's connection (TCP RST) and let it reconnect."""
        reconnects = self.pub.stats().reconnects
        self.proxy.set_mode("reset")
        wait_until(lambda: not self.pub.connected, TIMEOUT_S, "the publisher to notice")
        self.proxy.set_mode("pass")
        wait_until(lambda: self.pub.stats().reconnects > reconnects, TIMEOUT_S, "the reconnection")


def test_events_arrive_in_seq_order(target: Target, outbox: Outbox, root: str) -> None:
    outbox.enqueue_many(events(root, 0, 50))
    with Link(target, outbox, root, drain=DrainSettings.unlimited()) as link:
        for start in range(50, 300, 25):
            outbox.enqueue_many(events(root, start, 25))
            link.pub.wake()
        wait_until(lambda: len(link.inbox.event_seqs()) >= 300, TIMEOUT_S, "300 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the outbox to empty")
    assert link.inbox.event_seqs() == list(range(1, 301))
    for message in link.inbox.on("/events/"):
        body = message.json()
        assert message.qos == 1 and body["id"] == f"e{body['seq'] - 1}"
        expected = (("v", "1"), ("seq", str(body["seq"])), ("schema", "event"))
        assert message.user_properties == (expected if target.protocol == "5" else ())
    assert link.inbox.states() == ["online", "stopped"]  # birth, then the clean stop


def test_a_reconnect_sends_nothing_twice_and_a_cut_mid_backlog_loses_nothing(
    target: Target, outbox: Outbox, root: str
) -> None:
    with Link(target, outbox, root, drain=DrainSettings(rate_msgs_per_s=500)) as link:
        outbox.enqueue_many(events(root, 0, 20))
        link.pub.wake()
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the first 20 acknowledged")
        link.cut()  # nothing in flight: nothing may come twice
        outbox.enqueue_many(events(root, 20, 20))
        link.pub.wake()
        wait_until(lambda: len(link.inbox.event_seqs()) >= 40, TIMEOUT_S, "40 events")
        assert link.inbox.event_seqs() == list(range(1, 41))

        outbox.enqueue_many(events(root, 40, 1000))  # two seconds' worth at the paced rate
        link.pub.wake()
        wait_until(lambda: len(link.inbox.event_seqs()) >= 100, TIMEOUT_S, "the backlog to flow")
        link.cut()  # mid-backlog: what was in flight may come twice, in order
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the backlog to drain")
        wait_until(lambda: len(set(link.inbox.event_seqs())) >= 1040, TIMEOUT_S, "every seq")
    seqs = link.inbox.event_seqs()
    assert first_arrivals(seqs) == list(range(1, 1041))
    assert len(seqs) - 1040 <= 20  # at most the in-flight window again (max_inflight)


def test_commands_round_trip(target: Target, outbox: Outbox, root: str) -> None:
    """A command centre of the same protocol sends ``ping`` and names where the reply goes:
    with MQTT 5 in the Response Topic property (correlation data echoed), with 3.1.1 in
    the request's ``response_topic`` key (taken out before the command sees it)."""
    seen: list[str] = []

    def on_command(name: str, payload: bytes, retained: bool) -> Reply:
        seen.append(name)
        return Reply.json({"ok": True, "pong": json.loads(payload or b"{}")})

    with Link(target, outbox, root, on_command=on_command) as link:
        wait_until(lambda: link.pub.commands_ready, TIMEOUT_S, "the command subscription")
        v5 = target.protocol == "5"
        centre = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"centre-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        centre.connect(target.host, target.port)
        centre.loop_start()
        try:
            reply_topic = f"{root}/reply/centre-1"
            request: dict[str, object] = {"n": 1}
            properties = None
            if v5:
                properties = paho.Properties(paho.PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.ResponseTopic = reply_topic
                properties.CorrelationData = b"c-1"
            else:
                request["response_topic"] = reply_topic
            payload = json.dumps(request).encode()
            info = centre.publish(f"{root}/cmd/ping", payload, qos=1, properties=properties)
            info.wait_for_publish(TIMEOUT_S)
            wait_until(lambda: link.inbox.at(reply_topic), TIMEOUT_S, "the reply")
        finally:
            centre.loop_stop()
            centre.disconnect()
    (reply,) = link.inbox.at(reply_topic)
    assert reply.json() == {"ok": True, "pong": {"n": 1}}
    assert seen == ["ping"]


@pytest.mark.parametrize("bad", ["\u0001", "\u0085", "\ufffe", "\ufdd0"])
def test_a_response_topic_the_broker_would_refuse_is_refused_and_the_link_stays(
    broker: LocalBroker, outbox: Outbox, root: str, bad: str
) -> None:
    """MQTT 3.1.1: the response topic is the request's own JSON text, so it may hold any
    character. The reply went to it: mosquitto took the PUBLISH as malformed and dropped
    the device's connection, paho sent the reply again on every reconnect, and the drain
    moved the events in flight beside it to the dead letters (lost link three times in a
    row). Now the command is refused on the default reply topic; nothing else changes."""
    seen: list[str] = []

    def on_command(name: str, payload: bytes, retained: bool) -> Reply:
        seen.append(name)
        return Reply.json({"ok": True})

    target = Target("mosquitto", broker.host, broker.port, "3.1.1")
    with Link(target, outbox, root, on_command=on_command) as link:
        wait_until(lambda: link.pub.commands_ready, TIMEOUT_S, "the command subscription")
        centre = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"centre-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv311,
        )
        centre.connect(target.host, target.port)
        centre.loop_start()
        try:
            request = {"response_topic": f"{root}/reply/x{bad}"}
            payload = json.dumps(request).encode()  # ASCII: the character as a \u escape
            centre.publish(f"{root}/cmd/ping", payload, qos=1).wait_for_publish(TIMEOUT_S)
            default = f"{root}/reply/ping"
            wait_until(lambda: link.inbox.at(default), TIMEOUT_S, "the refusal")
            outbox.enqueue_many(events(root, 0, 20))
            link.pub.wake()
            wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the events delivered")
        finally:
            centre.loop_stop()
            centre.disconnect()
        assert link.pub.stats().reconnects == 0 and link.pub.connected
    (refusal,) = link.inbox.at(default)
    body = refusal.json()
    assert body["ok"] is False and f"U+{ord(bad):04X}" in body["error"], body
    assert seen == []  # the command never ran
    assert link.inbox.event_seqs() == list(range(1, 21))
    assert outbox.stats().dead_lettered_total == 0


def test_a_command_far_over_the_size_limit_never_reaches_the_device(
    broker: LocalBroker, outbox: Outbox, root: str
) -> None:
    """A command is at most 64 kB, but paho reads whatever the broker sends in one piece:
    three 100 MB commands took a running agent from 143 MB to a 547 MB peak (254 MB
    after) before each was refused. With MQTT 5 the device's CONNECT now says the largest
    packet it takes (1 MiB), and the broker drops larger ones for it."""
    seen: list[int] = []

    def on_command(name: str, payload: bytes, retained: bool) -> Reply:
        seen.append(len(payload))
        return Reply.json({"ok": True})

    target = Target("mosquitto", broker.host, broker.port, "5")
    with Link(target, outbox, root, on_command=on_command) as link:
        wait_until(lambda: link.pub.commands_ready, TIMEOUT_S, "the command subscription")
        centre = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"centre-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv5,
        )
        centre.connect(target.host, target.port)
        centre.loop_start()
        try:
            big = b"{" + b" " * (4 << 20) + b"}"
            centre.publish(f"{root}/cmd/ping", big, qos=1).wait_for_publish(TIMEOUT_S)
            centre.publish(f"{root}/cmd/ping", b"{}", qos=1).wait_for_publish(TIMEOUT_S)
            wait_until(lambda: link.inbox.at(f"{root}/reply/ping"), TIMEOUT_S, "the reply")
        finally:
            centre.loop_stop()
            centre.disconnect()
        assert link.pub.connected and link.pub.stats().reconnects == 0
    assert seen == [2]  # in order on one topic: the big one, had it come, came first
