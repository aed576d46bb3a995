"""Loitering: a person staying in a zone longer than ``min_dwell_s``.

One alert per person. Dwell counts from the moment the person entered the zone
(after inertia), and survives the tracker losing and re-finding someone standing
still (``ZoneOccupancy`` re-identifies them), which is exactly when it matters.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import tzinfo

from edge_agent.analytics import RuleContext
from edge_agent.rules.base import Finding
from edge_agent.rules.config import LoiteringRuleConfig
from edge_agent.rules.zoned import ScheduledZoneRule, occupant_finding
from edge_agent.zones import Occupant, Zone


class LoiteringRule(ScheduledZoneRule):
    kind = "loitering"

    def __init__(self, config: LoiteringRuleConfig, zone: Zone, tz: tzinfo) -> None:
        super().__init__(
            config,
            zone=zone,
            tz=tz,
            persistence_s=config.min_dwell_s,
        )

    def findings(
        self, context: RuleContext, occupants: tuple[Occupant, ...], active_since_s: float
    ) -> Mapping[Hashable, Finding]:
        return {
            o.occupant_id: occupant_finding(
                o,
                since_s=max(o.entered_s, active_since_s),
                detail={"dwell_s": round(context.now_s - max(o.entered_s, active_since_s), 1)},
            )
            for o in occupants
        }
