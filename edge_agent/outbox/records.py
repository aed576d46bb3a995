"""What the outbox stores and hands out: classes and priorities, stored rows, counters.

Classes and priority, highest first: ALERT > EVENT > STATE > THUMBNAIL. STATUS, previews
and stats are never buffered (the publisher sends them directly). Alerts and notices
are *urgent*: the publisher reads them before anything else ("live alerts jump the
queue").

A message's payload is fixed when it is stored: JSON bodies get their ``seq`` inserted
here, as the last key (the publisher adds only ``historical``, when a message is old).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent.types import MessageClass, OutboundMessage

DURABLE_CLASSES = (
    MessageClass.ALERT,
    MessageClass.EVENT,
    MessageClass.STATE,
    MessageClass.THUMBNAIL,
)
"""The classes the outbox stores. STATUS (and previews, stats) are never buffered."""

# Lower number = more important = evicted later.
EVICTION_PRIORITY: dict[MessageClass, int] = {
    MessageClass.ALERT: 0,
    MessageClass.EVENT: 1,
    MessageClass.STATE: 2,
    MessageClass.THUMBNAIL: 3,
}
LIFECYCLE_CLASSES = frozenset({MessageClass.EVENT, MessageClass.ALERT})
"""Classes whose messages follow a new/update/end lifecycle by ``id``."""
NOTICE_PRIORITY = -1  # gap notices: first out, never evicted nor expired
URGENT_MAX_PRIORITY = 0  # priority <= this jumps the queue (notices and alerts)
NOTICE_CLASS = "gaps"
"""Class name a refused gap notice's own seq is counted under."""


@dataclass(frozen=True)
class StoredMessage:
    """A message in the outbox, with the ``seq`` it will be delivered under."""

    row_id: int
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    message_class: MessageClass
    created_at_s: float
    content_type: str
    user_properties: tuple[tuple[str, str], ...] = ()
    is_gap_notice: bool = False

    @property
    def urgent(self) -> bool:
        """Alerts and gap notices: delivered before anything else, never paced."""
        return self.is_gap_notice or self.message_class is MessageClass.ALERT

    @property
    def size_bytes(self) -> int:
        return size_of(self.topic, self.payload)


@dataclass(frozen=True)
class DeadLetter:
    """A message the broker refused, kept aside for inspection (never retried)."""

    seq: int
    topic: str
    payload: bytes
    message_class: str
    created_at_s: float
    reason: str
    dead_at_s: float


@dataclass(frozen=True)
class OutboxStats:
    """Counters over the life of the outbox file (they persist across restarts)."""

    depth_rows: int
    depth_bytes: int
    enqueued_total: int
    acked_total: int
    evicted_by_class: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    expired_by_class: dict[str, int] = field(default_factory=dict)
    dead_lettered_by_class: dict[str, int] = field(default_factory=dict)
    unstored_by_class: dict[str, int] = field(default_factory=dict)
    gap_seqs_unreported: int = 0  # dropped seqs not yet listed in a published notice
    gap_notices_total: int = 0
    dead_letter_rows: int = 0  # kept for inspection now (oldest trimmed past the limit)
    write_failures: int = 0  # failed write transactions since this process opened it
    last_error: str | None = None
    recovered_from: str | None = None  # a corrupt file found at open was moved here

    @property
    def evicted_total(self) -> int:
        return sum(self.evicted_by_class.values())

    @property
    def expired_total(self) -> int:
        return sum(self.expired_by_class.values())

    @property
    def dead_lettered_total(self) -> int:
        return sum(self.dead_lettered_by_class.values())

    @property
    def unstored_total(self) -> int:
        return sum(self.unstored_by_class.values())


def size_of(topic: str, payload: bytes) -> int:
    """What a row counts against ``max_bytes``: payload plus topic bytes."""
    return len(payload) + len(topic.encode("utf-8"))


def _compact(body: Mapping[str, object]) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON; fail here, not in a consumer.
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def encode_payload(message: OutboundMessage, seq: int) -> bytes:
    """JSON bodies get ``seq`` as their last key (``historical`` is the publisher's)."""
    has_json = message.json_body is not None
    has_binary = message.binary_body is not None
    if has_json == has_binary:
        raise ValueError(
            f"message for {message.topic!r} must have exactly one of json_body and binary_body"
        )
    if message.json_body is not None:
        body = {k: v for k, v in message.json_body.items() if k not in ("seq", "historical")}
        body["seq"] = seq
        return _compact(body)
    assert message.binary_body is not None
    return bytes(message.binary_body)


def stored_message(
    message: OutboundMessage, seq: int, now_s: float, *, is_gap_notice: bool = False
) -> StoredMessage:
    """``message`` as the row it becomes under ``seq``; ``row_id`` is 0 until inserted."""
    return StoredMessage(
        row_id=0,
        seq=seq,
        topic=message.topic,
        payload=encode_payload(message, seq),
        qos=message.qos,
        retain=message.retain,
        message_class=message.message_class,
        created_at_s=now_s,
        content_type=message.content_type,
        user_properties=tuple(message.user_properties),
        is_gap_notice=is_gap_notice,
    )


def dump_user_properties(properties: tuple[tuple[str, str], ...]) -> str:
    """The ``user_properties`` column: a JSON list of pairs."""
    return json.dumps([list(p) for p in properties])


@functools.lru_cache(maxsize=256)
def parse_user_properties(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


SELECT_COLUMNS = (
    "row_id, seq, topic, payload, qos, retain, message_class, created_at_s, "
    "content_type, user_properties, priority"
)
"""The ``messages`` columns :func:`row_to_message` reads, in its order."""


def row_to_message(row: Any) -> StoredMessage:
    (row_id, seq, topic, payload, qos, retain, cls, created, ctype, props, priority) = row
    return StoredMessage(
        row_id=int(row_id),
        seq=int(seq),
        topic=str(topic),
        payload=bytes(payload),
        qos=int(qos),
        retain=bool(retain),
        message_class=MessageClass(cls),
        created_at_s=float(created),
        content_type=str(ctype),
        user_properties=parse_user_properties(props),
        is_gap_notice=int(priority) < 0,
    )
