"""Per-camera detection filters: refuse boxes a label cannot have in this camera's view,
and rename the ones the installer knows to be something else.

A COCO detector looking straight down on a car park calls cars "cell phone" (SSD, YOLOX and
YOLO11n alike); no threshold fixes that, but the view does: a phone never fills a tenth of
an overhead frame. Each camera may set, per label (or for every label with ``"*"``), a
minimum score, minimum and maximum box area as a fraction of the frame, and aspect-ratio
(width/height in pixels) bounds. A label's entry may also ``relabel`` the boxes that meet
its bounds: ``"cell phone": {relabel: car, min_area: 0.01}`` makes a car-sized "phone" a
car and drops a phone-sized one. That encodes the installer's knowledge of *this* view (no
phone is that big here); it does not fix the model, and a camera that sees real phones must
not have it. The filter is pure; ``detect.frame.FrameDetector`` applies it to each camera's
detections in frame coordinates (after region detection mapped them back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from pydantic import Field, model_validator

from edge_agent.config_base import StrictModel, UnitFloat
from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import Detection

ANY_LABEL = "*"
"""Filter key for every label that has no entry of its own."""


class LabelFilterConfig(StrictModel):
    """Bounds a detection of one label must meet to be kept (defaults keep everything)."""

    min_score: UnitFloat = 0.0  # on top of detector.score_threshold
    min_area: UnitFloat = 0.0  # box area / frame area
    max_area: UnitFloat = 1.0
    min_aspect: float = Field(0.0, ge=0.0)  # box width / height, in pixels
    max_aspect: float | None = Field(None, gt=0.0)  # None: no upper bound
    # Boxes of this label that meet the bounds are reported as this label instead (one of
    # detector.labels): the installer's knowledge of the view, e.g. an overhead car park.
    relabel: str | None = Field(None, min_length=1)

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

RELABEL_DUPLICATE_IOU = 0.5
"""A renamed box overlapping a better box of its new label family this much is that object."""
_CONTAINED = 0.9  # ... or lying this share of its area inside it


def filter_problems(filters: DetectionFilters) -> list[str]:
    """What is wrong with a camera's filters as a whole (each entry validates itself)."""
    problems = []
    for label, bounds in filters.items():
        if bounds.relabel is None:
            continue
        if label == ANY_LABEL:
            problems.append('"*" cannot relabel: name the labels this view confuses')
        elif bounds.relabel == label:
            problems.append(f"{label!r} relabels to itself")
        elif bounds.relabel in filters and filters[bounds.relabel].relabel is not None:
            problems.append(f"{label!r} relabels to {bounds.relabel!r}, which relabels again")
    return problems


def relabel_sources(filters: DetectionFilters) -> frozenset[str]:
    """Labels the detector must report for these filters to rename them (the model's own
    labels of interest may not include "cell phone")."""
    return frozenset(label for label, bounds in filters.items() if bounds.relabel is not None)


def relabel_targets(filters: DetectionFilters) -> frozenset[str]:
    return frozenset(b.relabel for b in filters.values() if b.relabel is not None)


def filter_detections(
    detections: Sequence[Detection],
    filters: DetectionFilters,
    frame_aspect: float,
    class_ids: Mapping[str, int] | None = None,
) -> tuple[Detection, ...]:
    """The detections that meet their label's bounds (or the ``"*"`` bounds), renamed where
    their entry says ``relabel`` (``class_ids``: the model's id of each label, for the new
    name); a renamed box that duplicates a better box of its new family is dropped."""
    if not filters:
        return tuple(detections)
    fallback = filters.get(ANY_LABEL)
    kept: list[Detection] = []
    renamed: set[int] = set()
    for detection in detections:
        bounds = filters.get(detection.label, fallback)
        if bounds is not None and not bounds.keeps(detection, frame_aspect):
            continue
        if bounds is not None and bounds.relabel is not None:
            class_id = (class_ids or {}).get(bounds.relabel, detection.class_id)
            detection = replace(detection, label=bounds.relabel, class_id=class_id)
            renamed.add(len(kept))
        kept.append(detection)
    if not renamed:
        return tuple(kept)
    return tuple(_drop_renamed_duplicates(kept, renamed))


def _family(label: str) -> str:
    return "vehicle" if label in VEHICLE_LABELS else label


def _drop_renamed_duplicates(detections: Sequence[Detection], renamed: set[int]) -> list[Detection]:
    """One object seen as "car" and as "cell phone" is one car once renamed: NMS among the
    pairs where at least one box was renamed (the others' NMS has already decided)."""
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    dropped: set[int] = set()
    for rank, i in enumerate(order):
        if i in dropped:
            continue
        better = detections[i]
        for j in order[rank + 1 :]:
            if j in dropped or (i not in renamed and j not in renamed):
                continue
            other = detections[j]
            if _family(other.label) != _family(better.label):
                continue
            if (
                other.box.iou(better.box) >= RELABEL_DUPLICATE_IOU
                or other.box.intersection(better.box) >= _CONTAINED * other.box.area
            ):
                dropped.add(j)
    return [d for i, d in enumerate(detections) if i not in dropped]


def unknown_filter_labels(filters: DetectionFilters, labels: Sequence[str]) -> list[str]:
    """Filter keys the model never produces: a typo here is a filter that never applies."""
    known = set(labels) | {ANY_LABEL}
    return sorted(key for key in filters if key not in known)
