"""Live source names and the overlay a snapshot carries."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.capture.live import camera_from_uri, first_frame_timeout_s, source_from_uri
from edge_agent.config import (
    CameraConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
    SimSourceConfig,
)
from edge_agent.overlay import BOX_BGR, LINE_BGR, ZONE_BGR, draw_overlay, thickness_px
from edge_agent.types import Box, Detection


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rtsp://admin:pw@10.0.0.9/stream",
            OpenCVSourceConfig(uri="rtsp://admin:pw@10.0.0.9/stream"),
        ),
        ("/dev/video0", OpenCVSourceConfig(uri="/dev/video0")),
        ("0", OpenCVSourceConfig(uri="0")),
        ("clip.mp4", OpenCVSourceConfig(uri="clip.mp4")),
        ("picamera2", Picamera2SourceConfig(camera_num=0)),
        ("picamera2:1", Picamera2SourceConfig(camera_num=1)),
        ("sim:street", SimSourceConfig(scenario="street")),
    ],
)
def test_source_names(text: str, expected: object) -> None:
    assert source_from_uri(text) == expected


@pytest.mark.parametrize("text", ["picamera2:x", "sim:", ""])
def test_bad_source_names_say_why(text: str) -> None:
    with pytest.raises(ValueError):
        source_from_uri(text)


def test_a_live_camera_and_its_first_frame_timeout() -> None:
    stream = camera_from_uri("rtsp://cam/1")
    assert stream.id == "live" and not stream.zones
    assert first_frame_timeout_s(stream) == OpenCVSourceConfig(uri="x").read_timeout_s
    assert first_frame_timeout_s(camera_from_uri("sim:street")) == 10.0


def near(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(colour)).sum() < 30)


def test_zones_lines_and_detections_are_drawn_where_they_are() -> None:
    camera = CameraConfig.model_validate(
        {
            "id": "cam1",
            "source": {"kind": "sim"},
            "zones": [{"name": "plaza", "polygon": [[0.1, 0.2], [0.9, 0.2], [0.9, 0.9]]}],
            "rules": [{"kind": "line_crossing", "name": "gate", "a": [0.0, 0.6], "b": [1.0, 0.6]}],
        }
    )
    image = np.full((201, 401, 3), 40, dtype=np.uint8)
    box = Box(0.25, 0.25, 0.5, 0.75)
    drawn = draw_overlay(image, camera, [Detection("person", 0, 0.9, box)])
    assert (image == 40).all()  # the original is left alone
    assert near(drawn[40, 200], ZONE_BGR)  # the zone's top edge (y = 0.2 * 200)
    assert near(drawn[120, 300], LINE_BGR)  # the line (y = 0.6 * 200)
    assert near(drawn[100, 100], BOX_BGR)  # the box's left edge (x = 0.25 * 401)
    assert near(drawn[190, 20], (40, 40, 40))  # away from everything
    assert thickness_px(480) == 2 and thickness_px(1920) == 8


def test_detect_knows_which_detector_options_the_command_line_gave() -> None:
    """With --config, what the command line does not give comes from the config."""
    from edge_agent.cli import build_parser

    parser = build_parser()
    plain = parser.parse_args(["detect", "--config", "agent.yaml"])
    assert plain.given == frozenset() and plain.model == "ssd_mobilenet_v1"
    chosen = parser.parse_args(["detect", "--config", "a.yaml", "--model", "yolox_nano"])
    assert chosen.given == {"model"} and chosen.model == "yolox_nano"
    both = parser.parse_args(["detect", "--source", "0", "--score", "0.3", "--model", "m"])
    assert both.given == {"model", "score"} and both.score == 0.3
