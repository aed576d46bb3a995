"""The MQTT API's shapes: topic names and payloads, in one place.

docs/mqtt-api.md documents exactly what this module produces; the schema
version ``SCHEMA_VERSION`` goes into every JSON payload as ``v`` so consumers
can tell an old device from a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.types import MessageClass, ObjectEvent, OutboundMessage, Thumbnail

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


def _time(value_s: float | None) -> float | None:
    return None if value_s is None else round(value_s, 3)


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
    }


def encode_event(topics: Topics, event: ObjectEvent, boot_id: str) -> OutboundMessage:
    return OutboundMessage(
        topic=topics.events(event.camera_id),
        message_class=MessageClass.EVENT,
        qos=1,
        json_body=event_body(event, boot_id),
        user_properties=(("schema", f"edge-agent/event/{SCHEMA_VERSION}"),),
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
