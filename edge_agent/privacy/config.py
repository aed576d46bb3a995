"""``cameras[].privacy``: masks and face blur for the pictures a camera sends out.

Here, beside the code, so the privacy package needs only ``config_base`` (no cycle through
the whole agent config).
"""

from __future__ import annotations

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
            if polygon_area(polygon) <= 0.0:
                raise ValueError(f"mask {index}: the polygon has no area (all points on a line)")
        return masks

    @property
    def active(self) -> bool:
        """Anything to do: a camera without masks or face blur sends its pictures as they are."""
        return bool(self.masks) or self.blur_faces
