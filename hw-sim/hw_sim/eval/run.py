"""Replaying a scenario offline through exactly what the agent runs.

``run_scenario`` builds the agent's pipeline (``edge_agent.assemble.build_pipeline``, with
the real detector or a test's) for the camera config the scenario's ``Expectations``
give, on a ``SimSource`` without pacing or looping, and keeps what it emits (alerts,
states, counts) with times in scene seconds; ``evaluate`` runs and scores a list of
scenarios with one shared detector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.assemble import build_detector, build_detectors, build_pipeline, camera_model
from edge_agent.capture.sim_source import SimSource
from edge_agent.config import AgentConfig, parse_config
from edge_agent.detect.base import Detector
from edge_agent.pipeline import run_offline
from edge_agent.sinks import CollectingSink
from edge_agent.types import Frame
from hw_sim.eval.score import DEFAULT_TOLERANCE_S, STATE_RULE_KINDS, Report, ScenarioRun, score
from hw_sim.scenes import SCRIPTS, Expectations, Script, register, scenario_names, script

EVAL_DATE = date(2025, 6, 18)  # a Wednesday: the day "HH:MM" clock starts fall on
DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 360
DEFAULT_FPS = 5.0


def clock_start_s(expectations: Expectations) -> float:
    """Wall clock of frame 0: ``clock_start`` is "HH:MM[:SS]" on EVAL_DATE or an ISO
    date-time, local to ``timezone``; none means noon."""
    tz = ZoneInfo(expectations.timezone)
    text = expectations.clock_start
    if text is None:
        return datetime.combine(EVAL_DATE, clock_time(12, 0), tz).timestamp()
    if "T" in text or "-" in text:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).timestamp()
    return datetime.combine(EVAL_DATE, clock_time.fromisoformat(text), tz).timestamp()


def eval_config(
    name: str, script: Script, *, width: int, height: int, model: str | None = None
) -> AgentConfig:
    """The agent config a scenario is evaluated with: its camera fragment on a sim source."""
    camera: dict[str, Any] = {"fps": script.fps or DEFAULT_FPS, **dict(script.expectations.camera)}
    camera.update(
        id="cam",
        source={
            "kind": "sim",
            "scenario": name,
            "width": width,
            "height": height,
            "loop": False,
            "realtime": False,
        },
    )
    data: dict[str, Any] = {
        "site_id": "eval",
        "device_id": "hw-sim",
        "timezone": script.expectations.timezone,
        "cameras": [camera],
    }
    if model is not None:
        data["detector"] = {"model": model}
    return parse_config(data, f"scenario {name}")


@contextmanager
def _reseeded(name: str, seed: int) -> Iterator[str]:
    """The name to load scenario ``name`` drawn with ``seed`` by: a copy registered for as
    long as the context lasts (sources load scenes by name)."""
    base = script(name)
    if seed == base.seed:
        yield name
        return
    variant = f"{name}@seed{seed}"
    register(base.reseeded(seed, variant))
    try:
        yield variant
    finally:
        SCRIPTS.pop(variant, None)


def run_scenario(
    name: str,
    detector: Detector,
    *,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    on_frame: Callable[[Frame], None] | None = None,
    seed: int | None = None,
) -> ScenarioRun:
    """Replay scenario ``name`` through the pipeline; ``on_frame`` sees each frame first
    (a test's truth detector uses it to know which frame it is looking at). ``seed``
    redraws the street and its sensor noise (default: the script's own)."""
    scenario_script = script(name)
    config = eval_config(name, scenario_script, width=width, height=height)
    camera = config.cameras[0]
    start_s = clock_start_s(scenario_script.expectations)
    seed = scenario_script.seed if seed is None else seed
    with _reseeded(name, seed) as loaded:
        source = SimSource(
            camera.id,
            scenario=loaded,
            width=width,
            height=height,
            fps=camera.fps,
            loop=False,
            realtime=False,
            clock_start_s=start_s,
        )
    sink = CollectingSink()
    pipeline = build_pipeline(config, camera, detector=detector, sink=sink)
    started = time.perf_counter()
    frames = run_offline(source, pipeline, on_frame=on_frame, read_timeout_s=1.0).frames_read
    kinds = tuple(r.kind for r in camera.rules)
    topics = tuple(r.rule_name for r in camera.rules if r.kind in STATE_RULE_KINDS) + tuple(
        str(getattr(a, "name", None) or a.kind) for a in camera.analyzers
    )
    return ScenarioRun(
        name=name,
        duration_s=source.scenario.duration_s,
        frames=frames,
        wall_s=time.perf_counter() - started,
        clock_start_s=start_s,
        alerts=sink.alerts,
        states=sink.states,
        counts=sink.counts,
        rule_kinds=kinds,
        state_topics=topics,
        expectations=scenario_script.expectations,
        seed=seed,
    )


def evaluable_scenarios() -> tuple[str, ...]:
    """Scenarios with something to score: truth, or a false-alarm check."""
    names = []
    for name in scenario_names():
        e = script(name).expectations
        if e.alerts or e.states or e.counts or e.false_alarm_check:
            names.append(name)
    return tuple(names)


def false_alarm_scenarios() -> tuple[str, ...]:
    """Scenarios where no alert and no change of state is expected at all."""
    return tuple(n for n in scenario_names() if script(n).expectations.false_alarm_check)


def _default_detector(name: str, *, width: int, height: int, model: str | None) -> Detector:
    """The detector scenario ``name`` would run with: the model the agent would choose for its
    camera (``assemble.camera_model``: a crowd camera's own), or ``model`` whatever the camera."""
    config = eval_config(name, script(name), width=width, height=height, model=model)
    if model is not None:
        return build_detector(config)
    return build_detectors(config).for_camera(config.cameras[0].id)


def _model_of(name: str, *, width: int, height: int, model: str | None) -> str:
    """The model scenario ``name`` asks for (see ``_default_detector``)."""
    if model is not None:
        return model
    config = eval_config(name, script(name), width=width, height=height)
    return camera_model(config, config.cameras[0])


def evaluate(
    names: Sequence[str] | None = None,
    *,
    detector: Detector | None = None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    model: str | None = None,
    processes: int = 1,
) -> Report:
    """Run and score ``names`` (default: every evaluable scenario) with ``detector``, or the
    models the agent would choose for their cameras (each loaded once), or ``model`` for all.
    ``processes`` > 1: the runs spread over that many worker processes (``parallel``; not
    with a ``detector`` of the caller's, which cannot cross into them)."""
    chosen = list(names) if names else list(evaluable_scenarios())
    if processes > 1:
        if detector is not None:
            raise ValueError("evaluate: a detector of the caller's runs in one process only")
        from hw_sim.eval.parallel import Job, run_in_processes

        jobs = [Job(name, None, width, height, model) for name in chosen]
        return score(run_in_processes(jobs, processes), tolerance_s)
    loaded: dict[str, Detector] = {}
    runs = []
    for name in chosen:
        used = detector
        if used is None:
            wanted = _model_of(name, width=width, height=height, model=model)
            if wanted not in loaded:
                loaded[wanted] = _default_detector(name, width=width, height=height, model=model)
            used = loaded[wanted]
        runs.append(run_scenario(name, used, width=width, height=height))
    return score(runs, tolerance_s)


def simulated_s(name: str, *, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> float:
    """Scene seconds one run of ``name`` covers: whole frames at its evaluation rate."""
    fps = eval_config(name, script(name), width=width, height=height).cameras[0].fps
    return max(1, round(script(name).duration_s * fps)) / fps
