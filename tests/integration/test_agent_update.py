"""The agent's own update, end to end (docs/updates.md, The agent itself): a real wheel of
this agent at a new version, signed with the operator's tool, sent over a real broker;
installed beside the running agent as a venv over the factory one (this test venv is the
factory install), switched; then what systemd does — the unit's ExecStartPre
(``edge_agent.update.prestart``) and ExecStart (``edge_agent.update.launcher run``) as
processes — starts the new agent, which keeps itself. A release that cannot import is
refused before the switch; one that dies at start is rolled back by the prestart; a
SIGKILL at every step of the install and switch leaves a device whose launcher starts a
working agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fakes.centre import Centre
from fakes.releases import (
    KEY,
    PUBLIC_HEX,
    archive_of,
    running_updating_agent,
    send_archive,
    updating_agent_config,
)
from fakes.wheels import agent_wheel, cannot_import, dies_at_run
from helpers import wait_until
from realdata import require_model

from edge_agent import __version__
from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.update import agent_env
from edge_agent.update.launcher import BASE_ENV, RELEASES_ENV
from edge_agent.update.release import verify_release
from edge_agent.update.store import ReleaseStore

ROOT = "city/agentupd/dev-1"


def _bumped(by: int) -> str:
    parts = __version__.split(".")
    return ".".join([*parts[:-1], str(int(parts[-1]) + by)])


NEW = _bumped(1)  # the release; the running (factory) agent is __version__
BROKEN, DIES = _bumped(2), _bumped(3)
TIMEOUT_S = 60.0
REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "edge_agent" / "update" / "launcher.py"
BASE_PYTHON = Path(sys.executable)  # the test venv: the factory install


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {
        "good": agent_wheel(out / "good", NEW),
        "broken": cannot_import(out / "broken", BROKEN),
        "dies": dies_at_run(out / "dies", DIES),
    }


def signed(tmp_path: Path, wheel: Path, name: str) -> Path:
    """An agent release made by the operator's tool (`edge-provision release agent`)."""
    from provisioning.cli import main

    key = tmp_path / "release.key"
    key.write_text(KEY.hex())
    folder = tmp_path / name
    assert (
        main(
            [
                "release",
                "agent",
                str(folder),
                str(wheel),
                "--expires",
                "2099-01-01",
                "--key",
                str(key),
            ]
        )
        == 0
    )
    return folder


