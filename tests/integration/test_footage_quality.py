"""What a user gets on real footage, scored against the by-eye truth files
(hw_sim/footage/truth): the agent's quality floor.

Each clip is replayed exactly as ``python -m hw_sim.footage`` and bench/bench_models.py do.
The people clips run with the shipped defaults (SSD, regions on, 5 fps); the bars are the
issue's: one event per person visit, no fragments, no false events. Two views need a
per-camera setting, and run with the documented example config for that kind of view
(``examples/``, docs/pipeline.md §6): the overhead car park (a relabel filter: COCO has no
car seen from above) and the highway whose vehicles cross in under a second (every frame
analysed, no motion gate).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hw_sim.footage import TRUTH_DIR, load_truth
from hw_sim.footage.run import replay_clip
from realdata import require_media, require_model

from edge_agent.config import load_config
from edge_agent.detect.labels import VEHICLE_LABELS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PEOPLE_CLIPS = (
    "intel_one-by-one-person-detection",  # six visits, one at a time
    "intel_store-aisle-detection",  # three shoppers, one enters part-way, occlusions
    "intel_face-demographics-walking-and-pause",  # three people walk up and stand
)


@pytest.mark.parametrize("stem", PEOPLE_CLIPS)
def test_one_person_event_per_person_and_nothing_else(stem: str) -> None:
    require_model("ssd_mobilenet_v1")
    truth = load_truth(TRUTH_DIR / f"{stem}.yaml")
    require_media(truth.clip)
    score = replay_clip(truth).score()
    person = score.row("person")
    assert (person.matched, person.misses) == (person.expected, 0), person
    assert (person.fragments, person.id_switches, person.false_events) == (0, 0, 0), person
    assert all(row.false_events == 0 for row in score.rows), score.rows


def test_vehicles_on_the_highway_are_found_as_vehicles() -> None:
    require_model("ssd_mobilenet_v1")
    truth = load_truth(TRUTH_DIR / "automl_traffic_frames.yaml")
    require_media(truth.clip)
    vehicle = replay_clip(truth).score().row("vehicle")
    # Defaults: four frames analysed at 5 fps; the three vehicles are found, each its own
    # event. One more "car" event is a road marking behind the fence, top right (0.69 at
    # frame 12, 0.59 at frame 18): the scorer has no positions and counts it a fragment. It
    # was an event before the tracker's second stage too, scored then as the pickup's match
    # while the pickup's sightings continued the dark car's event (docs/pipeline.md §6).
    assert (vehicle.matched, vehicle.false_events) == (3, 0), vehicle
    assert vehicle.fragments <= 1 and vehicle.observed <= 4, vehicle


@pytest.mark.parametrize("regions", [True, False], ids=["regions", "whole-frame"])
def test_overhead_car_park_with_its_relabel_filter(regions: bool) -> None:
    """At least 80 % of the cars counted by eye are vehicle events, none under another
    label, with the documented per-camera relabel (examples/overhead-car-park.yaml)."""
    require_model("ssd_mobilenet_v1")
    truth = load_truth(TRUTH_DIR / "intel_car-detection.yaml")
    require_media(truth.clip)
    site = load_config(EXAMPLES / "overhead-car-park.yaml")
    score = replay_clip(truth, site=site, regions=regions).score()
    vehicle = score.row("vehicle")
    assert vehicle.matched >= 0.8 * vehicle.expected, vehicle
    assert (vehicle.fragments, vehicle.id_switches, vehicle.false_events) == (0, 0, 0), vehicle
    assert {label for label, _ in vehicle.seen_as} <= VEHICLE_LABELS, vehicle
    assert [row.family for row in score.rows] == ["vehicle"], score.rows  # nothing else


def test_overhead_car_park_without_the_filter_is_what_the_model_sees() -> None:
    """The relabel is what finds the cars: with the defaults most are missed (if a model
    ever sees cars from above, this fails and the example's advice should change)."""
    require_model("ssd_mobilenet_v1")
    truth = load_truth(TRUTH_DIR / "intel_car-detection.yaml")
    require_media(truth.clip)
    vehicle = replay_clip(truth).score().row("vehicle")
    assert vehicle.matched < 0.8 * vehicle.expected, vehicle


def test_vehicles_per_frame_on_the_highway_with_its_camera_config() -> None:
    """With every frame analysed (examples/highway-overpass.yaml), the vehicles in view
    in each frame match the count by eye: never more, and fewer only by vehicles the
    picture's edge cuts in that frame (the pickup may be called a car: one family)."""
    require_model("ssd_mobilenet_v1")
    truth = load_truth(TRUTH_DIR / "automl_traffic_frames.yaml")
    require_media(truth.clip)
    run = replay_clip(truth, site=load_config(EXAMPLES / "highway-overpass.yaml"))
    assert run.step == 1
    score = run.score()
    errors = score.count("vehicle (all)").errors
    for frame, error in enumerate(errors):
        assert -truth.cut_by_edge_at(frame, "vehicle") <= error <= 0, (frame, errors)
    vehicle = score.row("vehicle")
    assert (vehicle.matched, vehicle.fragments, vehicle.false_events) == (3, 0, 0), vehicle
    assert all(row.false_events == 0 for row in score.rows), score.rows
