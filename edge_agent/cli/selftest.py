"""`edge-agent selftest --config FILE`: the technician's checklist at the pole.

One line per check (PASS, WARN, FAIL or SKIP, what was seen, and what to do); exit 0 when
nothing failed, 1 when a check failed, 2 when the config must be fixed first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.cli.common import add_config_option, default_config_path, quiet_camera_logs
from edge_agent.selftest import CheckResult, SelftestOptions, exit_code, run_selftest
from edge_agent.selftest.report import as_json, summary


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "selftest",
        help="check config, cameras, model, outbox, clock and broker; one line each",
        description=__doc__,
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    parser.add_argument(
        "--camera-s",
        type=_positive_float,
        default=3.0,
        metavar="S",
        help="seconds each camera is watched to measure its frame rate (default 3)",
    )
    parser.add_argument(
        "--timeout-s",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="bound on each broker step (default 10)",
    )
    parser.add_argument(
        "--centre-wait-s",
        type=_non_negative_float,
        default=0.0,
        metavar="S",
        help="wait this long for a `ping` from the centre and answer it (default 0: skipped)",
    )
    parser.set_defaults(handler=selftest_handler)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def selftest_handler(args: argparse.Namespace) -> int:
    config: Path = args.config or default_config_path()
    quiet_camera_logs(args.log_level)  # each camera's line says why it gave nothing
    options = SelftestOptions(
        camera_s=args.camera_s, timeout_s=args.timeout_s, centre_wait_s=args.centre_wait_s
    )

    def show(result: CheckResult) -> None:
        if not args.json:
            print(result.line, flush=True)
            if result.name == "commands" and result.status == "PASS" and args.centre_wait_s:
                print(f"      waiting up to {args.centre_wait_s:g} s for a ping from the centre")

    if not args.json:
        print(f"edge-agent selftest: {config}", flush=True)
    results = run_selftest(config, options, report=show)
    if args.json:
        print(as_json(results))
    else:
        print(summary(results))
    sys.stdout.flush()
    return exit_code(results)
