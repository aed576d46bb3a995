"""``hw-sim eval``: run scenarios through the real agent pipeline and score it against truth.

Each scenario is replayed offline (no pacing, no looping) through exactly what the
agent runs — ``edge_agent.assemble.build_pipeline`` with the real detector — with the
camera config its ``Expectations.camera`` gives. What the pipeline emits (alerts,
states, counts) is compared with the scenario's truth:

**Alerts.** An alert is the interval from its ``new`` (when it was published) to its
``end`` (the last time its condition held), in scene seconds. It matches an
``ExpectedAlert`` of the same kind (and zone, if the truth names one) when the two
intervals overlap, allowing ``tolerance_s`` at either end. Matching is one to one,
largest overlap first, so a duplicate alert for one truth is a false positive and
one alert covering two truths recalls only one. Precision = matched alerts /
alerts, recall = matched truths / truths, delay = publication of ``new`` minus the
truth's start (it includes the rule's own persistence, by design: that is what an
operator waits).

**States** are scored the same way, by episodes: a state message opens an episode
of its level that lasts until the next different level on that topic (or the end
of the scenario); each ``ExpectedState`` is an episode of the truth. Rows are per
state topic (``congestion-bridge``, ``flood``, ...). ``agreement`` adds the
time-weighted view: the share of the truth's time (all its expected intervals) in
which the published level equalled the expected one.

**Counts**: per (line, direction, label family) the crossings summed over the
scenario's reports against ``ExpectedCount``; vehicles (car, truck, bus,
motorcycle, bicycle) are one family, as the tracker treats them. Matched =
sum of min(counted, expected); precision = matched / counted, recall =
matched / expected; ``within_one`` says whether every count is exact or off by one.

**False alarms** are unmatched alerts and state episodes; per simulated hour over
the scenarios where that row was evaluated, and separately over the
``false_alarm_check`` scenarios.

**Soak** (``--soak-hours``): those scenarios total minutes, too little to support a
rate per hour, so the soak runs them again and again, round robin, until their summed
simulated time reaches the target, and scores all the runs as one report. Each
repetition is a fresh pipeline (another day, another evening) on the scene drawn with
the next seed: the street's drawing and the sensor noise change; the script's actors,
effects and truth do not. (Looping one run instead would turn dusk back into day in
one frame.)

Another scenario library plugs in by registering scripts with expectations: nothing
here knows a rule or analyzer by name.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.assemble import build_detector, build_pipeline
from edge_agent.capture.sim_source import SimSource
from edge_agent.config import AgentConfig, parse_config
from edge_agent.detect.base import Detector
from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.pipeline import run_offline
from edge_agent.sinks import CollectingSink
from edge_agent.types import Frame, Lifecycle
from hw_sim.scenes import SCRIPTS, Expectations, Script, register, scenario_names, script

EVAL_DATE = date(2025, 6, 18)  # a Wednesday: the day "HH:MM" clock starts fall on
DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 360
DEFAULT_FPS = 5.0
DEFAULT_TOLERANCE_S = 5.0
STATE_RULE_KINDS = ("congestion",)  # object rules that publish state, not alerts
COUNT_RULE_KINDS = ("line_crossing",)


def label_family(label: str) -> str:
    return "vehicle" if label in VEHICLE_LABELS else label


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
    name: str, scene: Script, *, width: int, height: int, model: str | None = None
) -> AgentConfig:
    """The agent config a scenario is evaluated with: its camera fragment on a sim source."""
    camera: dict[str, Any] = {"fps": scene.fps or DEFAULT_FPS, **dict(scene.expectations.camera)}
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
        "timezone": scene.expectations.timezone,
        "cameras": [camera],
    }
    if model is not None:
        data["detector"] = {"model": model}
    return parse_config(data, f"scenario {name}")


# --- running ---------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """What one scenario produced, with times in scene seconds."""

    name: str
    duration_s: float
    frames: int
    wall_s: float  # how long the run took on this machine
    clock_start_s: float
    alerts: list[Alert]
    states: list[SceneState]
    counts: list[CountReport]
    rule_kinds: tuple[str, ...]  # kinds of the object rules configured
    state_topics: tuple[str, ...]  # state topics configured (congestion rules, analyzers)
    expectations: Expectations = field(default_factory=Expectations)
    seed: int | None = None  # the scene's seed (street drawing, sensor noise)


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
    scene = script(name)
    config = eval_config(name, scene, width=width, height=height)
    camera = config.cameras[0]
    start_s = clock_start_s(scene.expectations)
    seed = scene.seed if seed is None else seed
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
        expectations=scene.expectations,
        seed=seed,
    )


# --- scoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    key: str  # row: alert kind or state topic
    value: str  # zone (alerts, may be "") or level (states)
    start_s: float
    end_s: float


@dataclass
class RowScore:
    """One row of the table: an alert kind, a state topic or a counting line."""

    row: str
    category: str  # "alert", "state" or "count"
    scenarios: list[str] = field(default_factory=list)
    expected: int = 0
    observed: int = 0
    matched_expected: int = 0
    matched_observed: int = 0
    delays_s: list[float] = field(default_factory=list)
    false_alarms: int = 0
    simulated_s: float = 0.0
    agreement_num_s: float = 0.0
    agreement_den_s: float = 0.0
    count_errors: list[int] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.matched_observed / self.observed if self.observed else 1.0

    @property
    def recall(self) -> float:
        return self.matched_expected / self.expected if self.expected else 1.0

    @property
    def mean_delay_s(self) -> float | None:
        return sum(self.delays_s) / len(self.delays_s) if self.delays_s else None

    @property
    def false_alarms_per_hour(self) -> float:
        return 3600.0 * self.false_alarms / self.simulated_s if self.simulated_s else 0.0

    @property
    def agreement(self) -> float | None:
        if not self.agreement_den_s:
            return None
        return self.agreement_num_s / self.agreement_den_s

    @property
    def within_one(self) -> bool | None:
        return all(abs(e) <= 1 for e in self.count_errors) if self.count_errors else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            precision=round(self.precision, 4),
            recall=round(self.recall, 4),
            mean_delay_s=None if self.mean_delay_s is None else round(self.mean_delay_s, 2),
            false_alarms_per_hour=round(self.false_alarms_per_hour, 2),
            agreement=None if self.agreement is None else round(self.agreement, 4),
            within_one=self.within_one,
        )
        return data


@dataclass
class Report:
    rows: dict[str, RowScore]
    runs: list[ScenarioRun]
    tolerance_s: float
    false_alarm_scenarios_s: float = 0.0
    false_alarm_scenario_alarms: int = 0
    soak_target_s: float | None = None  # set by ``soak``: the simulated time asked for

    @property
    def false_alarm_check_per_hour(self) -> float:
        if not self.false_alarm_scenarios_s:
            return 0.0
        return 3600.0 * self.false_alarm_scenario_alarms / self.false_alarm_scenarios_s

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tolerance_s": self.tolerance_s,
            "rows": [row.as_dict() for row in self.rows.values()],
            "scenarios": [
                {
                    "name": run.name,
                    "simulated_s": round(run.duration_s, 2),
                    "frames": run.frames,
                    "wall_s": round(run.wall_s, 2),
                    "alerts": len({a.alert_id for a in run.alerts}),
                    "states": len(run.states),
                    "count_reports": len(run.counts),
                    "seed": run.seed,
                }
                for run in self.runs
            ],
            "false_alarm_scenarios": {
                "simulated_s": round(self.false_alarm_scenarios_s, 2),
                "false_alarms": self.false_alarm_scenario_alarms,
                "per_hour": round(self.false_alarm_check_per_hour, 2),
            },
        }
        if self.soak_target_s is not None:
            data["soak"] = {
                "target_s": round(self.soak_target_s, 2),
                "scenarios": [
                    {"name": name, "runs": len(runs), "simulated_s": round(simulated_s, 2),
                     "false_alarms": alarms}
                    for name, (runs, simulated_s, alarms) in soak_breakdown(self).items()
                ],
            }  # fmt: skip
        return data


def observed_alerts(run: ScenarioRun) -> list[Interval]:
    """One interval per alert id: from its ``new`` to its end (scene seconds)."""
    first: dict[str, Alert] = {}
    last: dict[str, Alert] = {}
    for alert in run.alerts:
        first.setdefault(alert.alert_id, alert)
        last[alert.alert_id] = alert
    intervals = []
    for alert_id, new in first.items():
        end = last[alert_id]
        end_wall = end.end_s if end.lifecycle is Lifecycle.END and end.end_s is not None else None
        start_s = new.frame_time_s - run.clock_start_s
        end_s = run.duration_s if end_wall is None else end_wall - run.clock_start_s
        intervals.append(Interval(new.kind, new.zone or "", start_s, max(start_s, end_s)))
    return intervals


def observed_states(run: ScenarioRun) -> list[Interval]:
    """Episodes per state topic: a level from its publication until a different one."""
    episodes: list[Interval] = []
    by_topic: dict[str, list[SceneState]] = {}
    for state in run.states:
        by_topic.setdefault(state.analyzer, []).append(state)
    for topic, states in by_topic.items():
        current: tuple[str, float] | None = None
        for state in states:
            t_s = state.frame_time_s - run.clock_start_s
            if current is not None and current[0] == state.state:
                continue
            if current is not None:
                episodes.append(Interval(topic, current[0], current[1], t_s))
            current = (state.state, t_s)
        if current is not None:
            episodes.append(Interval(topic, current[0], current[1], run.duration_s))
    return episodes


def _overlap(a: Interval, b: Interval, tolerance_s: float) -> float | None:
    """Overlap of a and b with b widened by the tolerance; None if they do not meet."""
    start = max(a.start_s, b.start_s - tolerance_s)
    end = min(a.end_s, b.end_s + tolerance_s)
    return end - start if end >= start else None


def match(
    observed: list[Interval], expected: list[Interval], tolerance_s: float, *, zones: bool
) -> list[tuple[int, int]]:
    """One-to-one pairs (observed index, expected index), largest overlap first."""
    candidates = []
    for i, obs in enumerate(observed):
        for j, exp in enumerate(expected):
            if obs.key != exp.key:
                continue
            if zones and exp.value and obs.value != exp.value:
                continue
            if not zones and obs.value != exp.value:
                continue
            overlap = _overlap(obs, exp, tolerance_s)
            if overlap is not None:
                candidates.append((overlap, -abs(obs.start_s - exp.start_s), i, j))
    pairs = []
    used_obs: set[int] = set()
    used_exp: set[int] = set()
    for _, _, i, j in sorted(candidates, reverse=True):
        if i in used_obs or j in used_exp:
            continue
        used_obs.add(i)
        used_exp.add(j)
        pairs.append((i, j))
    return pairs


def _agreement(observed: list[Interval], expected: Interval) -> float:
    """Seconds of ``expected`` during which the observed level was the expected one."""
    total = 0.0
    for obs in observed:
        if obs.key == expected.key and obs.value == expected.value:
            total += max(0.0, min(obs.end_s, expected.end_s) - max(obs.start_s, expected.start_s))
    return total


def _score_intervals(
    row: RowScore,
    run: ScenarioRun,
    key: str,
    observed: list[Interval],
    expected: list[Interval],
    pairs: list[tuple[int, int]],
) -> int:
    """Add one scenario's alerts (or state episodes) of ``key`` to its row; the number of
    false alarms (observed, matched to nothing) it added."""
    row.scenarios.append(run.name)
    row.simulated_s += run.duration_s
    row.expected += sum(1 for e in expected if e.key == key)
    observed_here = sum(1 for o in observed if o.key == key)
    row.observed += observed_here
    mine = [(i, j) for i, j in pairs if observed[i].key == key]
    row.matched_observed += len(mine)
    row.matched_expected += len(mine)
    row.delays_s.extend(observed[i].start_s - expected[j].start_s for i, j in mine)
    unmatched = observed_here - len(mine)
    row.false_alarms += unmatched
    return unmatched


def _row(rows: dict[str, RowScore], name: str, category: str) -> RowScore:
    key = f"{category}:{name}"
    if key not in rows:
        rows[key] = RowScore(row=name, category=category)
    return rows[key]


def score(runs: Iterable[ScenarioRun], tolerance_s: float = DEFAULT_TOLERANCE_S) -> Report:
    runs = list(runs)
    report = Report(rows={}, runs=runs, tolerance_s=tolerance_s)
    for run in runs:
        expectations = run.expectations
        false_alarms_here = 0
        # Alerts.
        observed = observed_alerts(run)
        expected = [Interval(e.kind, e.zone or "", e.start_s, e.end_s) for e in expectations.alerts]
        pairs = match(observed, expected, tolerance_s, zones=True)
        kinds = {i.key for i in observed} | {i.key for i in expected}
        kinds |= {k for k in run.rule_kinds if k not in (*STATE_RULE_KINDS, *COUNT_RULE_KINDS)}
        for kind in sorted(kinds):
            row = _row(report.rows, kind, "alert")
            false_alarms_here += _score_intervals(row, run, kind, observed, expected, pairs)
        # States.
        episodes = observed_states(run)
        truth = [Interval(e.analyzer, e.state, e.start_s, e.end_s) for e in expectations.states]
        pairs = match(episodes, truth, tolerance_s, zones=False)
        topics = {e.key for e in episodes} | {t.key for t in truth} | set(run.state_topics)
        for topic in sorted(topics):
            row = _row(report.rows, topic, "state")
            false_alarms_here += _score_intervals(row, run, topic, episodes, truth, pairs)
            for t in truth:
                if t.key == topic:
                    row.agreement_num_s += _agreement(episodes, t)
                    row.agreement_den_s += t.end_s - t.start_s
        # Counts.
        counted: dict[tuple[str, str, str], int] = {}
        for report_ in run.counts:
            for direction, by_label in report_.counts.items():
                for label, n in by_label.items():
                    key = (report_.line, direction, label_family(label))
                    counted[key] = counted.get(key, 0) + n
        wanted: dict[tuple[str, str, str], int] = {}
        for c in expectations.counts:
            key = (c.line, c.direction, label_family(c.label))
            wanted[key] = wanted.get(key, 0) + c.count
        lines = {k[0] for k in counted} | {k[0] for k in wanted}
        for line in sorted(lines):
            row = _row(report.rows, line, "count")
            row.scenarios.append(run.name)
            row.simulated_s += run.duration_s
            for key in sorted({k for k in (*counted, *wanted) if k[0] == line}):
                got, want = counted.get(key, 0), wanted.get(key, 0)
                row.observed += got
                row.expected += want
                row.matched_observed += min(got, want)
                row.matched_expected += min(got, want)
                row.count_errors.append(got - want)
        if expectations.false_alarm_check:
            report.false_alarm_scenarios_s += run.duration_s
            report.false_alarm_scenario_alarms += false_alarms_here
    return report


def soak_breakdown(report: Report) -> dict[str, tuple[list[ScenarioRun], float, int]]:
    """Per false-alarm-check scenario: its runs, their simulated seconds, their false alarms."""
    names = dict.fromkeys(r.name for r in report.runs if r.expectations.false_alarm_check)
    breakdown = {}
    for name in names:
        runs = [r for r in report.runs if r.name == name]
        alone = score(runs, report.tolerance_s)
        breakdown[name] = (runs, alone.false_alarm_scenarios_s, alone.false_alarm_scenario_alarms)
    return breakdown


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _scenario_list(names: Sequence[str]) -> str:
    """Scenario names once each, with the number of runs when a soak repeated them."""
    runs: dict[str, int] = {}
    for name in names:
        runs[name] = runs.get(name, 0) + 1
    return ",".join(name if n == 1 else f"{name}x{n}" for name, n in runs.items())


def format_table(report: Report) -> str:
    header = (
        f"{'category':<8} {'row':<20} {'exp':>4} {'obs':>4} {'prec':>5} {'recall':>6} "
        f"{'delay_s':>7} {'FA':>3} {'FA/h':>6} {'agree':>5}  scenarios"
    )
    lines = [header, "-" * len(header)]
    for row in sorted(report.rows.values(), key=lambda r: (r.category, r.row)):
        lines.append(
            f"{row.category:<8} {row.row:<20} {row.expected:>4} {row.observed:>4} "
            f"{row.precision:>5.2f} {row.recall:>6.2f} {_cell(row.mean_delay_s, 1):>7} "
            f"{row.false_alarms:>3} {row.false_alarms_per_hour:>6.1f} "
            f"{_cell(row.agreement):>5}  {_scenario_list(row.scenarios)}"
        )
    simulated_s = sum(r.duration_s for r in report.runs)
    wall_s = sum(r.wall_s for r in report.runs)
    lines.append("")
    lines.append(
        f"false-alarm scenarios: {report.false_alarm_scenario_alarms} false alarm(s) in "
        f"{report.false_alarm_scenarios_s:.0f} simulated s "
        f"({report.false_alarm_check_per_hour:.1f}/h)"
    )
    if report.soak_target_s is not None:
        parts = [
            f"{name} {len(runs)} runs {simulated_s:.0f} s {alarms} FA"
            for name, (runs, simulated_s, alarms) in soak_breakdown(report).items()
        ]
        seeds = sorted({r.seed for r in report.runs if r.seed is not None})
        if seeds:
            parts.append(f"seeds {seeds[0]}-{seeds[-1]}")
        lines.append(
            f"soak: {report.false_alarm_scenario_alarms} false alarm(s) in "
            f"{report.false_alarm_scenarios_s / 3600.0:.2f} simulated h "
            f"(target {report.soak_target_s / 3600.0:.2f} h) = "
            f"{report.false_alarm_check_per_hour:.2f} per simulated hour ({', '.join(parts)})"
        )
    lines.append(
        f"{len(report.runs)} scenario(s), {simulated_s:.0f} simulated s, "
        f"{sum(r.frames for r in report.runs)} frames, {wall_s:.1f} s wall; "
        f"tolerance {report.tolerance_s:.0f} s"
    )
    return "\n".join(lines)


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
    """The detector scenario ``name`` would run with: the agent's default model, or ``model``."""
    return build_detector(eval_config(name, script(name), width=width, height=height, model=model))


