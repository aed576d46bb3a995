"""`snapshot` and `detect` on live sources, as a technician runs them: real processes,
the simulator camera, a video file opened as a stream, the real model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from helpers import edge_agent, sim_camera
from realdata import require_media, require_model

from edge_agent.overlay import LINE_BGR, ZONE_BGR

CLIP = "intel_one-by-one-person-detection.mp4"


@pytest.fixture(autouse=True)
def _real_data() -> None:
    require_model("ssd_mobilenet_v1")
    require_media(CLIP)


def write_config(tmp_path: Path) -> Path:
    camera = {
        **sim_camera(),
        "zones": [{"name": "plaza", "polygon": [[0.1, 0.2], [0.9, 0.2], [0.9, 0.9], [0.1, 0.9]]}],
        "rules": [{"kind": "line_crossing", "name": "gate", "a": [0.0, 0.5], "b": [1.0, 0.5]}],
    }
    config = {
        "site_id": "test-site",
        "device_id": "dev-1",
        "cameras": [camera],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def closest(image: np.ndarray, x: int, y: int, colour: tuple[int, int, int]) -> int:
    """The smallest colour distance to ``colour`` within 2 px of (x, y) (JPEG blurs edges)."""
    patch = image[y - 2 : y + 3, x - 2 : x + 3].astype(int)
    return int(np.abs(patch - np.array(colour)).sum(axis=2).min())


def test_snapshot_writes_the_cameras_picture_with_zones_and_lines(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    result = edge_agent(
        "snapshot", "--config", str(write_config(tmp_path)), "--camera", "cam1",
        "--out", str(out), "--frames", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "480x270" in result.stdout and "1 zone(s), 1 line(s)" in result.stdout
    data = out.read_bytes()
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (270, 480, 3)  # the camera's size
    # The zone's left edge at x = 0.1, below the line; the line at y = 0.5.
    assert closest(image, round(0.1 * 479), 200, ZONE_BGR) < 90
    assert closest(image, 240, round(0.5 * 269), LINE_BGR) < 90
    assert closest(image, 240, 200, ZONE_BGR) > 150  # inside the zone: the scene itself
    assert not list(tmp_path.glob(".x.jpg.*"))  # no temporary file left behind


def test_snapshot_of_an_unknown_camera_exits_2(tmp_path: Path) -> None:
    result = edge_agent(
        "snapshot", "--config", str(write_config(tmp_path)), "--camera", "nope",
        "--out", str(tmp_path / "x.jpg"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "no camera 'nope'" in result.stderr and "cam1" in result.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_detect_on_a_camera_of_the_config(tmp_path: Path) -> None:
    result = edge_agent("detect", "--config", str(write_config(tmp_path)), "--frames", "2")
    assert result.returncode == 0, result.stderr
    assert "cam1: 2 frame(s) of 480x270 analysed with ssd_mobilenet_v1" in result.stderr


def test_detect_on_a_simulator_scene(tmp_path: Path) -> None:
    result = edge_agent("detect", "--source", "sim:person_walks_in", "--frames", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert "2 frame(s) of 960x540" in result.stderr


def test_detect_on_a_video_file_opened_as_a_stream() -> None:
    clip = str(require_media(CLIP))
    frames = 80  # the person walks into view around frame 70
    result = edge_agent("detect", "--source", clip, "--frames", str(frames), "--json")
    assert result.returncode == 0, result.stderr
    assert f"{frames} frame(s) of 768x432" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and {r["source"] for r in records} == {clip}
    assert {r["label"] for r in records} >= {"person"}
    assert all(0 <= r["frame"] < frames for r in records)


def test_detect_on_a_source_that_gives_nothing_exits_1() -> None:
    result = edge_agent("detect", "--source", "rtsp://user:secret@127.0.0.1:9/none")
    assert result.returncode == 1
    assert "no frame" in result.stderr and "secret" not in result.stderr


def test_detect_refuses_files_and_a_live_source_together() -> None:
    result = edge_agent("detect", "x.jpg", "--source", "sim:street")
    assert result.returncode == 2 and "give files, or --source" in result.stderr


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("sim:nope", "unknown simulator scene 'nope'"),  # was exit 1, "no frame"
        ("/nonexistent/clip.mp4", "video file not found"),
    ],
)
def test_detect_on_a_source_name_that_names_nothing_exits_2(source: str, said: str) -> None:
    """README's exit codes: an unknown camera or source name is bad input (2), not a live
    source that gave no frame (1)."""
    result = edge_agent("detect", "--source", source, "--frames", "1")
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr
