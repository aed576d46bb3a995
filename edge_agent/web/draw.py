"""The live picture as the page shows it: zones, counting lines and tracked objects drawn
on the camera's latest frame, scaled down and JPEG-encoded.

A minimal drawing of its own for now: the selftest branch brings ``edge_agent.overlay``
(the ``snapshot`` command's overlay, same colours); once both are merged this can call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

import cv2
import numpy as np

from edge_agent.config import CameraConfig
from edge_agent.rules.config import LineCrossingRuleConfig
from edge_agent.types import Box, ImageBGR

__all__ = ["BOX_BGR", "LINE_BGR", "ZONE_BGR", "Boxed", "draw_view", "jpeg_view"]

ZONE_BGR = (0, 200, 255)  # amber
LINE_BGR = (255, 0, 255)  # magenta
BOX_BGR = (0, 255, 0)  # green
JPEG_QUALITY = 75


class Boxed(Protocol):
    """A detection or a track: what gets a box and a caption."""

    @property
    def label(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def box(self) -> Box: ...


def _pixels(points: Sequence[tuple[float, float]], width_px: int, height_px: int) -> np.ndarray:
    return np.array(
        [[round(x * (width_px - 1)), round(y * (height_px - 1))] for x, y in points],
        dtype=np.int32,
    )


def _caption(image: ImageBGR, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    scale = max(0.4, image.shape[1] / 1200)
    y = max(y, 12)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_view(image: ImageBGR, camera: CameraConfig, objects: Sequence[Boxed] = ()) -> ImageBGR:
    """``image`` (drawn on in place: pass a copy) with the camera's zones (amber), its
    counting lines (magenta arrows a → b) and ``objects`` (green boxes, label and score)."""
    height_px, width_px = image.shape[:2]
    thick = max(1, round(width_px / 320))
    for zone in camera.zones:
        polygon = _pixels(zone.polygon, width_px, height_px)
        cv2.polylines(image, [polygon], isClosed=True, color=ZONE_BGR, thickness=thick)
        top = polygon[np.argmin(polygon[:, 1])]
        _caption(image, zone.name, int(top[0]) + 3, int(top[1]) - 4, ZONE_BGR)
    for rule in camera.rules:
        if isinstance(rule, LineCrossingRuleConfig):
            a, b = _pixels([rule.a, rule.b], width_px, height_px)
            start, end = (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))
            cv2.arrowedLine(image, start, end, LINE_BGR, thick, tipLength=0.03)
            _caption(image, rule.name, start[0] + 3, start[1] - 4, LINE_BGR)
    for thing in objects:
        x_min, y_min, x_max, y_max = thing.box.to_pixels(width_px, height_px)
        cv2.rectangle(image, (x_min, y_min), (x_max, y_max), BOX_BGR, thick)
        _caption(image, f"{thing.label} {thing.score:.2f}", x_min + 2, y_min - 4, BOX_BGR)
    return image


def jpeg_view(
    image: ImageBGR,
    camera: CameraConfig | None,
    objects: Sequence[Boxed] = (),
    *,
    width_px: int = 640,
) -> bytes:
    """The frame scaled to ``width_px`` (never up), drawn on when ``camera`` is given."""
    height_px, source_width_px = image.shape[:2]
    if source_width_px > width_px:
        size = (width_px, max(1, round(height_px * width_px / source_width_px)))
        view = cast(ImageBGR, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    else:
        view = image.copy()
    if camera is not None:
        draw_view(view, camera, objects)
    ok, encoded = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return encoded.tobytes()
