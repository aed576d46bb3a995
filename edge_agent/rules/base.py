"""What the alert rules share: turning "this condition holds now" into an alert lifecycle.

A rule says, each frame, which *subjects* (an occupant, or the zone itself) meet its
condition and since when. ``AlertBook`` does the rest the same way for every rule:

- ``new`` once a subject has met the condition for ``persistence_s`` (few false
  alarms: a one-second glimpse is not an intrusion);
- a gap shorter than ``end_grace_s`` does not end an alert (a missed detection, a
  person hidden for a moment); before ``new``, the rule's ``since_s`` decides;
- ``update`` when what the alert says changed (its *signature*: the number of
  people in a crowd, a vehicle's label), at most every ``update_min_interval_s``;
- ``end`` after the subject has been absent for ``end_grace_s``, with ``end`` set
  to the last time the condition held and the detail of that moment (a loiterer's
  whole dwell, a crowd's last size).

Times: rules measure durations on the monotonic (or scene) clock and publish wall
clock; ``wall_of`` converts using the frame being processed.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace

from edge_agent.analytics import Alert, DetailValue, RuleContext
from edge_agent.events import new_event_id
from edge_agent.types import Box, Lifecycle

EPSILON_S = 1e-6  # frame times are sums of 1/fps: compare durations with a little slack


def wall_of(context: RuleContext, monotonic_s: float) -> float:
    return context.wall_s - (context.now_s - monotonic_s)


def union_box(boxes: list[Box]) -> Box | None:
    if not boxes:
        return None
    return Box(
        min(b.x_min for b in boxes),
        min(b.y_min for b in boxes),
        max(b.x_max for b in boxes),
        max(b.y_max for b in boxes),
    )


@dataclass(frozen=True)
class Finding:
    """One subject meeting a rule's condition on this frame."""

    since_s: float  # monotonic: when the condition began to hold for this subject
    labels: tuple[str, ...]
    track_ids: tuple[int, ...]
    box: Box | None
    signature: Hashable = None  # a change of this is worth an update
    detail: Mapping[str, DetailValue] | None = None


@dataclass
class _Open:
    alert: Alert  # as last published
    signature: Hashable
    last_published_s: float
    last_present_s: float
    last_present_wall_s: float
    latest: Finding  # what the alert's end reports: the last time the condition held


class AlertBook:
    def __init__(
        self,
        *,
        kind: str,
        rule: str,
        zone: str | None,
        persistence_s: float,
        end_grace_s: float,
        update_min_interval_s: float,
    ) -> None:
        self.kind = kind
        self.rule = rule
        self.zone = zone
        self.persistence_s = persistence_s
        self.end_grace_s = end_grace_s
        self.update_min_interval_s = update_min_interval_s
        self._open: dict[Hashable, _Open] = {}

    @property
    def open_count(self) -> int:
        return len(self._open)

    def step(self, context: RuleContext, findings: Mapping[Hashable, Finding]) -> list[Alert]:
        now_s = context.now_s
        alerts: list[Alert] = []
        for key, finding in findings.items():
            opened = self._open.get(key)
            if opened is not None:
                update = self._maybe_update(context, opened, finding)
                if update is not None:
                    alerts.append(update)
                continue
            if now_s - finding.since_s >= self.persistence_s - EPSILON_S:
                alerts.append(self._new(context, key, finding.since_s, finding))
        for key in [k for k in self._open if k not in findings]:
            opened = self._open[key]
            if now_s - opened.last_present_s >= self.end_grace_s - EPSILON_S:
                alerts.append(self._end(context, key))
        return alerts

    def finish(self, context: RuleContext) -> list[Alert]:
        return [self._end(context, key) for key in list(self._open)]

    def _new(self, context: RuleContext, key: Hashable, since_s: float, finding: Finding) -> Alert:
        start_s = wall_of(context, since_s)
        alert = Alert(
            alert_id=new_event_id(start_s),
            lifecycle=Lifecycle.NEW,
            camera_id=context.camera_id,
            kind=self.kind,
            rule=self.rule,
            zone=self.zone,
            start_s=start_s,
            end_s=None,
            frame_time_s=context.wall_s,
            labels=finding.labels,
            track_ids=finding.track_ids,
            box=finding.box,
            detail=dict(finding.detail or {}),
        )
        self._open[key] = _Open(
            alert, finding.signature, context.now_s, context.now_s, context.wall_s, finding
        )
        return alert

    def _maybe_update(self, context: RuleContext, opened: _Open, finding: Finding) -> Alert | None:
        opened.last_present_s = context.now_s
        opened.last_present_wall_s = context.wall_s
        opened.latest = finding
        if finding.signature == opened.signature:
            return None
        if context.now_s - opened.last_published_s < self.update_min_interval_s - EPSILON_S:
            return None
        alert = _restated(opened.alert, Lifecycle.UPDATE, context, finding)
        opened.alert = alert
        opened.signature = finding.signature
        opened.last_published_s = context.now_s
        return alert

    def _end(self, context: RuleContext, key: Hashable) -> Alert:
        opened = self._open.pop(key)
        ended = _restated(opened.alert, Lifecycle.END, context, opened.latest)
        return replace(ended, end_s=opened.last_present_wall_s)


def _restated(alert: Alert, lifecycle: Lifecycle, context: RuleContext, finding: Finding) -> Alert:
    """``alert`` again as ``lifecycle`` on this frame, with what ``finding`` saw."""
    return replace(
        alert,
        lifecycle=lifecycle,
        frame_time_s=context.wall_s,
        labels=finding.labels,
        track_ids=finding.track_ids,
        box=finding.box,
        detail=dict(finding.detail or {}),
    )
