"""`edge-agent check-config [--offline] FILE`: validate a config file, list every problem.

Every problem in one run, each with the dotted path of its key (docs/configuration.md);
exit 0 when the file is good, 2 when it has any problem. On the device it also checks what
only the device has: the TLS files, the outbox's directory and the file's mode. On a
laptop preparing a site, --offline leaves those out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_OK, load_checked_config
from edge_agent.config import brokers_text
from edge_agent.config_check import check_config_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = subparsers.add_parser(
        "check-config", help="validate a config file, list every problem", description=__doc__
    )
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
        if not args.offline and check_config_file(path, offline=True).ok:
            # Everything else is right: only what the device itself has is missing.
            print(
                "  (everything else is fine: these are checks of the device's own files; on a "
                f"laptop, away from the device, use `edge-agent check-config --offline {path}`)",
                file=sys.stderr,
            )
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
