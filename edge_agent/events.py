"""The event engine: turns the tracker's output into an event lifecycle.

Each confirmed track of a label of interest yields one ``new``, then an
``update`` only when something a subscriber cares about changed (it moved into
or out of a zone, its box moved a lot, its best score rose), at most once per
``update_min_interval_s`` unless the zones changed, and one ``end``. The label is
the tracker's score-weighted vote over the track's sightings: when the vote
changes (a first "bus" outvoted by later "car" sightings) an ``update`` goes out
at once, and ``end`` carries the label as voted at the end, not as last published. Zones have
the same inertia as the rules' occupancy: an object joins or leaves a zone after
the zone's ``inertia_frames`` consecutive sightings agree (over 0.3 s for 3, whatever the
rate: ``zones.inertia_met``), so a box flickering on a zone's edge does not send an
update per frame, and events and alerts agree. With it
comes the event's best thumbnail: a small JPEG of the highest-scoring sighting,
sent as its own binary message and referenced by event id.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import cv2

from edge_agent.track import TrackUpdate
from edge_agent.types import Box, Frame, ImageBGR, Lifecycle, ObjectEvent, Thumbnail, Track
from edge_agent.zones import Zone, inertia_met, zones_of

if TYPE_CHECKING:
    from edge_agent.config import EventsConfig
    from edge_agent.privacy import PrivacyFilter


@dataclass(frozen=True)
class EventSettings:
    update_min_interval_s: float = 5.0
    update_box_iou_below: float = 0.6
    update_score_gain: float = 0.1
    thumbnail_width_px: int = 320
    thumbnail_jpeg_quality: int = 70

    @classmethod
    def from_config(cls, config: EventsConfig) -> EventSettings:
        return cls(**config.model_dump())


@dataclass(frozen=True)
class EngineOutput:
    events: tuple[ObjectEvent, ...] = ()
    thumbnails: tuple[Thumbnail, ...] = ()


@dataclass
class _OpenEvent:
    event: ObjectEvent  # as last published
    last_published_mono_s: float
    published_box: Box
    best_thumbnail_score: float
    top_score: float
    # zone name -> consecutive sightings that disagree with the published membership
    # zone -> (sightings in a row that disagree with the published zones, since when)
    zone_streaks: dict[str, tuple[int, float]] = field(default_factory=dict)


def new_event_id(start_s: float) -> str:
    """Unique across devices and restarts, sortable by time: '1764448000.123-a1b2c3'."""
    return f"{start_s:.3f}-{secrets.token_hex(3)}"


def thumbnail_context(box: Box) -> Box:
    """What a thumbnail of ``box`` shows: the box and a quarter of its size around it."""
    margin_x, margin_y = box.width * 0.25, box.height * 0.25
    return Box(
        box.x_min - margin_x, box.y_min - margin_y, box.x_max + margin_x, box.y_max + margin_y
    ).clipped()


def jpeg_of_box(image: ImageBGR, box: Box, width_px: int, jpeg_quality: int) -> bytes:
    """A JPEG of the box with some context around it, at most ``width_px`` wide."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = thumbnail_context(box).to_pixels(width, height)
    crop = image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    if crop.shape[1] > width_px:
        scale = width_px / crop.shape[1]
        crop = cv2.resize(  # type: ignore[assignment]  # cv2's stubs lose the dtype
            crop, (width_px, max(1, round(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA
        )
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()


class EventEngine:
    def __init__(
        self,
        camera_id: str,
        *,
        labels_of_interest: Sequence[str],
        zones: Sequence[Zone] = (),
        settings: EventSettings | None = None,
        privacy: PrivacyFilter | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings or EventSettings()
        self._privacy = privacy  # masks and face blur on every thumbnail (docs/privacy.md)
        self._labels = frozenset(labels_of_interest)
        self._zones = tuple(zones)
        self._open: dict[int, _OpenEvent] = {}

    @property
    def open_events(self) -> int:
        return len(self._open)

    def update(self, frame: Frame, tracks: TrackUpdate) -> EngineOutput:
        events: list[ObjectEvent] = []
        thumbnails: list[Thumbnail] = []
        for track in tracks.seen:
            open_event = self._open.get(track.track_id)
            if open_event is None:
                if track.label not in self._labels:
                    continue
                # An event, once begun, follows its track whatever the vote says later.
                event, thumb = self._start(frame, track)
                events.append(event)
                thumbnails.append(thumb)
            else:
                stepped = self._step(frame, track, open_event)
                if stepped is not None:
                    events.append(stepped[0])
                    if stepped[1] is not None:
                        thumbnails.append(stepped[1])
        for track in tracks.ended:
            events.extend(self._end(track))
        return EngineOutput(tuple(events), tuple(thumbnails))

    def finish(self, ended_tracks: Sequence[Track]) -> EngineOutput:
        events: list[ObjectEvent] = []
        for track in ended_tracks:
            events.extend(self._end(track))
        return EngineOutput(tuple(events))

    def _thumbnail(self, frame: Frame, event_id: str, track: Track) -> Thumbnail:
        image = frame.image
        if self._privacy is not None:  # on the full frame, then cropped: no mask edge shows
            image = self._privacy.protect(image, focus=thumbnail_context(track.box))
        jpeg = jpeg_of_box(
            image,
            track.box,
            self.settings.thumbnail_width_px,
            self.settings.thumbnail_jpeg_quality,
        )
        return Thumbnail(event_id=event_id, camera_id=self.camera_id, jpeg=jpeg, score=track.score)

    def _start(self, frame: Frame, track: Track) -> tuple[ObjectEvent, Thumbnail]:
        start_s = frame.captured_at_s - (frame.monotonic_s - track.first_seen_s)
        event_id = new_event_id(start_s)
        event = ObjectEvent(
            event_id=event_id,
            lifecycle=Lifecycle.NEW,
            camera_id=self.camera_id,
            kind="object",
            label=track.label,
            score=track.score,
            top_score=track.score,
            box=track.box,
            zones=zones_of(self._zones, track.label, track.box),
            start_s=start_s,
            end_s=None,
            frame_time_s=frame.captured_at_s,
            has_thumbnail=True,
        )
        self._open[track.track_id] = _OpenEvent(
            event, frame.monotonic_s, track.box, track.score, track.score
        )
        return event, self._thumbnail(frame, event_id, track)

    def _step(
        self, frame: Frame, track: Track, open_event: _OpenEvent
    ) -> tuple[ObjectEvent, Thumbnail | None] | None:
        settings = self.settings
        previous = open_event.event
        open_event.top_score = max(open_event.top_score, track.score)
        zones = self._zones_with_inertia(track, open_event, frame.monotonic_s)
        better_sighting = (
            track.score >= open_event.best_thumbnail_score + settings.update_score_gain
        )
        moved = track.box.iou(open_event.published_box) < settings.update_box_iou_below
        interval_passed = (
            frame.monotonic_s - open_event.last_published_mono_s >= settings.update_min_interval_s
        )
        relabelled = track.label != previous.label
        significant = (
            zones != previous.zones
            or relabelled
            or (interval_passed and (moved or better_sighting))
        )
        if not significant:
            return None
        event = replace(
            previous,
            lifecycle=Lifecycle.UPDATE,
            label=track.label,
            score=track.score,
            top_score=open_event.top_score,
            box=track.box,
            zones=zones,
            frame_time_s=frame.captured_at_s,
        )
        open_event.event = event
        open_event.last_published_mono_s = frame.monotonic_s
        open_event.published_box = track.box
        thumbnail = None
        if better_sighting:
            open_event.best_thumbnail_score = track.score
            thumbnail = self._thumbnail(frame, event.event_id, track)
        return event, thumbnail

    def _zones_with_inertia(
        self, track: Track, open_event: _OpenEvent, now_s: float
    ) -> tuple[str, ...]:
        """The event's zones after this sighting: a zone joins or leaves only when
        ``inertia_frames`` sightings in a row disagree with what was published."""
        published = set(open_event.event.zones)
        sighted = set(zones_of(self._zones, track.label, track.box))
        streaks = open_event.zone_streaks
        zones: list[str] = []
        for zone in self._zones:
            inside = zone.name in published
            if (zone.name in sighted) == inside:
                streaks.pop(zone.name, None)
            else:
                count, since_s = streaks.get(zone.name, (0, now_s))
                streaks[zone.name] = (count + 1, since_s)
                if inertia_met(zone, count + 1, since_s, now_s):
                    inside = not inside
                    del streaks[zone.name]
            if inside:
                zones.append(zone.name)
        return tuple(zones)

    def _end(self, track: Track) -> list[ObjectEvent]:
        open_event = self._open.pop(track.track_id, None)
        if open_event is None:
            return []
        previous = open_event.event
        last_seen_wall_s = previous.frame_time_s + (
            track.last_seen_s - open_event.last_published_mono_s
        )
        return [
            replace(
                previous,
                lifecycle=Lifecycle.END,
                label=track.label,
                top_score=open_event.top_score,
                box=track.box,
                end_s=last_seen_wall_s,
                frame_time_s=last_seen_wall_s,
            )
        ]
