"""Line crossing: direction by side change of the ground point, a dead band against
jitter, the segment's extent, and periodic reports aligned to the clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge_agent.analytics import CountReport, RuleOutput
from edge_agent.rules.config import LineCrossingRuleConfig
from edge_agent.rules.line_crossing import LineCrossingRule
from edge_agent.rules.testing import WALL_START_S, RuleDriver, Seen, standing

# A line across the road, drawn left to right: walking down the picture (towards the
# camera) crosses from its left side to its right side: "in".
ACROSS = LineCrossingRuleConfig(name="kerb", a=(0.2, 0.6), b=(0.8, 0.6), period_s=10.0)


def person(track_id: int, x: float, y: float) -> Seen:
    return Seen(track_id, "person", standing(x, y, height=0.3))


Scene = Callable[[float], Sequence[Seen]]


def run(
    scene: Scene, seconds: float, config: LineCrossingRuleConfig = ACROSS
) -> tuple[RuleDriver, list[CountReport]]:
    driver = RuleDriver([LineCrossingRule(config)])
    produced = driver.run(seconds, scene)
    reports = [c for _, out in produced for c in out.counts]
    reports.extend(driver.finish().counts)
    return driver, reports


def totals(reports: Sequence[CountReport]) -> dict[tuple[str, str], int]:
    result: dict[tuple[str, str], int] = {}
    for report in reports:
        for direction, by_label in report.counts.items():
            for label, n in by_label.items():
                result[(direction, label)] = result.get((direction, label), 0) + n
    return result


def test_directions() -> None:
    def scene(t: float) -> list[Seen]:
        return [
            person(1, 0.3, 0.4 + 0.05 * t),  # down the picture: in
            person(2, 0.6, 0.9 - 0.05 * t),  # up: out
            person(3, 0.45, 0.9 - 0.05 * t),  # up: out
        ]

    _, reports = run(scene, 9.0)
    assert totals(reports) == {("in", "person"): 1, ("out", "person"): 2}


def test_labels_are_counted_separately_and_filtered() -> None:
    def scene(t: float) -> list[Seen]:
        return [
            person(1, 0.3, 0.4 + 0.05 * t),
            Seen(2, "car", standing(0.6, 0.4 + 0.05 * t, height=0.2, aspect=2.0)),
        ]

    _, reports = run(scene, 9.0)
    assert totals(reports) == {("in", "person"): 1, ("in", "car"): 1}
    cars_only = ACROSS.model_copy(update={"labels": ["car"]})
    _, reports = run(scene, 9.0, cars_only)
    assert totals(reports) == {("in", "car"): 1}


def test_jitter_on_the_line_counts_once_or_not_at_all() -> None:
    def scene(t: float) -> list[Seen]:
        k = round(t * 5)
        return [person(1, 0.5, 0.6 + (0.01 if k % 2 else -0.01))]  # inside the dead band

    _, reports = run(scene, 10.0)
    assert totals(reports) == {}

    def crossing_with_jitter(t: float) -> list[Seen]:
        k = round(t * 5)
        y = 0.5 + 0.02 * t + (0.015 if k % 2 else -0.015)
        return [person(1, 0.5, y)]

    _, reports = run(crossing_with_jitter, 10.0)
    assert totals(reports) == {("in", "person"): 1}


def test_walking_past_the_end_of_the_line_does_not_count() -> None:
    _, reports = run(lambda t: [person(1, 0.9, 0.4 + 0.05 * t)], 9.0)
    assert totals(reports) == {}


def test_a_new_track_on_the_far_side_is_not_a_crossing() -> None:
    """A track's first sighting only sets its side."""

    def scene(t: float) -> list[Seen]:
        return [person(1, 0.5, 0.5)] if t < 2.0 else [person(2, 0.5, 0.7)]

    _, reports = run(scene, 4.0)
    assert totals(reports) == {}


def test_frames_without_detection_and_coasting_tracks_are_not_used() -> None:
    rule = LineCrossingRule(ACROSS)
    driver = RuleDriver([rule])
    driver.step([person(1, 0.5, 0.5)])
    driver.step([Seen(1, "person", standing(0.5, 0.7, height=0.3), missed=1)])
    driver.step([person(1, 0.5, 0.7)], detection_ran=False)
    assert not rule.total
    driver.step([person(1, 0.5, 0.7)])
    assert dict(rule.total) == {("in", "person"): 1}


def test_reports_every_period_aligned_to_the_clock_with_zeros() -> None:
    # WALL_START_S is a multiple of 10 s: periods end at +10, +20, +30, then a partial one.
    assert WALL_START_S % 10.0 == 0.0

    def scene(t: float) -> list[Seen]:
        return [person(1, 0.3, 0.45 + 0.05 * t)] if t < 10.0 else []

    driver, reports = run(scene, 35.0)
    spans = [(r.period_start_s - WALL_START_S, r.period_end_s - WALL_START_S) for r in reports]
    assert spans == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 35.0)]
    assert reports[0].counts == {"in": {"person": 1}, "out": {}}
    assert reports[1].counts == {"in": {}, "out": {}}
    assert all(r.line == "kerb" and r.camera_id == driver.camera_id for r in reports)


def test_direction_names() -> None:
    named = ACROSS.model_copy(update={"direction_names": ("southbound", "northbound")})
    _, reports = run(lambda t: [person(1, 0.3, 0.9 - 0.05 * t)], 9.0, named)
    assert totals(reports) == {("northbound", "person"): 1}


def output_counts(outputs: Sequence[RuleOutput]) -> int:
    return sum(len(o.counts) for o in outputs)


def test_finish_without_frames_reports_nothing() -> None:
    driver = RuleDriver([LineCrossingRule(ACROSS)])
    assert output_counts([driver.finish()]) == 0
