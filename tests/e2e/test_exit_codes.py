"""Exit codes and messages the README promises, where the input or the network is bad:
0 success, 1 failure while running, 2 bad input (config, file, model), reason on stderr."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import yaml
from fakes.manifest import model_entry
from helpers import edge_agent, sim_camera
from realdata import require_media, require_model

from edge_agent import datafiles


def _closed_loopback_url(file_name: str) -> str:
    """An http URL on a loopback port nothing listens on: a download that cannot connect,
    as on a site without internet (no traffic leaves the machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{file_name}"


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """A manifest whose `ssd_mobilenet_v1` is nowhere on the search path and whose URL
    cannot be reached; media and the cache as empty directories."""
    manifest = {
        "version": 1,
        "entries": [
            model_entry(
                "ssd_mobilenet_v1",
                b"model bytes",
                _closed_loopback_url("ssd_mobilenet_v1.tflite"),
            )
        ],
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    for name in ("models", "media", "cache"):
        (tmp_path / name).mkdir()
    return {
        datafiles.MANIFEST_ENV: str(path),
        datafiles.MODEL_PATH_ENV: str(tmp_path / "models"),
        datafiles.MEDIA_PATH_ENV: str(tmp_path / "media"),
        datafiles.CACHE_DIR_ENV: str(tmp_path / "cache"),
    }


def _assert_offline_line(stderr: str, url: str) -> None:
    lines = [line for line in stderr.splitlines() if "cannot download" in line]
    assert len(lines) == 1, stderr
    assert "model ssd_mobilenet_v1" in lines[0] and url in lines[0], lines[0]
    assert datafiles.MODEL_PATH_ENV in lines[0] and "/var/lib/edge-agent/models" in lines[0]
    assert "Traceback" not in stderr


# ---------------------------------------------------------------- offline


def test_models_fetch_without_network_says_how_to_do_without_and_exits_2(
    tmp_path: Path,
) -> None:
    env = _offline_env(tmp_path)
    url = yaml.safe_load(Path(env[datafiles.MANIFEST_ENV]).read_text())["entries"][0]
    result = edge_agent("models", "fetch", "ssd_mobilenet_v1", env=env)
    assert result.returncode == 2, result.stderr
    _assert_offline_line(result.stderr, url["source_url"])
    assert not [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]


def test_demo_without_network_says_how_to_do_without_and_exits_2(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    url = yaml.safe_load(Path(env[datafiles.MANIFEST_ENV]).read_text())["entries"][0]
    result = edge_agent("demo", "--seconds", "1", env=env)
    assert result.returncode == 2, result.stderr
    _assert_offline_line(result.stderr, url["source_url"])


# ---------------------------------------------------------------- detect


def test_detect_with_a_corrupt_model_exits_2(tmp_path: Path) -> None:
    require_model("ssd_mobilenet_v1")
    image = require_media("coral_grace_hopper.bmp")
    models = tmp_path / "models"
    models.mkdir()
    model = datafiles.load_manifest().model("ssd_mobilenet_v1")
    (models / model.file).write_bytes(b"\0" * model.bytes)  # right size, wrong bytes
    result = edge_agent("detect", str(image), env={datafiles.MODEL_PATH_ENV: str(models)})
    assert result.returncode == 2, result.stderr
    assert "is not ssd_mobilenet_v1" in result.stderr and "Traceback" not in result.stderr


def test_detect_with_a_model_file_that_is_not_tflite_exits_2(tmp_path: Path) -> None:
    image = require_media("coral_grace_hopper.bmp")
    model = tmp_path / "mine.tflite"
    model.write_bytes(b"this is not a flatbuffer" * 100)
    labels = tmp_path / "labels.txt"
    labels.write_text("person\n")
    result = edge_agent(
        "detect", str(image), "--model", str(model), "--layout", "yolox",
        "--labels-file", str(labels),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "not a loadable TFLite model" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- replay


def test_replay_of_a_file_that_is_not_a_video_exits_2(tmp_path: Path) -> None:
    require_model("ssd_mobilenet_v1")
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site_id": "test-site",
                "device_id": "dev-1",
                "cameras": [sim_camera()],
                "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
                "outbox": {"path": str(tmp_path / "outbox.db")},
            }
        )
    )
    fake = tmp_path / "frame.jpg"
    fake.write_text("hello, I am text\n")
    result = edge_agent("replay", str(fake), "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert f"{fake}: not a readable video" in result.stderr
    assert "frames analysed" not in result.stderr


def test_demo_without_the_simulator_names_the_wheel_not_an_editable_install() -> None:
    """A wheel user has no hw-sim/ directory: the hint must not send them to one."""
    no_simulator = (
        "import sys; sys.modules['hw_sim'] = None; "  # as if hw_sim were not installed
        "from edge_agent.cli import main; sys.exit(main(['demo', '--seconds', '1']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", no_simulator],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "hw_sim-*.whl" in result.stderr and "pip install -e" not in result.stderr
    assert "fetching" not in result.stdout  # said before any download
