"""``edge-agent watch``: what a command-centre engineer uses to look at a site.

Subscribes to one device, one site or everything; prints one readable line per
message (or JSON lines); drops duplicates (delivery is at-least-once, so a
message may arrive twice after a reconnect); and keeps, per device, the
``seq`` numbers seen so that a gap is reported when it opens ("missing"), when
it fills ("late", e.g. alerts that jumped the queue after an outage) and when
the device says it dropped them ("lost", from its ``gaps`` notice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edge_agent.mqtt import ReceivedMessage


def _clock(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "--:--:--"
    try:
        return time.strftime("%H:%M:%S", time.localtime(value))
    except (OverflowError, OSError, ValueError):  # 1e300, NaN: a device's clock or a bug
        return "--:--:--"


def topic_filter(prefix: str, site: str | None = None, device: str | None = None) -> str:
    """The subscription for everything, one site, or one device."""
    if device is not None:
        return f"{prefix}/{site or '+'}/{device}/#"
    if site is not None:
        return f"{prefix}/{site}/#"
    return f"{prefix}/#"


def _ranges(numbers: Iterable[int]) -> str:
    ordered = sorted(numbers)
    parts: list[str] = []
    start = previous = None
    for n in ordered:
        if start is None:
            start = previous = n
        elif previous is not None and n == previous + 1:
            previous = n
        else:
            parts.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = previous = n
    if start is not None:
        parts.append(f"{start}" if start == previous else f"{start}-{previous}")
    return ",".join(parts)


@dataclass
class SeqLedger:
    """The seq numbers one device has delivered, to tell duplicates, gaps and late arrivals."""

    highest: int = 0
    missing: set[int] = field(default_factory=set)
    seen_recent: set[int] = field(default_factory=set)

    def record(self, seq: int) -> tuple[str, list[int]]:
        """Classify ``seq``: ("duplicate"|"late"|"gap"|"ok", the seqs newly missing).

        Only a seq already seen is a duplicate: one below the highest that was never seen
        is late (alerts jump the queue after an outage; a watch may start mid-backlog).
        """
        if seq in self.seen_recent:
            return "duplicate", []
        self._remember(seq)
        if seq < self.highest:
            self.missing.discard(seq)
            return "late", []
        newly_missing = list(range(self.highest + 1, seq)) if self.highest else []
        self.missing.update(newly_missing)
        self.highest = seq
        return ("gap" if newly_missing else "ok"), newly_missing

    def _remember(self, seq: int) -> None:
        self.seen_recent.add(seq)
        if len(self.seen_recent) > 20_000:  # bounded memory on a long watch
            self.seen_recent = {s for s in self.seen_recent if s > self.highest - 10_000}

    def lost(self, seqs: Iterable[int]) -> list[int]:
        """The device reported these as dropped: no longer waiting for them."""
        confirmed = [s for s in seqs if s in self.missing]
        self.missing.difference_update(confirmed)
        return confirmed


def parse_json(payload: bytes) -> object:
    """The JSON in ``payload``; ValueError for anything else, a payload nested so deep the
    parser would recurse past Python's limit included (a broken or hostile device must
    not put a traceback in the operator's terminal)."""
    try:
        return json.loads(payload)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def json_object(payload: bytes) -> dict[str, object] | None:
    """The JSON object in ``payload``, None when it holds anything else."""
    try:
        parsed = parse_json(payload)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return None
    return parsed if isinstance(parsed, dict) else None


def describe(topic: str, payload: bytes, content_type: str | None = None) -> str:
    """One readable line for one MQTT message of the edge_agent API; a message that is not
    as the API says (a broken or hostile device) gets a line saying so, never an error."""
    try:
        return _describe(topic, payload, content_type)
    except (TypeError, ValueError, AttributeError, RecursionError) as error:
        return f"{topic}: {len(payload)} bytes, not as the API says ({type(error).__name__})"


