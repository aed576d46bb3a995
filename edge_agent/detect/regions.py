"""Region detection: run the detector on crops around motion and tracked objects.

Resizing a whole 960x540 frame to a 300 or 416 px model input shrinks a person 25 px tall
to ~11 px, and no model here finds that (0 % of trials; DESIGN.md §8); a crop of about the
model's input size around them keeps them at native resolution, and they are found half
the time or better. So, like Frigate, the detector runs on *regions* around motion and
tracked objects (at their predicted place), never on the whole frame alone:

- each track and motion box seeds a square with some context around it, at least
  ``min_region_px`` on a side (a larger object gets a larger square, which the detector
  shrinks to its input); seeds whose squares overlap enough are merged, so one invoke
  covers a group; a square is shifted inside the picture rather than cut;
- a per-frame budget of invokes is spent on tracks first (the least recently seen
  first, so over-budget tracks take turns), then on the largest motion: CPU stays
  bounded on a busy scene;
- a full-frame pass runs on a cadence and whenever nothing is tracked: it finds what
  motion missed (a low-contrast walker, something that stopped) and large objects;
  beside it, a region that would not show its content at least ``FULL_FRAME_MIN_ZOOM``
  times larger than the full frame does is not worth its invoke;
- a box touching a region's inner edge (not the picture's) is an object cut by the
  crop: a larger region, reaching as far again past that edge, is run around it;
- boxes are mapped back to the frame and de-duplicated across passes: a cut box goes
  when another pass sees the object whole, then NMS per label family.

Pure: no threads, no windows. Plan for the size of the image you will crop from; regions
are kept normalised, so a plan made for one size crops the same view from another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from edge_agent.detect.base import Detector
from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import Box, Detection, DetectionResult, ImageBGR, Track

RegionKind = Literal["full", "track", "motion", "regrown"]
WHOLE_FRAME = Box(0.0, 0.0, 1.0, 1.0)

# A box edge within this share of a region's side from the region's inner edge is cut by it.
REGION_EDGE_MARGIN = 0.02
# Beside a full-frame pass, a region must show its content at least this much larger.
FULL_FRAME_MIN_ZOOM = 1.5
# A cut box with this share of its area inside a whole box of another pass is that object.
CUT_COVERED = 0.5
# A box with this share of its area inside a better box of another pass is that object.
CONTAINED = 0.9
# Regions are at least the model input / this (so at most this much upscaled) by default:
# a person 25 px tall in 960x540 is found most often at about a third of the region's side.
DEFAULT_UPSCALE = 3.0
# A motion box with this share of its area inside a track's box is that track moving.
TRACK_MOTION = 0.8
# Motion boxes beyond the largest this many are ignored (a noisy scene makes dozens).
MAX_MOTION_SEEDS = 16


@dataclass(frozen=True)
class RegionSettings:
    """Defaults argued from bench/bench_small_objects.py (docs/pipeline.md)."""

    enabled: bool = True  # False: one full-frame pass per detection run, as before regions
    max_invokes_per_frame: int = 4  # regions, regrowths and the full-frame pass together
    full_frame_every_s: float = 2.0  # a full-frame pass at least this often while tracking
    min_region_px: int = 0  # a region's smallest side in image px; 0: the model input / 3
    track_padding: float = 0.25  # context added on every side of a track box, x its long side
    motion_padding: float = 0.1  # the same for a motion box (the gate's boxes are dilated)
    merge_max_growth: float = 1.2  # merge two regions when a square this x the smaller holds both
    nms_iou: float = 0.5  # boxes of one label family from two passes overlapping this: one
    regrow: bool = True  # re-run a region around a box cut by its edge

    def __post_init__(self) -> None:
        if self.max_invokes_per_frame < 1:
            raise ValueError("max_invokes_per_frame must be at least 1")
        if self.full_frame_every_s <= 0.0 or self.min_region_px < 0:
            raise ValueError("full_frame_every_s must be > 0 and min_region_px >= 0")
        if self.track_padding < 0.0 or self.motion_padding < 0.0:
            raise ValueError("paddings must be >= 0")
        if self.merge_max_growth < 1.0 or not 0.0 < self.nms_iou <= 1.0:
            raise ValueError("merge_max_growth must be >= 1 and nms_iou in (0, 1]")


@dataclass(frozen=True)
class Region:
    """One crop to run the detector on: ``box`` normalised to the frame."""

    box: Box
    kind: RegionKind

    def pixels(self, width_px: int, height_px: int) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max) in a width x height image, at least 1 px each way."""
        x0, y0, x1, y1 = self.box.to_pixels(width_px, height_px)
        x0, y0 = min(max(x0, 0), width_px - 1), min(max(y0, 0), height_px - 1)
        return x0, y0, max(x0 + 1, min(x1, width_px)), max(y0 + 1, min(y1, height_px))


