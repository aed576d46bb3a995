"""One camera's privacy filter: what every outgoing picture goes through.

``protect`` never changes the picture it is given (the pipeline's frame is shared with
the analysis, which must see the unmasked scene); it returns a protected copy, or the
picture itself when the camera has nothing to hide.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Protocol

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.faces import (
    INPUT_PX,
    NMS_IOU,
    BlazeFace,
    Face,
    blur_faces,
    load_face_model,
)
from edge_agent.privacy.masks import Masks
from edge_agent.types import Box, ImageBGR


class PrivacyFilter(Protocol):
    """The seam: what callers (thumbnails, snapshots, previews, clips) need."""

    @property
    def active(self) -> bool: ...

    def protect(self, image: ImageBGR, focus: Box | None = None) -> ImageBGR:
        """``image`` with its masks filled and (if enabled) its faces blurred, as a copy.
        ``focus``: the part of the picture that will be shown (a thumbnail's crop); faces are
        looked for only there (fewer model runs than the whole frame); masks cover everything."""
        ...


class CameraPrivacy:
    """Masks and an optional face model, for one camera."""

    def __init__(
        self, masks: Masks | None = None, faces: BlazeFace | None = None, face_min_px: int = 20
    ) -> None:
        self.masks = masks or Masks()
        self.faces = faces
        self.face_min_px = face_min_px

    @property
    def active(self) -> bool:
        return bool(self.masks) or self.faces is not None

    def protect(self, image: ImageBGR, focus: Box | None = None) -> ImageBGR:
        if not self.active:
            return image
        protected: ImageBGR = image.copy()
        self.masks.apply(protected)  # on the full frame, before any crop
        if self.faces is not None:
            height_px, width_px = protected.shape[:2]
            x0, y0, x1, y1 = (
                (focus or Box(0.0, 0.0, 1.0, 1.0)).clipped().to_pixels(width_px, height_px)
            )
            region = protected[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
            found = find_faces_whole(self.faces, region, self.face_min_px)
            blur_faces(protected, found, offset_px=(x0, y0))
        return protected


NO_PRIVACY = CameraPrivacy()


MIN_FACE_INPUT_PX = 14
"""The narrowest face box the full-range model finds reliably in its 192 px input: measured
on the walking clip scaled down, 6 px 6 %, 8.5 px 58 %, 10.6 px 97 %, 12.8 px 100 %
(bench/bench_face_blur.py); 14 leaves a margin."""


def window_px(face_min_px: int) -> int:
    """The largest window in which a face ``face_min_px`` wide still reaches
    MIN_FACE_INPUT_PX once the window is scaled to the model's input."""
    return max(INPUT_PX, face_min_px * INPUT_PX // MIN_FACE_INPUT_PX)


def _starts(length_px: int, window: int) -> list[int]:
    if length_px <= window:
        return [0]
    overlap = window // 4  # a face on a seam is whole in one window or the other
    count = math.ceil((length_px - overlap) / (window - overlap))
    return [round(i * (length_px - window) / (count - 1)) for i in range(count)]


def tiles(width_px: int, height_px: int, window: int) -> list[tuple[int, int, int, int]]:
    """Windows (x0, y0, x1, y1) at most ``window`` px a side, overlapping by a quarter,
    covering the picture: a face keeps enough pixels once a window is scaled to the model's
    input, where one pass over a 960x540 frame finds no face under ~40 px."""
    return [
        (x0, y0, min(width_px, x0 + window), min(height_px, y0 + window))
        for y0 in _starts(height_px, window)
        for x0 in _starts(width_px, window)
    ]


def find_faces_whole(model: BlazeFace, image: ImageBGR, face_min_px: int = 20) -> list[Face]:
    """The faces in ``image`` down to about ``face_min_px`` wide: one pass over the whole
    picture (large faces, which a window would cut) and, when the picture is larger than
    one window, a pass per window (small faces), merged."""
    height_px, width_px = image.shape[:2]
    windows = tiles(width_px, height_px, window_px(face_min_px))
    found = list(model.detect(image))
    if len(windows) > 1:
        for x0, y0, x1, y1 in windows:
            found.extend(
                Face(f.x_min + x0, f.y_min + y0, f.x_max + x0, f.y_max + y0, f.score)
                for f in model.detect(image[y0:y1, x0:x1])
            )
    return merge_faces(found)


def merge_faces(found: list[Face]) -> list[Face]:
    """One face per person across passes: largest first, a face overlapping a kept one
    (IoU over 0.3, or half of it inside: a window's piece of a face it cut) widens that one
    to cover both. A union, not mediapipe's weighted mean: a piece must not shrink the blur."""
    kept: list[Face] = []
    for face in sorted(found, key=_area, reverse=True):
        for index, bigger in enumerate(kept):
            shared = _overlap(face, bigger)
            union = _area(face) + _area(bigger) - shared
            if shared / max(union, 1e-9) > NMS_IOU or shared / max(_area(face), 1e-9) >= 0.5:
                kept[index] = Face(
                    min(face.x_min, bigger.x_min),
                    min(face.y_min, bigger.y_min),
                    max(face.x_max, bigger.x_max),
                    max(face.y_max, bigger.y_max),
                    max(face.score, bigger.score),
                )
                break
        else:
            kept.append(face)
    return kept


def _area(face: Face) -> float:
    return max(0.0, face.x_max - face.x_min) * max(0.0, face.y_max - face.y_min)


def _overlap(a: Face, b: Face) -> float:
    width = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
    height = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
    return max(0.0, width) * max(0.0, height)


# Filters by config, each kept while something holds it (a live camera's pipeline holds
# its own) and dropped with it: the masks saved from the page, a reload, leave only the
# filters of the live cameras, and their face model (edge_agent.privacy.faces) is shared.
_cache: weakref.WeakValueDictionary[str, CameraPrivacy] = weakref.WeakValueDictionary()
_cache_lock = threading.Lock()


def privacy_filter(config: PrivacyConfig) -> CameraPrivacy:
    """The filter for a camera's ``privacy`` config, built once per distinct config while it
    is in use (the face model is shared by every config naming the same file). Raises
    DataFileError / RuntimeUnavailable / FaceModelError when face blur is on and its model
    cannot be loaded: the agent must not start sending faces."""
    if not config.active:
        return NO_PRIVACY
    key = config.model_dump_json()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            faces = (
                load_face_model(config.face_model, score_threshold=config.face_score_threshold)
                if config.blur_faces
                else None
            )
            cached = CameraPrivacy(Masks.of(config.masks), faces, config.face_min_px)
            _cache[key] = cached
        return cached


def cached_filters() -> int:
    """How many filters are kept now (tests)."""
    with _cache_lock:
        return len(_cache)
