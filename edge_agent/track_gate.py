"""Which tracks and detections may match: every pairwise box measure at once, in NumPy.

The tracker's association used to measure every (track, detection) pair in Python: 8 ms
per update at 50 objects, 35 ms at 100 (issue 14). Here each measure is one array operation
over all pairs, and only the few pairs that pass the box gates go back to Python (for the
leaving rule and the greedy choice). Each measure repeats the operations of
``Box.intersection`` and ``Box.iou``, in the same order, on the same IEEE doubles, so a
threshold is decided exactly as the per-pair code decided it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.types import Box

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_LEFT, _RIGHT, _BOTTOM = 1, 2, 4
SMALL_PAIRS = 24
SMALL_DETECTIONS = 8
"""Up to ``SMALL_PAIRS`` (track, detection) pairs and ``SMALL_DETECTIONS`` detections,
``gate`` measures pair by pair in Python: on a handful of objects (the usual frame) that
is cheaper than the arrays' fixed cost."""


def box_array(boxes: Sequence[Box]) -> Floats:
    """``boxes`` as an n x 4 array of (x_min, y_min, x_max, y_max)."""
    return np.array(
        [(b.x_min, b.y_min, b.x_max, b.y_max) for b in boxes], dtype=np.float64
    ).reshape(-1, 4)


def areas(boxes: Floats) -> Floats:
    """Each box's area, as ``Box.area``."""
    width = np.maximum(0.0, boxes[:, 2] - boxes[:, 0])
    height = np.maximum(0.0, boxes[:, 3] - boxes[:, 1])
    result: Floats = width * height
    return result


def intersections(a: Floats, b: Floats) -> Floats:
    """The area every box of ``a`` shares with every box of ``b`` (len(a) x len(b))."""
    ix = np.maximum(
        0.0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    )
    iy = np.maximum(
        0.0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    )
    result: Floats = ix * iy
    return result


def cut_edge_bits(boxes: Floats, margin: float) -> npt.NDArray[np.int64]:
    """The picture edges (left, right, bottom) cutting each box, as bits, as ``cut_edges``."""
    inside = 1.0 - margin
    return (
        np.where(boxes[:, 0] <= margin, _LEFT, 0)
        | np.where(boxes[:, 2] >= inside, _RIGHT, 0)
        | np.where(boxes[:, 3] >= inside, _BOTTOM, 0)
    ).astype(np.int64)


@dataclass(frozen=True)
class Gated:
    """What the box gates let through."""

    pairs: list[tuple[int, int, float]]  # (track, detection, IoU) that may match
    inside: list[bool]  # per detection: most of it inside a confirmed track's box or
    # another detection of its family
    # ... and that box at most 1 / ``part_width_share`` times as wide (a part of someone)
    parts: list[bool]


