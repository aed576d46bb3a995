"""One camera's way of finding objects in a frame: where to look, and what to keep.

The device loads one model and shares it between its cameras (``LockedDetector``); each
camera looks through it in its own way. ``FrameDetector`` runs region detection around
the camera's motion and tracks (``detect.regions``) and then applies the camera's label
filters (``detect.filters``) to the boxes *in frame coordinates*: a filter on box size
means a share of the camera's picture, never of whichever crop the model happened to see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from edge_agent.detect.base import Detector
from edge_agent.detect.filters import DetectionFilters, filter_detections, unknown_filter_labels
from edge_agent.detect.regions import RegionDetector, RegionResult, RegionSettings
from edge_agent.types import Box, ImageBGR, Track

WHOLE_FRAME_ONLY = RegionSettings(enabled=False)
"""One full-frame pass per detection run: how the agent looked before region detection."""


class FrameDetector:
    """Finds one camera's objects in its frames through a (shared) ``Detector``.

    Not thread-safe: one per camera, called by that camera's analysis thread only.
    """

    def __init__(
        self,
        detector: Detector,
        *,
        regions: RegionSettings = WHOLE_FRAME_ONLY,
        filters: DetectionFilters | None = None,
    ) -> None:
        unknown = unknown_filter_labels(filters or {}, detector.labels)
        if unknown:
            raise ValueError(
                f"detection_filters name labels model {detector.model_name} does not have: "
                f"{', '.join(unknown)}"
            )
        self.detector = detector
        self._regions = RegionDetector(detector.input_size_px, regions)
        self._filters = dict(filters or {})

    @property
    def region_settings(self) -> RegionSettings:
        return self._regions.settings

    def detect(
        self,
        image: ImageBGR,
        *,
        now_s: float,
        motion: Sequence[Box] = (),
        tracks: Sequence[Track] = (),
    ) -> RegionResult:
        """The frame's detections (normalised to ``image``), filtered, and what they cost.
        ``motion`` and ``tracks`` (at their expected place) say where to look."""
        found = self._regions.detect(
            self.detector, image, now_s=now_s, motion=motion, tracks=tracks
        )
        if not self._filters:
            return found
        height_px, width_px = image.shape[:2]
        kept = filter_detections(found.result.detections, self._filters, width_px / height_px)
        return replace(found, result=replace(found.result, detections=kept))