def evaluate(
    names: Sequence[str] | None = None,
    *,
    detector: Detector | None = None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    model: str | None = None,
) -> Report:
    """Run and score ``names`` (default: every evaluable scenario) with one shared detector
    (the agent's default model, or ``model``)."""
    chosen = list(names) if names else list(evaluable_scenarios())
    if detector is None:
        detector = _default_detector(chosen[0], width=width, height=height, model=model)
    runs = [run_scenario(name, detector, width=width, height=height) for name in chosen]
    return score(runs, tolerance_s)


def simulated_s(name: str, *, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> float:
    """Scene seconds one run of ``name`` covers: whole frames at its evaluation rate."""
    fps = eval_config(name, script(name), width=width, height=height).cameras[0].fps
    return max(1, round(script(name).duration_s * fps)) / fps


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
) -> Report:
    """Run false-alarm-check scenarios (default: all of them) for ``hours`` of simulated
    time in total, per ``soak_plan``; repetition k draws the scene with the script's seed
    plus k. ``on_run(done, planned, run)`` hears of each run as it finishes."""
    chosen = list(names) if names else list(false_alarm_scenarios())
    with_truth = [n for n in chosen if not script(n).expectations.false_alarm_check]
    if with_truth:
        raise ValueError(
            f"soak: {', '.join(with_truth)} is not a false-alarm check "
            f"(those are: {', '.join(false_alarm_scenarios())})"
        )
    target_s = 3600.0 * hours
    plan = soak_plan({n: simulated_s(n, width=width, height=height) for n in chosen}, target_s)
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