def _describe(topic: str, payload: bytes, content_type: str | None) -> str:
    levels = topic.split("/")
    kind = levels[3] if len(levels) > 3 else topic
    where = "/".join(levels[1:3]) if len(levels) > 3 else ""
    if kind == "thumbs" or (content_type or "").startswith("image/"):
        return f"{where} thumbnail {'/'.join(levels[4:-1])} event={levels[-1]} {len(payload)} bytes"
    try:
        body = parse_json(payload)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return f"{topic}: {len(payload)} bytes (not JSON)"
    if not isinstance(body, dict):
        return f"{topic}: {json.dumps(body)[:200]}"
    camera = levels[4] if len(levels) > 4 else "?"
    history = " (historical)" if body.get("historical") else ""
    if kind == "events":
        zones = body.get("zones") or ([body["zone"]] if body.get("zone") else [])
        what = body.get("label") or ",".join(body.get("labels") or []) or "?"
        score = body.get("score")
        score_text = f"score={score:.2f} " if isinstance(score, (int, float)) else ""
        return (
            f"{_clock(body.get('ts'))} {where} {camera} {str(body.get('type', '?')).upper():6} "
            f"{body.get('kind', 'object')}:{what} {score_text}zones={','.join(zones) or '-'} "
            f"id={body.get('id')} seq={body.get('seq')}{history}"
        )
    if kind == "state":
        return (
            f"{_clock(body.get('ts'))} {where} {camera} STATE  {levels[-1]}={body.get('state')} "
            f"seq={body.get('seq')}{history}"
        )
    if kind == "counts":
        return (
            f"{_clock(body.get('to'))} {where} {camera} COUNTS {levels[-1]} "
            f"{json.dumps(body.get('counts'), separators=(',', ':'))} seq={body.get('seq')}"
        )
    if kind == "status":
        return (
            f"{where} status {body.get('state', '?')} "
            f"version={body.get('version', '?')} boot={body.get('boot', '?')}"
        )
    return f"{topic}: {json.dumps(body, separators=(',', ':'))[:200]}"


def gap_seqs(body: dict[str, object]) -> list[int]:
    """Seq numbers a device's gaps notice reports as dropped (docs/delivery.md):
    ``{"gaps": [{"from": a, "to": b, ...}, ...]}``."""
    seqs: list[int] = []
    ranges = body.get("gaps") or []
    if not isinstance(ranges, list):
        return seqs
    for item in ranges:
        if isinstance(item, dict):
            low, high = item.get("from"), item.get("to")
        elif isinstance(item, list) and len(item) >= 2:
            low, high = item[0], item[1]
        else:
            continue
        if isinstance(low, int) and isinstance(high, int) and high - low < 1_000_000:
            seqs.extend(range(low, high + 1))
    return seqs


class Watcher:
    """Turns received messages into output lines; keeps a seq ledger per device."""

    def __init__(self, emit: Callable[[str], None], *, as_json: bool = False) -> None:
        self._emit = emit
        self._as_json = as_json
        self.ledgers: dict[str, SeqLedger] = {}
        self.duplicates = 0

    def on_message(self, message: ReceivedMessage) -> None:
        levels = message.topic.split("/")
        device = "/".join(levels[:3])
        body: dict[str, object] | None = None
        if (message.content_type or "application/json") == "application/json":
            body = json_object(message.payload)
        seq = seq_of(message, body)
        notes: list[str] = []
        # Retained messages replay the last known value on subscribe: not part of the sequence.
        if seq is not None and not message.retain:
            ledger = self.ledgers.setdefault(device, SeqLedger())
            verdict, newly_missing = ledger.record(seq)
            if verdict == "duplicate":
                self.duplicates += 1
                return
            if verdict == "late":
                notes.append(f"late seq {seq}")
            if newly_missing:
                notes.append(f"missing seq {_ranges(newly_missing)} (late or lost)")
        if len(levels) > 3 and levels[3] == "gaps" and body is not None:
            lost = self.ledgers.setdefault(device, SeqLedger()).lost(gap_seqs(body))
            if lost:
                notes.append(f"device reports seq {_ranges(lost)} dropped: lost")
        if self._as_json:
            record: dict[str, object] = {"topic": message.topic, "retained": message.retain}
            if body is not None:
                record["payload"] = body
            else:
                record["bytes"] = len(message.payload)
            if notes:
                record["notes"] = notes
            self._emit(json.dumps(record, separators=(",", ":")))
            return
        for note in notes:
            self._emit(f"{device}: !! {note}")
        self._emit(describe(message.topic, message.payload, message.content_type))


def seq_of(message: ReceivedMessage, body: dict[str, object] | None) -> int | None:
    """A stored message's ``seq``: in its JSON payload, else its MQTT 5 user property
    (thumbnails); None for messages without one (status, stats, replies)."""
    value: object = body.get("seq") if body is not None else None
    if value is None:
        value = message.user_property("seq")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None
