"""Truth from the actors' true paths (``hw_sim.truth``): when feet are in a zone, and the
congestion level the rule's own definition gives."""

from __future__ import annotations

import pytest
from hw_sim.street import car, person, walk
from hw_sim.truth import congestion_truth, in_zone_spans

BAND = ((0.225, 0.8), (0.525, 0.8), (0.525, 1.0), (0.225, 1.0))
ROAD = ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0))
RULE = {
    "slow_min_vehicles": 2,
    "jammed_min_vehicles": 3,
    "slow_speed_heights_per_s": 1.5,
    "jammed_stationary_fraction": 0.5,
    "stationary_min_s": 3.0,
    "min_duration_s": 5.0,
}


def test_a_walk_through_a_zone_is_one_span_from_the_first_step_in_to_the_first_out() -> None:
    walker = walk("p", "person_black", 0.9, -0.1, 1.1, 0.0, 12.0)  # 0.1 frame widths per s
    assert in_zone_spans(walker, BAND) == [(3.3, 6.3)]


def test_only_the_part_inside_the_frame_counts() -> None:
    walker = walk("p", "person_black", 0.9, -0.125, 1.075, 0.0, 12.0)
    wide = ((-0.5, 0.8), (0.33, 0.8), (0.33, 1.0), (-0.5, 1.0))
    assert in_zone_spans(walker, wide) == [(1.3, 4.6)]


def test_a_span_still_open_at_the_end_of_the_path_ends_there() -> None:
    stander = person("p", "person_black", (2.0, 0.4, 0.9), (9.0, 0.4, 0.9))
    assert in_zone_spans(stander, BAND) == [(2.0, 9.0)]


def test_a_zone_is_the_agents_polygon_test_not_its_bounding_box() -> None:
    notched = ((0.0, 0.8), (1.0, 0.8), (1.0, 1.0), (0.6, 1.0), (0.5, 0.85), (0.4, 1.0), (0.0, 1.0))
    in_the_notch = person("p", "person_black", (0.0, 0.5, 0.95), (5.0, 0.5, 0.95))
    beside_it = person("q", "person_black", (0.0, 0.2, 0.95), (5.0, 0.2, 0.95))
    assert in_zone_spans(in_the_notch, notched) == []
    assert in_zone_spans(beside_it, notched) == [(0.0, 5.0)]


def test_cars_driving_through_one_at_a_time_are_free_flow() -> None:
    cars = [
        car(f"c{i}", "car_dark", (4.0 * i, -0.25, 0.8), (4.0 * i + 4.0, 1.25, 0.8))
        for i in range(5)
    ]
    states = congestion_truth(cars, ROAD, analyzer="congestion-road", duration_s=20.0, rule=RULE)
    assert [(s.analyzer, s.state, s.start_s, s.end_s) for s in states] == [
        ("congestion-road", "free", 0.0, 20.0)
    ]


def test_three_cars_standing_still_are_jammed_after_the_stationary_time() -> None:
    cars = [
        car(f"c{i}", "car_dark", (0.0, x, 0.8), (40.0, x, 0.8))
        for i, x in enumerate((0.2, 0.5, 0.8))
    ]
    states = congestion_truth(cars, ROAD, analyzer="congestion-road", duration_s=30.0, rule=RULE)
    # Slow while they have stood less than 3 s: too short a run (< 5 s) to be expected.
    assert [s.state for s in states] == ["jammed"]
    assert states[0].start_s == pytest.approx(3.2)
    assert states[0].end_s == 30.0


def test_a_run_shorter_than_the_rules_min_duration_is_left_out() -> None:
    pausing = [
        car(f"c{i}", "car_dark", (0.0, x, 0.8), (3.0, x, 0.8), (6.0, 1.25, 0.8))
        for i, x in enumerate((0.2, 0.5))
    ]
    states = congestion_truth(pausing, ROAD, analyzer="congestion-road", duration_s=20.0, rule=RULE)
    assert [(s.state, s.start_s, s.end_s) for s in states] == [("free", 3.2, 20.0)]
    every_run = congestion_truth(
        pausing, ROAD, analyzer="congestion-road", duration_s=20.0,
        rule={**RULE, "min_duration_s": 0.0},
    )  # fmt: skip
    assert ("slow", 0.2, 3.0) in [(s.state, s.start_s, s.end_s) for s in every_run]
