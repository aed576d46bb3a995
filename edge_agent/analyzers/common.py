"""Pieces every scene analyzer shares: the region sampler, hysteresis, persistence, cadence.

The analyzers are cheap by construction: each frame is cut down once to a small picture
of the region (``work_width_px`` wide, typically 160 px, so ~15 k pixels) and everything
after that is a handful of vectorised operations on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.analytics import DetailValue, SceneState
from edge_agent.analyzers.config import RegionConfig
from edge_agent.types import Frame, ImageBGR

FloatImage = npt.NDArray[np.float32]
BoolImage = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Geometry:
    frame_shape: tuple[int, int]
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
    size: tuple[int, int]  # work width, height
    mask: BoolImage  # inside the polygon, at work size


class RegionSampler:
    """Cuts the region's bounding box out of a frame and shrinks it to ``width_px``.

    The geometry is worked out once per frame size; ``mask`` tells which pixels of the
    small picture are inside the polygon.
    """

    def __init__(self, region: RegionConfig, width_px: int) -> None:
        self._points = region.points()
        self._width_px = width_px
        self._geometry: _Geometry | None = None

    def _geometry_for(self, image: ImageBGR) -> _Geometry:
        height, width = image.shape[:2]
        geometry = self._geometry
        if geometry is not None and geometry.frame_shape == (height, width):
            return geometry
        xs = [x * width for x, _ in self._points]
        ys = [y * height for _, y in self._points]
        x0, x1 = max(0, math.floor(min(xs))), min(width, math.ceil(max(xs)))
        y0, y1 = max(0, math.floor(min(ys))), min(height, math.ceil(max(ys)))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        crop_w, crop_h = x1 - x0, y1 - y0
        work_w = min(self._width_px, crop_w)
        work_h = max(1, round(crop_h * work_w / crop_w))
        scale_x, scale_y = work_w / crop_w, work_h / crop_h
        polygon = np.array(
            [[(x - x0) * scale_x, (y - y0) * scale_y] for x, y in zip(xs, ys, strict=True)],
            np.float32,
        )
        mask = np.zeros((work_h, work_w), np.uint8)
        cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        geometry = _Geometry((height, width), (x0, y0, x1, y1), (work_w, work_h), mask > 0)
        self._geometry = geometry
        return geometry

    def to_frame(
        self, x0: float, y0: float, x1: float, y1: float
    ) -> tuple[float, float, float, float]:
        """Work-picture pixel coordinates back to the frame, normalised (needs a sample first)."""
        geometry = self._geometry
        if geometry is None:
            raise RuntimeError("to_frame before the first sample")
        cx0, cy0, cx1, cy1 = geometry.crop
        height, width = geometry.frame_shape
        sx = (cx1 - cx0) / geometry.size[0]
        sy = (cy1 - cy0) / geometry.size[1]
        return (
            round((cx0 + x0 * sx) / width, 4),
            round((cy0 + y0 * sy) / height, 4),
            round((cx0 + x1 * sx) / width, 4),
            round((cy0 + y1 * sy) / height, 4),
        )

    def sample(self, image: ImageBGR) -> tuple[ImageBGR, BoolImage]:
        """The region, small (BGR uint8), and its polygon mask."""
        geometry = self._geometry_for(image)
        x0, y0, x1, y1 = geometry.crop
        crop = image[y0:y1, x0:x1]
        if (crop.shape[1], crop.shape[0]) == geometry.size:
            return np.ascontiguousarray(crop), geometry.mask
        small = cv2.resize(crop, geometry.size, interpolation=cv2.INTER_AREA)
        return np.asarray(small, np.uint8), geometry.mask


def shrink(image: ImageBGR, width_px: int) -> ImageBGR:
    """The whole frame at ``width_px`` wide (context for illumination, tamper)."""
    height, width = image.shape[:2]
    if width <= width_px:
        return image
    size = (width_px, max(1, round(height * width_px / width)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


class Cadence:
    """Lets an analyzer work at most every ``every_s`` seconds of frame time."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._last_s: float | None = None

    def due(self, now_s: float) -> bool:
        # A little slack: frames of a 1 fps camera come 0.999 or 1.001 s apart.
        if self._last_s is not None and now_s - self._last_s < self._every_s * 0.95:
            return False
        self._last_s = now_s
        return True


