"""``hw-sim fleet``: the command line of :func:`hw_sim.fleet.run.run_fleet`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_agent.config import OutboxConfig
from edge_agent.mqtt import DrainSettings
from hw_sim.fleet.profiles import PROFILES
from hw_sim.fleet.report import format_report
from hw_sim.fleet.run import FleetOptions, run_fleet
from hw_sim.fleet.worker import quiet_logs

__all__ = ["add_fleet_parser", "run_fleet_cli"]


def add_fleet_parser(commands: Any) -> None:
    defaults = OutboxConfig()
    fleet = commands.add_parser(
        "fleet",
        help="N simulated devices (the agent's outbox and publisher) against one broker",
        description="Load and broker-restart test: latency, rates, loss and duplicates by "
        "seq, broker CPU and memory, reconnect times and backlog drain after a SIGKILL.",
    )
    fleet.add_argument("--devices", type=int, required=True)
    fleet.add_argument("--duration-s", type=float, default=60.0, help="traffic for this long")
    fleet.add_argument("--profile", choices=sorted(PROFILES), default="quiet")
    fleet.add_argument(
        "--processes",
        type=int,
        default=2,
        help="worker processes, at least one per 120 devices (0: threads here)",
    )
    fleet.add_argument("--tls", action="store_true", help="mutual TLS with a throwaway CA")
    where = fleet.add_mutually_exclusive_group()
    where.add_argument("--start-broker", action="store_true", help="start mosquitto (default)")
    where.add_argument("--port", type=int, help="a running broker on --host:--port instead")
    fleet.add_argument("--host", default="127.0.0.1")
    fleet.add_argument("--broker-pid", type=int, help="that broker's pid, for CPU and memory")
    fleet.add_argument("--kill-broker-at-s", type=float, help="SIGKILL the broker this far in")
    fleet.add_argument("--broker-down-s", type=float, default=5.0, help="then restart it after")
    fleet.add_argument("--reconnect-bound-s", type=float, default=120.0)
    fleet.add_argument(
        "--drain-rate-msgs-per-s", type=float, default=defaults.drain_rate_msgs_per_s
    )
    fleet.add_argument(
        "--drain-rate-bytes-per-s", type=float, default=float(defaults.drain_rate_bytes_per_s)
    )
    fleet.add_argument("--ramp-s", type=float, default=5.0, help="start the devices over this long")
    fleet.add_argument("--settle-s", type=float, default=180.0, help="max wait for backlogs")
    fleet.add_argument("--outbox-dir", type=Path, help="default: a temp dir on /dev/shm")
    fleet.add_argument("--seed", type=int, default=1)
    fleet.add_argument("--json", action="store_true", help="print the report as JSON")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run_fleet_cli(args: argparse.Namespace) -> int:
    quiet_logs()
    try:
        options = FleetOptions(
            devices=args.devices,
            duration_s=args.duration_s,
            profile=PROFILES[args.profile],
            processes=args.processes,
            tls=args.tls,
            host=args.host,
            port=args.port,
            broker_pid=args.broker_pid,
            kill_broker_at_s=args.kill_broker_at_s,
            broker_down_s=args.broker_down_s,
            drain=DrainSettings(args.drain_rate_msgs_per_s, args.drain_rate_bytes_per_s),
            ramp_s=args.ramp_s,
            settle_s=args.settle_s,
            reconnect_bound_s=args.reconnect_bound_s,
            outbox_dir=args.outbox_dir,
            seed=args.seed,
        )
        report = run_fleet(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as error:
        print(f"hw-sim: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_json_safe(asdict(report)), indent=2))
    else:
        print(format_report(report))
    failed = report.unexplained_missing or report.unexplained_duplicates
    if report.restart is not None and not report.restart.within_bound:
        failed = True
    return 1 if failed else 0
