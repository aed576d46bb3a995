"""One camera's way of finding objects in a frame: where to look, and what to keep.

The device loads each model once and shares it between the cameras that use it
(``LockedDetector``; most use one, a crowd camera its own: ``assemble.camera_model``); each
camera looks through it in its own way. ``FrameDetector`` runs region detection around
the camera's motion and tracks (``detect.regions``) and then applies the camera's label
filters (``detect.filters``) to the boxes *in frame coordinates*: a filter on box size
means a share of the camera's picture, never of whichever crop the model happened to see.
The shared model also reports the labels any camera relabels ("cell phone" on an overhead
car park); each camera keeps only its labels of interest after its own filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from edge_agent.detect.base import Detector
from edge_agent.detect.filters import (
    DetectionFilters,
    filter_detections,
    filter_problems,
    relabel_targets,
    unknown_filter_labels,
)
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
        labels_of_interest: Iterable[str] | None = None,
    ) -> None:
        """``labels_of_interest``: the labels this camera reports once filtered (None: all
        the shared detector reports)."""
        filters = dict(filters or {})
        unknown = unknown_filter_labels(filters, detector.labels)
        unknown += sorted(relabel_targets(filters) - set(detector.labels))
        if unknown:
            raise ValueError(
                f"detection_filters name labels model {detector.model_name} does not have: "
                f"{', '.join(unknown)}"
            )
        problems = filter_problems(filters)
        if problems:
            raise ValueError(f"detection_filters: {'; '.join(problems)}")
        self.detector = detector
        self._regions = RegionDetector(detector.input_size_px, regions)
        self._filters = filters
        self._wanted = None if labels_of_interest is None else frozenset(labels_of_interest)
        self._class_ids = {label: i for i, label in enumerate(detector.labels)}

    @property
    def region_settings(self) -> RegionSettings:
        return self._regions.settings

    def full_frame_due(self, now_s: float) -> bool:
        """Whether a detection run now, with objects tracked, would include a full-frame pass
        on its cadence (never with regions off: there every run is one)."""
        return self._regions.full_frame_due(now_s, tracked=True)

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
        detections = found.result.detections
        if self._filters:
            height_px, width_px = image.shape[:2]
            detections = filter_detections(
                detections, self._filters, width_px / height_px, self._class_ids
            )
        if self._wanted is not None:
            detections = tuple(d for d in detections if d.label in self._wanted)
        if detections == found.result.detections:
            return found
        return replace(found, result=replace(found.result, detections=detections))
