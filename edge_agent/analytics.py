"""The seams for city analytics: object rules and scene-state analyzers.

- An ``ObjectRule`` looks at the tracked objects of each analysed frame (intrusion,
  loitering, crowd, line crossing, congestion, stopped vehicle) and says when an
  *alert* starts, changes and ends, when a zone's *state* changes (congestion
  level), or what it *counted* (line crossings per period).
- A ``SceneAnalyzer`` looks at the picture itself, on a region of interest, for
  things that are not objects (water on the road, a rubbish pile, a covered or
  moved lens) and reports a *state change* only when its level changes, with
  hysteresis.

Both produce frozen values; the pipeline encodes and stores them (alerts and
states are durable, in priority order ALERT > EVENT > STATE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.types import Box, ClipRef, Frame, Lifecycle, Track

DetailValue = str | int | float | bool | None


@dataclass(frozen=True)
class RuleContext:
    """What a rule sees on one analysed frame."""

    camera_id: str
    frame: Frame
    now_s: float  # monotonic (or scene/media) seconds: use for durations
    wall_s: float  # seconds since the epoch: use for schedules and timestamps
    tracks: tuple[Track, ...]  # confirmed live tracks (seen this frame or coasting)
    detection_ran: bool  # False: the boxes are the last known ones


@dataclass(frozen=True)
class Alert:
    """One lifecycle step of an alert (``new`` / ``update`` / ``end``)."""

    alert_id: str
    lifecycle: Lifecycle
    camera_id: str
    kind: str  # "intrusion", "loitering", "crowd", "stopped_vehicle", ...
    rule: str  # the configured rule's name
    zone: str | None
    start_s: float  # wall clock
    end_s: float | None
    frame_time_s: float
    labels: tuple[str, ...] = ()
    track_ids: tuple[int, ...] = ()
    box: Box | None = None
    detail: Mapping[str, DetailValue] = field(default_factory=dict)
    clip: ClipRef | None = None  # on an ``end`` only, from the recorder; None: not recording


@dataclass(frozen=True)
class SceneState:
    """A new level of one analyzer (or rule) on one camera; published retained."""

    camera_id: str
    analyzer: str  # topic level: "flood", "garbage", "tamper", "congestion-bridge", ...
    state: str  # e.g. "none" / "puddle" / "flooded"
    since_s: float  # wall clock when this level began
    frame_time_s: float
    score: float | None = None  # the analyzer's measure (share of region, confidence)
    detail: Mapping[str, DetailValue] = field(default_factory=dict)


@dataclass(frozen=True)
class CountReport:
    """Objects that crossed a line during one period, by direction and label."""

    camera_id: str
    line: str
    period_start_s: float  # wall clock
    period_end_s: float
    counts: Mapping[str, Mapping[str, int]]  # direction -> label -> count


@dataclass(frozen=True)
class RuleOutput:
    alerts: tuple[Alert, ...] = ()
    states: tuple[SceneState, ...] = ()
    counts: tuple[CountReport, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.alerts or self.states or self.counts)


NO_OUTPUT = RuleOutput()


class ObjectRule(Protocol):
    @property
    def name(self) -> str: ...

    def update(self, context: RuleContext) -> RuleOutput: ...

    def finish(self, context: RuleContext) -> RuleOutput:
        """End open alerts and flush partial counts (end of file, clean stop)."""
        ...


class SceneAnalyzer(Protocol):
    @property
    def name(self) -> str: ...

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        """State changes caused by this frame (usually none)."""
        ...


def merge(outputs: list[RuleOutput]) -> RuleOutput:
    return RuleOutput(
        alerts=tuple(a for o in outputs for a in o.alerts),
        states=tuple(s for o in outputs for s in o.states),
        counts=tuple(c for o in outputs for c in o.counts),
    )
