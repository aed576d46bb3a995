"""What to drop when the outbox is over its caps, or rows are past their TTL.

Bounds: ``max_rows`` and ``max_bytes`` (payload plus topic bytes, not file size). When
a write would exceed either, rows past their class TTL go first, then the lowest
priority, oldest first. A new low-priority message can itself be the one evicted. Rows
the publisher has claimed (read, in flight, or acknowledged but not yet deleted; at most
a few hundred) are never evicted or expired: they are being delivered. Gap notices
(priority < 0) are never dropped either.

These functions only choose (they read, never write): the store deletes the rows and
records them in the gap ledger, in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Set
from dataclasses import dataclass

from edge_agent.types import MessageClass


@dataclass(frozen=True)
class Victim:
    """A stored row chosen to be dropped (evicted or expired)."""

    row_id: int
    seq: int
    message_class: str
    size_bytes: int


def eviction_victims(
    conn: sqlite3.Connection,
    *,
    rows: int,
    size_bytes: int,
    max_rows: int,
    max_bytes: int,
    claimed: Set[int],
) -> list[Victim]:
    """Lowest-priority, oldest unclaimed rows, until ``rows``/``size_bytes`` fit both caps."""
    victims: list[Victim] = []
    cursor = conn.execute(
        "SELECT row_id, seq, message_class, size_bytes FROM messages"
        " WHERE priority >= 0 ORDER BY priority DESC, row_id ASC"
    )
    for row_id, seq, cls, row_size in cursor:
        if rows <= max_rows and size_bytes <= max_bytes:
            break
        if row_id in claimed:
            continue  # being delivered right now: delivery wins
        victims.append(Victim(int(row_id), int(seq), str(cls), int(row_size)))
        rows -= 1
        size_bytes -= int(row_size)
    cursor.close()
    return victims


def any_expired(
    conn: sqlite3.Connection, ttl_s: Mapping[MessageClass, float], now_s: float
) -> bool:
    """Whether any row is past its TTL (claimed or not): a cheap check before a write."""
    # One index seek per class (messages_by_age); the common case finds nothing
    # and costs no write transaction at all.
    return any(
        conn.execute(
            "SELECT 1 FROM messages WHERE message_class = ? AND created_at_s < ?"
            " AND priority >= 0 LIMIT 1",
            (cls.value, now_s - ttl),
        ).fetchone()
        for cls, ttl in ttl_s.items()
    )


def expired_victims(
    conn: sqlite3.Connection,
    ttl_s: Mapping[MessageClass, float],
    now_s: float,
    claimed: Set[int],
) -> list[Victim]:
    """Unclaimed rows older than their class TTL, class by class."""
    victims: list[Victim] = []
    for cls, ttl in ttl_s.items():
        for row_id, seq, row_size in conn.execute(
            "SELECT row_id, seq, size_bytes FROM messages"
            " WHERE message_class = ? AND priority >= 0 AND created_at_s < ?",
            (cls.value, now_s - ttl),
        ):
            if row_id not in claimed:
                victims.append(Victim(int(row_id), int(seq), cls.value, int(row_size)))
    return victims
