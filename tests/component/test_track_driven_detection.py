"""Live tracks drive detection: motion where a track is expected runs the detector at once,
without waiting for the gate's ``min_frames`` (edge_agent/pipeline.py). At 5 fps the frames
the gate waits are 0.2 s each, in which a fast vehicle crosses its own length."""

from __future__ import annotations

import cv2
import numpy as np
from fakes.detect import StaticDetector
from fakes.sinks import ListSink

from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import RegionSettings
from edge_agent.events import EventEngine
from edge_agent.motion import MotionGate
from edge_agent.pipeline import CameraPipeline
from edge_agent.track import IouTracker
from edge_agent.types import Box, Detection, Frame

WIDTH, HEIGHT = 320, 180
CAR_AT_START = Detection("car", 0, 0.6, Box(0.7, 0.5, 0.95, 0.75))  # below 0.7: tentative


def road(car_x_px: int | None) -> np.ndarray:
    """A grey road, with a dark car whose left side is at ``car_x_px``."""
    image = np.tile(np.linspace(90, 170, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    picture = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if car_x_px is not None:
        cv2.rectangle(picture, (car_x_px, 90), (car_x_px + 80, 135), (25, 25, 25), -1)
    return picture


def detector_runs(first: tuple[Detection, ...]) -> list[bool]:
    """Three frames 0.2 s apart of a car driving left; the detector sees ``first`` on the
    first frame and nothing after. Which frames the detector ran on."""
    detector = StaticDetector(first, labels=("person", "car"))
    pipeline = CameraPipeline(
        camera_id="cam1",
        motion=MotionGate(),
        detector=FrameDetector(detector, regions=RegionSettings()),
        tracker=IouTracker(),
        engine=EventEngine("cam1", labels_of_interest=["car"]),
        sink=ListSink(),
    )
    runs = []
    for index, car_x_px in enumerate((224, 150, 76)):
        before = detector.calls
        pipeline.process(Frame("cam1", index, 1000.0 + 0.2 * index, 0.2 * index, road(car_x_px)))
        runs.append(detector.calls > before)
        detector.detections = ()
    return runs


def test_motion_at_a_tentative_track_runs_the_detector_before_the_gate_opens() -> None:
    assert detector_runs((CAR_AT_START,)) == [True, True, True]


def test_without_a_track_the_gate_still_waits_for_its_min_frames() -> None:
    # The first frame always runs (nothing is known); the second is the first of motion.
    assert detector_runs(()) == [True, False, True]