# --- command line ------------------------------------------------------------------------


def add_eval_parser(commands: Any) -> None:
    """The ``eval`` subcommand on hw-sim's parser."""
    command = commands.add_parser(
        "eval", help="run scenarios through the real pipeline and score rules and analyzers"
    )
    command.add_argument(
        "--scenario", action="extend", nargs="+", default=None, metavar="NAME",
        help="scenarios to run (default: every scenario with ground truth)",
    )  # fmt: skip
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    command.add_argument("--height", type=int, default=DEFAULT_HEIGHT)
    command.add_argument("--model", default=None, help="detector model (default: the agent's)")
    command.add_argument("--tolerance-s", type=float, default=DEFAULT_TOLERANCE_S)
    command.add_argument(
        "--soak-hours", type=float, default=None, metavar="HOURS",
        help="run the false-alarm-check scenarios (or --scenario ones) again and again, "
        "each time with another seed, for this much simulated time in total",
    )  # fmt: skip


def _print_soak_progress(done: int, planned: int, run: ScenarioRun, tolerance_s: float) -> None:
    """A line on stderr per soak run: an hour of scenes takes minutes."""
    alarms = score([run], tolerance_s).false_alarm_scenario_alarms
    print(
        f"soak {done}/{planned}: {run.name} seed {run.seed}: {alarms} false alarm(s) in "
        f"{run.duration_s:.0f} simulated s ({run.wall_s:.1f} s wall)",
        file=sys.stderr,
        flush=True,
    )


def run_eval_cli(args: argparse.Namespace) -> int:
    known = set(scenario_names())
    unknown = [n for n in args.scenario or () if n not in known]
    if unknown:
        print(
            f"hw-sim: error: unknown scenario(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return 2
    try:
        if args.soak_hours is None:
            report = evaluate(
                args.scenario,
                width=args.width,
                height=args.height,
                tolerance_s=args.tolerance_s,
                model=args.model,
            )
        else:
            report = soak(
                args.soak_hours,
                args.scenario,
                width=args.width,
                height=args.height,
                tolerance_s=args.tolerance_s,
                model=args.model,
                on_run=partial(_print_soak_progress, tolerance_s=args.tolerance_s),
            )
    except (OSError, ValueError) as error:  # missing model or media, bad config
        print(f"hw-sim: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_table(report))
    return 0
