"""Zones: named polygons in normalised coordinates, with schedules and inertia.

An object is in a zone when the middle of its box's bottom edge (where it stands)
is inside: a person's head may overlap a zone drawn on the ground without the
person standing in it.

Three things make zone membership usable for alerts:

- **labels**: a zone may care only about some labels (people on a plaza);
- **schedule**: a zone may be active only at some hours and days, in the site's
  timezone (intrusion only 22:00-05:00); a period that crosses midnight belongs to
  the day it starts on;
- **inertia**: an object must be seen inside on ``inertia_frames`` consecutive
  detection passes before it counts as in, and outside as many before it counts as
  out, so a box flickering on the zone's edge does not enter and leave. Those passes
  must also span ``inertia_frames - 1`` reference intervals (0.3 s for 3): at 30 fps
  three passes are 0.07 s, too short to tell a flicker from a step.

``ZoneOccupancy`` applies all of that to the tracker's output and adds what the
rules need on top: stable occupant ids across tracker id switches (a person lost
for a moment and found again where they stood keeps their dwell time), speed in
body heights per second, and how long an object has stood still.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from edge_agent.track import LOST_AFTER_S, TIME_SLACK_S, label_family
from edge_agent.types import REFERENCE_INTERVAL_S, Box, Track

if TYPE_CHECKING:
    from edge_agent.config import ZoneConfig

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60


def parse_clock(text: str) -> int:
    """'22:30' -> minutes after midnight; '24:00' is the end of the day (1440)."""
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= MINUTES_PER_DAY or int(minutes) >= 60:
        raise ValueError(f"not a time of day: {text!r}")
    return value


@dataclass(frozen=True)
class ZoneSchedule:
    """Active from ``start_min`` to ``end_min`` (minutes after local midnight) on ``days``.

    ``start_min > end_min`` crosses midnight: 22:00-05:00 on "fri" is active from
    Friday 22:00 to Saturday 05:00. ``days`` None means every day.
    """

    start_min: int = 0
    end_min: int = MINUTES_PER_DAY
    days: frozenset[int] | None = None  # 0 = Monday, as datetime.weekday()

    def __post_init__(self) -> None:
        if not (0 <= self.start_min < MINUTES_PER_DAY and 0 <= self.end_min <= MINUTES_PER_DAY):
            raise ValueError(f"schedule out of range: {self.start_min}-{self.end_min} min")
        if self.start_min == self.end_min:
            raise ValueError("a schedule's start and end must differ (00:00-24:00 is all day)")

    @classmethod
    def parse(cls, start: str, end: str, days: Iterable[str] | None = None) -> ZoneSchedule:
        return cls(
            parse_clock(start),
            parse_clock(end),
            None if days is None else frozenset(DAY_NAMES.index(d) for d in days),
        )

    def _day_ok(self, weekday: int) -> bool:
        return self.days is None or weekday in self.days

    def active_at(self, wall_s: float, tz: tzinfo) -> bool:
        local = datetime.fromtimestamp(wall_s, tz)
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min and self._day_ok(weekday)
        # Crosses midnight: the evening part belongs to today, the morning part to yesterday.
        if minute >= self.start_min:
            return self._day_ok(weekday)
        return minute < self.end_min and self._day_ok((weekday - 1) % 7)


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]
    labels: frozenset[str] | None = None  # None: every label
    schedule: ZoneSchedule | None = None  # None: always active
    inertia_frames: int = 3

    def contains(self, point: tuple[float, float]) -> bool:
        """Even-odd ray casting; points on an edge count as inside one of the neighbours."""
        x, y = point
        inside = False
        vertices = self.polygon
        j = len(vertices) - 1
        for i, (xi, yi) in enumerate(vertices):
            xj, yj = vertices[j]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
        return inside

    def accepts(self, label: str, box: Box) -> bool:
        return (self.labels is None or label in self.labels) and self.contains(box.bottom_centre)

    def active_at(self, wall_s: float, tz: tzinfo) -> bool:
        return self.schedule is None or self.schedule.active_at(wall_s, tz)


def inertia_met(zone: Zone, streak: int, since_s: float, now_s: float) -> bool:
    """Whether ``streak`` sightings in a row, the first at ``since_s``, change ``zone``'s
    membership: ``inertia_frames`` of them, spanning ``inertia_frames - 1`` reference
    intervals (a no-op at 5 fps and below)."""
    span_s = (zone.inertia_frames - 1) * REFERENCE_INTERVAL_S
    return streak >= zone.inertia_frames and now_s - since_s >= span_s - TIME_SLACK_S


def zones_of(zones: Sequence[Zone], label: str, box: Box) -> tuple[str, ...]:
    return tuple(zone.name for zone in zones if zone.accepts(label, box))


def zones_from_config(configs: Sequence[ZoneConfig]) -> list[Zone]:
    zones = []
    for z in configs:
        schedule = None
        if z.schedule is not None:
            schedule = ZoneSchedule.parse(z.schedule.start, z.schedule.end, z.schedule.days)
        zones.append(
            Zone(
                z.name,
                tuple(z.polygon),
                frozenset(z.labels) if z.labels is not None else None,
                schedule,
                z.inertia_frames,
            )
        )
    return zones


# --- occupancy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Occupant:
    """An object counted as inside a zone, as the rules see it."""

    occupant_id: int  # stable while the object stays, even across tracker id switches
    track: Track
    entered_s: float  # monotonic: start of the run of sightings that brought it in
    speed_heights_per_s: float | None  # None until it has been seen long enough
    still_since_s: float  # monotonic: since when it has not moved beyond the tolerance

    def still_for_s(self, now_s: float) -> float:
        return now_s - self.still_since_s


TAKEOVER_STILL_S = 2.0
"""Standing still at least this long before a new track may continue the occupant."""


@dataclass
class _Member:
    occupant_id: int
    inside: bool = False
    streak: int = 0  # consecutive sightings that contradict ``inside``
    streak_since_s: float = 0.0
    entered_s: float = 0.0
    history: deque[tuple[float, float, float, float]] = field(default_factory=deque)
    anchor: tuple[float, float] | None = None
    still_since_s: float = 0.0
    last_sighted_s: float = 0.0
    last_box: Box | None = None
    label: str = ""

    def stood_still_s(self) -> float:
        """How long it had been standing still when it was last seen."""
        return self.last_sighted_s - self.still_since_s


@dataclass(frozen=True)
class _Lost:
    member: _Member
    lost_s: float


def _at_border(box: Box, margin: float = 0.02) -> bool:
    """Cut by the left, right or bottom edge (the top edge only cuts heads: feet still show)."""
    return box.x_min <= margin or box.x_max >= 1.0 - margin or box.y_max >= 1.0 - margin / 2


def _ground_point(box: Box, aspect: float) -> tuple[float, float]:
    """Bottom-centre in frame-height units on both axes (so distances are isotropic)."""
    x, y = box.bottom_centre
    return x * aspect, y


class ZoneOccupancy:
    """Who is inside one zone, frame by frame, with inertia and re-identification.

    Only frames where the detector ran and saw the track count as sightings: a
    coasting track keeps the state it had. A track that was inside and vanished is
    remembered for ``rejoin_s``; a new track of the same kind that appears where it
    was (IoU >= 0.3, or feet within half a body height) takes over its occupant id,
    entry time and stillness, so one person standing still is one occupant even when
    the tracker loses and re-finds them. A track still coasting can be taken over the
    same way (see ``_take_over``). A track missed twice with its last box on the edge
    of the picture has left it: it stops counting at once instead of coasting on.
    """

    def __init__(
        self,
        zone: Zone,
        *,
        labels: frozenset[str] | None = None,
        rejoin_s: float = 5.0,
        speed_window_s: float = 2.0,
        still_tolerance_heights: float = 0.3,
    ) -> None:
        self.zone = zone
        self.labels = labels
        self.rejoin_s = rejoin_s
        self.speed_window_s = speed_window_s
        self.still_tolerance_heights = still_tolerance_heights
        self._members: dict[int, _Member] = {}  # by track id
        self._lost: list[_Lost] = []
        self._next_id = 1

    def wants(self, label: str) -> bool:
        return (self.labels is None or label in self.labels) and (
            self.zone.labels is None or label in self.zone.labels
        )

    def update(
        self, tracks: Sequence[Track], now_s: float, *, detection_ran: bool, aspect: float
    ) -> tuple[Occupant, ...]:
        """Occupants after this frame; ``aspect`` is the frame's width over its height."""
        wanted = [t for t in tracks if self.wants(t.label)]
        sighted_ids = {
            t.track_id for t in wanted if detection_ran and t.missed == 0 and t.last_seen_s >= now_s
        }
        # Missed twice (and unseen for as long as two passes at 5 fps) with its last box on
        # the picture's edge: it has left, not hidden.
        live_ids = {
            t.track_id
            for t in wanted
            if not (
                t.missed >= 2
                and now_s - t.last_seen_s >= LOST_AFTER_S - TIME_SLACK_S
                and _at_border(t.box)
            )
        }
        for track_id in [t for t in self._members if t not in live_ids]:
            gone = self._members.pop(track_id)
            if gone.inside:
                self._lost.append(_Lost(gone, now_s))
        self._lost = [lost for lost in self._lost if now_s - lost.lost_s <= self.rejoin_s]
        for track in wanted:
            if track.track_id not in live_ids:
                continue
            sighted = track.track_id in sighted_ids
            member = self._members.get(track.track_id)
            if member is None:
                if not sighted:
                    continue
                member = self._take_over(track, sighted_ids, aspect) or self._new_member(track)
                self._members[track.track_id] = member
            if sighted:
                self._sight(member, track, now_s, aspect)
        by_track = {t.track_id: t for t in tracks}
        return tuple(
            Occupant(
                occupant_id=m.occupant_id,
                track=by_track[track_id],
                entered_s=m.entered_s,
                speed_heights_per_s=self._speed(m),
                still_since_s=m.still_since_s,
            )
            for track_id, m in self._members.items()
            if m.inside
        )

    def _new_member(self, track: Track) -> _Member:
        member = _Member(self._next_id, label=track.label)
        self._next_id += 1
        return member

    def _take_over(self, track: Track, sighted_ids: set[int], aspect: float) -> _Member | None:
        """The occupant a new track continues: one lost a moment ago, or one whose track is
        coasting (not seen this frame), of the same kind and where this one is now.

        The tracker starts a new track when a person standing still starts to walk (its
        last box is a second old by then); without this they would enter the zone again.
        """
        family = label_family(track.label)
        x, y = _ground_point(track.box, aspect)
        candidates: list[tuple[int | None, _Member]] = [(None, lost.member) for lost in self._lost]
        candidates += [
            (track_id, m)
            for track_id, m in self._members.items()
            if m.inside and track_id not in sighted_ids
        ]
        best: tuple[float, int | None, _Member] | None = None
        if _at_border(track.box):
            return None  # coming into the picture: someone new
        for track_id, old in candidates:
            if old.last_box is None or label_family(old.label) != family:
                continue
            if _at_border(old.last_box):
                continue  # it left the picture
            if old.stood_still_s() < TAKEOVER_STILL_S:
                # Only someone who stood still is continued by a new track (the tracker
                # loses people who start to walk). A walker lost in a crowd is not: another
                # passer-by near its last box would inherit its time in the zone, which
                # made a busy market "loiter".
                continue
            ox, oy = _ground_point(old.last_box, aspect)
            distance = math.hypot(x - ox, y - oy)
            near = distance <= 0.5 * max(old.last_box.height, track.box.height)
            close = near or old.last_box.iou(track.box) >= 0.3
            if close and (best is None or distance < best[0]):
                best = (distance, track_id, old)
        if best is None:
            return None
        _, track_id, member = best
        if track_id is None:
            self._lost = [lost for lost in self._lost if lost.member is not member]
        else:
            del self._members[track_id]  # the old track coasts on, no longer an occupant
        member.history.clear()  # speeds start again; entry time and stillness carry over
        member.streak = 0
        return member

    def _sight(self, member: _Member, track: Track, now_s: float, aspect: float) -> None:
        member.last_box = track.box
        member.last_sighted_s = now_s
        member.label = track.label
        # A box cut by the picture's edge does not show where the object stands (and the
        # tracker may swap two people leaving and entering there): it is in no zone.
        inside_now = not _at_border(track.box) and self.zone.contains(track.box.bottom_centre)
        if inside_now == member.inside:
            member.streak = 0
        else:
            if member.streak == 0:
                member.streak_since_s = now_s
            member.streak += 1
            if inertia_met(self.zone, member.streak, member.streak_since_s, now_s):
                member.inside = inside_now
                member.streak = 0
                if inside_now:
                    member.entered_s = member.streak_since_s
        x, y = _ground_point(track.box, aspect)
        height = max(track.box.height, 1e-6)
        history = member.history
        history.append((now_s, x, y, height))
        while len(history) > 2 and now_s - history[1][0] >= self.speed_window_s:
            history.popleft()
        if member.anchor is None:
            member.anchor, member.still_since_s = (x, y), now_s
        else:
            ax, ay = member.anchor
            if math.hypot(x - ax, y - ay) > self.still_tolerance_heights * height:
                member.anchor, member.still_since_s = (x, y), now_s

    def _speed(self, member: _Member) -> float | None:
        history = member.history
        if len(history) < 2:
            return None
        t0, x0, y0, _ = history[0]
        t1, x1, y1, _ = history[-1]
        if t1 - t0 < 0.5 * self.speed_window_s:
            return None
        mean_height = sum(h for *_, h in history) / len(history)
        return math.hypot(x1 - x0, y1 - y0) / (t1 - t0) / mean_height
