"""Detection over planned regions: one invoke per region, regrowth around cut boxes,
boxes mapped back to the frame and de-duplicated across passes (see ``regions``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.detect.base import Detector
from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.detect.regions.plan import (
    Cluster,
    Region,
    RegionPlan,
    RegionSettings,
    min_side_px,
    seed_cluster,
    square,
)
from edge_agent.types import Box, Detection, DetectionResult, ImageBGR

# A box edge within this share of a region's side from the region's inner edge is cut by it.
REGION_EDGE_MARGIN = 0.02
# A cut box with this share of its area inside a whole box of another pass is that object.
CUT_COVERED = 0.5
# A box with this share of its area inside a better box of another pass is that object.
CONTAINED = 0.9


@dataclass(frozen=True)
class RegionFigures:
    """Per-frame figures for stats."""

    planned: int  # candidate regions before the budget (the full-frame pass included)
    invokes: int  # detector invokes spent, regrowths included; never above the budget
    full_frame: bool
    regrown: int  # regions re-run around a cut box
    duplicates: int  # boxes dropped as seen by another pass


@dataclass(frozen=True)
class RegionResult:
    """One frame's detections, in frame coordinates, and what finding them cost."""

    result: DetectionResult  # detections de-duplicated; times summed over every invoke
    figures: RegionFigures
    regions: tuple[Region, ...]  # every region that ran, regrowths included

    def looked_at(self, box: Box) -> bool:
        """Whether a pass that ran covered at least half of ``box``: a track there that got
        no detection was missed; elsewhere it was not looked for."""
        area = box.clipped().area
        if area <= 0.0:
            return False
        return any(
            region.kind == "full" or region.box.intersection(box) >= 0.5 * area
            for region in self.regions
        )


# ---------------------------------------------------------------------------------------------
# Detection over regions


@dataclass
class _Pass:
    region: Region
    detections: list[tuple[Detection, bool]] = field(default_factory=list)  # (det, cut)


def _family(label: str) -> str:
    return "vehicle" if label in VEHICLE_LABELS else label


def _cut_sides(det_in_crop: Box, crop: Box) -> frozenset[str]:
    """The region's inner edges (not the picture's) that ``det_in_crop`` touches."""
    low, high = REGION_EDGE_MARGIN, 1.0 - REGION_EDGE_MARGIN
    sides = set()
    if det_in_crop.x_min <= low and crop.x_min > 0.0:
        sides.add("left")
    if det_in_crop.x_max >= high and crop.x_max < 1.0:
        sides.add("right")
    if det_in_crop.y_min <= low and crop.y_min > 0.0:
        sides.add("top")
    if det_in_crop.y_max >= high and crop.y_max < 1.0:
        sides.add("bottom")
    return frozenset(sides)


def _run(
    detector: Detector, image: ImageBGR, region: Region, times: list[float]
) -> tuple[_Pass, list[tuple[Detection, frozenset[str]]]]:
    height_px, width_px = image.shape[:2]
    x0, y0, x1, y1 = region.pixels(width_px, height_px)
    result = detector.detect(image[y0:y1, x0:x1])
    times[0] += result.preprocess_s
    times[1] += result.invoke_s
    times[2] += result.postprocess_s
    crop = Box(x0 / width_px, y0 / height_px, x1 / width_px, y1 / height_px)
    done = _Pass(Region(crop, region.kind))
    cut_boxes: list[tuple[Detection, frozenset[str]]] = []
    for det in result.detections:
        b = det.box
        mapped = Box(
            crop.x_min + b.x_min * crop.width,
            crop.y_min + b.y_min * crop.height,
            crop.x_min + b.x_max * crop.width,
            crop.y_min + b.y_max * crop.height,
        ).clipped()
        sides = _cut_sides(b, crop) if region.kind != "full" else frozenset()
        frame_det = Detection(det.label, det.class_id, det.score, mapped)
        done.detections.append((frame_det, bool(sides)))
        if sides:
            cut_boxes.append((frame_det, sides))
    return done, cut_boxes


def _seen_whole_elsewhere(det: Detection, passes: Sequence[_Pass], own: _Pass) -> bool:
    area = det.box.area
    return area > 0.0 and any(
        not cut
        and _family(other.label) == _family(det.label)
        and other.box.intersection(det.box) >= CUT_COVERED * area
        for done in passes
        if done is not own
        for other, cut in done.detections
    )


