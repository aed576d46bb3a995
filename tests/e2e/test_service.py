"""The agent as systemd runs it: the unit passes ``systemd-analyze verify``, the installer's
``--dry-run`` says what it would do and changes nothing, and ``edge-agent run`` in a child
process talks sd_notify, logs in the journal's format and re-reads its config on SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fakes.notify import NotifyListener
from helpers import sim_camera, wait_until
from realdata import require_model

from edge_agent.broker import LocalBroker

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "edge-agent.service"
INSTALL = REPO / "deploy" / "install.sh"
EDGE_AGENT = [sys.executable, "-m", "edge_agent.cli"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
TIMEOUT_S = 60.0
# The factory venv: this test venv (its python exists, so the unit verifies).
FACTORY_BIN = str(Path(sys.executable).parent / "edge-agent")
FACTORY_PY = str(Path(sys.executable).parent / "python")
EXEC_START = f"ExecStart={FACTORY_PY} -I -m edge_agent.update.launcher run"
EXEC_START_PRE = f"ExecStartPre={FACTORY_PY} -I -m edge_agent.update.prestart"


def verify(unit_text: str, tmp_path: Path) -> list[str]:
    """``systemd-analyze verify`` on ``unit_text`` (ExecStart pointed at a binary that
    exists): every line it says about the unit, plus its exit status when not 0."""
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "edge-agent.service"
    unit.write_text(unit_text)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "edge-agent.service" in line  # not the host's other units
    ]
    return said + ([f"exit status {result.returncode}"] if result.returncode else [])


def installed_unit(bin_path: str = FACTORY_BIN) -> str:
    result = subprocess.run(
        ["sh", str(INSTALL), "--print-unit", "--bin", bin_path],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def test_the_unit_verifies(tmp_path: Path) -> None:
    text = installed_unit()
    assert f"{EXEC_START}\n" in text and f"{EXEC_START_PRE}\n" in text
    assert "Environment=EDGE_AGENT_RELEASES_DIR=%S/edge-agent/releases\n" in text
    assert verify(text, tmp_path) == []


@pytest.mark.parametrize(
    ("good", "broken"),
    [
        ("Type=notify", "Type=notifyy"),
        ("WatchdogSec=60s", "WatchdogSecs=60s"),
        (EXEC_START, "ExecStart=/nonexistent/python -I -m edge_agent.update.launcher run"),
        ("DeviceAllow=char-video4linux rw", "DeviceAllow=char-video4linux rwx"),
    ],
)
def test_the_check_fails_on_a_broken_unit(tmp_path: Path, good: str, broken: str) -> None:
    text = installed_unit()
    assert good in text
    assert verify(text.replace(good, broken), tmp_path) != []


def test_the_unit_says_what_the_service_needs() -> None:
    lines = set(UNIT.read_text().splitlines())
    for setting in (
        "Type=notify",
        "NotifyAccess=main",
        "User=edge-agent",
        "StateDirectory=edge-agent",
        "ConfigurationDirectory=edge-agent",
        "UMask=0077",
        "Restart=on-failure",
        "WatchdogSec=60s",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateDevices=no",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-gpiochip rw",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert setting in lines, setting


def test_install_dry_run_says_what_it_would_do_and_changes_nothing(tmp_path: Path) -> None:
    unit_dir = tmp_path / "units"
    env = {**os.environ, "EDGE_AGENT_UNIT_DIR": str(unit_dir)}
    result = subprocess.run(
        ["sh", str(INSTALL), "--dry-run", "--bin", FACTORY_BIN],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    if "user edge-agent exists" not in out:
        assert "would run: useradd --system --user-group" in out
    assert "would run: install -d -m 0750 -o root -g edge-agent /etc/edge-agent" in out
    assert "would run: install -d -m 0700 -o edge-agent -g edge-agent /var/lib/edge-agent" in out
    assert f"would write {unit_dir}/edge-agent.service" in out
    assert EXEC_START.replace("ExecStart=", "  ExecStart=") in out
    assert "would run: systemctl daemon-reload" in out
    assert "would run: systemctl enable edge-agent.service" in out
    assert not unit_dir.exists()  # nothing written


def test_install_puts_the_user_in_the_device_groups_for_the_self_test(tmp_path: Path) -> None:
    """The unit's SupplementaryGroups=video (+ gpio) cover the service only: install.md's
    `sudo -u edge-agent edge-agent selftest` runs with the user's own groups, and a camera
    or the LED (/dev/video*, /dev/gpiochip*: 0660 to their group) failed there only."""
    if subprocess.run(["getent", "group", "video"], capture_output=True).returncode != 0:
        pytest.skip("no group video on this machine")
    member = (
        "video"
        in subprocess.run(
            ["id", "-nG", "edge-agent"], capture_output=True, text=True
        ).stdout.split()
    )
    env = {**os.environ, "EDGE_AGENT_UNIT_DIR": str(tmp_path / "units")}
    result = subprocess.run(
        ["sh", str(INSTALL), "--dry-run", "--bin", FACTORY_BIN],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert ("would run: usermod -a -G video edge-agent" in result.stdout) != member


def test_install_with_page_edits_gives_the_agent_its_config_directory(tmp_path: Path) -> None:
    """The technician's page saves zones into /etc/edge-agent: only when asked for, the
    directory becomes the agent's and a drop-in makes it writable inside the sandbox."""
    unit_dir = tmp_path / "units"
    env = {**os.environ, "EDGE_AGENT_UNIT_DIR": str(unit_dir)}
    result = subprocess.run(
        ["sh", str(INSTALL), "--dry-run", "--page-edits", "--bin", FACTORY_BIN],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert "would run: install -d -m 0700 -o edge-agent -g edge-agent /etc/edge-agent" in out
    assert "-o root -g edge-agent /etc/edge-agent" not in out
    assert f"would write {unit_dir}/edge-agent.service.d/20-page-edits.conf" in out
    assert not unit_dir.exists()


def test_install_again_leaves_an_unchanged_unit_alone(tmp_path: Path) -> None:
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    (unit_dir / "edge-agent.service").write_text(installed_unit())
    env = {**os.environ, "EDGE_AGENT_UNIT_DIR": str(unit_dir)}
    result = subprocess.run(
        ["sh", str(INSTALL), "--dry-run", "--bin", FACTORY_BIN],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert f"{unit_dir}/edge-agent.service is up to date" in result.stdout
    assert "daemon-reload" not in result.stdout


def test_install_puts_the_command_on_sudos_path_and_finds_its_venv_through_it(
    tmp_path: Path,
) -> None:
    """sudo's PATH has /usr/local/bin, not the venv's bin: without a link there the
    technician's next step, `sudo edge-agent enroll`, is "command not found". Run again
    (an upgrade), install.sh finds edge-agent through that link and still names the venv's
    python in the unit, not one beside the link."""
    links = tmp_path / "bin"
    links.mkdir()
    env = {
        **os.environ,
        "EDGE_AGENT_UNIT_DIR": str(tmp_path / "units"),
        "EDGE_AGENT_LINK_DIR": str(links),
    }
    first = subprocess.run(
        ["sh", str(INSTALL), "--dry-run", "--bin", FACTORY_BIN],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert f"would run: ln -sfn {FACTORY_BIN} {links}/edge-agent" in first.stdout
    assert not (links / "edge-agent").exists()  # a dry run
    (links / "edge-agent").symlink_to(FACTORY_BIN)
    again = subprocess.run(
        ["sh", str(INSTALL), "--dry-run"],  # no --bin: found on the PATH, through the link
        capture_output=True,
        text=True,
        env={**env, "PATH": f"{links}:{os.environ['PATH']}"},
        timeout=60,
        check=True,
    )
    assert f"{links}/edge-agent is up to date" in again.stdout
    venv_python = Path(os.path.realpath(FACTORY_BIN)).parent / "python"
    assert f"  ExecStart={venv_python} -I -m edge_agent.update.launcher run" in again.stdout


def test_install_refuses_an_unknown_option() -> None:
    result = subprocess.run(
        ["sh", str(INSTALL), "--bogus"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2 and "unknown option --bogus" in result.stderr


# -- edge-agent run under a fake systemd -----------------------------------------------


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    with NotifyListener() as listener:
        yield listener


def test_run_notifies_logs_for_the_journal_and_reloads_on_sighup(
    tmp_path: Path,
    broker: LocalBroker,
    notify: NotifyListener,
    child_processes: list[subprocess.Popen[str]],
) -> None:
    require_model("ssd_mobilenet_v1")
    good = {
        "site_id": "svc-site",
        "device_id": "dev-1",
        "cameras": [sim_camera(scenario="empty_street")],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "references": {"directory": None},
        "status": {"camera_silent_after_s": 2.0},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(good))
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as stderr:
        info = os.fstat(stderr.fileno())
        env = {
            **os.environ,
            "EDGE_AGENT_CONFIG": str(config),  # no --config: the service's command line
            "NOTIFY_SOCKET": notify.path,
            "WATCHDOG_USEC": "1000000",
            "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",
        }
        env.pop("WATCHDOG_PID", None)
        process = subprocess.Popen([*EDGE_AGENT, "run"], env=env, stderr=stderr, text=True)
        child_processes.append(process)

        wait_until(lambda: notify.with_key("READY", "1"), TIMEOUT_S, "READY=1")
        wait_until(lambda: notify.with_key("WATCHDOG", "1"), TIMEOUT_S, "WATCHDOG=1")

        config.write_text(yaml.safe_dump({**good, "cameras": [{**sim_camera(), "fps": -5}]}))
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: any("refused" in s for s in notify.statuses()), TIMEOUT_S, "the refusal")
        refusal = next(s for s in notify.statuses() if "refused" in s)
        assert "cameras[0].fps" in refusal and "the running config is kept" in refusal

        config.write_text(yaml.safe_dump({**good, "stats_interval_s": 30.0}))
        process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: any("reloaded (stats_interval_s)" in s for s in notify.statuses()),
            TIMEOUT_S,
            "the reload",
        )
        assert process.poll() is None  # SIGHUP no longer kills the agent

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT_S) == 0
    assert notify.with_key("STOPPING", "1")
    assert [m for m in notify.messages() if "RELOADING" in m] != []

    lines = log_path.read_text().splitlines()
    assert lines, "the agent logged nothing"
    assert all(line[:3] in {"<2>", "<3>", "<4>", "<6>", "<7>"} for line in lines), lines
    assert any(line.startswith("<6>edge_agent.app: agent started") for line in lines)
    assert any(line.startswith("<3>") and "cameras[0].fps" in line for line in lines)
    assert not [line for line in lines if "XNNPACK" in line or "TensorFlow Lite" in line]
