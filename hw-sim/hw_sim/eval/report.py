"""The report of ``hw-sim eval`` as a table for a terminal (``Report.as_dict`` is the
JSON one)."""

from __future__ import annotations

from collections.abc import Sequence

from hw_sim.eval.score import Report, soak_breakdown


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
            f"{name} {share.runs} runs {share.simulated_s:.0f} s {share.false_alarms} FA"
            for name, share in soak_breakdown(report).items()
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
