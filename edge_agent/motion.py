"""The motion gate: decides, cheaply, whether the detector needs to look at a frame.

It works on a small grey copy of the frame (``frame_height_px`` tall). Three
things keep it from firing on noise, which is what made a Frigate-default gate
send ~96 % of a mostly empty room's frames to the detector (DESIGN.md §9):

- exposure compensation: the frame's mean brightness is matched to the
  background's before differencing, so auto-exposure drift and clouds do not
  light up the whole picture;
- a morphological opening removes the salt-and-pepper speckle H.264 leaves
  around edges, so compression noise does not count as change;
- the gate opens only after ``min_frames`` consecutive frames with enough
  changed area, so a single-frame glitch (a keyframe) is ignored.

The background adapts at ``background_alpha`` per frame. Someone who stands
still fades into it after a few seconds; the pipeline keeps such tracks alive
with periodic re-detection instead of by keeping the gate open.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.types import Box, ImageBGR, MotionResult


@dataclass(frozen=True)
class MotionSettings:
    frame_height_px: int = 100
    pixel_threshold: int = 30
    min_area_ratio: float = 0.002
    background_alpha: float = 0.05
    noise_blur_px: int = 5
    min_frames: int = 2
    exposure_compensation: bool = True


class MotionGate:
    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        blur = self.settings.noise_blur_px
        self._blur_px = blur if blur % 2 == 1 else blur + 1
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._background: npt.NDArray[np.float32] | None = None
        self._consecutive = 0
        self.frames_seen = 0
        self.frames_with_motion = 0

    def _small_grey(self, image: ImageBGR) -> npt.NDArray[np.float32]:
        height, width = image.shape[:2]
        target_h = self.settings.frame_height_px
        target_w = max(1, round(width * target_h / height))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (target_w, target_h), interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(small, (self._blur_px, self._blur_px), 0)
        return blurred.astype(np.float32)

    def reset(self) -> None:
        """Forget the background, e.g. after the camera reconnected or moved."""
        self._background = None
        self._consecutive = 0

    def update(self, image: ImageBGR) -> MotionResult:
        settings = self.settings
        current = self._small_grey(image)
        self.frames_seen += 1
        if self._background is None or self._background.shape != current.shape:
            self._background = current
            return MotionResult(has_motion=False, motion_ratio=0.0)
        background = self._background
        if settings.exposure_compensation:
            current_for_diff = current + (float(background.mean()) - float(current.mean()))
        else:
            current_for_diff = current
        diff = cv2.absdiff(current_for_diff, background)
        raw_mask = (diff > settings.pixel_threshold).astype(np.uint8)
        mask = np.asarray(cv2.morphologyEx(raw_mask, cv2.MORPH_OPEN, self._kernel), np.uint8)
        changed = int(mask.sum())
        ratio = changed / mask.size
        cv2.accumulateWeighted(current, background, settings.background_alpha)

        if ratio >= settings.min_area_ratio and changed > 0:
            self._consecutive += 1
        else:
            self._consecutive = 0
        has_motion = self._consecutive >= settings.min_frames
        regions: tuple[Box, ...] = ()
        if has_motion:
            self.frames_with_motion += 1
            regions = _regions(mask)
        return MotionResult(has_motion=has_motion, motion_ratio=ratio, regions=regions)


def _regions(mask: npt.NDArray[np.uint8]) -> tuple[Box, ...]:
    height, width = mask.shape[:2]
    dilated = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append(Box(x / width, y / height, (x + w) / width, (y + h) / height))
    return tuple(boxes)
