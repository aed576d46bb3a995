"""Line crossing counts: objects whose ground point crosses a line, per direction.

The line runs from ``a`` to ``b`` in normalised coordinates. Each track has a side
(left or right of the line, looking from ``a`` to ``b``), updated only when its
ground point is further than ``dead_band`` from the line, so a box jittering on
the line does not count twice. A change of side counts once, in its direction,
if the path crossed the segment itself (not the line's extension).

Counts are reported once per ``period_s``, in periods aligned to the wall clock
(a 60 s period ends on each full minute), including periods where nothing crossed:
a report of zeros says "counted, nothing passed", which silence cannot. ``finish``
reports the partial period.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from edge_agent.analytics import CountReport, RuleContext, RuleOutput
from edge_agent.rules.config import LineCrossingRuleConfig
from edge_agent.rules.zoned import frame_aspect
from edge_agent.types import Track


@dataclass
class _Side:
    side: int  # -1 left, +1 right
    point: tuple[float, float]  # the last ground point with that side (frame-height units)


class LineCrossingRule:
    def __init__(self, config: LineCrossingRuleConfig) -> None:
        self.config = config
        self.labels = None if config.labels is None else frozenset(config.labels)
        self._sides: dict[int, _Side] = {}
        self._counts: Counter[tuple[str, str]] = Counter()  # (direction, label)
        self._period_start_s: float | None = None  # wall clock
        self.total: Counter[tuple[str, str]] = Counter()  # since start, for tests and stats

    @property
    def name(self) -> str:
        return self.config.name

    def _line(self, aspect: float) -> tuple[tuple[float, float], tuple[float, float]]:
        (ax, ay), (bx, by) = self.config.a, self.config.b
        return (ax * aspect, ay), (bx * aspect, by)

    def _signed_distance(self, point: tuple[float, float], aspect: float) -> float:
        """Positive on the right of a->b (image y points down), in frame heights."""
        (ax, ay), (bx, by) = self._line(aspect)
        px, py = point
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        return cross / math.hypot(bx - ax, by - ay)

    def _crosses_segment(
        self, p0: tuple[float, float], p1: tuple[float, float], aspect: float
    ) -> bool:
        """Does the path p0 -> p1 meet the line between a and b (a little slack at the ends)?"""
        (ax, ay), (bx, by) = self._line(aspect)
        d0 = self._signed_distance(p0, aspect)
        d1 = self._signed_distance(p1, aspect)
        if d0 == d1:
            return False
        share = d0 / (d0 - d1)
        x, y = p0[0] + (p1[0] - p0[0]) * share, p0[1] + (p1[1] - p0[1]) * share
        length_sq = (bx - ax) ** 2 + (by - ay) ** 2
        along = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length_sq
        return -0.05 <= along <= 1.05

    def _observe(self, track: Track, aspect: float) -> tuple[str, str] | None:
        x, y = track.box.bottom_centre
        point = (x * aspect, y)
        distance = self._signed_distance(point, aspect)
        if abs(distance) <= self.config.dead_band:
            return None
        side = 1 if distance > 0 else -1
        previous = self._sides.get(track.track_id)
        self._sides[track.track_id] = _Side(side, point)
        if previous is None or previous.side == side:
            return None
        if not self._crosses_segment(previous.point, point, aspect):
            return None
        forward, backward = self.config.direction_names
        return (forward if side > 0 else backward), track.label

    def _report(self, context: RuleContext, end_s: float) -> CountReport:
        assert self._period_start_s is not None
        directions = self.config.direction_names
        by_direction: dict[str, dict[str, int]] = {d: {} for d in directions}
        for (direction, label), count in sorted(self._counts.items()):
            by_direction[direction][label] = count
        report = CountReport(
            camera_id=context.camera_id,
            line=self.name,
            period_start_s=self._period_start_s,
            period_end_s=end_s,
            counts=by_direction,
        )
        self._counts.clear()
        self._period_start_s = end_s
        return report

    def update(self, context: RuleContext) -> RuleOutput:
        period_s = self.config.period_s
        reports = []
        if self._period_start_s is None:
            self._period_start_s = context.wall_s
        else:
            boundary = (math.floor(self._period_start_s / period_s) + 1) * period_s
            if context.wall_s >= boundary:
                reports.append(self._report(context, boundary))
                # A long pause in frames (a stall) starts the next period now, not in the past.
                if context.wall_s - boundary >= period_s:
                    self._period_start_s = context.wall_s
        aspect = frame_aspect(context)
        live = set()
        for track in context.tracks:
            live.add(track.track_id)
            if self.labels is not None and track.label not in self.labels:
                continue
            if not context.detection_ran or track.missed:
                continue
            crossed = self._observe(track, aspect)
            if crossed is not None:
                self._counts[crossed] += 1
                self.total[crossed] += 1
        for track_id in [t for t in self._sides if t not in live]:
            del self._sides[track_id]
        return RuleOutput(counts=tuple(reports))

    def finish(self, context: RuleContext) -> RuleOutput:
        if self._period_start_s is None:
            return RuleOutput()
        return RuleOutput(
            counts=(self._report(context, max(context.wall_s, self._period_start_s)),)
        )