@dataclass(frozen=True)
class Level:
    """A level above the resting state: entered at ``enter``, left below ``exit``."""

    name: str
    enter: float
    exit: float


class Hysteresis:
    """Maps a measure to a level; a level once entered holds until the measure drops
    below its (lower) exit threshold, so a measure hovering at a threshold does not
    make the state flap."""

    def __init__(self, resting: str, levels: Sequence[Level]) -> None:
        self.resting = resting
        self._levels = tuple(levels)  # lowest first

    def level(self, value: float, current: str | None) -> str:
        names = [level.name for level in self._levels]
        current_rank = names.index(current) if current in names else -1
        for rank in range(len(self._levels) - 1, -1, -1):
            level = self._levels[rank]
            if value >= level.enter or (current_rank >= rank and value >= level.exit):
                return level.name
        return self.resting


@dataclass(frozen=True)
class ViewReport:
    """What a camera's tamper analyzer says of its view, for the region analyzers."""

    state: str | None  # the published level; None before the first
    epoch: int  # grows each time a reference view is taken (learnt, loaded, set, accepted)


@dataclass(frozen=True)
class Change:
    """A debounced state change: the new state and when (monotonic, wall) its condition began."""

    state: str
    since_s: float
    since_wall_s: float


class Persistence:
    """Debounces a stream of candidate states: a new state is accepted only after it was
    the candidate continuously for its minimum duration, the first one included (a bus
    filling the view in the first second after learning must not be published as "moved").
    """

    def __init__(self, min_duration_s: float, per_state_s: Mapping[str, float] | None = None):
        self._min_duration_s = min_duration_s
        self._per_state_s = dict(per_state_s or {})
        self.state: str | None = None
        self._candidate: str | None = None
        self._candidate_since: tuple[float, float] = (0.0, 0.0)

    def duration_for(self, state: str) -> float:
        return self._per_state_s.get(state, self._min_duration_s)

    def update(
        self,
        candidate: str,
        now_s: float,
        wall_s: float,
        *,
        began: tuple[float, float] | None = None,
    ) -> Change | None:
        """Offer this frame's candidate; the accepted change, if any.

        ``began`` (monotonic, wall) says when a new candidate's condition really started,
        if the analyzer knows better than "now" (frozen since the first repeated picture).
        """
        if candidate == self.state:
            self._candidate = None
            return None
        if candidate != self._candidate:
            self._candidate = candidate
            self._candidate_since = began if began is not None else (now_s, wall_s)
        since_s, since_wall_s = self._candidate_since
        if now_s - since_s < self.duration_for(candidate):
            return None
        self.state = candidate
        self._candidate = None
        return Change(candidate, since_s, since_wall_s)

    def interrupt(self) -> None:
        """Forget a candidate still waiting: after a gap its evidence is stale."""
        self._candidate = None

    def reset(self) -> None:
        """Judge afresh (a new reference): the next level is published even if it is the same."""
        self.state = None
        self._candidate = None

    def force(self, state: str, now_s: float, wall_s: float) -> Change | None:
        """Set a state without debouncing (no signal: there are no frames to wait for)."""
        self._candidate = None
        if state == self.state:
            return None
        self.state = state
        return Change(state, now_s, wall_s)


def make_state(
    frame: Frame,
    analyzer: str,
    change: Change,
    score: float | None,
    detail: Mapping[str, DetailValue],
) -> SceneState:
    return SceneState(
        camera_id=frame.camera_id,
        analyzer=analyzer,
        state=change.state,
        since_s=change.since_wall_s,
        frame_time_s=frame.captured_at_s,
        score=score,
        detail=dict(detail),
    )


