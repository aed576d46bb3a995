"""``edge-agent run --config FILE``: the agent, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from edge_agent.capture import CaptureError
from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, error, load_checked_config
from edge_agent.config import AgentConfig
from edge_agent.datafiles import DataFileError
from edge_agent.outbox import OutboxError

log = logging.getLogger("edge_agent")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, help="the agent's YAML config file")
    run.set_defaults(handler=cmd_run)


def run_agent(config: AgentConfig, *, seconds: float | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``seconds``); stop cleanly either way."""
    from edge_agent.app import Agent
    from edge_agent.detect.tflite import ModelLoadError

    try:
        agent = Agent(config)
    except (DataFileError, ModelLoadError, CaptureError, ValueError) as problem:
        return error(str(problem))
    except (OutboxError, OSError) as problem:  # the disk, not the input: exit 1
        print(f"edge-agent: error: cannot start: {problem}", file=sys.stderr)
        return EXIT_FAILED

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        agent.request_stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    agent.start()
    try:
        agent.wait(seconds)
    finally:
        agent.stop()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = load_checked_config(Path(args.config))
    if config is None:
        return EXIT_BAD_INPUT
    return run_agent(config)
