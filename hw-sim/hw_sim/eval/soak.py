"""``hw-sim eval --soak-hours``: false alarms per simulated hour, over many runs.

The false-alarm-check scenarios total minutes, too little to support a rate per hour,
so the soak runs them again and again, round robin, until their summed simulated time
reaches the target, and scores all the runs as one report. Each repetition is a fresh
pipeline (another day, another evening) on the scene drawn with the next seed: the
street's drawing and the sensor noise change; the script's actors, effects and truth do
not (a script with ``recast`` draws new actors as well). Looping one run instead would
turn dusk back into day in one frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from edge_agent.detect.base import Detector
from hw_sim.eval.parallel import Job, run_in_processes
from hw_sim.eval.run import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    _default_detector,
    false_alarm_scenarios,
    run_scenario,
    simulated_s,
)
from hw_sim.eval.score import DEFAULT_TOLERANCE_S, Report, ScenarioRun, score
from hw_sim.scenes import script


def soak_plan(durations_s: Mapping[str, float], target_s: float) -> list[tuple[str, int]]:
    """(scenario, repetition) pairs, round robin, until their summed duration reaches
    ``target_s``: every scenario has its n-th run before any has its (n+1)-th."""
    if not durations_s:
        raise ValueError("soak: no scenarios to run")
    short = [name for name, d in durations_s.items() if not d > 0.0]
    if short:
        raise ValueError(f"soak: scenario(s) {', '.join(short)} last no time")
    if not 0.0 < target_s < math.inf:
        raise ValueError(f"soak: the target must be a positive time, not {target_s} s")
    plan: list[tuple[str, int]] = []
    total_s = 0.0
    repetition = 0
    while total_s < target_s:
        for name, duration_s in durations_s.items():
            plan.append((name, repetition))
            total_s += duration_s
            if total_s >= target_s:
                break
        repetition += 1
    return plan


def soak(
    hours: float,
    names: Sequence[str] | None = None,
    *,
    detector: Detector | None = None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    model: str | None = None,
    on_run: Callable[[int, int, ScenarioRun], None] | None = None,
    processes: int = 1,
) -> Report:
    """Run false-alarm-check scenarios (default: all of them) for ``hours`` of simulated
    time in total, per ``soak_plan``; repetition k draws the scene with the script's seed
    plus k. ``on_run(done, planned, run)`` hears of each run as it finishes (in plan order).
    ``processes`` > 1: the runs spread over that many worker processes (``parallel``; not
    with a ``detector`` of the caller's)."""
    chosen = list(names) if names else list(false_alarm_scenarios())
    with_truth = [n for n in chosen if not script(n).expectations.false_alarm_check]
    if with_truth:
        raise ValueError(
            f"soak: {', '.join(with_truth)} is not a false-alarm check "
            f"(those are: {', '.join(false_alarm_scenarios())})"
        )
    target_s = 3600.0 * hours
    plan = soak_plan({n: simulated_s(n, width=width, height=height) for n in chosen}, target_s)
    if processes > 1:
        if detector is not None:
            raise ValueError("soak: a detector of the caller's runs in one process only")
        jobs = [Job(n, script(n).seed + k, width, height, model) for n, k in plan]
        runs = run_in_processes(jobs, processes)
        for done, run in enumerate(runs, start=1):
            if on_run is not None:
                on_run(done, len(plan), run)
        report = score(runs, tolerance_s)
        report.soak_target_s = target_s
        return report
    if detector is None:
        detector = _default_detector(chosen[0], width=width, height=height, model=model)
    runs = []
    for done, (name, repetition) in enumerate(plan, start=1):
        seed = script(name).seed + repetition
        run = run_scenario(name, detector, width=width, height=height, seed=seed)
        runs.append(run)
        if on_run is not None:
            on_run(done, len(plan), run)
    report = score(runs, tolerance_s)
    report.soak_target_s = target_s
    return report
