"""``edge-agent``: the command line a technician and a developer use.

Exit codes: 0 success, 1 the agent failed while running, 2 bad input (config,
file, model) — with the reason on stderr.
"""

# One module per command, each with ``register(subparsers)``; this one only builds the
# parser and dispatches (the entry point ``edge_agent.cli:main``). The docstring above is
# the ``--help`` text.

from __future__ import annotations

import argparse
from collections.abc import Sequence

from edge_agent import __version__
from edge_agent.cli import (
    check_config,
    demo,
    detect,
    enroll,
    models,
    replay,
    run,
    selftest,
    snapshot,
    watch,
    web_password,
)
from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, load_checked_config
from edge_agent.cli.run import run_agent
from edge_agent.service.logs import setup_logging

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "build_parser",
    "load_checked_config",
    "main",
    "run_agent",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument(
        "--log-format",
        choices=("auto", "journal", "plain"),
        default="auto",
        help="journal: <priority> prefixes, no timestamps (auto: when stderr is the journal)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (
        run,
        check_config,
        replay,
        demo,
        watch,
        models,
        detect,
        selftest,
        snapshot,
        enroll,
        web_password,
    ):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    handler = args.handler
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return code
