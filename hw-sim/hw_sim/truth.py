"""Ground truth computed from the actors' true paths, for the object-rule scenarios.

Where a truth interval depends on geometry (when do a person's feet enter the zone?
when is the bridge jammed?) it comes from the paths and the zone polygon, not typed in,
so moving an actor keeps the truth right. A point is in a zone by the agent's own test
(``edge_agent.zones.Zone.contains``), so truth and rules cannot disagree on an edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_agent.zones import Zone
from hw_sim.scenes import ExpectedState
from hw_sim.street import CAR_HEIGHT, Actor, perspective_scale

Polygon = tuple[tuple[float, float], ...]


def _zone(polygon: Polygon) -> Zone:
    return Zone("truth", polygon)


def in_zone_spans(actor: Actor, polygon: Polygon, step_s: float = 0.1) -> list[tuple[float, float]]:
    """Times the actor's ground point is inside ``polygon`` and inside the frame."""
    zone = _zone(polygon)
    spans: list[tuple[float, float]] = []
    start: float | None = None
    t_s, last_t = actor.path[0].t_s, actor.path[-1].t_s
    while t_s <= last_t + 1e-9:
        position = actor.position(t_s)
        inside = (
            position is not None
            and 0.0 <= position[0] <= 1.0
            and zone.contains((position[0], position[1]))
        )
        if inside and start is None:
            start = t_s
        elif not inside and start is not None:
            spans.append((round(start, 2), round(t_s, 2)))
            start = None
        t_s += step_s
    if start is not None:
        spans.append((round(start, 2), round(last_t, 2)))
    return spans


def _car_height(y: float) -> float:
    """A car's box height (frame heights) with its ground point at ``y`` (scenes' perspective)."""
    return CAR_HEIGHT * perspective_scale(y)


def congestion_truth(
    actors: Sequence[Actor],
    polygon: Polygon,
    *,
    analyzer: str,
    duration_s: float,
    rule: dict[str, Any],
    aspect: float = 16.0 / 9.0,
    step_s: float = 0.2,
) -> tuple[ExpectedState, ...]:
    """The congestion level the rule's own definition gives on the true paths.

    Per time step: the vehicles whose ground point is in the zone and the frame, their
    speed in heights per second, and how long each has stood still; levels as in
    edge_agent.rules.congestion without hysteresis. Runs shorter than the rule's
    ``min_duration_s`` are left out (transitions: no level is expected there).
    """
    zone = _zone(polygon)
    slow_min = int(rule["slow_min_vehicles"])
    jammed_min = int(rule["jammed_min_vehicles"])
    slow_speed = float(rule["slow_speed_heights_per_s"])
    jammed_fraction = float(rule["jammed_stationary_fraction"])
    stationary_min_s = float(rule["stationary_min_s"])
    min_run_s = float(rule["min_duration_s"])
    still_since: dict[str, float] = {}
    levels: list[tuple[float, str]] = []
    n_steps = int(duration_s / step_s) + 1
    for k in range(n_steps):
        t_s = k * step_s
        speeds: list[float] = []
        stationary = 0
        for actor in actors:
            here, before = actor.position(t_s), actor.position(t_s - step_s)
            if here is None or not (0.0 <= here[0] <= 1.0 and zone.contains((here[0], here[1]))):
                still_since.pop(actor.object_id, None)
                continue
            if before is None:
                speed = float("inf")
            else:
                moved = np.hypot((here[0] - before[0]) * aspect, here[1] - before[1])
                speed = float(moved) / step_s / _car_height(here[1])
            speeds.append(speed)
            if speed > 1e-6:
                still_since.pop(actor.object_id, None)
            else:
                still_since.setdefault(actor.object_id, t_s)
                if t_s - still_since[actor.object_id] >= stationary_min_s:
                    stationary += 1
        count = len(speeds)
        fraction = stationary / count if count else 0.0
        if count >= jammed_min and fraction >= jammed_fraction:
            level = "jammed"
        elif count >= slow_min and (
            sum(speeds) / count < slow_speed or fraction >= jammed_fraction
        ):
            level = "slow"
        else:
            level = "free"
        levels.append((t_s, level))
    runs: list[tuple[str, float, float]] = []
    for t_s, level in levels:
        if runs and runs[-1][0] == level:
            runs[-1] = (level, runs[-1][1], t_s)
        else:
            runs.append((level, t_s, t_s))
    return tuple(
        ExpectedState(analyzer, level, round(start, 2), round(end, 2))
        for level, start, end in runs
        if end - start >= min_run_s
    )
