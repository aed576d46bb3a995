"""What every ``edge-agent`` command shares: exit codes, the error line, the checked config."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge_agent.config import AgentConfig, ConfigError
from edge_agent.config_check import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    check_config_file,
    config_file_hint,
    default_config_path,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "add_config_option",
    "default_config_path",
    "error",
    "load_checked_config",
    "positive_int",
    "quiet_camera_logs",
    "running_agent_note",
]

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
        hint = config_file_hint(path)
        if hint is not None:
            print(f"  ({hint})", file=sys.stderr)
        return None
    return check.config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config``, defaulting as ``run`` does: the service's file on a device."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"the agent's config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})",
    )


def running_agent_note(config: AgentConfig) -> str:
    """When ``edge-agent run`` runs on this config's outbox: that it may hold the camera
    (a Pi camera or a USB camera allows one reader) and what to do instead; else ""."""
    from edge_agent.runlock import running_pid

    pid = running_pid(config.outbox.path)
    if pid is None:
        return ""
    holder = f"pid {pid}" if pid else "another process"
    return (
        f"; the agent is running on this config ({holder}) and may hold the camera: "
        "look through the technician's page (docs/web.md), or stop the agent "
        "(sudo systemctl stop edge-agent), try again and start it after"
    )


def quiet_camera_logs(log_level: str) -> None:
    """For `selftest`, `snapshot` and `detect` on a camera: their own line says why it
    gave nothing and what to check; the reconnect warnings of each retry and OpenCV's own
    would bury it on the technician's screen. `--log-level DEBUG` keeps them all."""
    if log_level.upper() == "DEBUG":
        return
    from edge_agent.capture.opencv_source import quiet_opencv

    for name in ("edge_agent.capture.opencv_source", "edge_agent.capture.pyav_source"):
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet_opencv()
