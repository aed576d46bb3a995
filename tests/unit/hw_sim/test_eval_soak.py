"""``hw-sim eval --soak-hours``: which runs a soak makes and how it counts false alarms.

The plan is pure; the runs use the real pipeline on an empty simulated street (no
sprites, so no media) with a fake detector instead of a model.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest
from fakes.detect import GHOST, StaticDetector
from hw_sim.eval.cli import add_eval_parser, run_eval_cli
from hw_sim.eval.report import format_table
from hw_sim.eval.run import false_alarm_scenarios, run_scenario
from hw_sim.eval.score import ScenarioRun
from hw_sim.eval.soak import soak, soak_plan
from hw_sim.scenes import SCRIPTS, Expectations, ExpectedAlert, Script, register, scenario_names

from edge_agent.types import Frame, ImageBGR

QUIET = "soak_test_quiet"  # a false-alarm check: 10 s of empty street at 5 fps
BLINKING = "soak_test_blinking"  # the same with a patch that flashes: the gate sees motion
WITH_TRUTH = "soak_test_with_truth"
WIDTH, HEIGHT = 160, 90
CAMERA = {
    "zones": [{"name": "yard", "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}],
    "rules": [{"kind": "intrusion", "zone": "yard", "min_duration_s": 1.0}],
}


@dataclass(frozen=True)
class Blink:
    """A patch in the middle that turns black every other frame (at 5 fps)."""

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        out: ImageBGR = image.copy()
        if round(t_s * 5.0) % 2:
            height, width = out.shape[:2]
            out[height // 3 : height, 2 * width // 5 : 3 * width // 5] = 0
        return out


@pytest.fixture(name="soak_test_scenarios", autouse=True)
def _soak_test_scenarios() -> Iterator[None]:
    """Registers the three scenarios above for the test, and removes them afterwards."""
    scenario_names()  # the libraries register first, so ours come last
    register(
        Script(
            QUIET, "empty street, nothing happens", 10.0, fps=5.0, loops=False,
            expectations=Expectations(camera=CAMERA, false_alarm_check=True),
        ),
        Script(
            BLINKING, "empty street, a patch flashes", 10.0, fps=5.0, loops=False,
            effects=(Blink(),),
            expectations=Expectations(camera=CAMERA, false_alarm_check=True),
        ),
        Script(
            WITH_TRUTH, "an intrusion is expected", 10.0, fps=5.0, loops=False,
            expectations=Expectations(
                alerts=(ExpectedAlert("intrusion", 0.0, 10.0),), camera=CAMERA
            ),
        ),
    )  # fmt: skip
    yield
    for name in (QUIET, BLINKING, WITH_TRUTH):
        SCRIPTS.pop(name, None)


# --- the plan ----------------------------------------------------------------------------


def test_the_plan_goes_round_robin_until_the_target_is_reached() -> None:
    plan = soak_plan({"market": 120.0, "dusk": 300.0, "clouds": 240.0}, 3600.0)
    # Five full rounds are 3300 s; the sixth stops as soon as the hour is reached.
    assert plan[:3] == [("market", 0), ("dusk", 0), ("clouds", 0)]
    assert plan[-2:] == [("market", 5), ("dusk", 5)]
    assert len(plan) == 17
    durations = {"market": 120.0, "dusk": 300.0, "clouds": 240.0}
    total_s = sum(durations[name] for name, _ in plan)
    assert total_s >= 3600.0
    assert total_s - durations[plan[-1][0]] < 3600.0  # no run more than needed


def test_a_target_shorter_than_one_run_is_one_run() -> None:
    assert soak_plan({"market": 120.0, "dusk": 300.0}, 10.0) == [("market", 0)]


@pytest.mark.parametrize(
    ("durations_s", "target_s"),
    [({}, 60.0), ({"a": 0.0}, 60.0), ({"a": 10.0}, 0.0), ({"a": 10.0}, float("inf"))],
)
def test_a_plan_that_cannot_end_is_refused(durations_s: dict[str, float], target_s: float) -> None:
    with pytest.raises(ValueError, match="soak"):
        soak_plan(durations_s, target_s)


# --- runs --------------------------------------------------------------------------------


class FrameDigests:
    """A digest of each run's pictures, to tell the seeds' scenes apart."""

    def __init__(self, digests: list[str]) -> None:
        self.digests = digests
        self._hash = hashlib.sha256()

    def __call__(self, frame: Frame) -> None:
        self._hash.update(frame.image.tobytes())

    def close(self) -> None:
        self.digests.append(self._hash.hexdigest())
        self._hash = hashlib.sha256()


def test_the_false_alarm_checks_are_the_default() -> None:
    names = false_alarm_scenarios()
    assert QUIET in names
    assert WITH_TRUTH not in names
    assert {"busy_market", "dusk_headlights", "clouds_and_crowds"} <= set(names)


def test_a_seed_redraws_the_scene_and_the_default_is_the_scripts_own() -> None:
    digests: list[str] = []
    hook = FrameDigests(digests)
    for seed in (None, SCRIPTS[QUIET].seed, SCRIPTS[QUIET].seed + 1):
        run = run_scenario(QUIET, StaticDetector(), width=WIDTH, height=HEIGHT, on_frame=hook,
                           seed=seed)  # fmt: skip
        hook.close()
        assert run.name == QUIET
        assert run.seed == (SCRIPTS[QUIET].seed if seed is None else seed)
    assert digests[0] == digests[1]
    assert digests[2] != digests[0]
    assert f"{QUIET}@seed{SCRIPTS[QUIET].seed + 1}" not in SCRIPTS  # the copy is gone again


def test_a_quiet_soak_covers_the_target_with_fresh_seeds() -> None:
    done: list[tuple[int, int, ScenarioRun]] = []
    report = soak(
        35.0 / 3600.0, [QUIET], detector=StaticDetector(), width=WIDTH, height=HEIGHT,
        on_run=lambda d, p, r: done.append((d, p, r)),
    )  # fmt: skip
    assert [r.seed for r in report.runs] == [SCRIPTS[QUIET].seed + k for k in range(4)]
    assert [(d, p) for d, p, _ in done] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.false_alarm_scenarios_s == pytest.approx(40.0)
    assert report.false_alarm_scenario_alarms == 0
    assert report.soak_target_s == pytest.approx(35.0)
    assert report.as_dict()["soak"]["scenarios"] == [
        {"name": QUIET, "runs": 4, "simulated_s": 40.0, "false_alarms": 0}
    ]
    table = format_table(report)
    assert f"{QUIET}x4" in table
    assert "soak: 0 false alarm(s) in 0.01 simulated h" in table


def test_every_alert_of_the_soak_is_a_false_alarm_per_hour_of_the_whole_soak() -> None:
    report = soak(
        25.0 / 3600.0, [BLINKING], detector=StaticDetector([GHOST]), width=WIDTH, height=HEIGHT
    )
    assert len(report.runs) == 3
    assert all(len({a.alert_id for a in run.alerts}) == 1 for run in report.runs)
    assert report.false_alarm_scenario_alarms == 3
    assert report.false_alarm_scenarios_s == pytest.approx(30.0)
    assert report.false_alarm_check_per_hour == pytest.approx(3 * 3600.0 / 30.0)
    assert report.rows["alert:intrusion"].false_alarms == 3
    assert "soak: 3 false alarm(s)" in format_table(report)


def test_a_scenario_with_truth_is_not_soaked() -> None:
    with pytest.raises(ValueError, match=f"{WITH_TRUTH} is not a false-alarm check"):
        soak(1.0, [QUIET, WITH_TRUTH], detector=StaticDetector(), width=WIDTH, height=HEIGHT)


def test_the_command_line_reports_a_bad_soak_as_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", "--scenario", QUIET, "--soak-hours", "0"])
    assert run_eval_cli(args) == 2
    assert "soak: the target must be a positive time" in capsys.readouterr().err
