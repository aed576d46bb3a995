"""The MQTT API's shapes: topic names and payloads, in one place.

docs/mqtt-api.md documents exactly what this module produces; the schema
version ``SCHEMA_VERSION`` goes into every JSON payload as ``v`` so consumers
can tell an old device from a new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.types import (
    ClipRef,
    Lifecycle,
    MessageClass,
    ObjectEvent,
    OutboundMessage,
    Thumbnail,
)

if TYPE_CHECKING:
    from edge_agent.pipeline import FrameOutput

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Topics:
    """Topic names under one device's root: ``{prefix}/{site_id}/{device_id}``."""

    root: str

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def stats(self) -> str:
        return f"{self.root}/stats"

    def events(self, camera_id: str) -> str:
        return f"{self.root}/events/{camera_id}"

    def thumbnail(self, camera_id: str, event_id: str) -> str:
        return f"{self.root}/thumbs/{camera_id}/{event_id}"

    def preview(self, camera_id: str) -> str:
        return f"{self.root}/preview/{camera_id}"

    def state(self, camera_id: str, analyzer: str) -> str:
        return f"{self.root}/state/{camera_id}/{analyzer}"

    def counts(self, camera_id: str, line: str) -> str:
        return f"{self.root}/counts/{camera_id}/{line}"

    @property
    def gaps(self) -> str:
        return f"{self.root}/gaps"

    @property
    def update(self) -> str:
        """Signed updates' outcomes, retained (docs/updates.md)."""
        return f"{self.root}/update"

    @property
    def commands(self) -> str:
        """The filter the device subscribes to: ``{root}/cmd/+``."""
        return f"{self.root}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.root}/cmd/{name}"

    def command_name(self, topic: str) -> str | None:
        """``name`` for a topic ``{root}/cmd/{name}``, else None."""
        prefix = self.command("")
        name = topic[len(prefix) :] if topic.startswith(prefix) else ""
        return name if name and "/" not in name else None

    def reply(self, name: str) -> str:
        return f"{self.root}/reply/{name}"

    def is_reply(self, topic: str) -> bool:
        """Under ``{root}/reply/``: the only place the broker's ACL lets a device reply."""
        return topic.startswith(self.reply(""))


STATUS_STATES = ("online", "offline", "stopped")
"""``online``: the birth on every (re)connect; ``offline``: the Last Will (no ``ts``,
the broker sends it); ``stopped``: a clean stop."""


def status_body(state: str, fields: Mapping[str, object], *, ts: float | None) -> dict[str, object]:
    """The retained status: ``v``, ``state``, ``ts`` (not in the Last Will), then what
    the birth says about this run (``fields``; their own v/state/ts are ignored)."""
    if state not in STATUS_STATES:
        raise ValueError(f"status state must be one of {STATUS_STATES}, not {state!r}")
    body: dict[str, object] = {"v": SCHEMA_VERSION, "state": state}
    if ts is not None:
        body["ts"] = round(ts, 3)
    body.update((k, v) for k, v in fields.items() if k not in ("v", "state", "ts"))
    return body


