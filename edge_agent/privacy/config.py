"""``cameras[].privacy``: masks and face blur for the pictures a camera sends out.

Here, beside the code, so the privacy package needs only ``config_base`` (no cycle through
the whole agent config).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from edge_agent.config_base import StrictModel, UnitFloat

Polygon = list[tuple[UnitFloat, UnitFloat]]

DEFAULT_FACE_MODEL = "blazeface_full_range"
MAX_MASKS = 64  # per camera; a page or a config that sends more is wrong, not careful
MAX_MASK_POINTS = 256  # per polygon, as for zones


def polygon_area(points: list[tuple[float, float]]) -> float:
    """The shoelace area of a polygon in normalised units (0 for a line or a point)."""
    twice = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        twice += x0 * y1 - x1 * y0
    return abs(twice) / 2.0


def crossing_edges(points: list[tuple[float, float]]) -> tuple[int, int] | None:
    """Two edges of the polygon that cross (by the 1-based number of their first point),
    or None. Corners listed out of order make a bow-tie, whose even-odd inside is only its
    lobes: not the area meant. Edges that merely touch do not count."""
    p = np.asarray(points, dtype=np.float64)
    a, b = p, np.roll(p, -1, axis=0)  # edge i: a[i] -> b[i]

    def side(origin: np.ndarray, end: np.ndarray, point: np.ndarray) -> np.ndarray:
        """Which side of origin->end each point lies (>0 left, <0 right, 0 on the line)."""
        d = end - origin
        cross: np.ndarray = d[..., 0] * (point[..., 1] - origin[..., 1]) - d[..., 1] * (
            point[..., 0] - origin[..., 0]
        )
        return cross

    ai, bi, aj, bj = a[:, None], b[:, None], a[None, :], b[None, :]
    crossing = (side(ai, bi, aj) * side(ai, bi, bj) < 0) & (side(aj, bj, ai) * side(aj, bj, bi) < 0)
    found = np.argwhere(np.triu(crossing, k=2))  # neighbours share a point: never "cross"
    if not len(found):
        return None
    i, j = (int(n) for n in found[0])
    return i + 1, j + 1


def shape_problem(points: list[tuple[float, float]]) -> str | None:
    """Why the polygon cannot be a zone or a mask (its edges cross, it has no area)."""
    crossing = crossing_edges(points)
    if crossing is not None:
        first, second = crossing
        n = len(points)
        return (
            f"edges {first}-{first % n + 1} and {second}-{second % n + 1} cross: list the "
            "points in order around the area"
        )
    if polygon_area(points) <= 0.0:  # nothing can ever stand inside it
        return "the polygon has no area (all points on a line or the same)"
    return None


class PrivacyConfig(StrictModel):
    """What a camera must never send: ``masks`` (polygons in normalised 0..1 coordinates,
    filled black on every outgoing picture) and, with ``blur_faces``, every face found."""

    masks: list[Polygon] = Field(default_factory=list, max_length=MAX_MASKS)
    blur_faces: bool = False
    face_model: str = Field(DEFAULT_FACE_MODEL, min_length=1)  # a manifest name
    face_score_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # the narrowest face (frame px) to find: smaller means more model runs per picture
    face_min_px: int = Field(20, ge=8, le=400)

    @field_validator("masks")
    @classmethod
    def _real_polygons(cls, masks: list[Polygon]) -> list[Polygon]:
        for index, polygon in enumerate(masks):
            if len(polygon) < 3:
                raise ValueError(f"mask {index}: a polygon needs at least 3 points")
            if len(polygon) > MAX_MASK_POINTS:
                raise ValueError(
                    f"mask {index}: {len(polygon)} points; at most {MAX_MASK_POINTS} per mask"
                )
            problem = shape_problem(polygon)
            if problem is not None:
                raise ValueError(f"mask {index}: {problem}")
        return masks

    @property
    def active(self) -> bool:
        """Anything to do: a camera without masks or face blur sends its pictures as they are."""
        return bool(self.masks) or self.blur_faces
