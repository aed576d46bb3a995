"""Congestion: free / slow / jammed from vehicle count, speed and stillness, with
hysteresis and a minimum duration, published as retained state on change."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge_agent.analytics import RuleOutput, SceneState
from edge_agent.rules.config import CongestionRuleConfig
from edge_agent.rules.congestion import CongestionRule, Level
from edge_agent.rules.testing import RuleDriver, Seen, standing
from edge_agent.zones import Zone

ROAD = Zone("bridge", ((0.0, 0.4), (1.0, 0.4), (1.0, 0.95), (0.0, 0.95)), inertia_frames=2)
CONFIG = CongestionRuleConfig(
    zone="bridge",
    slow_min_vehicles=2,
    jammed_min_vehicles=3,
    slow_speed_heights_per_s=1.5,
    stationary_min_s=3.0,
    min_duration_s=5.0,
)
CAR_HEIGHT = 0.25  # frame heights; 0.1 frame widths per second is 0.71 heights per second


def car(track_id: int, x: float, lane: int) -> Seen:
    return Seen(track_id, "car", standing(x, 0.6 + 0.2 * lane, height=CAR_HEIGHT, aspect=2.4))


def states(produced: Sequence[tuple[float, RuleOutput]]) -> list[tuple[float, SceneState]]:
    return [(t, s) for t, out in produced for s in out.states]


def levels(produced: Sequence[tuple[float, RuleOutput]]) -> list[str]:
    return [s.state for _, s in states(produced)]


def run(scene: Callable[[float], Sequence[Seen]], seconds: float,
        config: CongestionRuleConfig = CONFIG) -> list[tuple[float, RuleOutput]]:  # fmt: skip
    return RuleDriver([CongestionRule(config, ROAD)]).run(seconds, scene)


def fast_traffic(t: float) -> list[Seen]:
    """Two cars at a time crossing at 0.3 frame widths per second (2.1 heights/s)."""
    return [car(1 + int(t // 4) * 2 + lane, ((t % 4) * 0.3) % 1.2, lane) for lane in (0, 1)]


def test_free_flow_is_published_once_as_free() -> None:
    produced = run(fast_traffic, 30.0)
    assert levels(produced) == ["free"]
    ((t, state),) = states(produced)
    assert state.analyzer == "congestion-bridge"
    assert t == 5.0 and state.since_s == RuleDriver([]).wall_of(0.0)  # min_duration_s
    assert state.detail["zone"] == "bridge"


def queue(t: float) -> list[Seen]:
    """Fast traffic to 10 s; then four cars crawl in (0.5 heights/s) to 25 s, stand until
    45 s, drive off fast; nothing from 50 s."""
    if t < 10.0:
        return fast_traffic(t)
    if t >= 50.0:
        return []
    cars = []
    for k, (lane, stop_x) in enumerate(((0, 0.7), (1, 0.65), (0, 0.35), (1, 0.3))):
        crawl = 0.07 * min(t - 10.0, 15.0)  # 0.07 frame widths/s = 0.5 heights/s
        x = stop_x - 0.07 * 15.0 + crawl
        if t >= 45.0:
            x = stop_x + 0.3 * (t - 45.0)
        cars.append(car(10 + k, x, lane))
    return cars


def test_a_queue_goes_slow_then_jammed_then_free() -> None:
    produced = run(queue, 60.0)
    assert levels(produced) == ["free", "slow", "jammed", "free"]
    times = [t for t, _ in states(produced)]
    assert 15.0 < times[1] < 25.0  # slow: 5 s after two crawling cars are in the picture
    # Jammed: stationary 3 s (within the stillness tolerance of their last creep), then 5 s.
    assert 25.0 + 3.0 + 5.0 - 1.0 <= times[2] < 36.0
    assert 45.0 + 5.0 <= times[3] < 58.0  # free again 5 s after they left
    jammed = states(produced)[2][1]
    assert jammed.detail["vehicles"] == 4 and jammed.score == 1.0


def test_a_short_jam_shorter_than_the_minimum_duration_is_not_published() -> None:
    config = CONFIG.model_copy(update={"min_duration_s": 20.0})
    assert "jammed" not in levels(run(queue, 60.0, config))  # it stands 17 s


def test_one_stationary_vehicle_is_not_a_jam() -> None:
    def scene(t: float) -> list[Seen]:
        return [car(1, 0.5, 0), car(2 + int(t // 4), ((t % 4) * 0.3) % 1.2, 1)]

    assert "jammed" not in levels(run(scene, 40.0))


def test_hysteresis_keeps_a_jam_through_one_vehicle_leaving() -> None:
    rule = CongestionRule(CONFIG, ROAD)
    rule.level = Level.JAMMED
    # Held: 2 of 2 stationary still a jam (one vehicle fewer than to start one) ...
    assert rule.raw_level(2, 0.0, 1.0) is Level.JAMMED
    # ... and 0.45 stationary is enough to stay (0.5 relaxed by 20 %) but not to start.
    assert rule.raw_level(4, 0.1, 0.45) is Level.JAMMED
    rule.level = Level.FREE
    assert rule.raw_level(2, 0.0, 1.0) is Level.SLOW
    assert rule.raw_level(4, 0.1, 0.45) is Level.SLOW
    # Slow must get 20 % faster than the threshold to be free again.
    rule.level = Level.SLOW
    assert rule.raw_level(3, 1.6, 0.0) is Level.SLOW
    assert rule.raw_level(3, 1.9, 0.0) is Level.FREE
    rule.level = Level.FREE
    assert rule.raw_level(3, 1.6, 0.0) is Level.FREE
    assert rule.raw_level(3, None, 0.0) is Level.FREE  # no speed known yet: not slow


def test_a_flicker_does_not_restart_the_minimum_duration() -> None:
    """A frame of different raw level (a missed detection) inside a candidate level."""

    def scene(t: float) -> list[Seen]:
        seen = queue(t)
        return seen[:1] if 30.0 <= t < 30.4 else seen

    jammed_at = [t for t, s in states(run(scene, 45.0)) if s.state == "jammed"]
    plain_at = [t for t, s in states(run(queue, 45.0)) if s.state == "jammed"]
    assert jammed_at and jammed_at[0] <= plain_at[0] + 1.0


def test_default_name_is_the_state_topic_level() -> None:
    assert CongestionRule(CONFIG, ROAD).name == "congestion-bridge"
    named = CONFIG.model_copy(update={"name": "inbound"})
    assert CongestionRule(named, ROAD).name == "inbound"
