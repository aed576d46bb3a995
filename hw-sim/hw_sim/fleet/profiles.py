"""Site profiles: how often a simulated device has something to say, and messages shaped
like the agent's (events from :func:`edge_agent.encode.encode_event`, JPEG-sized
thumbnails). Each message carries one extra user property, ``t`` (its enqueue time, epoch
seconds), from which the fleet's collector measures end-to-end latency."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from edge_agent.encode import Topics, encode_event, encode_thumbnail
from edge_agent.types import Box, Lifecycle, ObjectEvent, OutboundMessage, Thumbnail

__all__ = ["PROFILES", "SiteProfile", "synthetic_messages"]

SENT_AT_PROPERTY = "t"


@dataclass(frozen=True)
class SiteProfile:
    """``events_per_s``: event messages per device per second (Poisson arrivals);
    ``thumbnail_share``: the share of them that start an object and bring a thumbnail."""

    name: str
    events_per_s: float
    thumbnail_share: float
    thumbnail_bytes: int

    @property
    def messages_per_s(self) -> float:
        return self.events_per_s * (1.0 + self.thumbnail_share)


# Quiet: a side street, an object every ~40 s (start, a few updates, end). Busy: a
# market entrance, ~1,000 messages/s for 500 devices (issue 13's figure). A thumbnail is
# the agent's default 320-px JPEG at quality 70: ~12 KB on the bench's real frames.
PROFILES = {
    "quiet": SiteProfile("quiet", events_per_s=0.1, thumbnail_share=0.25, thumbnail_bytes=12_000),
    "busy": SiteProfile("busy", events_per_s=1.6, thumbnail_share=0.25, thumbnail_bytes=12_000),
}

_LABELS = ("person", "person", "person", "car", "motorcycle", "bicycle")


def synthetic_messages(
    topics: Topics, profile: SiteProfile, rng: random.Random, now_s: float, boot_id: str
) -> list[OutboundMessage]:
    """One event (an ``update``, or a ``new`` with its thumbnail), stamped ``now_s``."""
    start = rng.random() < profile.thumbnail_share
    event_id = f"{now_s:.3f}-{rng.getrandbits(24):06x}"
    x, y = rng.uniform(0.0, 0.7), rng.uniform(0.0, 0.5)
    event = ObjectEvent(
        event_id=event_id,
        lifecycle=Lifecycle.NEW if start else Lifecycle.UPDATE,
        camera_id="cam1",
        kind="object",
        label=rng.choice(_LABELS),
        score=round(rng.uniform(0.5, 0.95), 4),
        top_score=round(rng.uniform(0.6, 0.98), 4),
        box=Box(x, y, x + rng.uniform(0.05, 0.3), y + rng.uniform(0.1, 0.5)),
        zones=("entrance",),
        start_s=now_s - (0.0 if start else rng.uniform(1.0, 30.0)),
        end_s=None,
        frame_time_s=now_s,
        has_thumbnail=start,
    )
    stamp = (SENT_AT_PROPERTY, f"{now_s:.6f}")
    messages = [replace(encode_event(topics, event, boot_id), user_properties=(stamp,))]
    if start:
        jpeg = b"\xff\xd8" + rng.randbytes(max(0, profile.thumbnail_bytes - 4)) + b"\xff\xd9"
        thumb = encode_thumbnail(topics, Thumbnail(event_id, "cam1", jpeg, event.score))
        messages.append(replace(thumb, user_properties=(*thumb.user_properties, stamp)))
    return messages
