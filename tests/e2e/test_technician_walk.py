"""What a technician new to the project meets when following README and docs/install.md
command by command: real processes, the messages and exit codes they see."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import yaml
from helpers import EDGE_AGENT, edge_agent, sim_camera
from realdata import require_media, require_model

from edge_agent.config_check import CONFIG_ENV
from edge_agent.runlock import RunLock


def site_config(path: Path, **overrides: object) -> Path:
    """A site's config as it is prepared on a laptop: TLS files named where the device
    will have them, not on this machine."""
    device = path.parent / "device-only"
    config: dict[str, object] = {
        "site_id": "police-post-117",
        "device_id": "pi-post-117",
        "cameras": [sim_camera()],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {
            "host": "broker.city.example",
            "port": 8883,
            "tls": {
                "ca_file": str(device / "ca.crt"),
                "cert_file": str(device / "device.crt"),
                "key_file": str(device / "device.key"),
            },
        },
        "outbox": {"path": str(path.parent / "outbox.db")},
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------- check-config


def test_check_config_away_from_the_device_points_at_offline(tmp_path: Path) -> None:
    """Only device-only checks fail (the TLS files are on the device): the technician is
    told so, and `--offline` passes."""
    config = site_config(tmp_path / "site.yaml")
    result = edge_agent("check-config", str(config))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert f"`edge-agent check-config --offline {config}`" in result.stderr
    assert edge_agent("check-config", "--offline", str(config)).returncode == 0


def test_a_device_without_a_config_yet_is_pointed_at_enrolment(tmp_path: Path) -> None:
    """The first command on a fresh device, before enrolment: no file at the default
    path. Every command says how a device gets its config instead of only 'cannot read'."""
    missing = tmp_path / "etc" / "config.yaml"
    default = {CONFIG_ENV: str(missing)}  # the default path, as the service's unit sets it
    selftest = edge_agent("selftest", env=default)
    assert selftest.returncode == 2
    assert selftest.stdout.splitlines()[1].startswith("FAIL  config")
    for result in (
        selftest,
        edge_agent("check-config", str(missing), env=default),
        edge_agent("snapshot", "--out", str(tmp_path / "x.jpg"), env=default),
    ):
        said = result.stdout + result.stderr
        assert "no config here yet: enrol this device (`sudo edge-agent enroll" in said, said
    # A file the technician named that is not there (a typo) is said to be missing.
    typo = tmp_path / "sit.yaml"
    for result in (
        edge_agent("selftest", "--config", str(typo), env=default),
        edge_agent("check-config", str(typo), env=default),
        edge_agent("snapshot", "--config", str(typo), "--out", str(tmp_path / "x.jpg")),
    ):
        said = result.stdout + result.stderr
        assert result.returncode == 2
        assert f"there is no file {typo}: check the name you gave" in said, said
        assert "enrol" not in said, said
    wrong = site_config(tmp_path / "site.yaml", detector={"model": "ssd_mobilenet_v1", "x": 1})
    assert "enrol" not in edge_agent("check-config", str(wrong)).stderr  # it exists


def test_check_config_does_not_point_at_offline_when_the_file_itself_is_wrong(
    tmp_path: Path,
) -> None:
    config = site_config(tmp_path / "site.yaml", detector={"model": "ssd_mobilenet_v1", "x": 1})
    result = edge_agent("check-config", str(config))
    assert result.returncode == 2
    assert "detector.x" in result.stderr
    assert "--offline" not in result.stderr


# ---------------------------------------------------------------- replay


def test_replay_runs_a_site_config_on_a_laptop_and_finds_media_by_name(tmp_path: Path) -> None:
    """Replay uses no broker, TLS file or outbox: a site's config works away from the
    device, and a bare media name is found on the media search path, as `detect` does.
    Its lines are timed from the video's start and show the alerts the rules raise."""
    require_model("ssd_mobilenet_v1")
    video = require_media("intel_one-by-one-person-detection.mp4")
    camera = {
        **sim_camera(),
        "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "rules": [{"kind": "intrusion", "zone": "all", "labels": ["person"]}],
    }
    config = site_config(tmp_path / "site.yaml", cameras=[camera])
    result = edge_agent("replay", video.name, "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    alerts = [line for line in lines if " intrusion:person " in line]
    assert any(line.split()[1] == "NEW" for line in alerts), result.stdout
    assert any(line.split()[1] == "NEW" and " person " in line for line in lines)
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("replay: ") and f" {len(alerts)} alert steps" in summary, summary
    # Seconds into the video (a clip of 139 s), not the clock of the replay (~1.8e9 s).
    times_s = [float(line.split()[0].removesuffix("s")) for line in lines]
    assert times_s and all(0.0 <= t <= 140.0 for t in times_s), result.stdout
    missing = edge_agent("replay", "no-such-clip.mp4", "--config", str(config))
    assert missing.returncode == 2
    assert "video file not found: no-such-clip.mp4" in missing.stderr


# ---------------------------------------------------------------- snapshot and detect at the pole


def usb_camera_config(path: Path) -> Path:
    """A config whose camera is a USB camera that is not plugged in."""
    source = {"kind": "opencv", "uri": "/dev/video97", "read_timeout_s": 0.5}
    camera = {"id": "entrance", "source": source}
    config = {
        "site_id": "police-post-117",
        "device_id": "pi-post-117",
        "cameras": [camera],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "outbox": {"path": str(path.parent / "outbox.db")},
        "mqtt": {"host": "127.0.0.1", "port": closed_port()},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (a broker that is not there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_snapshot_of_the_only_camera_needs_no_camera_id(tmp_path: Path) -> None:
    """`edge-agent snapshot --out x.jpg` on a one-camera post, as `detect --config` does;
    with two cameras it asks which, naming them."""
    require_model("ssd_mobilenet_v1")
    config = site_config(tmp_path / "site.yaml")
    out = tmp_path / "view.jpg"
    result = edge_agent("snapshot", "--config", str(config), "--out", str(out), "--frames", "1")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    two = site_config(tmp_path / "two.yaml", cameras=[sim_camera(), {**sim_camera(), "id": "cam2"}])
    result = edge_agent("snapshot", "--config", str(two), "--out", str(out), "--no-detect")
    assert result.returncode == 2
    assert "has 2 cameras: give --camera (cam1, cam2)" in result.stderr


def test_a_camera_that_gives_nothing_says_what_to_check_and_that_the_agent_holds_it(
    tmp_path: Path,
) -> None:
    """snapshot and detect on a USB camera that gives no frame: what to look at for that
    kind of camera, and, while `edge-agent run` runs on this config, that it may hold the
    camera and where to look instead (a Pi or USB camera allows one reader)."""
    config = usb_camera_config(tmp_path / "site.yaml")
    snapshot = ["snapshot", "--config", str(config), "--out", str(tmp_path / "x.jpg")]
    alone = edge_agent(*snapshot, "--no-detect")
    assert alone.returncode == 1, alone.stderr
    assert "is the USB camera plugged in and /dev/video97 readable" in alone.stderr
    assert "the agent is running" not in alone.stderr
    lock = RunLock(tmp_path / "outbox.db")  # as `edge-agent run` holds it
    lock.acquire()
    try:
        busy = edge_agent(*snapshot, "--no-detect")
        detect = edge_agent("detect", "--config", str(config), "--frames", "1")
    finally:
        lock.release()
    for result in (busy, detect):
        assert result.returncode == 1, result.stderr
        assert "plugged in" in result.stderr
        assert f"the agent is running on this config (pid {os.getpid()})" in result.stderr
        assert "technician's page" in result.stderr
    assert not (tmp_path / "x.jpg").exists()
    for result in (alone, busy, detect):  # one line that says it all, no retry chatter
        assert result.stderr.count("cannot open /dev/video97") == 1, result.stderr
        assert "[ WARN" not in result.stderr, result.stderr
    stream = f"rtsp://127.0.0.1:{closed_port()}/stream1"
    refused = edge_agent("detect", "--source", stream, "--frames", "1")
    assert refused.returncode == 1
    assert "check the camera's power, network" in refused.stderr
    assert "[tcp @" not in refused.stderr and "[ WARN" not in refused.stderr, refused.stderr


def test_selftest_shows_its_checklist_without_the_cameras_retry_chatter(tmp_path: Path) -> None:
    """The FAIL line says why the camera gave nothing and what to check; the capture's
    warning on every retry and OpenCV's own warnings stay out of the technician's way."""
    require_model("ssd_mobilenet_v1")
    config = usb_camera_config(tmp_path / "site.yaml")
    result = edge_agent(
        "selftest", "--config", str(config), "--camera-s", "0.5", "--timeout-s", "1"
    )
    assert result.returncode == 1
    camera = next(line for line in result.stdout.splitlines() if "camera entrance" in line)
    assert camera.startswith("FAIL") and "cannot open /dev/video97" in camera
    assert "plugged in" in camera
    assert "cannot open" not in result.stderr and "[ WARN" not in result.stderr, result.stderr


def test_selftest_lights_the_status_led_before_the_cameras(tmp_path: Path) -> None:
    """A post with an LED: the self-test lights it first, so it shines through the
    cameras' seconds and the technician can see it works (gpiozero's mock pins here)."""
    require_model("ssd_mobilenet_v1")
    config = site_config(
        tmp_path / "site.yaml",
        mqtt={"host": "127.0.0.1", "port": closed_port()},
        status={"led": {"pin": 17}},
    )
    result = subprocess.run(
        [*EDGE_AGENT, "selftest", "--config", str(config), "--camera-s", "0.5", "--timeout-s", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
    )
    names = [line.split()[1] for line in result.stdout.splitlines()[1:-1]]
    assert names[:3] == ["config", "led", "camera"], result.stdout
    led = next(line for line in result.stdout.splitlines() if line.split()[1] == "led")
    assert led.startswith("PASS") and "pin 17 lit steadily" in led, result.stdout


# ---------------------------------------------------------------- demo


def test_demo_of_an_unknown_scene_names_the_known_ones_plainly() -> None:
    """Checked first: it started its mosquitto (and fetched data) before the agent found
    the scene unknown."""
    result = edge_agent("demo", "--scenario", "nope", "--seconds", "1")
    assert result.returncode == 2
    line = next(x for x in result.stderr.splitlines() if "unknown simulator scene" in x)
    assert "--scenario: unknown simulator scene 'nope' (known: " in line, line
    assert "street" in line and not line.endswith('"'), line
    assert result.stdout == ""  # no "started mosquitto", no "fetching"


# ---------------------------------------------------------------- the page's password


def test_web_password_says_where_the_page_is_and_how_to_reach_it(tmp_path: Path) -> None:
    """After setting the password the technician is told the page's address, that an
    agent started without a password must be restarted, and for a page on loopback how to
    reach it from a laptop."""
    config = site_config(tmp_path / "site.yaml", web={"enabled": True, "listen": "127.0.0.1:8089"})
    result = subprocess.run(
        [*EDGE_AGENT, "web-password", "--config", str(config), "--stdin"],
        input="ladder-pass\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"stored in {tmp_path / 'web-password'} " in result.stdout
    assert "http://127.0.0.1:8089/" in result.stdout
    assert "restart it" in result.stdout
    assert "ssh -L 8089:127.0.0.1:8089 USER@DEVICE" in result.stdout


# ---------------------------------------------------------------- output into a closed pipe


def test_output_into_a_pipe_whose_reader_left_stops_quietly() -> None:
    """`edge-agent replay … | head`: when the reader goes away the command stops with
    141 (as a shell reports `yes | head`), never a traceback on the technician's screen."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already gone
    try:
        result = subprocess.run(
            [*EDGE_AGENT, "models", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
