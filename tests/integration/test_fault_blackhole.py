"""Fault: the uplink turns into a blackhole for longer than the MQTT keepalive.

Agent side: the durable Outbox and the Publisher, connected through hw_sim's fault
proxy to a real mosquitto. The consumer subscribes on the broker directly. The agent
must notice the dead link by itself (keepalive), keep taking events while it is cut
off, reconnect once the path heals, and deliver every event: each ``seq`` and event id
exactly once, except messages that were in flight when the path went dark, which may
arrive twice (at-least-once).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fakes.mqtt import Inbox
from helpers import wait_until
from hw_sim.netproxy import NetProxy

from edge_agent.broker import LocalBroker
from edge_agent.encode import Topics
from edge_agent.mqtt import MqttSettings, Publisher, Subscriber
from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage

KEEPALIVE_S = 5  # the smallest the config allows
# Generous bounds, not performance limits: paho needs up to 2 keepalives to give up
# on a silent link (PINGREQ after one, disconnect after the next).
DETECT_TIMEOUT_S = 6 * KEEPALIVE_S
TIMEOUT_S = 30.0

pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(broker: LocalBroker) -> Iterator[NetProxy]:
    with NetProxy(broker.host, broker.port) as p:
        yield p


def produce(outbox: Outbox, publisher: Publisher, root: str, start: int, count: int) -> None:
    outbox.enqueue_many(
        [
            OutboundMessage(
                topic=f"{root}/events/cam1",
                message_class=MessageClass.EVENT,
                json_body={"v": 1, "id": f"e{i}", "lifecycle": "new"},
            )
            for i in range(start, start + count)
        ]
    )
    publisher.wake()


def test_blackhole_longer_than_keepalive_loses_nothing(
    broker: LocalBroker, proxy: NetProxy, outbox: Outbox
) -> None:
    root = f"city/site{uuid.uuid4().hex[:8]}/dev1"
    inbox = Inbox()
    consumer = Subscriber(
        MqttSettings.consumer(broker.host, broker.port, f"consumer-{uuid.uuid4().hex[:8]}"),
        [f"{root}/#"],
        inbox,
    )
    consumer.start(TIMEOUT_S)
    publisher = Publisher(
        MqttSettings(
            host=proxy.host,
            port=proxy.port,
            client_id=f"agent-{uuid.uuid4().hex[:8]}",
            keepalive_s=KEEPALIVE_S,
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
        ),
        outbox,
        Topics(root),
        birth_payload={"version": "test"},
    )
    publisher.start()
    try:
        # 1. Healthy link: 20 events delivered and acknowledged.
        produce(outbox, publisher, root, 0, 20)
        wait_until(
            lambda: set(inbox.event_seqs()) == set(range(1, 21)), TIMEOUT_S, "first 20 events"
        )
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "first 20 acknowledged")
        acked_before = outbox.stats().last_seq

        # 2. The path goes dark. The agent does not know yet: these 10 go out into the
        #    blackhole and stay in flight.
        proxy.set_mode("blackhole")
        produce(outbox, publisher, root, 20, 10)
        in_flight = set(range(acked_before + 1, acked_before + 11))
        wait_until(
            lambda: publisher.stats().published_total >= 30, TIMEOUT_S, "30 sent into the void"
        )

        # 3. The keepalive tells the agent the link is dead.
        wait_until(lambda: not publisher.connected, DETECT_TIMEOUT_S, "agent notices")
        assert proxy.stats().bytes_dropped > 0
        produce(outbox, publisher, root, 30, 10)
        # It keeps trying; those attempts fall into the blackhole as well.
        attempts = proxy.stats().connections_total
        wait_until(
            lambda: proxy.stats().connections_total > attempts,
            TIMEOUT_S,
            "a reconnect attempt into the blackhole",
        )
        produce(outbox, publisher, root, 40, 10)
        assert set(inbox.event_seqs()) == set(range(1, 21))  # nothing leaked through the blackhole

        # 4. The path heals: the agent reconnects and delivers everything.
        proxy.set_mode("pass")
        wait_until(lambda: set(inbox.event_seqs()) == set(range(1, 51)), TIMEOUT_S, "all 50 events")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "outbox to empty")
        wait_until(lambda: publisher.connected, TIMEOUT_S, "agent connected again")
    finally:
        publisher.stop()
        consumer.stop()

    events = inbox.event_ids()
    # Every seq carries the event id it was given, and every id arrived.
    assert {seq: eid for seq, eid in events} == {i + 1: f"e{i}" for i in range(50)}
    counts: dict[int, int] = {}
    for seq, _ in events:
        counts[seq] = counts.get(seq, 0) + 1
    duplicated = {seq for seq, n in counts.items() if n > 1}
    assert duplicated <= in_flight, f"duplicates of messages never in flight: {duplicated}"
    # First arrivals stay in seq order across the outage.
    first: list[int] = []
    for seq, _ in events:
        if seq not in first:
            first.append(seq)
    assert first == sorted(first)
    assert publisher.stats().reconnects >= 1
