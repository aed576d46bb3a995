"""Scoring what a scenario run emitted against the scenario's truth (pure: no video).

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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import Lifecycle
from hw_sim.scenes import Expectations

DEFAULT_TOLERANCE_S = 5.0
STATE_RULE_KINDS = ("congestion",)  # object rules that publish state, not alerts
COUNT_RULE_KINDS = ("line_crossing",)


def label_family(label: str) -> str:
    return "vehicle" if label in VEHICLE_LABELS else label


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
                    {"name": name, "runs": share.runs, "simulated_s": round(share.simulated_s, 2),
                     "false_alarms": share.false_alarms}
                    for name, share in soak_breakdown(self).items()
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


def _score_alerts(rows: dict[str, RowScore], run: ScenarioRun, tolerance_s: float) -> int:
    """Add the run's alerts to the alert rows (one per kind); the false alarms among them."""
    observed = observed_alerts(run)
    expected = [Interval(e.kind, e.zone or "", e.start_s, e.end_s) for e in run.expectations.alerts]
    pairs = match(observed, expected, tolerance_s, zones=True)
    kinds = {i.key for i in observed} | {i.key for i in expected}
    kinds |= {k for k in run.rule_kinds if k not in (*STATE_RULE_KINDS, *COUNT_RULE_KINDS)}
    false_alarms = 0
    for kind in sorted(kinds):
        row = _row(rows, kind, "alert")
        false_alarms += _score_intervals(row, run, kind, observed, expected, pairs)
    return false_alarms


def _score_states(rows: dict[str, RowScore], run: ScenarioRun, tolerance_s: float) -> int:
    """Add the run's state episodes to the state rows (one per topic), with the agreement
    in time; the false alarms (unmatched episodes) among them."""
    episodes = observed_states(run)
    truth = [Interval(e.analyzer, e.state, e.start_s, e.end_s) for e in run.expectations.states]
    pairs = match(episodes, truth, tolerance_s, zones=False)
    topics = {e.key for e in episodes} | {t.key for t in truth} | set(run.state_topics)
    false_alarms = 0
    for topic in sorted(topics):
        row = _row(rows, topic, "state")
        false_alarms += _score_intervals(row, run, topic, episodes, truth, pairs)
        for t in truth:
            if t.key == topic:
                row.agreement_num_s += _agreement(episodes, t)
                row.agreement_den_s += t.end_s - t.start_s
    return false_alarms


def _score_counts(rows: dict[str, RowScore], run: ScenarioRun) -> None:
    """Add the run's crossings to the count rows (one per line): summed per (line,
    direction, label family) against the expected counts."""
    counted: dict[tuple[str, str, str], int] = {}
    for report in run.counts:
        for direction, by_label in report.counts.items():
            for label, n in by_label.items():
                key = (report.line, direction, label_family(label))
                counted[key] = counted.get(key, 0) + n
    wanted: dict[tuple[str, str, str], int] = {}
    for c in run.expectations.counts:
        key = (c.line, c.direction, label_family(c.label))
        wanted[key] = wanted.get(key, 0) + c.count
    lines = {k[0] for k in counted} | {k[0] for k in wanted}
    for line in sorted(lines):
        row = _row(rows, line, "count")
        row.scenarios.append(run.name)
        row.simulated_s += run.duration_s
        for key in sorted({k for k in (*counted, *wanted) if k[0] == line}):
            got, want = counted.get(key, 0), wanted.get(key, 0)
            row.observed += got
            row.expected += want
            row.matched_observed += min(got, want)
            row.matched_expected += min(got, want)
            row.count_errors.append(got - want)


def score(runs: Iterable[ScenarioRun], tolerance_s: float = DEFAULT_TOLERANCE_S) -> Report:
    """Score ``runs`` against their expectations: one report, rows summed over the runs."""
    runs = list(runs)
    report = Report(rows={}, runs=runs, tolerance_s=tolerance_s)
    for run in runs:
        false_alarms_here = _score_alerts(report.rows, run, tolerance_s)
        false_alarms_here += _score_states(report.rows, run, tolerance_s)
        _score_counts(report.rows, run)
        if run.expectations.false_alarm_check:
            report.false_alarm_scenarios_s += run.duration_s
            report.false_alarm_scenario_alarms += false_alarms_here
    return report


@dataclass(frozen=True)
class SoakShare:
    """One false-alarm-check scenario's part of a soak."""

    runs: int
    simulated_s: float
    false_alarms: int


def soak_breakdown(report: Report) -> dict[str, SoakShare]:
    """Per false-alarm-check scenario: its runs, their simulated seconds, their false alarms."""
    names = dict.fromkeys(r.name for r in report.runs if r.expectations.false_alarm_check)
    breakdown = {}
    for name in names:
        runs = [r for r in report.runs if r.name == name]
        alone = score(runs, report.tolerance_s)
        breakdown[name] = SoakShare(
            len(runs), alone.false_alarm_scenarios_s, alone.false_alarm_scenario_alarms
        )
    return breakdown
