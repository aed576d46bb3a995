"""The motion gate: decides, cheaply, whether the detector needs to look at a frame.

It works on a small grey copy of the frame (about ``frame_height_px`` rows). A pixel
has *changed* when it differs from an adaptive background by more than
``pixel_threshold``; the gate opens when enough area has changed *and moves*.
What keeps it from firing on things that are not new objects, which is what made
a Frigate-default gate send ~96 % of a mostly empty room's frames to the detector
(docs/pipeline.md §3-§4):

- exposure compensation: a frame's mean brightness is matched to the reference's
  before differencing, so auto-exposure drift and clouds do not light up the
  whole picture;
- shake tolerance: a changed pixel does not count when its value lies within the
  range of the background within ``shake_tolerance_px`` of it, widened by half the
  threshold: what a shift of the picture by a pixel would explain. A pole swaying in
  the wind, a camera panning by a few full-size pixels or leaves stirring along an
  edge do not light up the picture's edges (on the highway clip the fence and trees
  opened motion regions that the detector, zoomed 3x, read as a car); a mover differs
  from the whole neighbourhood and still counts. The price: a mover barely darker or
  lighter than a textured ground, seen only where it covers the texture, opens the
  gate less often (bench/README.md, low-contrast walker);
- a morphological opening removes the speckle H.264 leaves around edges, so
  compression noise does not count as change;
- ghost rejection: a changed region counts only if at least ``min_moving_px`` of
  its pixels also changed within the last ``moving_window_frames`` frames. When
  someone who stood still long enough to be blended into the background walks
  away, the spot they left differs from the background for seconds (a "ghost")
  but nothing moves there; a background-only gate fires on it all that time. The
  same rule stops a light switched on or a door left open from holding the gate
  open for longer than the window. The window is several frames, not one,
  because the part of a slow or low-contrast walker that changes from one frame
  to the next is a sliver along its edges, too thin to count;
- the gate opens only after ``min_frames`` consecutive frames with enough moving
  area, so a single-frame glitch (a keyframe, a flash) is ignored.

The background adapts at ``background_alpha`` per frame. Someone who stands
still fades into it after a few seconds and stops opening the gate; the pipeline
keeps such tracks alive with periodic re-detection instead (``GateSettings``), so
the gate only has to notice things that arrive, and anything arriving moves.

``background_alpha`` and ``moving_window_frames`` were tuned at 5 fps. Given frame
times, the gate holds them in time at higher rates: frames closer than
``REFERENCE_INTERVAL_S`` blend into the background in proportion (so it forgets a
stander after as many seconds at 30 fps as at 5), and the ghost check looks back at
least ``moving_window_frames`` x ``REFERENCE_INTERVAL_S`` (at 30 fps, 5 frames are
0.17 s, in which a slow walker's change is a sliver too thin to count). At 5 fps and
below nothing changes. ``min_frames`` stays a frame count on purpose: the glitch it
ignores (a keyframe, a flash) is one frame of the stream at any rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.types import REFERENCE_INTERVAL_S, Box, ImageBGR, MotionResult

if TYPE_CHECKING:
    from edge_agent.config import MotionConfig

GreyImage = npt.NDArray[np.float32]
# Shake tolerance: a pixel within the local background range widened by this x the
# threshold is what a shift explains (half: measured against the low-contrast walker).
SHAKE_MARGIN_SHARE = 0.5
Mask = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class MotionSettings:
    """Defaults measured on real footage by bench/bench_pipeline.py (docs/pipeline.md)."""

    frame_height_px: int = 100
    pixel_threshold: int = 30  # grey-level change that counts
    min_area_ratio: float = 0.002  # share of the small frame that must change and move
    background_alpha: float = 0.05  # background blend per frame (at 5 fps; see above)
    noise_blur_px: int = 5
    min_frames: int = 2  # consecutive frames of motion before the gate opens
    exposure_compensation: bool = True
    noise_opening: bool = True  # remove isolated changed pixels (compression noise)
    shake_tolerance_px: int = 1  # camera shake the background comparison tolerates (see above)
    min_moving_px: int = 8  # recently changed pixels a changed region needs; 0: no ghost check
    moving_window_frames: int = 5  # "recently": this many frames ago (and 0.15 s each)
    enabled: bool = True  # False: no gate, the detector runs on every analysed frame

    @classmethod
    def from_config(cls, config: MotionConfig) -> MotionSettings:
        return cls(**config.model_dump())


class MotionGate:
    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        blur = self.settings.noise_blur_px
        self._blur_px = blur if blur % 2 == 1 else blur + 1
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        reach = self.settings.shake_tolerance_px
        self._shake_kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8) if reach else None
        self._background: GreyImage | None = None
        # (frame time, picture) of the recent frames, oldest first; time None without times
        self._recent: deque[tuple[float | None, GreyImage]] = deque()
        self._last_s: float | None = None
        self._consecutive = 0
        self.frames_seen = 0
        self.frames_with_motion = 0

    def _small_grey(self, image: ImageBGR) -> GreyImage:
        """The frame shrunk by a whole factor to about ``frame_height_px`` rows, blurred.

        A whole factor lets OpenCV average exact pixel blocks, ~4x faster than a
        fractional INTER_AREA (0.3 vs 1.0 ms for 960x540 here); the few rows and
        columns that do not fill a block are cut off.
        """
        height, width = image.shape[:2]
        factor = max(1, round(height / self.settings.frame_height_px))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small_h, small_w = max(1, height // factor), max(1, width // factor)
        if factor > 1:
            grey = cv2.resize(
                grey[: small_h * factor, : small_w * factor],
                (small_w, small_h),
                interpolation=cv2.INTER_AREA,
            )
        blurred = cv2.GaussianBlur(grey, (self._blur_px, self._blur_px), 0)
        return blurred.astype(np.float32)

    def _changed(
        self, current: GreyImage, reference: GreyImage, *, opening: bool, shake: bool = False
    ) -> Mask:
        """Pixels of ``current`` that differ from ``reference`` by more than the threshold;
        with ``shake``, not those a shift by ``shake_tolerance_px`` explains (above)."""
        settings = self.settings
        if settings.exposure_compensation:
            current = current + (float(reference.mean()) - float(current.mean()))
        threshold = settings.pixel_threshold
        kernel = self._shake_kernel if shake else None
        if kernel is None:
            mask = (cv2.absdiff(current, reference) > threshold).astype(np.uint8)
        else:
            margin = SHAKE_MARGIN_SHARE * threshold
            darker = current < cv2.erode(reference, kernel) - margin
            lighter = current > cv2.dilate(reference, kernel) + margin
            plain = cv2.absdiff(current, reference) > threshold
            mask = (plain & (darker | lighter)).astype(np.uint8)
        if opening:
            mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel), np.uint8)
        return mask

    def _moving(self, changed: Mask, current: GreyImage, earlier: GreyImage) -> Mask:
        """The changed regions in which something changed since ``earlier`` (not ghosts).

        No opening here: what moves is often a thin sliver along a region's edge, and
        noise cannot get in anyway, as only pixels inside solid changed regions count.
        """
        count, labels = cv2.connectedComponents(changed, connectivity=8)
        if count <= 1:
            return changed
        stepped = self._changed(current, earlier, opening=False)
        moving_px = np.bincount(labels[stepped > 0], minlength=count)
        keep = moving_px >= self.settings.min_moving_px
        keep[0] = False  # label 0 is the unchanged rest of the picture
        return np.asarray(keep[labels], np.uint8)

    def reset(self) -> None:
        """Forget the background, e.g. after the camera reconnected or moved."""
        self._background = None
        self._recent.clear()
        self._last_s = None
        self._consecutive = 0

    def _earlier(self, now_s: float | None) -> GreyImage:
        """The picture the ghost check compares with: ``moving_window_frames`` frames ago
        (the oldest kept until there are that many) and, given times, at least
        ``moving_window_frames`` x ``REFERENCE_INTERVAL_S`` ago. Drops what is older."""
        frames = max(1, self.settings.moving_window_frames)
        window_s = frames * REFERENCE_INTERVAL_S
        recent = self._recent

        def superseded() -> bool:
            """Whether the second-oldest kept picture is already far enough back."""
            if len(recent) <= frames:
                return False
            then_s = recent[1][0]
            return now_s is None or then_s is None or now_s - then_s >= window_s - 1e-3

        while superseded():
            recent.popleft()
        return recent[0][1]

    def _blend(self, now_s: float | None) -> float:
        """The background blend for this frame: ``background_alpha``, or less for a frame
        closer than ``REFERENCE_INTERVAL_S`` to the last (the same adaptation per second)."""
        alpha = self.settings.background_alpha
        if now_s is None or self._last_s is None:
            return alpha
        interval_s = now_s - self._last_s
        if interval_s >= REFERENCE_INTERVAL_S or interval_s <= 0.0:
            return alpha
        return float(1.0 - (1.0 - alpha) ** (interval_s / REFERENCE_INTERVAL_S))

    def update(self, image: ImageBGR, now_s: float | None = None) -> MotionResult:
        """Judge one frame. ``now_s``, its time, holds the per-frame settings in time at
        rates above 5 fps (module docstring); without it they count frames."""
        settings = self.settings
        current = self._small_grey(image)
        self.frames_seen += 1
        background = self._background
        if background is None or background.shape != current.shape:
            self._background = current.copy()
            self._recent.clear()
            self._recent.append((now_s, current))
            self._last_s = now_s
            self._consecutive = 0
            return MotionResult(has_motion=False, motion_ratio=0.0)
        earlier = self._earlier(now_s)
        self._recent.append((now_s, current))
        mask = self._changed(current, background, opening=settings.noise_opening, shake=True)
        min_changed_px = max(1.0, settings.min_area_ratio * mask.size)
        changed = cv2.countNonZero(mask)
        # The ghost check costs a second difference: only pay for it when it can matter.
        if settings.min_moving_px > 0 and changed >= min_changed_px:
            mask = self._moving(mask, current, earlier)
            changed = cv2.countNonZero(mask)
        ratio = changed / mask.size
        cv2.accumulateWeighted(current, background, self._blend(now_s))
        self._last_s = now_s

        moved = changed >= min_changed_px
        self._consecutive = self._consecutive + 1 if moved else 0
        has_motion = self._consecutive >= settings.min_frames
        if has_motion:
            self.frames_with_motion += 1
        regions = _regions(mask) if moved else ()
        return MotionResult(has_motion=has_motion, motion_ratio=ratio, regions=regions, moved=moved)


def _regions(mask: Mask) -> tuple[Box, ...]:
    height, width = mask.shape[:2]
    dilated = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append(Box(x / width, y / height, (x + w) / width, (y + h) / height))
    return tuple(boxes)
