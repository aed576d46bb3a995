"""Traffic congestion in a zone: free / slow / jammed, as retained state on change.

Each frame the rule measures the vehicles in the zone: how many, their mean speed
(vehicle heights per second over ``speed_window_s``) and the share that has stood
still for ``stationary_min_s``. That gives a *raw* level:

- ``jammed``: at least ``jammed_min_vehicles`` and at least
  ``jammed_stationary_fraction`` of them stationary;
- ``slow``: at least ``slow_min_vehicles`` and a mean speed below
  ``slow_speed_heights_per_s`` (or enough of them stationary);
- ``free``: anything else.

Two things keep the published level from flapping. Hysteresis: while a level is
held its thresholds are relaxed by ``hysteresis`` (a jam needs a smaller share of
stationary vehicles, and one vehicle fewer, to stay a jam than to become one; slow
traffic must get ``hysteresis`` faster to be free again). Minimum duration: a
different raw level must hold for ``min_duration_s`` before it is published;
interruptions shorter than a quarter of that (a missed detection) do not restart
the clock. The first level
is published once it has held that long after start, so the retained topic is
never empty for long.
"""

from __future__ import annotations

from enum import Enum

from edge_agent.analytics import RuleContext, RuleOutput, SceneState
from edge_agent.rules.base import wall_of
from edge_agent.rules.config import CongestionRuleConfig
from edge_agent.rules.zoned import occupants_now
from edge_agent.zones import Occupant, Zone, ZoneOccupancy


class Level(str, Enum):
    FREE = "free"
    SLOW = "slow"
    JAMMED = "jammed"


class CongestionRule:
    def __init__(self, config: CongestionRuleConfig, zone: Zone) -> None:
        self.config = config
        self.zone = zone
        self.occupancy = ZoneOccupancy(
            zone,
            labels=frozenset(config.labels),
            rejoin_s=config.stationary_min_s,
            speed_window_s=config.speed_window_s,
            still_tolerance_heights=config.still_tolerance_heights,
        )
        self.level: Level | None = None  # as published
        self._candidate: Level | None = None
        self._candidate_since_s = 0.0
        self._candidate_seen_s = 0.0

    @property
    def name(self) -> str:
        return self.config.rule_name

    def measure(
        self, occupants: tuple[Occupant, ...], now_s: float
    ) -> tuple[int, float | None, float]:
        """(vehicles, mean speed in heights/s or None if no speed is known yet, share
        of vehicles stationary)."""
        count = len(occupants)
        if count == 0:
            return 0, None, 0.0
        speeds = [o.speed_heights_per_s for o in occupants if o.speed_heights_per_s is not None]
        stationary = sum(
            1 for o in occupants if o.still_for_s(now_s) >= self.config.stationary_min_s
        )
        mean_speed = sum(speeds) / len(speeds) if speeds else None
        return count, mean_speed, stationary / count

    def raw_level(self, count: int, mean_speed: float | None, stationary_fraction: float) -> Level:
        c, held, relax = self.config, self.level, self.config.hysteresis
        jam_fraction = c.jammed_stationary_fraction * (1.0 - relax if held is Level.JAMMED else 1.0)
        jam_count = c.jammed_min_vehicles - (1 if held is Level.JAMMED else 0)
        slow_speed = c.slow_speed_heights_per_s * (
            1.0 + relax if held in (Level.SLOW, Level.JAMMED) else 1.0
        )
        if count >= max(1, jam_count) and stationary_fraction >= jam_fraction:
            return Level.JAMMED
        slow = mean_speed is not None and mean_speed < slow_speed
        if count >= c.slow_min_vehicles and (slow or stationary_fraction >= jam_fraction):
            return Level.SLOW
        return Level.FREE

    def update(self, context: RuleContext) -> RuleOutput:
        occupants = occupants_now(self.occupancy, context)
        now_s = context.now_s
        count, mean_speed, stationary_fraction = self.measure(occupants, now_s)
        raw = self.raw_level(count, mean_speed, stationary_fraction)
        gap_s = self.config.min_duration_s / 4.0
        if raw is self._candidate:
            self._candidate_seen_s = now_s
        elif now_s - self._candidate_seen_s > gap_s or self._candidate is None:
            # The candidate has not been seen for a while: this raw level is the new one.
            self._candidate = None if raw is self.level else raw
            self._candidate_since_s = self._candidate_seen_s = now_s
        if self._candidate is None or raw is not self._candidate:
            return RuleOutput()
        if now_s - self._candidate_since_s < self.config.min_duration_s:
            return RuleOutput()
        raw = self._candidate
        self.level, self._candidate = raw, None
        state = SceneState(
            camera_id=context.camera_id,
            analyzer=self.name,
            state=raw.value,
            since_s=wall_of(context, self._candidate_since_s),
            frame_time_s=context.wall_s,
            score=round(stationary_fraction, 4),
            detail={
                "zone": self.zone.name,
                "vehicles": count,
                "mean_speed_heights_per_s": None if mean_speed is None else round(mean_speed, 3),
                "stationary_fraction": round(stationary_fraction, 3),
            },
        )
        return RuleOutput(states=(state,))

    def finish(self, context: RuleContext) -> RuleOutput:
        """States are retained and stay true after a stop: nothing to close."""
        return RuleOutput()
