"""The scene analyzers measured against ground truth, through the real pipeline.

Every scene scenario (rain_puddle, garbage_bags, lens_covered, camera_knocked,
camera_defocus, frozen_feed, dusk_headlights, clouds_and_crowds, windy_pole) runs offline
through exactly what the agent runs (``hw_sim.eval``: assemble.build_pipeline with the real
SSD detector, SimSource at the scene's own 1 fps) and is scored the way ``hw-sim eval``
scores it: state episodes (a level from its publication until a different level) matched one
to one with the expected intervals, overlap allowed ``tolerance_s`` of slack. Each analyzer
must reach precision and recall of at least 0.9, and the false-alarm scenarios (dusk,
clouds, a pole swaying in the wind) may raise at most one false alarm per simulated hour
together.
"""

from __future__ import annotations

import pytest
from helpers import EVAL_PROCESSES
from hw_sim.effects import GarbageBags
from hw_sim.eval import Report, evaluate
from hw_sim.scenarios_scene import SCENE_SCENARIO_NAMES
from hw_sim.scenes import required_media, script
from realdata import require_media, require_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report() -> Report:
    require_model("ssd_mobilenet_v1")
    for name in SCENE_SCENARIO_NAMES:
        for media in required_media(name):
            require_media(media)
    return evaluate(SCENE_SCENARIO_NAMES, processes=EVAL_PROCESSES)


@pytest.mark.parametrize("topic", ["flood", "garbage", "tamper"])
def test_each_analyzer_reaches_precision_and_recall_of_0_9(report: Report, topic: str) -> None:
    row = report.rows[f"state:{topic}"]
    assert row.expected >= 3, f"{topic}: too little truth to measure ({row.expected})"
    assert row.precision >= 0.9, f"{topic}: {row.as_dict()}"
    assert row.recall >= 0.9, f"{topic}: {row.as_dict()}"


def test_the_false_alarm_scenario_stays_quiet(report: Report) -> None:
    assert report.false_alarm_scenarios_s > 0
    assert report.false_alarm_check_per_hour <= 1.0, report.as_dict()["false_alarm_scenarios"]


def test_every_tamper_state_is_recognised(report: Report) -> None:
    """Each kind of tamper, in its own scenario, is reported as that kind."""
    seen = {
        (run.name, state.state)
        for run in report.runs
        for state in run.states
        if state.analyzer == "tamper"
    }
    for name, state in (
        ("lens_covered", "covered"),
        ("camera_knocked", "moved"),
        ("camera_defocus", "blurred"),
        ("frozen_feed", "frozen"),
    ):
        assert (name, state) in seen


def test_the_garbage_pile_is_reported_as_it_grows(report: Report) -> None:
    run = next(r for r in report.runs if r.name == "garbage_bags")
    present = [s for s in run.states if s.analyzer == "garbage" and s.state == "present"]
    areas = [float(s.score or 0.0) for s in present]
    assert len(areas) >= 3 and areas == sorted(areas) and areas[-1] > 2 * areas[0]
    assert len({s.since_s for s in present}) == 1  # one pile, growing: the same "since"
    bags = next(e for e in script("garbage_bags").effects if isinstance(e, GarbageBags))
    first_bag_s = bags.bags[0].at_s
    assert present[0].since_s - run.clock_start_s == pytest.approx(first_bag_s, abs=5.0)


def test_flood_levels_rise_and_fall_in_order(report: Report) -> None:
    run = next(r for r in report.runs if r.name == "rain_puddle")
    levels = [s.state for s in run.states if s.analyzer == "flood"]
    assert levels == ["none", "puddle", "flooded", "puddle", "none"]
