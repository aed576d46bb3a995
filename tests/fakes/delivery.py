"""Outbox traffic for the MQTT delivery tests, and how to read what arrived."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from edge_agent.broker import LocalBroker
from edge_agent.mqtt import MqttSettings, Subscriber
from edge_agent.mqtt.subscriber import ReceivedMessage
from edge_agent.types import MessageClass, OutboundMessage


def persistent_consumer(
    broker: LocalBroker,
    root: str,
    on_message: Callable[[ReceivedMessage], None],
    *,
    session_expiry_s: int = 600,
    reconnect_delay_s: tuple[float, float] = (0.1, 0.5),
) -> Subscriber:
    """A consumer of ``{root}/#`` with a kept session: what its broker takes while it is
    away (its own reconnects) is kept for it."""
    settings = MqttSettings.consumer(
        broker.host,
        broker.port,
        f"cc-{uuid.uuid4().hex[:8]}",
        session_expiry_s=session_expiry_s,
        reconnect_min_delay_s=reconnect_delay_s[0],
        reconnect_max_delay_s=reconnect_delay_s[1],
    )
    return Subscriber(settings, [f"{root}/#"], on_message)


def events(
    root: str, start: int, count: int, cls: MessageClass = MessageClass.EVENT
) -> list[OutboundMessage]:
    """``count`` event messages on ``{root}/events/cam1``, ids ``e{start}``..."""
    return [
        OutboundMessage(
            topic=f"{root}/events/cam1",
            message_class=cls,
            json_body={"v": 1, "id": f"e{i}", "lifecycle": "new"},
            user_properties=(("schema", "event"),),
        )
        for i in range(start, start + count)
    ]


def first_arrivals(seqs: list[int]) -> list[int]:
    """Seqs in order of first arrival: at-least-once may repeat, it must not reorder."""
    seen: set[int] = set()
    order = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order
