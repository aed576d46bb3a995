"""Detector fakes: ``TruthDetector`` (perfect perception) and ``StaticDetector``."""

from __future__ import annotations

from collections.abc import Sequence

from hw_sim.scenes import Scenario

from edge_agent.types import Box, Detection, DetectionResult, Frame, ImageBGR

GHOST = Detection("person", 0, 0.9, Box(0.4, 0.3, 0.6, 0.9))  # a person mid-picture


class TruthDetector:
    """Reports the scenario's ground truth for the frame being analysed: a perfect detector.

    ``on_frame`` tells it which frame that is (``pipeline.run_offline(on_frame=...)``);
    objects less visible than ``min_visible_fraction`` are not seen.
    """

    model_name = "truth"
    labels = ("person", "car")

    def __init__(
        self, scenario: Scenario | None = None, *, min_visible_fraction: float = 0.0
    ) -> None:
        self.scenario = scenario
        self.min_visible_fraction = min_visible_fraction
        self.frame_index = 0
        self.calls = 0

    def on_frame(self, frame: Frame) -> None:
        self.frame_index = frame.index

    def detect(self, image: ImageBGR) -> DetectionResult:
        assert self.scenario is not None
        self.calls += 1
        objects = [
            o
            for o in self.scenario.truth(self.frame_index)
            if o.visible_fraction >= self.min_visible_fraction
        ]
        return DetectionResult(tuple(Detection(o.label, 0, 0.9, Box(*o.box)) for o in objects))


class StaticDetector:
    """Sees the same things in every picture: by default nothing."""

    model_name = "static"

    def __init__(
        self, detections: Sequence[Detection] = (), *, labels: Sequence[str] = ("person",)
    ) -> None:
        self.detections = tuple(detections)
        self.labels = tuple(labels)
        self.calls = 0

    def detect(self, image: ImageBGR) -> DetectionResult:
        self.calls += 1
        return DetectionResult(self.detections)