def _beyond(box: Box, sides: frozenset[str]) -> Box:
    """``box`` reaching as far again past each side that cut it: where the rest of the
    object may be (a regrown region that only padded the cut box could cut it again)."""
    width, height = box.width, box.height
    return Box(
        box.x_min - (width if "left" in sides else 0.0),
        box.y_min - (height if "top" in sides else 0.0),
        box.x_max + (width if "right" in sides else 0.0),
        box.y_max + (height if "bottom" in sides else 0.0),
    )


def _regrowths(
    cut_boxes: Sequence[tuple[_Pass, Detection, frozenset[str]]],
    passes: Sequence[_Pass],
    plan: RegionPlan,
    settings: RegionSettings,
) -> list[Region]:
    """Larger regions around boxes cut by a region edge, best score first; only those that
    reach past the edge that cut the box, and not for an object another pass saw whole."""
    min_side = min_side_px(plan.input_px, settings)
    seeds: list[tuple[Cluster, Box, frozenset[str]]] = []
    for done, det, sides in cut_boxes:
        if _seen_whole_elsewhere(det, passes, done):
            continue
        seed = seed_cluster(_beyond(det.box, sides), plan.frame_px, settings.track_padding, None)
        if seed is None:
            continue
        seed.score = det.score
        seeds.append((seed, done.region.box, sides))
    regions: list[tuple[float, Region]] = []
    for seed, old, sides in seeds:
        box = square(seed, plan.frame_px, min_side)
        step = REGION_EDGE_MARGIN * max(old.width, old.height)
        reaches = (
            ("left" in sides and box.x_min < old.x_min - step)
            or ("right" in sides and box.x_max > old.x_max + step)
            or ("top" in sides and box.y_min < old.y_min - step)
            or ("bottom" in sides and box.y_max > old.y_max + step)
        )
        if reaches and not any(box.iou(other.box) > 0.9 for _, other in regions):
            regions.append((seed.score, Region(box, "regrown")))
    regions.sort(key=lambda item: -item[0])
    return [region for _, region in regions]


def _deduplicate(passes: Sequence[_Pass], nms_iou: float) -> tuple[list[Detection], int]:
    """Drop cut boxes another pass sees whole, then NMS per label family across passes
    (within one pass the detector's own NMS has already decided)."""
    entries: list[tuple[Detection, int]] = []
    for index, done in enumerate(passes):
        for det, cut in done.detections:
            if not (cut and _seen_whole_elsewhere(det, passes, done)):
                entries.append((det, index))
    entries.sort(key=lambda item: -item[0].score)
    kept: list[tuple[Detection, int]] = []
    for det, index in entries:
        duplicate = any(
            index != kept_index
            and _family(det.label) == _family(other.label)
            and (
                det.box.iou(other.box) >= nms_iou
                or det.box.intersection(other.box) >= CONTAINED * det.box.area
            )
            for other, kept_index in kept
        )
        if not duplicate:
            kept.append((det, index))
    total = sum(len(done.detections) for done in passes)
    return [det for det, _ in kept], total - len(kept)


def detect_regions(
    detector: Detector,
    image: ImageBGR,
    plan: RegionPlan,
    settings: RegionSettings | None = None,
) -> RegionResult:
    """Run ``plan`` on ``image`` (one invoke per region), regrow regions around cut boxes
    with what is left of the budget, and return de-duplicated detections in frame
    coordinates."""
    settings = settings or RegionSettings()
    times = [0.0, 0.0, 0.0]
    passes: list[_Pass] = []
    cut_boxes: list[tuple[_Pass, Detection, frozenset[str]]] = []
    for region in plan.regions[: settings.max_invokes_per_frame]:
        done, cut = _run(detector, image, region, times)
        passes.append(done)
        cut_boxes.extend((done, det, sides) for det, sides in cut)
    regrown = 0
    left = settings.max_invokes_per_frame - len(passes)
    if settings.regrow and cut_boxes and left > 0:
        for region in _regrowths(cut_boxes, passes, plan, settings)[:left]:
            done, _ = _run(detector, image, region, times)
            passes.append(done)
            regrown += 1
    detections, duplicates = _deduplicate(passes, settings.nms_iou)
    return RegionResult(
        result=DetectionResult(tuple(detections), times[0], times[1], times[2]),
        figures=RegionFigures(
            planned=plan.planned,
            invokes=len(passes),
            full_frame=plan.full_frame,
            regrown=regrown,
            duplicates=duplicates,
        ),
        regions=tuple(done.region for done in passes),
    )
