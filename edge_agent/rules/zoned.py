"""Shared plumbing of the zone rules: occupancy, schedule and the alert book."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import tzinfo

from edge_agent.analytics import RuleContext, RuleOutput
from edge_agent.rules.base import AlertBook, Finding
from edge_agent.zones import Occupant, Zone, ZoneOccupancy


def frame_aspect(context: RuleContext) -> float:
    height, width = context.frame.image.shape[:2]
    return width / height if height else 1.0


class ScheduledZoneRule:
    """An alert rule on one zone, silent while the zone's schedule is inactive.

    Subclasses say which occupants (or the zone) meet the condition in ``findings``.
    """

    kind = "zone"

    def __init__(
        self,
        *,
        name: str,
        zone: Zone,
        labels: frozenset[str],
        tz: tzinfo,
        persistence_s: float,
        end_grace_s: float,
        update_min_interval_s: float,
        still_tolerance_heights: float = 0.3,
    ) -> None:
        self._name = name
        self.zone = zone
        self.tz = tz
        self.occupancy = ZoneOccupancy(
            zone,
            labels=labels,
            rejoin_s=end_grace_s,
            still_tolerance_heights=still_tolerance_heights,
        )
        self.book = AlertBook(
            kind=self.kind,
            rule=name,
            zone=zone.name,
            persistence_s=persistence_s,
            end_grace_s=end_grace_s,
            update_min_interval_s=update_min_interval_s,
        )
        self._active_since_s: float | None = None

    @property
    def name(self) -> str:
        return self._name

    def findings(
        self, context: RuleContext, occupants: tuple[Occupant, ...], active_since_s: float
    ) -> Mapping[Hashable, Finding]:
        raise NotImplementedError

    def update(self, context: RuleContext) -> RuleOutput:
        occupants = self.occupancy.update(
            context.tracks,
            context.now_s,
            detection_ran=context.detection_ran,
            aspect=frame_aspect(context),
        )
        if self.zone.active_at(context.wall_s, self.tz):
            if self._active_since_s is None:
                self._active_since_s = context.now_s
            found = self.findings(context, occupants, self._active_since_s)
        else:
            self._active_since_s = None
            found = {}
        return RuleOutput(alerts=tuple(self.book.step(context, found)))

    def finish(self, context: RuleContext) -> RuleOutput:
        return RuleOutput(alerts=tuple(self.book.finish(context)))
