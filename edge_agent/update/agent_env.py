"""An agent release made runnable, beside the running agent and before the switch
(docs/updates.md, The agent itself).

The factory venv (``/opt/edge-agent/venv``, docs/install.md) is the **base**: it holds the
heavy dependencies (numpy, OpenCV, LiteRT; picamera2 from apt through its system site)
and the launcher. An agent release is the agent's wheel and any dependency wheels that
changed. It becomes ``{dir}/agent/{version}/env``: a new venv of the base's interpreter
(with the system site when the base has it) whose site-packages holds the release's wheels,
installed ``--no-index --no-deps`` from the release's own verified files (no network), and
a ``.pth`` that adds the base's site-packages *after* them: the release's wheels shadow the
base's, everything else comes from the base. Why not a full venv per release: a Pi has
neither the bandwidth nor the SD card for numpy and OpenCV in every release, and their
wheels change far more rarely than the agent.

Then it is checked by itself (``python -I``: no PYTHONPATH, no user site, no working
directory on the path): ``pip check`` (every requirement met, by the release or the base)
and ``edge-agent --version`` must say the release's version (the CLI and what it imports
load). A release that fails is refused before the switch. Last, every file is fsynced and
``env/.ready`` written: the launcher runs only an environment that has it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.files import fsync_path, write_atomic
from edge_agent.update.launcher import BASE_ENV, ENV, READY, RELEASES_ENV, SCRIPT

__all__ = ["AgentEnvError", "Launch", "build_env", "launched"]

PIP_TIMEOUT_S = 900.0  # a dependency wheel on an SD card
CHECK_TIMEOUT_S = 120.0
PTH = "_edge_agent_base.pth"
_BASE_INFO = """
import json, pathlib, site, sys
cfg = pathlib.Path(sys.prefix, "pyvenv.cfg")
pairs = [l.split("=", 1) for l in cfg.read_text().splitlines() if "=" in l] if cfg.exists() else []
settings = {k.strip().lower(): v.strip().lower() for k, v in pairs}
print(json.dumps({
    "site": [p for p in site.getsitepackages() if p.startswith(sys.prefix)],
    "system_site": settings.get("include-system-site-packages") == "true",
    "venv": sys.prefix != sys.base_prefix,
}))
"""  # what the base is: its own site-packages, and whether it sees the system's


class AgentEnvError(Exception):
    """The release's environment could not be made, or does not start; the message says."""


@dataclass(frozen=True)
class Launch:
    """How the running agent was started by the launcher (``edge_agent.update.launcher``)."""

    releases: Path
    base_python: Path


def launched() -> Launch | None:
    """The launcher's word, or None: this agent was not started by it."""
    base = os.environ.get(BASE_ENV)
    releases = os.environ.get(RELEASES_ENV)
    if not base or not releases:
        return None
    return Launch(Path(releases), Path(base))


def _run(command: list[str], timeout_s: float, what: str) -> str:
    environment = {"PATH": os.defpath, "PIP_CONFIG_FILE": os.devnull, "LC_ALL": "C.UTF-8"}
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=environment,
            check=False,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AgentEnvError(f"{what}: {error}") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise AgentEnvError(f"{what} failed (exit {done.returncode}): {' | '.join(said)}")
    return done.stdout


def _base_info(base_python: Path) -> tuple[list[str], bool]:
    out = _run([str(base_python), "-I", "-c", _BASE_INFO], CHECK_TIMEOUT_S, "asking the base")
    info = json.loads(out)
    if not info["venv"] or not info["site"]:
        raise AgentEnvError(f"{base_python} is not a venv's interpreter (the factory install)")
    return [str(p) for p in info["site"]], bool(info["system_site"])


def _site_packages(python: Path) -> Path:
    code = (
        "import site, sys; "
        "print(next(p for p in site.getsitepackages() if p.startswith(sys.prefix)))"
    )
    return Path(_run([str(python), "-I", "-c", code], CHECK_TIMEOUT_S, "the new env").strip())


def _sync_tree(root: Path) -> None:
    """Every file and folder of ``root`` on the disk (pip writes without fsync)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                fsync_path(path)
        fsync_path(Path(folder))


def build_env(
    release: Path,
    version: str,
    wheels: list[str],
    base_python: Path,
    *,
    on_step: Callable[[str], None] = lambda step: None,
) -> Path:
    """``release/env`` from the release's ``wheels`` over the base; checked, synced and
    marked ready. :class:`AgentEnvError` when it cannot be made or does not start."""
    env = release / ENV
    python = env / "bin" / "python"
    site_dirs, system_site = _base_info(base_python)
    venv = [str(base_python), "-I", "-m", "venv", "--without-pip", str(env)]
    _run(venv + (["--system-site-packages"] if system_site else []), CHECK_TIMEOUT_S, "venv")
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs)
    (_site_packages(python) / PTH).write_text(lines, encoding="utf-8")
    on_step("env_created")
    pip = [str(base_python), "-I", "-m", "pip", "--python", str(python)]
    quiet = ["--disable-pip-version-check", "--no-input", "--quiet"]
    _run(
        [*pip, "install", *quiet, "--no-index", "--no-deps", "--no-cache-dir"]
        + [str(release / name) for name in wheels],
        PIP_TIMEOUT_S,
        "installing the wheels",
    )
    on_step("wheels_installed")
    _run([*pip, "check", *quiet], CHECK_TIMEOUT_S, "pip check (a requirement not met)")
    said = _run(
        [str(python), "-I", "-m", "edge_agent.cli", "--version"],
        CHECK_TIMEOUT_S,
        "the new agent's start (edge-agent --version)",
    ).strip()
    if said != f"edge-agent {version}":
        raise AgentEnvError(f"the new agent says {said[:80]!r}, not edge-agent {version}")
    if not os.access(env / "bin" / SCRIPT, os.X_OK):
        raise AgentEnvError(f"the agent's wheel made no {SCRIPT} script")
    on_step("env_checked")
    _sync_tree(env)
    write_atomic(env / READY, f"{version}\n".encode(), 0o644)
    on_step("env_ready")
    return env