def device_env(releases: Path) -> dict[str, str]:
    """The service's environment: nothing of this checkout on the path (the launched
    agent is whatever the launcher picks), the data paths as the test run has them."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", BASE_ENV)}
    env[RELEASES_ENV] = str(releases)
    return env


def prestart(releases: Path) -> str:
    """The unit's ExecStartPre: never fails."""
    done = subprocess.run(
        [str(BASE_PYTHON), "-m", "edge_agent.update.prestart"],
        env={**device_env(releases), "PYTHONPATH": str(REPO)},  # the factory's own code
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def launch(releases: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The unit's ExecStart (the launcher, as a script of the standard library only)."""
    return subprocess.run(
        [str(BASE_PYTHON), str(LAUNCHER), *args],
        env=device_env(releases),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def phase(store: ReleaseStore) -> str:
    state = store.state()
    assert state is not None
    return state.phase


# -- over the broker: installed beside, switched, launched, kept ----------------------


@dataclass
class Device:
    agent: Agent
    centre: Centre
    path: Path
    releases: Path


@pytest.fixture
def device(
    tmp_path: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Device]:
    """The factory agent, started as the launcher starts it (its two variables set)."""
    releases = tmp_path / "releases"
    monkeypatch.setenv(RELEASES_ENV, str(releases))
    monkeypatch.setenv(BASE_ENV, str(BASE_PYTHON))
    data = updating_agent_config(
        "agentupd",
        model=str(require_model("ssd_mobilenet_v1")),
        broker_port=broker.port,
        tmp_path=tmp_path,
        releases=releases,
        health_deadline_s=30,
    )
    with running_updating_agent(data, tmp_path / "config.yaml", broker.port, ROOT) as running:
        yield Device(running.agent, running.centre, running.path, releases)


def send(centre: Centre, archive: bytes, name: str) -> dict[str, object]:
    return send_archive(centre, archive, name, commit_timeout_s=120.0)  # it builds a venv


def outcome(centre: Centre, version: str, phases: tuple[str, ...]) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        for message in reversed(centre.inbox.at(f"{ROOT}/update")):
            body = json.loads(message.payload) if message.payload else {}
            if body.get("version") == version and body.get("phase") in phases:
                return dict(body)
        return None

    wait_until(lambda: final() is not None, TIMEOUT_S, f"agent {version} {phases}")
    result = final()
    assert result is not None
    return result


def test_an_agent_release_is_installed_beside_switched_launched_and_kept(
    tmp_path: Path, device: Device, wheels: dict[str, Path]
) -> None:
    archive = archive_of(signed(tmp_path, wheels["good"], "agent-new"))
    reply = send(device.centre, archive, "a1")
    assert reply["ok"] is True and reply["version"] == NEW and reply["state"] == "switching"
    env = device.releases / "agent" / NEW / "env"
    assert (env / ".ready").read_text().strip() == NEW  # built and checked before the switch
    assert device.agent.wait(30.0) and device.agent.exit_code == 75  # for systemd
    store = ReleaseStore(device.releases)
    assert store.current("agent") == NEW and phase(store) == "trial"

    # systemd: ExecStartPre, then ExecStart through the launcher, as processes.
    assert f"agent {NEW} trial" in prestart(device.releases)
    new = subprocess.Popen(
        [str(BASE_PYTHON), str(LAUNCHER), "run", "--config", str(device.path)],
        env=device_env(device.releases),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kept = outcome(device.centre, NEW, ("kept", "rolled_back"))
        assert kept["phase"] == "kept" and kept["attempts"] == 1, kept
        device.centre.send("status", {}, b"s1")
        status = device.centre.reply_body(b"s1")
        assert status["version"] == NEW  # the new code answers
        assert status["update"]["current"]["agent"] == NEW  # type: ignore[index]
    finally:
        new.send_signal(signal.SIGTERM)
        _out, err = new.communicate(timeout=TIMEOUT_S)
    assert new.returncode == 0, err[-3000:]
    assert f"running agent release {NEW}" in err
    assert phase(store) == "kept"
    # The next start runs it again; the factory agent is left as it was.
    assert launch(device.releases, "--version", cwd=tmp_path).stdout.strip() == f"edge-agent {NEW}"


def test_an_agent_release_that_cannot_import_is_refused_before_the_switch(
    tmp_path: Path, device: Device, wheels: dict[str, Path]
) -> None:
    reply = send(device.centre, archive_of(signed(tmp_path, wheels["broken"], "b")), "b1")
    assert reply["ok"] is False, reply
    assert "does not install or start" in str(reply["error"])
    assert "ImportError: this release is broken" in str(reply["error"])
    published = [json.loads(m.payload) for m in device.centre.inbox.at(f"{ROOT}/update")]
    assert any(b["phase"] == "refused" and "ImportError" in b["reason"] for b in published), (
        published
    )
    store = ReleaseStore(device.releases)
    assert store.current("agent") is None and not (device.releases / "agent" / BROKEN).exists()
    assert phase(store) == "rolled_back"
    assert not device.agent.wait(0.0)  # the running agent goes on (no exit, no switch)
    # ... and a good one after it goes through (nothing was left half-done).
    assert send(device.centre, archive_of(signed(tmp_path, wheels["good"], "g")), "g1")["ok"]


# -- without a broker: what systemd does after the switch, and power cuts ------------


def installed(releases: Path, folder: Path) -> ReleaseStore:
    """``folder``'s release placed, its environment built, switched (the agent then exits)."""
    store = ReleaseStore(releases)
    release = verify_release(
        folder,
        trusted_keys=[bytes.fromhex(PUBLIC_HEX)],
        installed=None,
        now=datetime.now(timezone.utc),
    )
    state = store.place(release)
    folder = releases / "agent" / release.version
    agent_env.build_env(folder, release.version, list(release.files), BASE_PYTHON)
    store.switch(state)
    return store


def test_a_new_agent_that_dies_at_start_is_rolled_back_by_the_prestart(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    releases = tmp_path / "releases"
    store = installed(releases, signed(tmp_path, wheels["dies"], "dies"))
    assert f"agent {DIES} trial" in prestart(releases)  # marks the trial as seen, keeps it
    first = launch(releases, "run", cwd=tmp_path)  # the new agent: it passed the install
    assert f"running agent release {DIES}" in first.stderr  # checks, and dies at its start
    assert first.returncode == 1 and "crashed at start" in first.stderr
    said = prestart(releases)  # Restart=on-failure: the next ExecStartPre takes it back
    assert "rolled_back" in said and "did not start" in said
    assert store.current("agent") is None and phase(store) == "rolled_back"
    again = launch(releases, "--version", cwd=tmp_path)
    assert again.stdout.strip() == f"edge-agent {__version__}", again.stderr  # the factory's
    assert "running the factory install" in again.stderr


CHILD = """
import os, signal, sys
from datetime import datetime, timezone
from pathlib import Path
from edge_agent.update.agent_env import build_env
from edge_agent.update.release import verify_release
from edge_agent.update.store import ReleaseStore

releases, folder, crash_at, healthy = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
def step(name):
    print(name, flush=True)
    if name == crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
store = ReleaseStore(releases, on_step=step)
release = verify_release(folder, trusted_keys=[bytes.fromhex(sys.argv[5])], installed=None,
                         now=datetime.now(timezone.utc))
step("verified")
state = store.place(release)  # the old agent, on its update_commit
build_env(releases / "agent" / release.version, release.version, list(release.files),
          Path(sys.argv[6]), on_step=step)
store.switch(state)  # ... and it exits 75
store.repair(agent_start=False)  # systemd's ExecStartPre
state = store.repair()  # the new agent's own start takes its trial
if healthy == "1":
    store.keep(state, "healthy")
else:
    store.roll_back(state, "unhealthy")
"""


def run_child(releases: Path, folder: Path, crash_at: str, healthy: bool) -> list[str]:
    args = [str(releases), str(folder), crash_at, "1" if healthy else "0", PUBLIC_HEX]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args, str(BASE_PYTHON)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 3,
        check=False,
    )
    steps = done.stdout.split()
    assert done.returncode == (-9 if crash_at in steps else 0), done.stderr
    return steps


# Every durable step of an agent update, in order (the probe test checks the list).
KEPT_STEPS = [
    "verified",
    "placed",
    "installed",
    "env_created",
    "wheels_installed",
    "env_checked",
    "env_ready",
    "switching",
    "current_linked",
    "trial",
    "prestarted",
    "trial_started",
    "kept",
]
ROLLBACK_STEPS = ["rolling_back", "current_restored", "rolled_back"]  # instead of "kept"


def test_the_power_cut_cases_are_every_step(tmp_path: Path, wheels: dict[str, Path]) -> None:
    release = signed(tmp_path, wheels["good"], "release")
    for healthy, expected in ((True, KEPT_STEPS), (False, KEPT_STEPS[:-1] + ROLLBACK_STEPS)):
        probe = tmp_path / f"probe-{healthy}"
        shutil.copytree(release, probe / "r")
        assert run_child(probe / "releases", probe / "r", "never", healthy) == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "healthy"), [(s, True) for s in KEPT_STEPS] + [(s, False) for s in ROLLBACK_STEPS]
)
def test_a_power_cut_at_every_step_of_an_agent_update_leaves_a_device_that_starts(
    tmp_path: Path, wheels: dict[str, Path], step: str, healthy: bool
) -> None:
    """SIGKILL at ``step`` of the install, the switch or the new agent's trial (kept, or
    rolled back by its health check); then the device starts as systemd starts it: the
    prestart, then the launcher. It runs the factory agent or the new one, never neither,
    and the new one only while it is kept or on its one trial."""
    release = signed(tmp_path, wheels["good"], "r")
    run_child(tmp_path / "releases", release, step, healthy)
    prestart(tmp_path / "releases")
    started = launch(tmp_path / "releases", "--version", cwd=tmp_path)
    store = ReleaseStore(tmp_path / "releases")
    current, state = store.current("agent"), store.state()
    assert started.returncode == 0, started.stderr
    version = NEW if current == NEW else __version__
    assert started.stdout.strip() == f"edge-agent {version}", started.stderr
    if state is None:  # cut before the release was placed: no update happened
        assert current is None
    elif state.phase == "trial":  # cut after the switch: the new one gets its one trial
        assert current == NEW and state.attempts in (0, 1)
    else:  # never the new one unless it was kept
        assert state.phase in ("kept", "rolled_back")
        assert (current == NEW) == (state.phase == "kept")
    assert list(store.staging.iterdir()) == []
