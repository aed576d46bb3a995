"""Region planning: which crops of a frame the detector runs on (see ``regions``).

Pure geometry on normalised boxes; sizes are in pixels of the image that will be cropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import Box

if TYPE_CHECKING:
    from edge_agent.config import RegionConfig

RegionKind = Literal["full", "track", "motion", "regrown"]
WHOLE_FRAME = Box(0.0, 0.0, 1.0, 1.0)

# Beside a full-frame pass, a region must show its content at least this much larger.
FULL_FRAME_MIN_ZOOM = 1.5
# An object this long (px) in the full-frame pass's input is found there (bench: people
# 160 px tall in 960x540, ~50-70 px in the input, 81-100 %; 80 px, ~30 px, 29-71 %): it
# needs no region, and the full-frame pass runs instead, covering every large object.
LARGE_OBJECT_INPUT_PX = 64
# Beside a full-frame pass that runs anyway, a vehicle track at least this wide *and* high
# (px) in its input gets no region: on the traffic clip such regions (cars 32-64 px long
# there) found 7 of 149 tracks the full pass missed, most of them coasting after their car
# had left. At 24 px the footage evaluation loses the clip's leaving car; for people (and
# for any track the full pass found, whatever its size) the store-aisle clip splits a
# shopper in two: they keep their regions (docs/pipeline.md §6).
VEHICLE_BESIDE_FULL_INPUT_PX = 32
# Regions are at least the model input / this (so at most this much upscaled) by default:
# a person 25 px tall in 960x540 is found most often at about a third of the region's side.
DEFAULT_UPSCALE = 3.0
# A motion box with this share of its area inside a track's box is that track moving.
TRACK_MOTION = 0.8
# Motion boxes beyond the largest this many are ignored (a noisy scene makes dozens).
MAX_MOTION_SEEDS = 16


@dataclass(frozen=True)
class RegionSettings:
    """Defaults argued from bench/bench_small_objects.py (docs/pipeline.md §6)."""

    enabled: bool = True  # False: one full-frame pass per detection run, as before regions
    max_invokes_per_frame: int = 4  # regions, regrowths and the full-frame pass together
    full_frame_every_s: float = 2.0  # a full-frame pass at least this often while tracking
    min_region_px: int = 0  # a region's smallest side in image px; 0: the model input / 3
    track_padding: float = 0.25  # context added on every side of a track box, x its long side
    motion_padding: float = 0.1  # the same for a motion box (the gate's boxes are dilated)
    merge_max_growth: float = 1.2  # merge two regions when a square this x the smaller holds both
    nms_iou: float = 0.5  # boxes of one label family from two passes overlapping this: one
    regrow: bool = True  # re-run a region around a box cut by its edge

    @classmethod
    def from_config(cls, config: RegionConfig) -> RegionSettings:
        return cls(**config.model_dump())

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


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class Cluster:
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

    def merged(self, other: Cluster) -> Cluster:
        ranks = [r for r in (self.track_rank, other.track_rank) if r is not None]
        return Cluster(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
            min(ranks) if ranks else None,
            self.motion_area + other.motion_area,
            max(self.score, other.score),
        )


def seed_cluster(
    box: Box, frame_px: tuple[int, int], padding: float, track_rank: int | None
) -> Cluster | None:
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
    return Cluster(x0 - pad, y0 - pad, x1 + pad, y1 + pad, track_rank, area)


def _padded(box: Box, padding: float) -> Box:
    pad_x, pad_y = padding * box.width, padding * box.height
    return Box(box.x_min - pad_x, box.y_min - pad_y, box.x_max + pad_x, box.y_max + pad_y)


def untracked_motion(motion: Sequence[Box], tracks: Sequence[Box], padding: float) -> list[Box]:
    """The motion boxes not mostly (``TRACK_MOTION``) inside a track's box padded by
    ``padding`` of its size on every side: motion inside one is that object moving."""
    tracked = [_padded(box.clipped(), padding) for box in tracks]
    return [
        box
        for box in motion
        if not any(box.intersection(t) >= TRACK_MOTION * box.clipped().area for t in tracked)
    ]


def _merge(clusters: list[Cluster], min_side: float, max_growth: float) -> list[Cluster]:
    """Merge pairs whose enclosing square is at most ``max_growth`` x the smaller one, the
    pair that grows least first, until no pair qualifies: what one invoke saves must not
    cost either side much of its zoom (a small person beside a lorry keeps a region).
    Growths are kept in a matrix updated per merge: dozens of seeds cost ~1 ms, not ~100."""
    clusters = list(clusters)
    if len(clusters) < 2:
        return clusters
    extents = np.array([(c.x0, c.y0, c.x1, c.y1) for c in clusters], np.float64)

    def growth_to(index: int) -> npt.NDArray[np.float64]:
        x0 = np.minimum(extents[:, 0], extents[index, 0])
        y0 = np.minimum(extents[:, 1], extents[index, 1])
        x1 = np.maximum(extents[:, 2], extents[index, 2])
        y1 = np.maximum(extents[:, 3], extents[index, 3])
        merged = np.maximum(np.maximum(x1 - x0, y1 - y0), min_side)
        sides = np.maximum(
            np.maximum(extents[:, 2] - extents[:, 0], extents[:, 3] - extents[:, 1]), min_side
        )
        growth: npt.NDArray[np.float64] = merged / np.minimum(sides, sides[index])
        growth[index] = np.inf
        return growth

    growth = np.stack([growth_to(i) for i in range(len(clusters))])
    alive = [True] * len(clusters)
    while True:
        flat = int(np.argmin(growth))
        i, j = divmod(flat, len(clusters))
        if growth[i, j] > max_growth:
            break
        clusters[i] = clusters[i].merged(clusters[j])
        extents[i] = (clusters[i].x0, clusters[i].y0, clusters[i].x1, clusters[i].y1)
        alive[j] = False
        growth[j, :] = growth[:, j] = np.inf
        row = growth_to(i)
        row[~np.array(alive)] = np.inf
        growth[i, :] = growth[:, i] = row
    return [c for c, keep in zip(clusters, alive, strict=True) if keep]


def square(cluster: Cluster, frame_px: tuple[int, int], min_side: float) -> Box:
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
    track_labels: Sequence[str] = (),
) -> RegionPlan:
    """The regions to run on one frame.

    ``frame_px`` is the (width, height) of the image that will be cropped; ``tracks`` are
    the tracks' boxes where they are expected now, most urgent first; ``motion`` the motion
    gate's boxes. Both normalised; ``track_labels``, beside ``tracks`` when known, spare
    broad vehicles a region beside the full-frame pass. Order: the full-frame pass (when
    asked for), then tracks, then motion by area, largest first; cut at
    ``max_invokes_per_frame``.
    """
    settings = settings or RegionSettings()
    min_side = min_side_px(input_px, settings)
    full_scale = min(input_px[0] / frame_px[0], input_px[1] / frame_px[1])

    def large(box: Box) -> bool:  # seen well enough by the full-frame pass
        long_px = max(box.width * frame_px[0], box.height * frame_px[1]) * full_scale
        return long_px >= LARGE_OBJECT_INPUT_PX

    def broad_vehicle(box: Box, label: str) -> bool:  # its region adds little beside it
        short_px = min(box.width * frame_px[0], box.height * frame_px[1]) * full_scale
        return label in VEHICLE_LABELS and short_px >= VEHICLE_BESIDE_FULL_INPUT_PX

    seeds: list[Cluster] = []
    broad: list[Cluster] = []  # dropped if a full-frame pass runs
    labels = [*track_labels, *[""] * len(tracks)]
    for rank, box in enumerate(tracks):
        seed = seed_cluster(box, frame_px, settings.track_padding, rank)
        if seed is not None and large(box.clipped()):
            full_frame = True
        elif seed is not None:
            seeds.append(seed)
            if broad_vehicle(box.clipped(), labels[rank]):
                broad.append(seed)
    # Motion mostly inside a track's padded box is that object moving: it has a region.
    motion = untracked_motion(motion, tracks, settings.track_padding)
    largest_motion = sorted(motion, key=lambda b: b.clipped().area, reverse=True)
    for box in largest_motion[:MAX_MOTION_SEEDS]:
        seed = seed_cluster(box, frame_px, settings.motion_padding, None)
        if seed is not None and large(box.clipped()):
            full_frame = True
        elif seed is not None:
            seeds.append(seed)
    if full_frame:
        seeds = [seed for seed in seeds if not any(seed is b for b in broad)]
    clusters = _merge(seeds, min_side, settings.merge_max_growth)
    clusters.sort(
        key=lambda c: (0, c.track_rank, 0.0) if c.track_rank is not None else (1, 0, -c.motion_area)
    )
    candidates: list[Region] = [Region(WHOLE_FRAME, "full")] if full_frame else []
    for cluster in clusters:
        box = square(cluster, frame_px, min_side)
        if full_frame and _zoom(box, frame_px, input_px) < FULL_FRAME_MIN_ZOOM:
            continue
        candidates.append(Region(box, "track" if cluster.track_rank is not None else "motion"))
    return RegionPlan(
        frame_px=frame_px,
        input_px=input_px,
        regions=tuple(candidates[: settings.max_invokes_per_frame]),
        planned=len(candidates),
    )
