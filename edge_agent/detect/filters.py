"""Per-camera detection filters: refuse boxes a label cannot have in this camera's view.

A COCO detector looking straight down on a car park calls cars "cell phone"; no threshold
fixes that, but a size limit does: a phone never fills a tenth of an overhead frame. Each
camera may set, per label (or for every label with ``"*"``), a minimum score, minimum and
maximum box area as a fraction of the frame, and aspect-ratio (width/height in pixels)
bounds. The filter is pure; ``FilteredDetector`` applies it around a shared detector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field, model_validator

from edge_agent.config_base import StrictModel, UnitFloat
from edge_agent.detect.base import Detector
from edge_agent.types import Detection, DetectionResult, ImageBGR

ANY_LABEL = "*"
"""Filter key for every label that has no entry of its own."""


class LabelFilterConfig(StrictModel):
    """Bounds a detection of one label must meet to be kept (defaults keep everything)."""

    min_score: UnitFloat = 0.0  # on top of detector.score_threshold
    min_area: UnitFloat = 0.0  # box area / frame area
    max_area: UnitFloat = 1.0
    min_aspect: float = Field(0.0, ge=0.0)  # box width / height, in pixels
    max_aspect: float | None = Field(None, gt=0.0)  # None: no upper bound

    @model_validator(mode="after")
    def _ordered(self) -> LabelFilterConfig:
        if self.min_area > self.max_area:
            raise ValueError("min_area must not be above max_area")
        if self.max_aspect is not None and self.min_aspect > self.max_aspect:
            raise ValueError("min_aspect must not be above max_aspect")
        return self

    def keeps(self, detection: Detection, frame_aspect: float) -> bool:
        """True when ``detection`` meets every bound; ``frame_aspect`` is width/height px."""
        box = detection.box
        if detection.score < self.min_score:
            return False
        if not self.min_area <= box.area <= self.max_area:
            return False
        if self.min_aspect == 0.0 and self.max_aspect is None:
            return True
        if box.height <= 0.0:
            return False
        aspect = box.width / box.height * frame_aspect
        return aspect >= self.min_aspect and (self.max_aspect is None or aspect <= self.max_aspect)


DetectionFilters = Mapping[str, LabelFilterConfig]
"""Label (or ``"*"``) -> its bounds; a camera's ``detection_filters``."""


def filter_detections(
    detections: Sequence[Detection], filters: DetectionFilters, frame_aspect: float
) -> tuple[Detection, ...]:
    """The detections that meet their label's bounds (or the ``"*"`` bounds)."""
    if not filters:
        return tuple(detections)
    fallback = filters.get(ANY_LABEL)
    kept: list[Detection] = []
    for detection in detections:
        bounds = filters.get(detection.label, fallback)
        if bounds is None or bounds.keeps(detection, frame_aspect):
            kept.append(detection)
    return tuple(kept)


def unknown_filter_labels(filters: DetectionFilters, labels: Sequence[str]) -> list[str]:
    """Filter keys the model never produces: a typo here is a filter that never applies."""
    known = set(labels) | {ANY_LABEL}
    return sorted(key for key in filters if key not in known)


class FilteredDetector:
    """A Detector that applies one camera's filters to another detector's results.

    Many cameras share one detector (and its lock); each wraps it with its own filters.
    """

    def __init__(self, detector: Detector, filters: DetectionFilters) -> None:
        unknown = unknown_filter_labels(filters, detector.labels)
        if unknown:
            raise ValueError(
                f"detection_filters name labels model {detector.model_name} does not have: "
                f"{', '.join(unknown)}"
            )
        self._detector = detector
        self._filters = dict(filters)

    @property
    def model_name(self) -> str:
        return self._detector.model_name

    @property
    def labels(self) -> Sequence[str]:
        return self._detector.labels

    def detect(self, image: ImageBGR) -> DetectionResult:
        result = self._detector.detect(image)
        height_px, width_px = image.shape[:2]
        kept = filter_detections(result.detections, self._filters, width_px / height_px)
        if len(kept) == len(result.detections):
            return result
        return DetectionResult(
            detections=kept,
            preprocess_s=result.preprocess_s,
            invoke_s=result.invoke_s,
            postprocess_s=result.postprocess_s,
        )


def with_filters(detector: Detector, filters: DetectionFilters) -> Detector:
    """``detector`` itself when there are no filters (today's behaviour), else wrapped."""
    return FilteredDetector(detector, filters) if filters else detector
