"""A vehicle stopped where stopping is not allowed: standing still longer than
``min_stopped_s`` in the zone. One alert per vehicle; it ends when the vehicle
moves off (or leaves) for ``end_grace_s``.

"Still" means its ground point stayed within ``still_tolerance_heights`` of where
it stopped, so box jitter does not restart the clock but a car creeping forward in
a queue does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import tzinfo

from edge_agent.analytics import RuleContext
from edge_agent.rules.base import Finding
from edge_agent.rules.config import StoppedVehicleRuleConfig
from edge_agent.rules.zoned import ScheduledZoneRule, occupant_finding
from edge_agent.zones import Occupant, Zone

STOPPED_CONFIRM_S = 2.0


class StoppedVehicleRule(ScheduledZoneRule):
    kind = "stopped_vehicle"

    def __init__(self, config: StoppedVehicleRuleConfig, zone: Zone, tz: tzinfo) -> None:
        super().__init__(
            config,
            zone=zone,
            tz=tz,
            persistence_s=config.min_stopped_s,
            still_tolerance_heights=config.still_tolerance_heights,
        )

    def findings(
        self, context: RuleContext, occupants: tuple[Occupant, ...], active_since_s: float
    ) -> Mapping[Hashable, Finding]:
        # Stillness counts from when the vehicle stopped, but only inside the zone. A vehicle
        # counts as stopped once still for STOPPED_CONFIRM_S; moving on ends that at once.
        confirm_s = min(STOPPED_CONFIRM_S, self.book.persistence_s)
        return {
            o.occupant_id: occupant_finding(
                o,
                since_s=max(o.still_since_s, o.entered_s, active_since_s),
                detail={"stopped_s": round(o.still_for_s(context.now_s), 1)},
            )
            for o in occupants
            if o.still_for_s(context.now_s) >= confirm_s
        }