@dataclass(frozen=True)
class RegionPlan:
    """The regions one frame runs, in order, within the budget."""

    frame_px: tuple[int, int]  # (width, height) of the image planned for
    input_px: tuple[int, int]  # (width, height) of the model input
    regions: tuple[Region, ...]
    planned: int  # candidate regions before the budget (the full-frame pass included)

    @property
    def full_frame(self) -> bool:
        return any(region.kind == "full" for region in self.regions)


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
            region.kind == "full" or _intersection(region.box, box) >= 0.5 * area
            for region in self.regions
        )


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Cluster:
    """Seeds that one region will cover: their padded extent in image pixels."""

    x0: float
    y0: float
    x1: float
    y1: float
    track_rank: int | None  # best (lowest) rank of a track seed in it; None: motion only
    motion_area: float = 0.0
    score: float = 0.0  # regrowth: the score of the cut box

    def side(self, min_side: float) -> float:
        return max(min_side, self.x1 - self.x0, self.y1 - self.y0)

    def merged(self, other: _Cluster) -> _Cluster:
        ranks = [r for r in (self.track_rank, other.track_rank) if r is not None]
        return _Cluster(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
            min(ranks) if ranks else None,
            self.motion_area + other.motion_area,
            max(self.score, other.score),
        )


def _seed(
    box: Box, frame_px: tuple[int, int], padding: float, track_rank: int | None
) -> _Cluster | None:
    box = box.clipped()
    if box.area <= 0.0:
        return None
    width_px, height_px = frame_px
    x0, y0, x1, y1 = (
        box.x_min * width_px,
        box.y_min * height_px,
        box.x_max * width_px,
        box.y_max * height_px,
    )
    pad = padding * max(x1 - x0, y1 - y0)
    area = (x1 - x0) * (y1 - y0)
    return _Cluster(x0 - pad, y0 - pad, x1 + pad, y1 + pad, track_rank, area)


def _merge(clusters: list[_Cluster], min_side: float, max_growth: float) -> list[_Cluster]:
    """Merge pairs whose enclosing square is at most ``max_growth`` x the smaller one, the
    pair that grows least first, until no pair qualifies: what one invoke saves must not
    cost either side much of its zoom (a small person beside a lorry keeps a region)."""
    clusters = list(clusters)
    while len(clusters) > 1:
        best: tuple[float, int, int] | None = None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                a, b = clusters[i], clusters[j]
                growth = a.merged(b).side(min_side) / min(a.side(min_side), b.side(min_side))
                if growth <= max_growth and (best is None or growth < best[0]):
                    best = (growth, i, j)
        if best is None:
            break
        _, i, j = best
        merged = clusters[i].merged(clusters[j])
        clusters = [c for k, c in enumerate(clusters) if k not in (i, j)] + [merged]
    return clusters


def _square(cluster: _Cluster, frame_px: tuple[int, int], min_side: float) -> Box:
    """The cluster's square, shifted inside the picture; cut only where it is larger."""
    width_px, height_px = frame_px
    side = cluster.side(min_side)
    side_x, side_y = min(side, float(width_px)), min(side, float(height_px))
    centre_x, centre_y = (cluster.x0 + cluster.x1) / 2.0, (cluster.y0 + cluster.y1) / 2.0
    x0 = min(max(centre_x - side_x / 2.0, 0.0), width_px - side_x)
    y0 = min(max(centre_y - side_y / 2.0, 0.0), height_px - side_y)
    x0, y0 = round(x0), round(y0)
    x1, y1 = min(width_px, x0 + round(side_x)), min(height_px, y0 + round(side_y))
    return Box(x0 / width_px, y0 / height_px, x1 / width_px, y1 / height_px)


def _zoom(box: Box, frame_px: tuple[int, int], input_px: tuple[int, int]) -> float:
    """How much larger a region shows its content than the full-frame pass does."""
    width_px, height_px = frame_px
    region_w, region_h = max(box.width * width_px, 1.0), max(box.height * height_px, 1.0)
    region_scale = min(input_px[0] / region_w, input_px[1] / region_h)
    return region_scale / min(input_px[0] / width_px, input_px[1] / height_px)


def min_side_px(input_px: tuple[int, int], settings: RegionSettings) -> float:
    """A region's smallest side: a small object is shown up to ``DEFAULT_UPSCALE`` x larger."""
    return float(settings.min_region_px or round(max(input_px) / DEFAULT_UPSCALE))


