"""What a camera is configured to see, drawn on its picture: zones, counting lines and
detections — so a technician can tell at a glance whether the zones sit where they should.
Colours are fixed so a picture can be read (and tested) without a legend."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_agent.config import CameraConfig
from edge_agent.rules.config import LineCrossingRuleConfig
from edge_agent.types import Detection, ImageBGR

__all__ = ["BOX_BGR", "LINE_BGR", "ZONE_BGR", "draw_overlay", "thickness_px"]

ZONE_BGR = (0, 200, 255)  # amber
LINE_BGR = (255, 0, 255)  # magenta
BOX_BGR = (0, 255, 0)  # green
MASK_BGR = (160, 160, 160)  # grey: the outline of a privacy mask (its inside is black)


def thickness_px(width_px: int) -> int:
    """2 px on a 480 px picture, growing with the picture so it stays visible."""
    return max(2, round(width_px / 240))


def _pixels(points: Sequence[tuple[float, float]], width_px: int, height_px: int) -> np.ndarray:
    return np.array(
        [[round(x * (width_px - 1)), round(y * (height_px - 1))] for x, y in points],
        dtype=np.int32,
    )


def _label(
    image: ImageBGR, text: str, origin: tuple[int, int], colour: tuple[int, int, int]
) -> None:
    scale = max(0.4, image.shape[1] / 1200)
    x, y = origin
    y = max(y, 12)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_overlay(
    image: ImageBGR, camera: CameraConfig, detections: Sequence[Detection] = ()
) -> ImageBGR:
    """A copy of ``image`` with the camera's zones (amber outlines), its line-crossing
    lines (magenta arrows from ``a`` to ``b``) and the detections (green boxes with
    label and score)."""
    out: ImageBGR = image.copy()
    height_px, width_px = out.shape[:2]
    thick = thickness_px(width_px)
    for zone in camera.zones:
        polygon = _pixels(zone.polygon, width_px, height_px)
        cv2.polylines(out, [polygon], isClosed=True, color=ZONE_BGR, thickness=thick)
        top = polygon[np.argmin(polygon[:, 1])]
        _label(out, zone.name, (int(top[0]) + 3, int(top[1]) - 4), ZONE_BGR)
    for rule in camera.rules:
        if isinstance(rule, LineCrossingRuleConfig):
            a, b = _pixels([rule.a, rule.b], width_px, height_px)
            start, end = (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))
            # An arrow from a to b: crossing it from its left to its right counts as the
            # first direction name (docs/analytics.md).
            cv2.arrowedLine(out, start, end, LINE_BGR, thick, tipLength=0.03)
            _label(out, rule.name, (start[0] + 3, start[1] - 4), LINE_BGR)
    for mask in camera.privacy.masks:  # where the pictures that leave are blacked out
        polygon = _pixels(mask, width_px, height_px)
        cv2.polylines(out, [polygon], isClosed=True, color=MASK_BGR, thickness=thick)
    for det in detections:
        x_min, y_min, x_max, y_max = det.box.to_pixels(width_px, height_px)
        cv2.rectangle(out, (x_min, y_min), (x_max, y_max), BOX_BGR, thick)
        _label(out, f"{det.label} {det.score:.2f}", (x_min + 2, y_min - 4), BOX_BGR)
    return out
