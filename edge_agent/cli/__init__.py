"""edge-agent: the command line a technician and a developer use.

Exit codes: 0 success, 1 the agent failed while running, 2 bad input (config,
file, model) — with the reason on stderr.
"""

# One module per command, each with ``register(subparsers)``; this one only builds the
# parser and dispatches (the entry point ``edge_agent.cli:main``). The docstring above is
# the ``--help`` text. A command line that names its command imports only that command's
# module: ``run`` does not carry the page's server, selftest, fleet view or face code of
# the other commands (bench/README.md, memory).

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from edge_agent import __version__
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


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `yes | head`

# Command name -> its module in edge_agent.cli, in the order ``--help`` lists them.
COMMANDS = {
    "run": "run",
    "check-config": "check_config",
    "replay": "replay",
    "demo": "demo",
    "watch": "watch",
    "models": "models",
    "detect": "detect",
    "selftest": "selftest",
    "snapshot": "snapshot",
    "enroll": "enroll",
    "web-password": "web_password",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` (a name in ``COMMANDS``) that command alone."""
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
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"edge_agent.cli.{module}").register(commands)
    return parser


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is one), else None."""
    return next((word for word in argv if word in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(named_command(words))
    args = parser.parse_args(words)
    setup_logging(args.log_level, args.log_format)
    handler = args.handler
    try:
        code: int = handler(args)
        sys.stdout.flush()  # inside the try: a closed pipe is found here, not at exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`edge-agent replay … | head`): stop quietly,
        # as `yes | head` does, instead of a traceback; nothing more can be written there.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code