def plan_regions(
    frame_px: tuple[int, int],
    input_px: tuple[int, int],
    *,
    tracks: Sequence[Box] = (),
    motion: Sequence[Box] = (),
    full_frame: bool = False,
    settings: RegionSettings | None = None,
) -> RegionPlan:
    """The regions to run on one frame.

    ``frame_px`` is the (width, height) of the image that will be cropped; ``tracks`` are
    the tracks' boxes where they are expected now, most urgent first; ``motion`` the motion
    gate's boxes. Both normalised. Order: the full-frame pass (when asked for), then tracks,
    then motion by area, largest first; cut at ``max_invokes_per_frame``.
    """
    settings = settings or RegionSettings()
    min_side = min_side_px(input_px, settings)
    seeds: list[_Cluster] = []
    for rank, box in enumerate(tracks):
        seed = _seed(box, frame_px, settings.track_padding, rank)
        if seed is not None:
            seeds.append(seed)
    # Motion mostly inside a track's box is that object moving: its region covers it.
    tracked = [box.clipped() for box in tracks]
    motion = [
        box
        for box in motion
        if not any(_intersection(box, t) >= TRACK_MOTION * box.clipped().area for t in tracked)
    ]
    largest_motion = sorted(motion, key=lambda b: b.clipped().area, reverse=True)
    for box in largest_motion[:MAX_MOTION_SEEDS]:
        seed = _seed(box, frame_px, settings.motion_padding, None)
        if seed is not None:
            seeds.append(seed)
    clusters = _merge(seeds, min_side, settings.merge_max_growth)
    clusters.sort(
        key=lambda c: (0, c.track_rank, 0.0) if c.track_rank is not None else (1, 0, -c.motion_area)
    )
    candidates: list[Region] = [Region(WHOLE_FRAME, "full")] if full_frame else []
    for cluster in clusters:
        box = _square(cluster, frame_px, min_side)
        if full_frame and _zoom(box, frame_px, input_px) < FULL_FRAME_MIN_ZOOM:
            continue
        candidates.append(Region(box, "track" if cluster.track_rank is not None else "motion"))
    return RegionPlan(
        frame_px=frame_px,
        input_px=input_px,
        regions=tuple(candidates[: settings.max_invokes_per_frame]),
        planned=len(candidates),
    )


# ---------------------------------------------------------------------------------------------
# Detection over regions


@dataclass
class _Pass:
    region: Region
    detections: list[tuple[Detection, bool]] = field(default_factory=list)  # (det, cut)


def _intersection(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x_max, b.x_max) - max(a.x_min, b.x_min))
    iy = max(0.0, min(a.y_max, b.y_max) - max(a.y_min, b.y_min))
    return ix * iy


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
        and _intersection(other.box, det.box) >= CUT_COVERED * area
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
    seeds: list[tuple[_Cluster, Box, frozenset[str]]] = []
    for done, det, sides in cut_boxes:
        if _seen_whole_elsewhere(det, passes, done):
            continue
        seed = _seed(_beyond(det.box, sides), plan.frame_px, settings.track_padding, None)
        if seed is None:
            continue
        seed.score = det.score
        seeds.append((seed, done.region.box, sides))
    regions: list[tuple[float, Region]] = []
    for seed, old, sides in seeds:
        box = _square(seed, plan.frame_px, min_side)
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
                or _intersection(det.box, other.box) >= CONTAINED * det.box.area
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


# ---------------------------------------------------------------------------------------------
# One camera's region detection over time


class RegionDetector:
    """Region detection for one camera: keeps the full-frame cadence (not thread-safe)."""

    def __init__(self, input_px: tuple[int, int], settings: RegionSettings | None = None) -> None:
        self.input_px = input_px
        self.settings = settings or RegionSettings()
        self._last_full_s: float | None = None

    def full_frame_due(self, now_s: float, *, tracked: bool) -> bool:
        """Whether this frame's detection run must include a full-frame pass."""
        if not tracked or self._last_full_s is None:
            return True
        return now_s - self._last_full_s >= self.settings.full_frame_every_s

    def detect(
        self,
        detector: Detector,
        image: ImageBGR,
        *,
        now_s: float,
        motion: Sequence[Box] = (),
        tracks: Sequence[Track] = (),
    ) -> RegionResult:
        """Plan and run one frame. ``tracks`` carry the boxes where they are expected now
        (``IouTracker.expected_tracks``), tentative ones included; ``motion`` is the
        gate's boxes; both normalised, so the analysis frame may be smaller than ``image``."""
        height_px, width_px = image.shape[:2]
        frame_px = (width_px, height_px)
        if not self.settings.enabled:
            plan = RegionPlan(frame_px, self.input_px, (Region(WHOLE_FRAME, "full"),), 1)
        else:
            # The least recently seen first: over the budget, tracks take turns.
            urgent = sorted(tracks, key=lambda t: (t.last_seen_s, -t.hits, t.track_id))
            plan = plan_regions(
                frame_px,
                self.input_px,
                tracks=[t.box for t in urgent],
                motion=motion,
                full_frame=self.full_frame_due(now_s, tracked=bool(tracks)),
                settings=self.settings,
            )
        if plan.full_frame:
            self._last_full_s = now_s
        return detect_regions(detector, image, plan, self.settings)
