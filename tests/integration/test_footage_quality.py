"""What a new user gets on real footage, with the shipped defaults (SSD, regions on, 5 fps),
scored against the by-eye truth files (hw_sim/footage/truth): the agent's quality floor.

Each clip is replayed exactly as ``python -m hw_sim.footage`` and bench/bench_models.py do.
The bars are the issue's: one event per person visit, no fragments, no false events. The
clips a COCO detector cannot serve yet (the overhead car park; per-frame counts on the
20-frame highway at 5 fps) are measured by the bench, not asserted here (docs/pipeline.md §6).
"""

from __future__ import annotations

import pytest
from hw_sim.footage import TRUTH_DIR, load_truth
from hw_sim.footage.run import replay_clip
from realdata import require_media, require_model

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
    # Four frames analysed at 5 fps: two of the three vehicles are found, none split.
    assert vehicle.matched >= 2 and vehicle.fragments == 0 and vehicle.false_events == 0, vehicle
