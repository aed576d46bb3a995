"""The last events and alerts, for the page: a small ring fed beside the outbox.

``TeeSink`` hands each frame's output to the outbox sink first (durability unchanged) and
then to ``RecentOutputs``, which keeps only new and ended events and alerts and the
latest thumbnails, bounded in count. It is built only when the page is enabled, so an
agent without the page does no extra work per event.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from edge_agent.pipeline import FrameOutput, FrameSink
from edge_agent.types import Lifecycle

__all__ = ["FeedItem", "RecentOutputs", "TeeSink"]

log = logging.getLogger(__name__)

MAX_ITEMS = 50
MAX_THUMBNAILS = 20


@dataclass(frozen=True)
class FeedItem:
    """One line of the page's "last events" list."""

    what: str  # "event" or "alert"
    id: str
    step: str  # "new", "update" or "end"
    camera: str
    kind: str  # "object", or the alert's kind ("intrusion", ...)
    label: str  # the object's label, or the alert's labels joined
    zone: str  # the alert's zone, or the event's zones joined
    time_s: float  # wall clock of the frame

    def as_dict(self, has_thumbnail: bool) -> dict[str, object]:
        return {
            "what": self.what,
            "id": self.id,
            "step": self.step,
            "camera": self.camera,
            "kind": self.kind,
            "label": self.label,
            "zone": self.zone,
            "time": round(self.time_s, 3),
            "thumbnail": has_thumbnail,
        }


class RecentOutputs:
    """A ``FrameSink`` that remembers; read by the page's threads. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[FeedItem] = deque(maxlen=MAX_ITEMS)
        self._thumbnails: OrderedDict[str, bytes] = OrderedDict()

    def emit(self, output: FrameOutput) -> None:
        items = [
            FeedItem(
                "event",
                e.event_id,
                e.lifecycle.value,
                e.camera_id,
                e.kind,
                e.label,
                ",".join(e.zones),
                e.frame_time_s,
            )
            for e in output.events
            if e.lifecycle is not Lifecycle.UPDATE
        ] + [
            FeedItem(
                "alert",
                a.alert_id,
                a.lifecycle.value,
                a.camera_id,
                a.kind,
                ",".join(a.labels),
                a.zone or "",
                a.frame_time_s,
            )
            for a in output.alerts
        ]
        with self._lock:
            self._items.extend(items)
            for thumbnail in output.thumbnails:
                self._thumbnails[thumbnail.event_id] = thumbnail.jpeg
                self._thumbnails.move_to_end(thumbnail.event_id)
            while len(self._thumbnails) > MAX_THUMBNAILS:
                self._thumbnails.popitem(last=False)

    def recent(self) -> list[dict[str, object]]:
        """Newest first."""
        with self._lock:
            return [item.as_dict(item.id in self._thumbnails) for item in reversed(self._items)]

    def thumbnail(self, event_id: str) -> bytes | None:
        with self._lock:
            return self._thumbnails.get(event_id)


class TeeSink:
    """The outbox sink first, then the page's ring (whose failure never costs an event)."""

    def __init__(self, primary: FrameSink, recent: RecentOutputs) -> None:
        self.primary = primary
        self.recent = recent

    def emit(self, output: FrameOutput) -> None:
        self.primary.emit(output)
        try:
            self.recent.emit(output)
        except Exception:  # the page's bookkeeping must never stop a camera
            log.exception("the page's event list failed")