def elapsed(previous_s: float | None, now_s: float, every_s: float) -> tuple[float, bool]:
    """Seconds since the previous analysed frame, and whether they were a gap (the analyzer
    was paused, the pipeline stalled, the source was down). Across a gap nothing was seen,
    so nothing may age or blend: the time is 0 and the analyzer restarts what is short-term.
    """
    if previous_s is None:
        return 0.0, False
    dt_s = now_s - previous_s
    if dt_s > max(5.0, 3.0 * every_s):
        return 0.0, True
    return max(0.0, dt_s), False


def blend_factor(dt_s: float, tau_s: float) -> float:
    """The weight of a new sample in a running average with time constant ``tau_s``.

    Written in time, not frames, so an analyzer behaves the same at 1 fps and 5 fps.
    """
    if dt_s <= 0.0:
        return 0.0
    return 1.0 - math.exp(-dt_s / tau_s)


def channel_gain(
    current: FloatImage, reference: FloatImage, where: BoolImage | None = None
) -> npt.NDArray[np.float32]:
    """Per-channel illumination change, current over reference, as a robust median ratio.

    Dividing the current picture by it undoes a global change of light (clouds, dusk,
    auto-exposure) before pixels are compared with a reference.
    """
    if where is not None and int(where.sum()) >= 16:
        cur, ref = current[where], reference[where]
    else:
        cur, ref = (
            current.reshape(-1, current.shape[-1]),
            reference.reshape(-1, reference.shape[-1]),
        )
    gain = (np.median(cur, axis=0) + 1.0) / (np.median(ref, axis=0) + 1.0)
    return np.clip(gain, 0.05, 20.0).astype(np.float32)


class ReferenceLearner:
    """Collects ``samples`` pictures spread over ``learn_s`` and returns their per-pixel
    median: the reference (dry road, empty pavement, the camera's view) without the people
    and cars that happened to pass while it was learning."""

    def __init__(self, learn_s: float, samples: int = 9) -> None:
        self._learn_s = learn_s
        self._interval_s = learn_s / max(1, samples - 1)
        self._started_s: float | None = None
        self._last_s: float | None = None
        self._stack: list[FloatImage] = []

    @property
    def started_s(self) -> float | None:
        return self._started_s

    def add(self, image: FloatImage, now_s: float) -> FloatImage | None:
        """Offer a picture; the median once ``learn_s`` has passed, else None."""
        if self._stack and self._stack[0].shape != image.shape:
            self.reset()  # the picture changed size: start again
        if self._started_s is None:
            self._started_s = now_s
        if self._last_s is None or now_s - self._last_s >= self._interval_s * 0.95:
            self._stack.append(image.copy())
            self._last_s = now_s
        if now_s - self._started_s < self._learn_s or len(self._stack) < 2:
            return None
        median = np.median(np.stack(self._stack), axis=0).astype(np.float32)
        self._stack.clear()
        return median

    def reset(self) -> None:
        self._started_s = None
        self._last_s = None
        self._stack.clear()


class Ticker:
    """An analyzer's clock: its cadence, the time since its last analysed frame, and a
    gap in frames (a stall) interrupting any state it was about to publish."""

    def __init__(self, every_s: float, persistence: Persistence) -> None:
        self._cadence = Cadence(every_s)
        self._every_s = every_s
        self._persistence = persistence
        self._previous_s: float | None = None

    def tick(self, now_s: float) -> tuple[float, bool] | None:
        """None when this frame is not due; else (seconds since the last one, gap?)."""
        if not self._cadence.due(now_s):
            return None
        dt_s, gap = elapsed(self._previous_s, now_s, self._every_s)
        self._previous_s = now_s
        if gap:
            self._persistence.interrupt()
        return dt_s, gap
