"""``edge-agent check-config FILE``: validate a config file, list every problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_OK, load_checked_config
from edge_agent.config import brokers_text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = subparsers.add_parser("check-config", help="validate a config file, list every problem")
    check.add_argument("config", help="the YAML config file")
    check.add_argument(
        "--offline",
        action="store_true",
        help="away from the device: leave out its TLS files, outbox directory and file modes",
    )
    check.set_defaults(handler=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.config)
    config = load_checked_config(path, offline=args.offline)
    if config is None:
        return EXIT_BAD_INPUT
    print(
        f"{path}: OK — site {config.site_id}, device {config.device_id}, "
        f"{len(config.cameras)} camera(s), model {config.detector.model}, "
        f"broker {brokers_text(config.mqtt)}, topics under {config.topic_root}/"
        + (
            " (offline: TLS files, outbox directory and file mode not checked)"
            if args.offline
            else ""
        )
    )
    return EXIT_OK
