"""The street's actors (``hw_sim.street``): one set of helpers for every scenario library."""

from __future__ import annotations

import pytest
from hw_sim.street import (
    CAR_HEIGHT,
    NEAR_LANE_Y,
    PERSON_HEIGHT,
    Actor,
    Waypoint,
    car,
    drive,
    person,
    perspective_scale,
    walk,
)


def test_walk_and_drive_are_straight_paths_at_the_street_sizes() -> None:
    walker = walk("p", "person_black", 0.9, -0.1, 1.1, 2.0, 14.0)
    path = (Waypoint(2.0, -0.1, 0.9), Waypoint(14.0, 1.1, 0.9))
    assert walker == Actor("p", "person_black", path, PERSON_HEIGHT)
    east = drive("c", "car_dark", NEAR_LANE_Y, True, 1.0, 5.0)
    west = drive("c", "car_dark", NEAR_LANE_Y, False, 1.0, 5.0)
    assert [(w.x, w.y) for w in east.path] == [(-0.25, NEAR_LANE_Y), (1.25, NEAR_LANE_Y)]
    assert [(w.x, w.y) for w in west.path] == [(1.25, NEAR_LANE_Y), (-0.25, NEAR_LANE_Y)]
    assert east.height == CAR_HEIGHT


def test_person_and_car_follow_their_points() -> None:
    stop = car("c", "car_red", (0.0, 1.25, 0.57), (4.0, 0.6, 0.57), (9.0, 0.6, 0.57))
    assert stop.position(6.0) == (pytest.approx(0.6), pytest.approx(0.57), False)
    assert stop.position(9.5) is None
    assert person("p", "person_shirt", (0.0, 0.5, 0.9)).height == PERSON_HEIGHT


def test_objects_shrink_towards_the_horizon_but_never_vanish() -> None:
    assert perspective_scale(1.0) == 1.0
    assert 0.05 < perspective_scale(0.355) < perspective_scale(0.94) < 1.0
    assert perspective_scale(-5.0) == 0.05
