"""Intrusion: a person or vehicle in a zone while the zone's schedule is active.

One alert per object (per occupant: an object re-found where it was lost keeps its
alert), so an operator sees how many intruders there were and can follow each.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import tzinfo

from edge_agent.analytics import RuleContext
from edge_agent.rules.base import Finding
from edge_agent.rules.config import IntrusionRuleConfig
from edge_agent.rules.zoned import ScheduledZoneRule, occupant_finding
from edge_agent.zones import Occupant, Zone


class IntrusionRule(ScheduledZoneRule):
    kind = "intrusion"

    def __init__(self, config: IntrusionRuleConfig, zone: Zone, tz: tzinfo) -> None:
        super().__init__(
            config,
            zone=zone,
            tz=tz,
            persistence_s=config.min_duration_s,
        )

    def findings(
        self, context: RuleContext, occupants: tuple[Occupant, ...], active_since_s: float
    ) -> Mapping[Hashable, Finding]:
        return {
            o.occupant_id: occupant_finding(
                o,
                since_s=max(o.entered_s, active_since_s),
                signature=o.track.label,
                detail={"score": round(o.track.score, 3)},
            )
            for o in occupants
        }
