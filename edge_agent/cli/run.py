"""``edge-agent run [--config FILE]``: the agent, until SIGTERM/SIGINT; SIGHUP reloads.

Without ``--config`` the file is ``$EDGE_AGENT_CONFIG``, else ``/etc/edge-agent/config.yaml``
(the systemd unit's ``ConfigurationDirectory``), so the service's command line carries no
path an admin has to keep in step.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from edge_agent.capture import CaptureError
from edge_agent.cli.common import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    default_config_path,
    error,
    load_checked_config,
)
from edge_agent.config import AgentConfig
from edge_agent.datafiles import DataFileError
from edge_agent.outbox import OutboxError
from edge_agent.runlock import AlreadyRunning, RunLock
from edge_agent.service.malloc import limit_malloc_arenas

log = logging.getLogger("edge_agent")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the agent until SIGTERM/SIGINT (SIGHUP re-reads the config)",
        description="Run the agent until SIGTERM or SIGINT: it stops cleanly (status "
        "'stopped'; what was not delivered stays in the outbox). SIGHUP re-reads the config, "
        "checked first: a bad one is refused and the running one kept. On a device the "
        "service runs it (systemctl start edge-agent); check the config first with "
        "`edge-agent check-config` and the device with `edge-agent selftest`. Exit 1 when "
        "the outbox cannot be opened (or another agent runs on it), 2 when the config, the "
        "model or a camera source is wrong.",
    )
    run.add_argument(
        "--config",
        help=f"the agent's YAML config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})",
    )
    run.set_defaults(handler=cmd_run)


def run_agent(
    config: AgentConfig, *, seconds: float | None = None, config_path: Path | None = None
) -> int:
    """Run until SIGTERM/SIGINT (or ``seconds``); stop cleanly either way. With
    ``config_path``, SIGHUP re-reads it (checked first; a bad one is refused and logged).
    One agent per outbox (``RunLock``): a second one exits 1 and touches nothing."""
    limit_malloc_arenas()  # one malloc arena for the agent's threads: ~3 MB less resident
    lock = RunLock(config.outbox.path)
    try:
        lock.acquire()
    except (AlreadyRunning, OSError) as problem:
        print(f"edge-agent: error: cannot start: {problem}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _run_locked(config, seconds=seconds, config_path=config_path)
    finally:
        lock.release()


def _run_locked(config: AgentConfig, *, seconds: float | None, config_path: Path | None) -> int:
    from edge_agent.app import Agent
    from edge_agent.detect.tflite import ModelLoadError

    try:
        agent = Agent(config, config_path=config_path)
    except (DataFileError, ModelLoadError, CaptureError, ValueError) as problem:
        return error(str(problem))
    except (OutboxError, OSError) as problem:  # the disk, not the input: exit 1
        print(f"edge-agent: error: cannot start: {problem}", file=sys.stderr)
        return EXIT_FAILED

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        agent.request_stop()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        # Not in the handler: a reload joins threads and may load a model.
        log.info("received SIGHUP, reloading the config")
        threading.Thread(target=agent.reload, name="reload", daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if config_path is not None:
            signal.signal(signal.SIGHUP, on_hangup)
    agent.start()
    try:
        agent.wait(seconds)
    finally:
        agent.stop()
    return agent.exit_code  # 75: an update switched the agent, systemd starts the new one


def cmd_run(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else default_config_path()
    config = load_checked_config(path)
    if config is None:
        return EXIT_BAD_INPUT
    if config.updates is not None:  # an installed config release runs instead
        from edge_agent.update.host import agent_on_trial, effective_config_path

        release = effective_config_path(path, config.updates)
        if release != path:
            checked = load_checked_config(release)  # checked when it was installed...
            if checked is None and agent_on_trial(config.updates):  # ...by the old agent
                return error("this new agent refuses the installed config release: its trial fails")
            config = checked or config
    return run_agent(config, config_path=path)
