"""Dead letters: messages the broker refused, kept aside for inspection, never retried.

One bad message (too large, not authorised) must not block the queue, and must not
vanish either: its row moves from ``messages`` to ``dead_letters`` and its seq is
reported as ``refused`` in the next gap notice. The table keeps the newest
``dead_letter_max_rows``; older ones are trimmed.
"""

from __future__ import annotations

import sqlite3

from edge_agent.outbox.records import DeadLetter, StoredMessage


def keep(
    conn: sqlite3.Connection,
    message: StoredMessage,
    *,
    class_name: str,
    user_properties: str,
    reason: str,
    now_s: float,
) -> None:
    """Store ``message`` as refused (inside the caller's transaction)."""
    conn.execute(
        "INSERT OR REPLACE INTO dead_letters (seq, topic, payload, qos, retain,"
        " message_class, created_at_s, content_type, user_properties, reason,"
        " dead_at_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.seq,
            message.topic,
            message.payload,
            message.qos,
            int(message.retain),
            class_name,
            message.created_at_s,
            message.content_type,
            user_properties,
            reason,
            now_s,
        ),
    )


def trim(conn: sqlite3.Connection, excess: int) -> None:
    """Delete the ``excess`` oldest dead letters."""
    conn.execute(
        "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)",
        (excess,),
    )


def count(conn: sqlite3.Connection) -> int:
    (rows,) = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
    return int(rows)


def newest(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT seq, topic, payload, message_class, created_at_s, reason, dead_at_s"
        " FROM dead_letters ORDER BY seq DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        DeadLetter(int(s), str(t), bytes(p), str(c), float(ca), str(r), float(d))
        for s, t, p, c, ca, r, d in rows
    ]
