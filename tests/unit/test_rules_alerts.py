"""Alert rules: intrusion, loitering, crowd, stopped vehicle — lifecycle, persistence, grace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from edge_agent.analytics import Alert, RuleOutput
from edge_agent.rules import build_rules
from edge_agent.rules.config import (
    CrowdRuleConfig,
    IntrusionRuleConfig,
    LoiteringRuleConfig,
    StoppedVehicleRuleConfig,
)
from edge_agent.rules.crowd import CrowdRule
from edge_agent.rules.intrusion import IntrusionRule
from edge_agent.rules.loitering import LoiteringRule
from edge_agent.rules.stopped_vehicle import StoppedVehicleRule
from edge_agent.rules.testing import RuleDriver, Seen, standing
from edge_agent.types import Lifecycle
from edge_agent.zones import Zone, ZoneSchedule

UTC = ZoneInfo("UTC")
LOWER_HALF = Zone("yard", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)), inertia_frames=2)


def alerts(produced: Sequence[tuple[float, RuleOutput]]) -> list[tuple[float, Alert]]:
    return [(t, a) for t, out in produced for a in out.alerts]


def steps(produced: Sequence[tuple[float, RuleOutput]]) -> list[tuple[str, str]]:
    return [(a.kind, a.lifecycle.value) for _, a in alerts(produced)]


def person_at(x: float, y: float = 0.8, track_id: int = 1) -> Seen:
    return Seen(track_id, "person", standing(x, y))


# --- intrusion ---------------------------------------------------------------------------


def test_intrusion_new_after_persistence_end_after_grace() -> None:
    rule = IntrusionRule(
        IntrusionRuleConfig(zone="yard", min_duration_s=1.0, end_grace_s=2.0), LOWER_HALF, UTC
    )
    driver = RuleDriver([rule], fps=5.0)
    produced = driver.run(12.0, lambda t: [person_at(0.5)] if 2.0 <= t < 6.0 else [])
    found = alerts(produced)
    assert [a.lifecycle for _, a in found] == [Lifecycle.NEW, Lifecycle.END]
    (t_new, new), (t_end, end) = found
    assert new.alert_id == end.alert_id
    assert new.kind == "intrusion" and new.zone == "yard" and new.rule == "intrusion-yard"
    assert new.labels == ("person",) and new.track_ids == (1,)
    # Enters at 2.0 (first of the two inertia sightings), alert once in for 1 s.
    assert t_new == 3.0
    assert new.start_s == driver.wall_of(2.0)
    # Last seen at 5.8; ends 2 s later, and says when the intrusion really stopped.
    assert t_end == 7.8
    assert end.end_s == driver.wall_of(5.8)


def test_a_glimpse_shorter_than_the_persistence_raises_nothing() -> None:
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard", min_duration_s=2.0), LOWER_HALF, UTC)
    produced = RuleDriver([rule]).run(10.0, lambda t: [person_at(0.5)] if 2 <= t < 3.4 else [])
    assert alerts(produced) == []


def test_a_short_disappearance_does_not_split_the_alert() -> None:
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard", end_grace_s=3.0), LOWER_HALF, UTC)
    hidden = (4.0, 5.5)  # tracker lost them: not in the live tracks at all
    produced = RuleDriver([rule]).run(
        14.0,
        lambda t: [person_at(0.5)] if 1.0 <= t < 9.0 and not hidden[0] <= t < hidden[1] else [],
    )
    assert steps(produced) == [("intrusion", "new"), ("intrusion", "end")]


def test_one_alert_per_intruder() -> None:
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard"), LOWER_HALF, UTC)

    def scene(t: float) -> list[Seen]:
        seen = []
        if 1.0 <= t < 8.0:
            seen.append(person_at(0.2, track_id=1))
        if 3.0 <= t < 8.0:
            seen.append(person_at(0.8, track_id=2))
        return seen

    found = alerts(RuleDriver([rule]).run(15.0, scene))
    news = [a for _, a in found if a.lifecycle is Lifecycle.NEW]
    assert [a.track_ids for a in news] == [(1,), (2,)]
    assert len({a.alert_id for a in news}) == 2
    assert sum(a.lifecycle is Lifecycle.END for _, a in found) == 2


def test_intrusion_labels_and_zone() -> None:
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard", labels=["car"]), LOWER_HALF, UTC)
    produced = RuleDriver([rule]).run(
        6.0, lambda t: [person_at(0.5), Seen(2, "dog", standing(0.3, 0.9)), person_at(0.7, 0.3, 3)]
    )
    assert alerts(produced) == []


def test_intrusion_only_while_the_schedule_is_active() -> None:
    night = Zone("yard", LOWER_HALF.polygon, schedule=ZoneSchedule.parse("22:00", "05:00"))
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard"), night, UTC)
    start = datetime.fromisoformat("2025-06-20T21:59:50+00:00").timestamp()
    driver = RuleDriver([rule], wall_start_s=start)
    # In the yard from 21:59:52 to 22:00:20: the alert starts at 22:00, not before.
    found = alerts(driver.run(40.0, lambda t: [person_at(0.5)] if 2.0 <= t < 30.0 else []))
    new = next(a for _, a in found if a.lifecycle is Lifecycle.NEW)
    assert new.start_s == driver.wall_of(10.0)
    assert new.frame_time_s == driver.wall_of(11.0)


def test_intrusion_ends_when_the_schedule_does() -> None:
    night = Zone("yard", LOWER_HALF.polygon, schedule=ZoneSchedule.parse("22:00", "05:00"))
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard", end_grace_s=2.0), night, UTC)
    start = datetime.fromisoformat("2025-06-21T04:59:40+00:00").timestamp()
    driver = RuleDriver([rule], wall_start_s=start)
    found = alerts(driver.run(40.0, lambda t: [person_at(0.5)]))
    assert [a.lifecycle for _, a in found] == [Lifecycle.NEW, Lifecycle.END]
    assert found[1][0] == 21.8  # last active frame (04:59:59.8) plus the grace


def test_finish_ends_open_alerts() -> None:
    rule = IntrusionRule(IntrusionRuleConfig(zone="yard"), LOWER_HALF, UTC)
    driver = RuleDriver([rule])
    produced = driver.run(5.0, lambda t: [person_at(0.5)])
    assert steps(produced) == [("intrusion", "new")]
    (end,) = driver.finish().alerts
    assert end.lifecycle is Lifecycle.END and end.end_s is not None


# --- loitering ---------------------------------------------------------------------------


def test_loitering_after_the_dwell_time_with_dwell_in_detail() -> None:
    rule = LoiteringRule(
        LoiteringRuleConfig(zone="yard", min_dwell_s=20.0, end_grace_s=3.0), LOWER_HALF, UTC
    )
    driver = RuleDriver([rule])
    found = alerts(driver.run(40.0, lambda t: [person_at(0.5)] if 1.0 <= t < 30.0 else []))
    (t_new, new), (t_end, end) = found
    assert (new.kind, new.lifecycle, t_new) == ("loitering", Lifecycle.NEW, 21.0)
    assert new.detail["dwell_s"] == 20.0
    assert new.start_s == driver.wall_of(1.0)
    assert end.lifecycle is Lifecycle.END and t_end == 32.8
    assert end.detail["dwell_s"] == 28.8  # the end tells the whole stay (1.0 to 29.8)


def test_walking_through_is_not_loitering() -> None:
    rule = LoiteringRule(LoiteringRuleConfig(zone="yard", min_dwell_s=10.0), LOWER_HALF, UTC)
    produced = RuleDriver([rule]).run(
        30.0, lambda t: [person_at(0.05 + 0.1 * t)] if t < 9.0 else []
    )
    assert alerts(produced) == []


def test_loitering_survives_the_tracker_losing_someone_standing_still() -> None:
    rule = LoiteringRule(
        LoiteringRuleConfig(zone="yard", min_dwell_s=10.0, end_grace_s=4.0), LOWER_HALF, UTC
    )

    def scene(t: float) -> list[Seen]:
        if t < 6.0:
            return [person_at(0.5, track_id=1)]
        if t < 8.0:
            return []  # lost
        return [person_at(0.51, track_id=9)] if t < 20.0 else []

    found = alerts(RuleDriver([rule]).run(30.0, scene))
    news = [(t, a) for t, a in found if a.lifecycle is Lifecycle.NEW]
    assert [(t, a.track_ids) for t, a in news] == [(10.0, (9,))]


# --- crowd -------------------------------------------------------------------------------


def crowd_scene(t: float) -> list[Seen]:
    """One person from t=1, a second from 3, a third from 5; from 15 they leave one by one."""
    people = []
    for k, (arrive, leave) in enumerate(((1.0, 21.0), (3.0, 19.0), (5.0, 15.0))):
        if arrive <= t < leave:
            people.append(person_at(0.2 + 0.3 * k, track_id=k + 1))
    return people


def test_crowd_new_update_end() -> None:
    config = CrowdRuleConfig(
        zone="yard", min_persons=2, min_duration_s=4.0, end_grace_s=2.0, update_min_interval_s=1.0
    )
    rule = CrowdRule(config, LOWER_HALF, UTC)
    driver = RuleDriver([rule])
    found = alerts(driver.run(30.0, crowd_scene))
    lifecycle = [(t, a.lifecycle, a.detail["persons"]) for t, a in found]
    # Two people from 3.2 (inertia), alert 4 s later; a third arrives at 5.2 but the
    # update waits for the minimum interval.
    assert lifecycle[0] == (7.2, Lifecycle.NEW, 3)
    assert (Lifecycle.UPDATE, 2) in [(lc, n) for _, lc, n in lifecycle]
    assert lifecycle[-1][1] is Lifecycle.END
    assert found[-1][1].end_s == driver.wall_of(18.8)  # the last frame with two people
    assert len({a.alert_id for _, a in found}) == 1
    assert found[0][1].track_ids == (1, 2, 3)
    assert found[0][1].box is not None


def test_no_crowd_below_the_minimum() -> None:
    config = CrowdRuleConfig(zone="yard", min_persons=4, min_duration_s=2.0)
    assert alerts(RuleDriver([CrowdRule(config, LOWER_HALF, UTC)]).run(30.0, crowd_scene)) == []


def test_a_crowd_too_short_is_not_a_crowd() -> None:
    config = CrowdRuleConfig(zone="yard", min_persons=3, min_duration_s=12.0)
    assert alerts(RuleDriver([CrowdRule(config, LOWER_HALF, UTC)]).run(30.0, crowd_scene)) == []


# --- stopped vehicle ---------------------------------------------------------------------


def car_at(x: float, track_id: int = 1) -> Seen:
    return Seen(track_id, "car", standing(x, 0.8, height=0.3, aspect=2.4))


def test_a_vehicle_stopped_longer_than_allowed() -> None:
    config = StoppedVehicleRuleConfig(zone="yard", min_stopped_s=10.0, end_grace_s=2.0)
    rule = StoppedVehicleRule(config, LOWER_HALF, UTC)

    def scene(t: float) -> list[Seen]:
        if t < 5.0:
            return [car_at(0.1 + 0.08 * t)]  # driving in
        if t < 25.0:
            return [car_at(0.5)]  # parked
        return [car_at(0.5 + 0.1 * (t - 25.0))]  # driving off

    driver = RuleDriver([rule])
    found = alerts(driver.run(32.0, scene))
    (t_new, new), (t_end, end) = found
    assert new.kind == "stopped_vehicle" and new.labels == ("car",)
    stopped_at = new.start_s - driver.wall_start_s  # the anchor tolerates the last creep
    assert 4.0 <= stopped_at <= 5.0
    assert t_new == pytest.approx(stopped_at + 10.0)
    assert end.lifecycle is Lifecycle.END and t_end < 30.0


def test_a_queue_creeping_forward_is_not_stopped() -> None:
    config = StoppedVehicleRuleConfig(zone="yard", min_stopped_s=10.0)
    rule = StoppedVehicleRule(config, LOWER_HALF, UTC)
    # 0.05 frame widths every 2 s: 0.09 frame heights, 0.3 of its height per 2 s.
    produced = RuleDriver([rule]).run(40.0, lambda t: [car_at(0.1 + 0.05 * (t // 1.5))])
    assert alerts(produced) == []


def test_a_short_stop_is_allowed() -> None:
    config = StoppedVehicleRuleConfig(zone="yard", min_stopped_s=10.0)
    rule = StoppedVehicleRule(config, LOWER_HALF, UTC)
    produced = RuleDriver([rule]).run(
        20.0, lambda t: [car_at(0.5 if 2.0 <= t < 8.0 else 0.1 + 0.05 * t)]
    )
    assert alerts(produced) == []


# --- build_rules -------------------------------------------------------------------------


def test_build_rules_makes_one_rule_per_config() -> None:
    rules = build_rules(
        [
            IntrusionRuleConfig(zone="yard"),
            LoiteringRuleConfig(zone="yard", name="benches"),
            CrowdRuleConfig(zone="yard"),
            StoppedVehicleRuleConfig(zone="yard"),
        ],
        zones=[LOWER_HALF],
        timezone="Asia/Jakarta",
    )
    assert [r.name for r in rules] == [
        "intrusion-yard",
        "benches",
        "crowd-yard",
        "stopped_vehicle-yard",
    ]
