"""How ``hw-sim eval`` scores alerts, states and counts (``hw_sim.eval.score``; pure:
synthetic runs, no video)."""

from __future__ import annotations

import pytest
from hw_sim.eval.report import format_table
from hw_sim.eval.score import Interval, ScenarioRun, match, score
from hw_sim.scenes import (
    Expectations,
    ExpectedAlert,
    ExpectedCount,
    ExpectedState,
)

from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.types import Lifecycle

T0 = 1_750_000_000.0


def alert(alert_id: str, kind: str, new_s: float, end_s: float, zone: str = "z") -> list[Alert]:
    base = Alert(
        alert_id=alert_id,
        lifecycle=Lifecycle.NEW,
        camera_id="cam",
        kind=kind,
        rule=f"{kind}-{zone}",
        zone=zone,
        start_s=T0 + new_s - 1.0,
        end_s=None,
        frame_time_s=T0 + new_s,
    )
    end = Alert(**{**base.__dict__, "lifecycle": Lifecycle.END, "end_s": T0 + end_s,
                   "frame_time_s": T0 + end_s + 2.0})  # fmt: skip
    return [base, end]


def state(topic: str, level: str, at_s: float) -> SceneState:
    return SceneState("cam", topic, level, T0 + at_s - 1.0, T0 + at_s)


def run(
    expectations: Expectations,
    *,
    alerts: list[Alert] | None = None,
    states: list[SceneState] | None = None,
    counts: list[CountReport] | None = None,
    duration_s: float = 100.0,
    kinds: tuple[str, ...] = (),
) -> ScenarioRun:
    return ScenarioRun(
        name="synthetic",
        duration_s=duration_s,
        frames=500,
        wall_s=1.0,
        clock_start_s=T0,
        alerts=alerts or [],
        states=states or [],
        counts=counts or [],
        rule_kinds=kinds,
        state_topics=(),
        expectations=expectations,
    )


def test_alerts_match_one_to_one_by_overlap() -> None:
    expectations = Expectations(
        alerts=(ExpectedAlert("intrusion", 10.0, 30.0, "z"), ExpectedAlert("intrusion", 50.0, 60.0))
    )
    observed = (
        alert("a", "intrusion", 12.0, 31.0)  # matches the first
        + alert("b", "intrusion", 20.0, 25.0)  # a duplicate: false alarm
        + alert("c", "intrusion", 80.0, 85.0)  # nothing there: false alarm
    )
    report = score([run(expectations, alerts=observed)])
    row = report.rows["alert:intrusion"]
    assert (row.expected, row.observed, row.matched_expected) == (2, 3, 1)
    assert row.precision == pytest.approx(1 / 3)
    assert row.recall == 0.5
    assert row.mean_delay_s == pytest.approx(2.0)
    assert row.false_alarms == 2
    assert row.false_alarms_per_hour == pytest.approx(72.0)


def test_the_tolerance_lets_a_late_alert_match() -> None:
    expectations = Expectations(alerts=(ExpectedAlert("crowd", 10.0, 20.0, "z"),))
    late = alert("a", "crowd", 23.0, 40.0)
    assert score([run(expectations, alerts=late)], tolerance_s=5.0).rows["alert:crowd"].recall == 1
    assert score([run(expectations, alerts=late)], tolerance_s=1.0).rows["alert:crowd"].recall == 0


def test_zone_and_kind_must_agree() -> None:
    expectations = Expectations(alerts=(ExpectedAlert("loitering", 10.0, 20.0, "plaza"),))
    wrong_zone = alert("a", "loitering", 12.0, 20.0, zone="road")
    wrong_kind = alert("b", "crowd", 12.0, 20.0, zone="plaza")
    report = score([run(expectations, alerts=wrong_zone + wrong_kind)])
    assert report.rows["alert:loitering"].recall == 0
    assert report.rows["alert:crowd"].false_alarms == 1


def test_match_prefers_the_largest_overlap() -> None:
    observed = [Interval("k", "", 0.0, 10.0), Interval("k", "", 8.0, 30.0)]
    expected = [Interval("k", "", 9.0, 30.0)]
    assert match(observed, expected, 0.0, zones=True) == [(1, 0)]


def test_states_score_as_episodes_with_time_weighted_agreement() -> None:
    topic = "congestion-bridge"
    expectations = Expectations(
        states=(
            ExpectedState(topic, "free", 0.0, 30.0),
            ExpectedState(topic, "jammed", 30.0, 60.0),
            ExpectedState(topic, "free", 60.0, 100.0),
        )
    )
    states = [
        state(topic, "free", 5.0),
        state(topic, "free", 10.0),  # the same level again: one episode
        state(topic, "jammed", 36.0),
        state(topic, "slow", 62.0),  # not expected anywhere near: a false alarm
        state(topic, "free", 70.0),
    ]
    report = score([run(expectations, states=states)])
    row = report.rows[f"state:{topic}"]
    assert (row.expected, row.observed, row.matched_expected, row.false_alarms) == (3, 4, 3, 1)
    assert row.mean_delay_s == pytest.approx((5.0 + 6.0 + 10.0) / 3)
    # Agreement: free 25 of 30 s, jammed 24 of 30 s, free 30 of 40 s.
    assert row.agreement == pytest.approx((25.0 + 24.0 + 30.0) / 100.0)


def test_counts_compare_per_direction_and_label_family() -> None:
    expectations = Expectations(
        counts=(
            ExpectedCount("road", "east", "car", 3),
            ExpectedCount("road", "west", "car", 2),
        )
    )
    reports = [
        CountReport("cam", "road", T0, T0 + 20, {"east": {"car": 2, "truck": 1}, "west": {}}),
        CountReport("cam", "road", T0 + 20, T0 + 40, {"east": {}, "west": {"car": 1}}),
        CountReport("cam", "road", T0 + 40, T0 + 60, {"east": {"person": 1}, "west": {}}),
    ]
    row = score([run(expectations, counts=reports)]).rows["count:road"]
    assert (row.expected, row.observed, row.matched_expected) == (5, 5, 4)
    assert row.precision == 0.8 and row.recall == 0.8
    assert sorted(row.count_errors) == [-1, 0, 1]
    assert row.within_one is True


def test_false_alarm_scenarios_are_totalled_apart() -> None:
    quiet = Expectations(false_alarm_check=True)
    report = score(
        [
            run(quiet, alerts=alert("a", "loitering", 10.0, 20.0), duration_s=1800.0),
            run(quiet, duration_s=1800.0, kinds=("crowd",)),
        ]
    )
    assert report.false_alarm_scenario_alarms == 1
    assert report.false_alarm_check_per_hour == pytest.approx(1.0)
    assert report.rows["alert:crowd"].simulated_s == 1800.0
    table = format_table(report)
    assert "loitering" in table and "1 false alarm(s) in 3600 simulated s (1.0/h)" in table
