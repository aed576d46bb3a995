"""Shared plumbing of the zone rules: occupancy, schedule and the alert book."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from datetime import tzinfo
from typing import Protocol

from edge_agent.analytics import DetailValue, RuleContext, RuleOutput
from edge_agent.rules.base import AlertBook, Finding
from edge_agent.zones import Occupant, Zone, ZoneOccupancy


class AlertRuleSettings(Protocol):
    """What every alert rule's config gives the shared plumbing."""

    @property
    def rule_name(self) -> str: ...

    @property
    def labels(self) -> Sequence[str]: ...

    @property
    def end_grace_s(self) -> float: ...

    @property
    def update_min_interval_s(self) -> float: ...


def occupant_finding(
    occupant: Occupant,
    *,
    since_s: float,
    detail: Mapping[str, DetailValue],
    signature: Hashable | None = None,
) -> Finding:
    """The finding of a rule that raises one alert per object."""
    return Finding(
        since_s=since_s,
        labels=(occupant.track.label,),
        track_ids=(occupant.track.track_id,),
        box=occupant.track.box,
        signature=signature,
        detail=detail,
    )


def frame_aspect(context: RuleContext) -> float:
    height, width = context.frame.image.shape[:2]
    return width / height if height else 1.0


def occupants_now(occupancy: ZoneOccupancy, context: RuleContext) -> tuple[Occupant, ...]:
    """Step ``occupancy`` with this frame's tracks: every zone rule's first move."""
    return occupancy.update(
        context.tracks,
        context.now_s,
        detection_ran=context.detection_ran,
        aspect=frame_aspect(context),
    )


class ScheduledZoneRule:
    """An alert rule on one zone, silent while the zone's schedule is inactive.

    Subclasses say which occupants (or the zone) meet the condition in ``findings``.
    """

    kind = "zone"

    def __init__(
        self,
        config: AlertRuleSettings,
        *,
        zone: Zone,
        tz: tzinfo,
        persistence_s: float,
        still_tolerance_heights: float = 0.3,
    ) -> None:
        name = config.rule_name
        labels = frozenset(config.labels)
        end_grace_s = config.end_grace_s
        update_min_interval_s = config.update_min_interval_s
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
        occupants = occupants_now(self.occupancy, context)
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
