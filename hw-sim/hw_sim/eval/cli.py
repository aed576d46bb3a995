"""The ``eval`` subcommand of ``hw-sim``: its arguments, progress and exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

from hw_sim.eval.report import format_table
from hw_sim.eval.run import DEFAULT_HEIGHT, DEFAULT_WIDTH, evaluate
from hw_sim.eval.score import DEFAULT_TOLERANCE_S, ScenarioRun, score
from hw_sim.eval.soak import soak
from hw_sim.scenes import scenario_names


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
    command.add_argument(
        "--processes", type=int, default=1, metavar="N",
        help="spread the runs over N worker processes, one detector thread each (the same "
        "runs and figures; a soak on a 4-core Pi: --processes 3)",
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
    if args.processes < 1:
        print(
            f"hw-sim: error: --processes must be 1 or more, not {args.processes}", file=sys.stderr
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
                processes=args.processes,
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
                processes=args.processes,
            )
    except (OSError, ValueError) as error:  # missing model or media, bad config
        print(f"hw-sim: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_table(report))
    return 0
