"""How a person reads the device's traffic: one line per message.

Used by ``edge-agent demo`` now and by the consumer-side ``edge-agent watch``.
"""

from __future__ import annotations

import json
import time


def _clock(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(value))


def describe(topic: str, payload: bytes, content_type: str | None = None) -> str:
    """One readable line for one MQTT message of the edge_agent API."""
    levels = topic.split("/")
    kind = levels[3] if len(levels) > 3 else topic
    where = "/".join(levels[1:3]) if len(levels) > 3 else ""
    if kind == "thumbs" or (content_type or "").startswith("image/"):
        event_id = levels[-1]
        return f"{where} thumbnail {'/'.join(levels[4:-1])} event={event_id} {len(payload)} bytes"
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{topic}: {len(payload)} bytes (not JSON)"
    if not isinstance(body, dict):
        return f"{topic}: {body!r}"
    if kind == "events":
        zones = ",".join(body.get("zones") or []) or "-"
        return (
            f"{_clock(body.get('ts'))} {where} {levels[4] if len(levels) > 4 else '?'} "
            f"{str(body.get('type', '?')).upper():6} {body.get('label', '?'):10} "
            f"score={body.get('score', 0):.2f} zones={zones} id={body.get('id')} "
            f"seq={body.get('seq')}"
        )
    if kind == "status":
        return (
            f"{where} status {body.get('state', '?')} "
            f"version={body.get('version', '?')} boot={body.get('boot', '?')}"
        )
    return f"{topic}: {json.dumps(body, separators=(',', ':'))[:200]}"
