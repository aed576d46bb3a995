"""Outbox traffic for the MQTT delivery tests, and how to read what arrived."""

from __future__ import annotations

from edge_agent.types import MessageClass, OutboundMessage


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
