"""The agent's own update, the small parts (docs/updates.md, The agent itself): the
launcher's choice of what runs, its exec, the prestart that never fails the unit, the
agent release's format, the operator's `release agent`, and the refusal of an agent
release by an agent the launcher did not start."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fakes.releases import KEY, PUBLIC_HEX, archive_of, make_release

from edge_agent import crypto
from edge_agent.update.config import UpdatesConfig
from edge_agent.update.errors import UpdateError
from edge_agent.update.launcher import BASE_ENV, RELEASES_ENV, base_command, choose
from edge_agent.update.manager import Updater
from edge_agent.update.release import ReleaseRefused, agent_wheel, verify_release

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "edge_agent" / "update" / "launcher.py"
NOW = datetime.now(timezone.utc)


def release_env(releases: Path, version: str, *, ready: str | None = None) -> Path:
    """``agent/{version}/env`` with an ``edge-agent`` that prints what it was given."""
    env = releases / "agent" / version / "env"
    (env / "bin").mkdir(parents=True)
    script = env / "bin" / "edge-agent"
    script.write_text(
        '#!/bin/sh\necho "release '
        + version
        + ' args=$* releases=$EDGE_AGENT_RELEASES_DIR base=$EDGE_AGENT_BASE_PYTHON"\n'
    )
    script.chmod(0o755)
    if ready is not None:
        (env / ".ready").write_text(f"{ready}\n")
    return env


def point(releases: Path, version: str) -> None:
    (releases / "agent").mkdir(parents=True, exist_ok=True)
    os.symlink(version, releases / "agent" / "current")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A factory venv's interpreter path with its console script beside it."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "edge-agent").write_text("#!/bin/sh\n")
    return bin_dir / "python"


def test_without_an_agent_release_the_factory_install_runs(tmp_path: Path, base: Path) -> None:
    command, why = choose(tmp_path / "releases", base, ["run"])
    assert command == [str(base.parent / "edge-agent"), "run"]
    assert "factory install (no agent release)" in why
    (base.parent / "edge-agent").unlink()  # no console script: the module
    assert base_command(base, ["run"]) == [str(base), "-m", "edge_agent.cli", "run"]


def test_a_ready_release_runs_by_its_versioned_path(tmp_path: Path, base: Path) -> None:
    releases = tmp_path / "releases"
    env = release_env(releases, "3", ready="3")
    point(releases, "3")
    command, why = choose(releases, base, ["run", "--config", "c.yaml"])
    # Not through `current`: a switch while it runs must not change the code it loads.
    assert command == [str(env / "bin" / "edge-agent"), "run", "--config", "c.yaml"]
    assert "current" not in command[0] and why.startswith("running agent release 3")


@pytest.mark.parametrize("ready", [None, "2"], ids=["no-marker", "marker-of-another"])
def test_a_release_without_a_ready_env_falls_back_to_the_factory(
    tmp_path: Path, base: Path, ready: str | None
) -> None:
    releases = tmp_path / "releases"
    release_env(releases, "3", ready=ready)
    point(releases, "3")
    command, why = choose(releases, base, ["run"])
    assert command[0] == str(base.parent / "edge-agent")
    assert "agent release 3 has no ready environment" in why


def test_a_dangling_current_or_a_missing_script_falls_back(tmp_path: Path, base: Path) -> None:
    releases = tmp_path / "releases"
    point(releases, "9")  # its folder is gone
    assert choose(releases, base, [])[0][0] == str(base.parent / "edge-agent")
    env = release_env(releases, "4", ready="4")
    (env / "bin" / "edge-agent").unlink()
    (releases / "agent" / "current").unlink()
    point(releases, "4")
    command, why = choose(releases, base, [])
    assert command[0] == str(base.parent / "edge-agent") and "has no" in why


def run_launcher(releases: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (BASE_ENV, "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        env={**env, RELEASES_ENV: str(releases)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_launcher_execs_the_release_with_its_variables(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    release_env(releases, "3", ready="3")
    point(releases, "3")
    done = run_launcher(releases, "run", "--config", "c.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"release 3 args=run --config c.yaml releases={releases} base={sys.executable}"
    )
    assert "edge-agent launcher: running agent release 3" in done.stderr


def test_a_release_that_cannot_be_executed_falls_back_to_the_factory(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    env = release_env(releases, "3", ready="3")
    (env / "bin" / "edge-agent").write_text("#!/nonexistent/python\n")  # exec fails
    point(releases, "3")
    done = run_launcher(releases, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("edge-agent ")  # this venv's, the factory install here
    assert "running the factory install" in done.stderr


def prestart(releases: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.update.prestart"],
        env={**os.environ, RELEASES_ENV: str(releases)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_prestart_never_fails_the_unit(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    done = prestart(releases)  # no update ever ran: nothing made, nothing said
    assert (done.returncode, done.stderr, releases.exists()) == (0, "", False)
    releases.mkdir()
    (releases / "state.json").write_text("{not json")  # by hand: logged, ignored
    assert prestart(releases).returncode == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "state.json").write_text("{}")
    (broken / "staging").write_text("a file where a folder belongs")  # a repair that fails
    done = prestart(broken)
    assert done.returncode == 0 and "the repair of" in done.stderr, done.stderr


def test_the_prestart_marks_a_new_agents_trial_and_imports_no_cryptography(
    tmp_path: Path,
) -> None:
    from edge_agent.update.store import ReleaseStore

    store = ReleaseStore(tmp_path / "releases")
    wheel = "edge_agent-5-py3-none-any.whl"
    folder = make_release(store.staging / "a.d", {wheel: b"PK"}, kind="agent", version="5")
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    store.switch(store.place(release))
    done = prestart(store.root)
    assert done.returncode == 0 and "agent 5 trial" in done.stderr, done.stderr
    state = store.state()
    assert state is not None and state.prestarted and state.attempts == 0
    code = (
        "import sys; import edge_agent.update.prestart, edge_agent.update.store; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cryptography', 'pydantic', 'numpy', 'cv2')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.strip() == "[]"


# -- the release format and the operator's tool ---------------------------------------


def test_an_agent_release_holds_its_own_wheel_at_its_version() -> None:
    assert agent_wheel(["edge_agent-2.1-py3-none-any.whl", "numpy-2.0-x.whl"], "2.1")
    with pytest.raises(ReleaseRefused, match="wheels only"):
        agent_wheel(["edge_agent-2.1-py3-none-any.whl", "install.sh"], "2.1")
    with pytest.raises(ReleaseRefused, match="exactly one"):
        agent_wheel(["numpy-2.0-cp311-cp311-linux_aarch64.whl"], "2.1")
    with pytest.raises(ReleaseRefused, match=r"is not version 2\.1"):
        agent_wheel(["edge_agent-2.0-py3-none-any.whl"], "2.1")


def test_release_agent_takes_the_version_from_the_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from provisioning.cli import main

    key = tmp_path / "k"
    key.write_text(KEY.hex())
    wheels = tmp_path / "dist"
    wheels.mkdir()
    ours = wheels / "edge_agent-2026.12.1-py3-none-any.whl"
    dep = wheels / "numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    ours.write_bytes(b"PK agent")
    dep.write_bytes(b"PK numpy")
    out = tmp_path / "agent-rel"
    made = ["release", "agent", str(out), str(ours), str(dep), "--expires", "2099-01-01"]
    assert main([*made, "--key", str(key)]) == 0
    release = verify_release(out, trusted_keys=[crypto.ed25519_public(KEY)], installed="1", now=NOW)
    assert (release.kind, release.version) == ("agent", "2026.12.1")
    assert release.files == (ours.name, dep.name)
    assert main([*made, "--key", str(key)]) == 2  # not into a folder that has files
    assert "is not empty" in capsys.readouterr().err
    odd = wheels / "edge_agent-2.0rc1-py3-none-any.whl"
    odd.write_bytes(b"PK")
    again = ["release", "agent", str(tmp_path / "o"), str(odd), "--expires", "2099-01-01"]
    assert main([*again, "--key", str(key)]) == 2
    assert "dotted numbers" in capsys.readouterr().err


# -- an agent the launcher did not start refuses agent releases -----------------------


class Host:
    def __init__(self) -> None:
        self.published: list[dict[str, object]] = []

    def open_event_cameras(self) -> list[str]:
        return []

    def apply_release(self, kind: str) -> str | None:
        return None

    def health_problems(self, since_mono_s: float) -> list[str]:
        return []

    def publish_update(self, body: dict[str, object]) -> None:
        self.published.append(dict(body))

    def restart_for_update(self) -> None:
        raise AssertionError("no restart: nothing was switched")


def commit(up: Updater, folder: Path, name: str) -> dict[str, object]:
    data = archive_of(folder)
    up.begin(name, len(data), hashlib.sha256(data).hexdigest())
    up.chunk(name, 0, base64.b64encode(data).decode(), None)
    return up.commit(name)


@pytest.mark.parametrize("launched", ["no", "elsewhere"])
def test_an_agent_not_started_by_the_launcher_refuses_agent_releases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launched: str
) -> None:
    monkeypatch.delenv(BASE_ENV, raising=False)
    monkeypatch.delenv(RELEASES_ENV, raising=False)
    if launched == "elsewhere":
        monkeypatch.setenv(BASE_ENV, sys.executable)
        monkeypatch.setenv(RELEASES_ENV, str(tmp_path / "other"))
    host = Host()
    settings = UpdatesConfig(dir=tmp_path / "releases", trusted_keys=[PUBLIC_HEX])
    up = Updater(settings, host)
    folder = make_release(
        tmp_path / "a", {"edge_agent-7-py3-none-any.whl": b"PK"}, kind="agent", version="7"
    )
    with pytest.raises(UpdateError) as refused:
        commit(up, folder, "a7")
    why = "not started by the launcher" if launched == "no" else "EDGE_AGENT_RELEASES_DIR"
    assert why in str(refused.value)
    assert host.published[-1]["phase"] == "refused"
    assert up.store.current("agent") is None and not (settings.dir / "agent" / "7").exists()


def test_an_agent_release_older_than_the_factory_install_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BASE_ENV, sys.executable)
    monkeypatch.setenv(RELEASES_ENV, str(tmp_path / "releases"))
    settings = UpdatesConfig(dir=tmp_path / "releases", trusted_keys=[PUBLIC_HEX])
    up = Updater(settings, Host())
    old = make_release(
        tmp_path / "a", {"edge_agent-0.0.9-py3-none-any.whl": b"PK"}, kind="agent", version="0.0.9"
    )
    with pytest.raises(UpdateError, match=r"older than the installed 0\.1\.0"):
        commit(up, old, "old")


class RecordingHost(Host):
    def restart_for_update(self) -> None:
        self.published.append({"phase": "restart"})


def test_a_trial_started_by_another_agent_than_the_release_rolls_back(tmp_path: Path) -> None:
    """The launcher fell back to the factory install during the new agent's trial: that
    agent cannot prove the new one healthy, so it rolls back and restarts at once."""
    from edge_agent.update.store import ReleaseStore

    settings = UpdatesConfig(dir=tmp_path / "releases", trusted_keys=[PUBLIC_HEX])
    store = ReleaseStore(settings.dir)
    wheel = "edge_agent-5-py3-none-any.whl"
    folder = make_release(store.staging / "a.d", {wheel: b"PK"}, kind="agent", version="5")
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    store.switch(store.place(release))  # then the old agent exits 75
    host = RecordingHost()
    up = Updater(settings, host)  # this start (version 0.1.0) takes the trial ...
    up.start()  # ... and gives it up
    assert [p["phase"] for p in host.published] == ["rolled_back", "restart"]
    assert "not the release's 5" in str(host.published[0]["reason"])
    assert store.current("agent") is None
