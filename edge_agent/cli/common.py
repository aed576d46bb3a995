"""What every ``edge-agent`` command shares: exit codes, the error line, the checked config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.config import AgentConfig, ConfigError
from edge_agent.config_check import check_config_file

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def error(message: str) -> int:
    print(f"edge-agent: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def load_checked_config(path: Path, *, offline: bool = False) -> AgentConfig | None:
    """The config, or None with every problem (schema and beyond) printed to stderr."""
    check = check_config_file(path, offline=offline)
    if check.config is None or check.problems:
        print(str(ConfigError(str(path), list(check.problems))), file=sys.stderr)
        return None
    return check.config
