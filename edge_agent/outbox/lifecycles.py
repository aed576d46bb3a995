"""Open lifecycles: what a restart must end because the previous run died first.

Every ``new``/``update`` of an event or alert is remembered in ``open_lifecycles`` until
its ``end``, in the same transaction as the message itself, so the table always agrees
with what was stored. After a crash or power cut the agent reads it
(:meth:`Outbox.open_lifecycles`) and stores an ``end`` for each
(:func:`edge_agent.encode.interrupted_end`).
"""

from __future__ import annotations

import json
import sqlite3

from edge_agent.outbox.records import (
    LIFECYCLE_CLASSES,
    dump_user_properties,
    parse_user_properties,
)
from edge_agent.types import MessageClass, OutboundMessage


def track(conn: sqlite3.Connection, message: OutboundMessage) -> None:
    """Remember the last ``new``/``update`` of each event or alert until its ``end``
    (inside the caller's transaction: the one storing ``message``)."""
    body = message.json_body
    if message.message_class not in LIFECYCLE_CLASSES or body is None:
        return
    lifecycle_id, step = body.get("id"), body.get("type")
    if not isinstance(lifecycle_id, str):
        return
    if step == "end":
        conn.execute("DELETE FROM open_lifecycles WHERE id = ?", (lifecycle_id,))
    elif step in ("new", "update"):
        conn.execute(
            "INSERT OR REPLACE INTO open_lifecycles"
            " (id, topic, message_class, body, user_properties) VALUES (?, ?, ?, ?, ?)",
            (
                lifecycle_id,
                message.topic,
                message.message_class.value,
                json.dumps(body),
                dump_user_properties(message.user_properties),
            ),
        )


def last_steps(conn: sqlite3.Connection) -> list[OutboundMessage]:
    """The last step of every lifecycle with no ``end``, in the order of those steps."""
    rows = conn.execute(
        "SELECT topic, message_class, body, user_properties FROM open_lifecycles ORDER BY rowid"
    ).fetchall()
    return [
        OutboundMessage(
            topic=topic,
            message_class=MessageClass(message_class),
            qos=1,
            json_body=json.loads(body),
            user_properties=parse_user_properties(user_properties),
        )
        for topic, message_class, body, user_properties in rows
    ]
