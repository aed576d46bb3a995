"""No picture leaves with a masked region visible: thumbnails from the pipeline on a
simulator scene, and the ``edge-agent snapshot`` CLI's JPEG (snapshot replies and previews
go over a real mosquitto: tests/integration/test_privacy_mqtt.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from fakes.detect import TruthDetector
from fakes.sinks import ListSink
from privacy_checks import BAND, assert_masked, covered, decode
from realdata import skip_or_fail

from edge_agent.capture import CaptureError
from edge_agent.capture.sim_source import SimSource
from edge_agent.cli import main
from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import RegionSettings
from edge_agent.events import EventEngine, thumbnail_context
from edge_agent.motion import MotionGate
from edge_agent.pipeline import CameraPipeline, run_offline
from edge_agent.privacy import PrivacyConfig, privacy_filter
from edge_agent.track import IouTracker

WIDTH, HEIGHT = 480, 270


def test_every_thumbnail_is_black_where_a_mask_lies() -> None:
    try:
        source = SimSource(
            "cam1",
            scenario="person_walks_in",
            width=WIDTH,
            height=HEIGHT,
            fps=5.0,
            loop=False,
            realtime=False,
        )
    except CaptureError as error:
        skip_or_fail(str(error))
    detector = TruthDetector(source.scenario)
    sink = ListSink()
    pipeline = CameraPipeline(
        camera_id="cam1",
        motion=MotionGate(),
        detector=FrameDetector(detector, regions=RegionSettings()),
        tracker=IouTracker(),
        engine=EventEngine(
            "cam1",
            labels_of_interest=["person"],
            privacy=privacy_filter(PrivacyConfig(masks=[BAND])),
        ),
        sink=sink,
    )
    run_offline(source, pipeline, on_frame=detector.on_frame, read_timeout_s=1.0)
    checked = 0
    for output in sink.outputs:
        boxes = {e.event_id: e.box for e in output.events}
        for thumbnail in output.thumbnails:
            image = decode(thumbnail.jpeg)
            crop = thumbnail_context(boxes[thumbnail.event_id]).to_pixels(WIDTH, HEIGHT)
            mask = covered([BAND], (WIDTH, HEIGHT), crop, image.shape[:2])
            assert_masked(image, mask, what=f"thumbnail of {thumbnail.event_id}")
            checked += 1
    assert checked >= 1


def test_the_snapshot_cli_writes_a_masked_picture(tmp_path: Path) -> None:
    triangle = [(0.05, 0.05), (0.6, 0.1), (0.3, 0.6)]
    config = {
        "site_id": "s",
        "device_id": "d",
        "mqtt": {"host": "127.0.0.1"},
        "cameras": [
            {
                "id": "cam1",
                "source": {
                    "kind": "sim",
                    "scenario": "person_walks_in",
                    "width": WIDTH,
                    "height": HEIGHT,
                    "realtime": False,
                },
                "privacy": {"masks": [BAND, triangle]},
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "snap.jpg"
    code = main(
        ["snapshot", "--config", str(path), "--camera", "cam1", "--out", str(out), "--no-detect"]
    )
    assert code == 0
    image = np.asarray(cv2.imread(str(out)), np.uint8)
    mask = covered([BAND, triangle], (WIDTH, HEIGHT), (0, 0, WIDTH, HEIGHT), image.shape[:2])
    assert_masked(image, mask, what="snapshot CLI")
