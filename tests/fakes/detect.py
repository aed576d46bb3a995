"""Detector fakes: ``TruthDetector`` (perfect perception) and ``StaticDetector``.

Both see the *frame*: given a crop of the frame (region detection runs the detector on
views of ``frame.image``), they report what lies in that crop, in its coordinates, as a
real detector shown the crop would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hw_sim.scenes import Scenario

from edge_agent.types import Box, Detection, DetectionResult, Frame, ImageBGR

GHOST = Detection("person", 0, 0.9, Box(0.4, 0.3, 0.6, 0.9))  # a person mid-picture
INPUT_SIZE_PX = (300, 300)
MIN_VISIBLE_IN_CROP = 0.5  # share of an object's box a crop must show for it to be seen


def crop_window(image: ImageBGR) -> tuple[int, int, int, int] | None:
    """(frame width, frame height, x, y) of ``image`` inside the frame it is a view of;
    None when it is not a view (it is the frame)."""
    root = image
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root is image or root.ndim != 3 or root.shape[:2] == image.shape[:2]:
        return None
    offset = image.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    y_px, rest = divmod(offset, root.strides[0])
    return root.shape[1], root.shape[0], rest // root.strides[1], y_px


def seen_in(image: ImageBGR, detections: Sequence[Detection]) -> tuple[Detection, ...]:
    """``detections`` (normalised to the frame) as seen in ``image``, a crop of it."""
    window = crop_window(image)
    if window is None:
        return tuple(detections)
    frame_w, frame_h, x_px, y_px = window
    crop_h, crop_w = image.shape[:2]
    crop = Box(x_px / frame_w, y_px / frame_h, (x_px + crop_w) / frame_w, (y_px + crop_h) / frame_h)
    seen = []
    for det in detections:
        box = det.box
        part = Box(
            max(box.x_min, crop.x_min),
            max(box.y_min, crop.y_min),
            min(box.x_max, crop.x_max),
            min(box.y_max, crop.y_max),
        )
        if part.width <= 0 or part.height <= 0 or part.area < MIN_VISIBLE_IN_CROP * box.area:
            continue
        in_crop = Box(
            (part.x_min - crop.x_min) / crop.width,
            (part.y_min - crop.y_min) / crop.height,
            (part.x_max - crop.x_min) / crop.width,
            (part.y_max - crop.y_min) / crop.height,
        )
        seen.append(Detection(det.label, det.class_id, det.score, in_crop))
    return tuple(seen)


class TruthDetector:
    """Reports the scenario's ground truth for the frame being analysed: a perfect detector.

    ``on_frame`` tells it which frame that is (``pipeline.run_offline(on_frame=...)``);
    objects less visible than ``min_visible_fraction`` are not seen.
    """

    model_name = "truth"
    labels = ("person", "car")
    input_size_px = INPUT_SIZE_PX

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
        truth = [Detection(o.label, 0, 0.9, Box(*o.box)) for o in objects]
        return DetectionResult(seen_in(image, truth))


class StaticDetector:
    """Sees the same things in every frame: by default nothing."""

    model_name = "static"
    input_size_px = INPUT_SIZE_PX

    def __init__(
        self, detections: Sequence[Detection] = (), *, labels: Sequence[str] = ("person",)
    ) -> None:
        self.detections = tuple(detections)
        self.labels = tuple(labels)
        self.calls = 0

    def detect(self, image: ImageBGR) -> DetectionResult:
        self.calls += 1
        return DetectionResult(seen_in(image, self.detections))