def gate(
    track_boxes: Sequence[Box],
    track_families: Sequence[str],
    takeable: Sequence[bool],
    confirmed: Sequence[bool],
    det_boxes: Sequence[Box],
    det_families: Sequence[str],
    *,
    iou_threshold: float,
    edge_margin: float,
    most: float,
    part_width_share: float = 0.0,
    by_pairs: bool | None = None,
) -> Gated:
    """The pairs that may match: same family, a track that can be taken up, and an IoU of
    at least ``iou_threshold`` or, both cut by one picture edge (within ``edge_margin``),
    ``most`` of the smaller box inside the other (growing into view, shrinking out of it).
    Which detections lie ``most``ly inside a confirmed track's box or another detection of
    their family (``inside``), and inside one no wider than their width over
    ``part_width_share`` (``parts``).

    ``by_pairs``: measure pair by pair in Python (True) or over all pairs in arrays
    (False); the same decisions either way. None: pair by pair for a few objects, where the
    arrays' fixed cost is most of the work (``SMALL_PAIRS``).
    """
    if by_pairs is None:
        by_pairs = len(det_boxes) <= SMALL_DETECTIONS and (
            len(track_boxes) * len(det_boxes) <= SMALL_PAIRS
        )
    if by_pairs:
        return _gate_pair_by_pair(
            track_boxes,
            track_families,
            takeable,
            confirmed,
            det_boxes,
            det_families,
            iou_threshold=iou_threshold,
            edge_margin=edge_margin,
            most=most,
            part_width_share=part_width_share,
        )
    families: dict[str, int] = {}
    tracks = box_array(track_boxes)
    dets = box_array(det_boxes)
    track_family = np.array([families.setdefault(f, len(families)) for f in track_families])
    det_family = np.array([families.setdefault(f, len(families)) for f in det_families])
    track_areas, det_areas = areas(tracks), areas(dets)
    inter = intersections(tracks, dets)
    union = track_areas[:, None] + det_areas[None, :] - inter
    positive = union > 0.0
    iou = np.where(positive, inter / np.where(positive, union, 1.0), 0.0)
    same_family = track_family.reshape(-1, 1) == det_family.reshape(1, -1)
    smaller = np.minimum(track_areas[:, None], det_areas[None, :])
    common_edge = (
        cut_edge_bits(tracks, edge_margin)[:, None] & cut_edge_bits(dets, edge_margin)[None, :]
    ) != 0
    grows = common_edge & (smaller > 0.0) & (inter >= most * smaller)
    may = (
        same_family
        & np.array(takeable, dtype=np.bool_).reshape(-1, 1)
        & ((iou >= iou_threshold) | grows)
    )
    t_indices, d_indices = np.nonzero(may)
    pairs = list(
        zip(t_indices.tolist(), d_indices.tolist(), iou[t_indices, d_indices].tolist(), strict=True)
    )
    mostly = most * det_areas
    in_track = (
        (inter >= mostly[None, :])
        & same_family
        & np.array(confirmed, dtype=np.bool_).reshape(-1, 1)
    )
    in_det = (intersections(dets, dets) >= mostly[None, :]) & (
        det_family.reshape(-1, 1) == det_family.reshape(1, -1)
    )
    np.fill_diagonal(in_det, False)
    inside = in_track.any(axis=0) | in_det.any(axis=0) | (det_areas <= 0.0)
    det_widths = dets[:, 2] - dets[:, 0]
    wide_enough = (
        det_widths.reshape(1, -1) >= part_width_share * (tracks[:, 2] - tracks[:, 0])[:, None]
    )
    parts = (
        (in_track & wide_enough).any(axis=0)
        | (in_det & (det_widths.reshape(1, -1) >= part_width_share * det_widths[:, None])).any(
            axis=0
        )
        | (det_areas <= 0.0)
    )
    return Gated(pairs=pairs, inside=inside.tolist(), parts=parts.tolist())


def _cut_bits(box: Box, margin: float) -> int:
    """``cut_edge_bits`` of one box."""
    inside = 1.0 - margin
    return (
        (_LEFT if box.x_min <= margin else 0)
        | (_RIGHT if box.x_max >= inside else 0)
        | (_BOTTOM if box.y_max >= inside else 0)
    )


def _gate_pair_by_pair(
    track_boxes: Sequence[Box],
    track_families: Sequence[str],
    takeable: Sequence[bool],
    confirmed: Sequence[bool],
    det_boxes: Sequence[Box],
    det_families: Sequence[str],
    *,
    iou_threshold: float,
    edge_margin: float,
    most: float,
    part_width_share: float,
) -> Gated:
    """``gate`` with ``Box``'s own measures, pair by pair (the operations the arrays repeat)."""
    track_areas = [box.area for box in track_boxes]
    det_areas = [box.area for box in det_boxes]
    track_cuts = [_cut_bits(box, edge_margin) for box in track_boxes]
    det_cuts = [_cut_bits(box, edge_margin) for box in det_boxes]
    mostly = [most * area for area in det_areas]
    inside = [area <= 0.0 for area in det_areas]
    parts = list(inside)
    pairs: list[tuple[int, int, float]] = []
    for t, track in enumerate(track_boxes):
        family, track_area = track_families[t], track_areas[t]
        for d, det in enumerate(det_boxes):
            if det_families[d] != family:
                continue
            inter = track.intersection(det)
            if confirmed[t] and inter >= mostly[d]:
                inside[d] = True
                parts[d] |= det.width >= part_width_share * track.width
            if not takeable[t]:
                continue
            union = track_area + det_areas[d] - inter
            iou = inter / union if union > 0.0 else 0.0
            smaller = min(track_area, det_areas[d])
            grows = bool(track_cuts[t] & det_cuts[d]) and smaller > 0.0 and inter >= most * smaller
            if iou >= iou_threshold or grows:
                pairs.append((t, d, iou))
    for d, det in enumerate(det_boxes):
        containers = [
            other
            for j, other in enumerate(det_boxes)
            if j != d
            and det_families[j] == det_families[d]
            and other.intersection(det) >= mostly[d]
        ]
        inside[d] |= bool(containers)
        parts[d] |= any(det.width >= part_width_share * other.width for other in containers)
    return Gated(pairs=pairs, inside=inside, parts=parts)
