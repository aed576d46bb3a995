"""The service's stable start: runs the agent release ``{releases}/agent/current`` names
when its environment is ready, else the factory install (docs/updates.md, The agent itself).

    ExecStartPre=/opt/edge-agent/venv/bin/python -m edge_agent.update.prestart
    ExecStart=/opt/edge-agent/venv/bin/python -m edge_agent.update.launcher run

The agent's arguments follow the module. It always runs from the factory venv and imports
nothing but the standard library (not even ``edge_agent``'s other modules), so no release
can break it, and it can run as a plain script. The process is replaced (``exec``): the
agent keeps systemd's main PID, notify socket and watchdog. A release runs by its
versioned path (``agent/3/env/bin/edge-agent``, never through ``current``), so a switch
while it runs never changes the code it loads later.

The agent gets ``EDGE_AGENT_RELEASES_DIR`` (where this looked) and
``EDGE_AGENT_BASE_PYTHON`` (the factory interpreter, which builds the next release's
environment): an agent that lacks them was not started by this, and refuses agent releases.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BASE_ENV", "READY", "RELEASES_ENV", "base_command", "choose", "main", "releases_dir"]

RELEASES_ENV = "EDGE_AGENT_RELEASES_DIR"
BASE_ENV = "EDGE_AGENT_BASE_PYTHON"
DEFAULT_RELEASES = "/var/lib/edge-agent/releases"  # updates.dir's default
ENV = "env"  # {releases}/agent/{version}/env: the release's venv
READY = ".ready"  # in it, the version, written last once it passed its checks
SCRIPT = "edge-agent"


def releases_dir() -> Path:
    return Path(os.environ.get(RELEASES_ENV) or DEFAULT_RELEASES).absolute()


def base_command(base_python: Path, args: Sequence[str]) -> list[str]:
    """The factory install's agent: its console script beside its interpreter."""
    script = base_python.parent / SCRIPT
    if script.is_file():
        return [str(script), *args]
    return [str(base_python), "-m", "edge_agent.cli", *args]


def choose(releases: Path, base_python: Path, args: Sequence[str]) -> tuple[list[str], str]:
    """The command that starts the agent, and why that one (a line for the journal)."""
    base = base_command(base_python, args)
    current = releases / "agent" / "current"
    if not current.is_symlink():
        return base, "running the factory install (no agent release)"
    version = os.readlink(current)
    env = releases / "agent" / version / ENV
    script = env / "bin" / SCRIPT
    try:
        ready = (env / READY).read_text(encoding="utf-8").strip()
    except OSError:
        ready = None
    if ready != version or not os.access(script, os.X_OK):
        why = "has no ready environment" if ready != version else f"has no {script}"
        return base, f"agent release {version} {why}: running the factory install"
    return [str(script), *args], f"running agent release {version} ({env})"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    releases = releases_dir()
    base_python = Path(sys.executable)
    command, why = choose(releases, base_python, args)
    environment = {**os.environ, RELEASES_ENV: str(releases), BASE_ENV: str(base_python)}
    print(f"edge-agent launcher: {why}", file=sys.stderr, flush=True)
    try:
        os.execve(command[0], command, environment)
    except OSError as error:  # a release that cannot even be executed: the factory install
        command = base_command(base_python, args)
        print(f"edge-agent launcher: {error}; running the factory install", file=sys.stderr)
        sys.stderr.flush()
        os.execve(command[0], command, environment)
    return 1  # not reached: execve replaced the process or raised


if __name__ == "__main__":
    sys.exit(main())
