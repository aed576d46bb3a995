"""Crowd: at least ``min_persons`` in a zone for at least ``min_duration_s``.

One alert per zone, updated when the number of people changes (buskers gathering:
3, then 5, then 4 as one leaves), ended when fewer than ``min_persons`` have been
there for ``end_grace_s``. A dip shorter than ``end_grace_s`` before the alert
does not restart ``min_duration_s`` either.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import tzinfo

from edge_agent.analytics import RuleContext
from edge_agent.rules.base import Finding, union_box
from edge_agent.rules.config import CrowdRuleConfig
from edge_agent.rules.zoned import ScheduledZoneRule
from edge_agent.zones import Occupant, Zone


class CrowdRule(ScheduledZoneRule):
    kind = "crowd"

    def __init__(self, config: CrowdRuleConfig, zone: Zone, tz: tzinfo) -> None:
        super().__init__(
            config,
            zone=zone,
            tz=tz,
            persistence_s=config.min_duration_s,
        )
        self.min_persons = config.min_persons
        self.gap_tolerance_s = config.end_grace_s
        self._since_s: float | None = None  # when the zone last began to hold enough people
        self._last_met_s = 0.0

    def findings(
        self, context: RuleContext, occupants: tuple[Occupant, ...], active_since_s: float
    ) -> Mapping[Hashable, Finding]:
        now_s = context.now_s
        if len(occupants) < self.min_persons:
            if self._since_s is not None and now_s - self._last_met_s > self.gap_tolerance_s:
                self._since_s = None
            return {}
        if self._since_s is None:
            self._since_s = max(now_s, active_since_s)
        self._last_met_s = now_s
        tracks = sorted((o.track for o in occupants), key=lambda t: t.track_id)
        return {
            self.zone.name: Finding(
                since_s=max(self._since_s, active_since_s),
                labels=tuple(sorted({t.label for t in tracks})),
                track_ids=tuple(t.track_id for t in tracks),
                box=union_box([t.box for t in tracks]),
                signature=len(tracks),
                detail={"persons": len(tracks)},
            )
        }