def compact_json(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_status(state: str, fields: Mapping[str, object], *, ts: float | None) -> bytes:
    return compact_json(status_body(state, fields, ts=ts))


def _json_message(
    topic: str,
    message_class: MessageClass,
    body: dict[str, object],
    schema: str,
    *,
    retain: bool = False,
) -> OutboundMessage:
    """A QoS 1 JSON message carrying its schema name ("edge-agent/event/1") as a property."""
    return OutboundMessage(
        topic=topic,
        message_class=message_class,
        qos=1,
        retain=retain,
        json_body=body,
        user_properties=(("schema", f"edge-agent/{schema}/{SCHEMA_VERSION}"),),
    )


def _time(value_s: float | None) -> float | None:
    return None if value_s is None else round(value_s, 3)


REASON_RECORDING_OFF = "recording off"


def clip_fields(lifecycle: Lifecycle, clip: ClipRef | None) -> dict[str, object]:
    """An ``end``'s ``clip`` (``{"id": ...}``) or ``clip: null`` with ``clip_reason``;
    nothing on ``new``/``update`` (docs/recording.md)."""
    if lifecycle is not Lifecycle.END:
        return {}
    if clip is None:
        return {"clip": None, "clip_reason": REASON_RECORDING_OFF}
    if clip.id is not None:
        return {"clip": {"id": clip.id}}
    return {"clip": None, "clip_reason": clip.reason or "unknown"}


def event_body(event: ObjectEvent, boot_id: str) -> dict[str, object]:
    return {
        "v": SCHEMA_VERSION,
        "type": event.lifecycle.value,
        "id": event.event_id,
        "camera": event.camera_id,
        "kind": event.kind,
        "label": event.label,
        "score": round(event.score, 3),
        "top_score": round(event.top_score, 3),
        "box": event.box.as_list(),
        "zones": list(event.zones),
        "start": _time(event.start_s),
        "end": _time(event.end_s),
        "ts": _time(event.frame_time_s),
        "thumb": event.has_thumbnail,
        "boot": boot_id,
        **clip_fields(event.lifecycle, event.clip),
    }


def encode_event(topics: Topics, event: ObjectEvent, boot_id: str) -> OutboundMessage:
    return _json_message(
        topics.events(event.camera_id), MessageClass.EVENT, event_body(event, boot_id), "event"
    )


def encode_thumbnail(topics: Topics, thumbnail: Thumbnail) -> OutboundMessage:
    return OutboundMessage(
        topic=topics.thumbnail(thumbnail.camera_id, thumbnail.event_id),
        message_class=MessageClass.THUMBNAIL,
        qos=1,
        binary_body=thumbnail.jpeg,
        content_type="image/jpeg",
        user_properties=(("event_id", thumbnail.event_id),),
    )


def alert_body(alert: Alert, boot_id: str) -> dict[str, object]:
    return {
        "v": SCHEMA_VERSION,
        "type": alert.lifecycle.value,
        "id": alert.alert_id,
        "camera": alert.camera_id,
        "kind": alert.kind,
        "rule": alert.rule,
        "zone": alert.zone,
        "labels": list(alert.labels),
        "tracks": list(alert.track_ids),
        "box": alert.box.as_list() if alert.box is not None else None,
        "start": _time(alert.start_s),
        "end": _time(alert.end_s),
        "ts": _time(alert.frame_time_s),
        "detail": dict(alert.detail),
        "boot": boot_id,
        **clip_fields(alert.lifecycle, alert.clip),
    }


def encode_alert(topics: Topics, alert: Alert, boot_id: str) -> OutboundMessage:
    """Alerts share the events topic (consumers see one lifecycle stream) but not its class:
    they are kept longest in the outbox and sent first after an outage."""
    return _json_message(
        topics.events(alert.camera_id), MessageClass.ALERT, alert_body(alert, boot_id), "alert"
    )


END_REASON_RESTART = "restart"


def interrupted_end(last: OutboundMessage) -> OutboundMessage:
    """The ``end`` of an event or alert that the previous run left open (it died first),
    from the last ``new``/``update`` it stored: ended at that message's time (when it
    was last known to be going on), marked ``end_reason: "restart"``, under the boot
    that opened it."""
    if last.json_body is None:
        raise ValueError(f"not a JSON lifecycle message: {last.topic}")
    body = dict(last.json_body)
    body["type"] = "end"
    body["end"] = body.get("ts")
    body["end_reason"] = END_REASON_RESTART
    body["clip"] = None  # the clip being written died with the process (its .part is deleted)
    body["clip_reason"] = END_REASON_RESTART
    return replace(last, json_body=body)


def state_body(state: SceneState, boot_id: str) -> dict[str, object]:
    return {
        "v": SCHEMA_VERSION,
        "camera": state.camera_id,
        "analyzer": state.analyzer,
        "state": state.state,
        "since": _time(state.since_s),
        "ts": _time(state.frame_time_s),
        "score": None if state.score is None else round(state.score, 4),
        "detail": dict(state.detail),
        "boot": boot_id,
    }


def encode_state(topics: Topics, state: SceneState, boot_id: str) -> OutboundMessage:
    return _json_message(
        topics.state(state.camera_id, state.analyzer),
        MessageClass.STATE,
        state_body(state, boot_id),
        "state",
        retain=True,
    )


def counts_body(report: CountReport, boot_id: str) -> dict[str, object]:
    return {
        "v": SCHEMA_VERSION,
        "camera": report.camera_id,
        "line": report.line,
        "from": _time(report.period_start_s),
        "to": _time(report.period_end_s),
        "counts": {d: dict(by_label) for d, by_label in report.counts.items()},
        "boot": boot_id,
    }


@dataclass(frozen=True)
class Encoder:
    """One device run's codec: a frame's output as the messages the outbox stores.

    Only the outbox sink encodes; replay and eval read the ``FrameOutput`` itself.
    """

    topics: Topics
    boot_id: str

    def messages(self, output: FrameOutput) -> list[OutboundMessage]:
        topics, boot = self.topics, self.boot_id
        # Events before their thumbnails: `seq` order then reads new → thumbnail → update → end.
        messages = [encode_alert(topics, a, boot) for a in output.alerts]
        messages.extend(encode_event(topics, e, boot) for e in output.events)
        messages.extend(encode_thumbnail(topics, t) for t in output.thumbnails)
        messages.extend(encode_state(topics, s, boot) for s in output.states)
        messages.extend(encode_counts(topics, c, boot) for c in output.counts)
        return messages


def encode_counts(topics: Topics, report: CountReport, boot_id: str) -> OutboundMessage:
    return _json_message(
        topics.counts(report.camera_id, report.line),
        MessageClass.EVENT,
        counts_body(report, boot_id),
        "counts",
    )


GapRanges = list[tuple[int, int, dict[str, dict[str, int]]]]
"""Lost seqs ``first..last``, with counts by reason, then by class."""


def gap_notice_body(ranges: GapRanges, ts_s: float) -> dict[str, object]:
    """``{"v":1,"ts":...,"gaps":[{"from":a,"to":b,"<reason>":{"<class>":n}}]}``: every seq
    from ``a`` to ``b`` is lost and the counts in each range add up to ``b - a + 1``
    (the outbox appends the notice's own ``seq``)."""
    return {
        "v": SCHEMA_VERSION,
        "ts": _time(ts_s),
        "gaps": [{"from": first, "to": last, **detail} for first, last, detail in ranges],
    }


def encode_gap_notice(topic: str, ranges: GapRanges, ts_s: float) -> OutboundMessage:
    """A gap notice: built by the outbox from its gap ledger, urgent like an alert."""
    return _json_message(topic, MessageClass.ALERT, gap_notice_body(ranges, ts_s), "gaps")
