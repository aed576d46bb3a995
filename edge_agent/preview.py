"""Previews within a byte budget: which frame to send, at what size and JPEG quality.

A police post's uplink is a metered 4G link, so a preview may cost at most its budget
(``cameras[].preview.budget_bps``) over any 10 s window. ``PreviewBudget`` is pure: the
caller gives it the time, a small grey thumbnail of the frame and a function that encodes
the frame at a given width and quality; it answers with the bytes to send (or None) and
when to ask again. It holds the budget in two ways:

- **aim**: it keeps an estimate of this scene's JPEG bytes per pixel and picks the best
  rung of a ladder (quality first, then width down to ``min_width_px``, then fps down to
  ``min_fps``) whose frames fit the budget's rate; with headroom it climbs back;
- **cap**: it never sends a frame that would put more than the budget into the last
  ``WINDOW_S`` (counting ``OVERHEAD_BYTES`` of MQTT framing per frame); a frame that does
  not fit is re-encoded one rung lower, or not sent. So any 10 s window carries at most the
  budget (the acceptance line allows 1.1×).

A static scene (the thumbnail barely changed since the last frame sent) sends a frame only
every ``STATIC_REFRESH_S``, at the best rung that keeps those refreshes within
``STATIC_FILL`` of the budget, so the viewer still sees the picture is live while the link
stays nearly idle.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.types import ImageBGR

WINDOW_S = 10.0  # the budget holds over any window this long
TIME_SLACK_S = 1e-6  # a frame at the window's very edge counts (rounding of sums of times)
OVERHEAD_BYTES = 100  # MQTT framing per frame: fixed header, topic, properties
STATIC_REFRESH_S = 5.0  # a static scene still sends a frame this often (expiry is 10 s)
STATIC_FILL = 0.2  # ... at the best rung that keeps it within this share of the budget
AIM_FILL = 0.85  # aim at this share of the budget's rate: the cap is the backstop
CLIMB_FILL = 0.7  # a better rung must fit in this share (hysteresis: no flapping)
MAX_TRIES = 3  # encodes per frame when the first is far over the rate or the window
THUMB_WIDTH_PX = 64
CHANGE_LEVEL = 12  # grey levels: a thumbnail pixel differs by more than this ...
STATIC_SHARE = 0.003  # ... in less than this share of pixels: the scene is static
QUALITIES = (80, 70, 60, 50, 40)  # the normal ladder; the last rung also tries LOW_QUALITIES
LOW_QUALITIES = (30, 20)  # only at the floor (min width, min fps): better than no frame
# JPEG bytes relative to quality 80 for the same picture, and how they grow with the width
# (medians over frames of the shared clips at 480 px: 320 px costs 0.51 of 480 px, not
# 0.44): a guide to the rung above or below, corrected by every frame actually encoded
QUALITY_SIZE = {80: 1.0, 70: 0.8, 60: 0.68, 50: 0.6, 40: 0.53, 30: 0.45, 20: 0.38}
WIDTH_EXPONENT = 1.7


@dataclass(frozen=True)
class Rung:
    """One setting of the ladder, best first."""

    jpeg_quality: int
    width_px: int
    fps: float

    @property
    def interval_s(self) -> float:
        return 1.0 / self.fps


def ladder(width_px: int, fps: float, *, min_width_px: int, min_fps: float) -> tuple[Rung, ...]:
    """Quality down first, then width (steps of about 0.8) down to the floor, then fps
    down to its floor, then the low qualities. A request below a floor is its own floor."""
    floor_width = min(width_px, min_width_px)
    floor_fps = min(fps, min_fps)
    rungs = [Rung(q, width_px, fps) for q in QUALITIES]
    low_q = QUALITIES[-1]
    width = width_px
    while width > floor_width:
        width = max(floor_width, int(width * 0.8) // 8 * 8)
        rungs.append(Rung(low_q, width, fps))
    rate = fps
    while rate > floor_fps:
        rate = max(floor_fps, round(rate * 0.6, 2))
        rungs.append(Rung(low_q, floor_width, rate))
    rungs += [Rung(q, floor_width, floor_fps) for q in LOW_QUALITIES]
    return tuple(rungs)


def thumbnail(image: ImageBGR) -> np.ndarray:
    """A small grey picture to compare frames cheaply (about 64x36 for 16:9)."""
    height, width = image.shape[:2]
    size = (THUMB_WIDTH_PX, max(1, round(height * THUMB_WIDTH_PX / width)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.uint8)


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """The share of thumbnail pixels that changed by more than ``CHANGE_LEVEL``."""
    if a.shape != b.shape:
        return 1.0
    diff = cv2.absdiff(a, b)
    return float(np.count_nonzero(diff > CHANGE_LEVEL)) / diff.size


@dataclass(frozen=True)
class Sent:
    """A frame the controller let through: its JPEG and the rung it was encoded at."""

    jpeg: bytes
    rung: Rung


EncodeAt = Callable[[Rung], bytes | None]  # the frame at the rung's width and quality


class PreviewBudget:
    """One preview's controller; one thread (housekeeping) calls it."""

    def __init__(
        self,
        *,
        budget_bps: int,
        width_px: int,
        fps: float,
        min_width_px: int = 320,
        min_fps: float = 1.0,
        start_s: float = 0.0,
    ) -> None:
        self.budget_bps = budget_bps
        self.window_bytes = budget_bps * WINDOW_S / 8.0
        self.rungs = ladder(width_px, fps, min_width_px=min_width_px, min_fps=min_fps)
        self.level = 0  # the rung of the last frame sent
        self.next_due_s = start_s
        self._bytes_per_unit: float | None = None  # this scene's bytes per ``_units``
        self._sent: deque[tuple[float, int]] = deque()  # (time, bytes with overhead)
        self._last_thumb: np.ndarray | None = None
        self._last_sent_s: float | None = None
        self.frames_sent = 0
        self.frames_static = 0  # due, but skipped: the scene had not changed
        self.frames_held = 0  # due, but over the window's cap even at a lower rung
        self.bytes_sent = 0  # JPEG bytes

    # -- accounting ----------------------------------------------------------------

    def window_used(self, now_s: float) -> int:
        """Bytes (with overhead) sent in the closed window ``[now - WINDOW_S, now]``."""
        while self._sent and self._sent[0][0] < now_s - WINDOW_S - TIME_SLACK_S:
            self._sent.popleft()
        return sum(size for _, size in self._sent)

    def _fits(self, now_s: float, jpeg_bytes: int) -> bool:
        return self.window_used(now_s) + jpeg_bytes + OVERHEAD_BYTES <= self.window_bytes

    # -- choice --------------------------------------------------------------------

    def _predicted(self, rung: Rung) -> float | None:
        if self._bytes_per_unit is None:
            return None
        return self._bytes_per_unit * _units(rung) + OVERHEAD_BYTES

    def _learn(self, rung: Rung, size: int) -> None:
        measured = size / _units(rung)
        old = self._bytes_per_unit
        self._bytes_per_unit = measured if old is None else 0.5 * old + 0.5 * measured

    def choose(self, *, static: bool) -> int:
        """The best rung whose frames fit the budget's rate (a static scene's refresh:
        one frame per ``STATIC_REFRESH_S`` within ``STATIC_FILL`` of it); a rung better
        than the current one must fit with more room (``CLIMB_FILL``)."""
        rate_bytes_s = self.budget_bps / 8.0
        for index, rung in enumerate(self.rungs):
            predicted = self._predicted(rung)
            if predicted is None:
                return self.level  # nothing measured yet: start where we are
            if static:  # a refresh: its own small share, at the best rung that fits it
                fits = predicted / STATIC_REFRESH_S <= rate_bytes_s * STATIC_FILL
            else:
                fill = CLIMB_FILL if index < self.level else AIM_FILL
                fits = predicted / rung.interval_s <= rate_bytes_s * fill
            if fits:
                return index
        return len(self.rungs) - 1

    def wait(self, now_s: float) -> None:
        """Nothing to offer now (no frame yet): due again one interval later."""
        self.next_due_s = now_s + self.rungs[self.level].interval_s

    def offer(self, now_s: float, thumb: np.ndarray, encode: EncodeAt) -> Sent | None:
        """The frame to send now, or None (not due, static, over the cap, or no frame);
        ``next_due_s`` says when to offer the next one."""
        if now_s < self.next_due_s:
            return None
        static = (
            self._last_thumb is not None and changed_share(thumb, self._last_thumb) < STATIC_SHARE
        )
        last_sent_s = self._last_sent_s
        if static and last_sent_s is not None and now_s - last_sent_s < STATIC_REFRESH_S:
            self.frames_static += 1
            self.wait(now_s)
            return None
        level = self.choose(static=static)
        for attempt in range(MAX_TRIES):
            rung = self.rungs[level]
            jpeg = encode(rung)
            if jpeg is None:
                self.next_due_s = now_s + rung.interval_s
                return None
            self._learn(rung, len(jpeg))
            wanted = self.choose(static=static)  # what this frame's size says about the rate
            if wanted > level and attempt < MAX_TRIES - 1:
                level = wanted  # far over the rate (the first frame, a scene change): lower
                continue
            if self._fits(now_s, len(jpeg)):
                return self._send(now_s, thumb, level, jpeg)
            # too big for what is left of the window: the rung this size asks for, lower
            level = max(level + 1, wanted)
            if level >= len(self.rungs):
                break
        self.frames_held += 1
        self.level = min(level, len(self.rungs) - 1)
        self.wait(now_s)
        return None

    def _send(self, now_s: float, thumb: np.ndarray, level: int, jpeg: bytes) -> Sent:
        rung = self.rungs[level]
        self._sent.append((now_s, len(jpeg) + OVERHEAD_BYTES))
        self._last_thumb = thumb
        self._last_sent_s = now_s
        self.level = level
        self.next_due_s = now_s + rung.interval_s
        self.frames_sent += 1
        self.bytes_sent += len(jpeg)
        return Sent(jpeg, rung)


def _units(rung: Rung) -> float:
    """A rung's JPEG size in arbitrary units (only the ratio between rungs matters)."""
    return math.pow(rung.width_px, WIDTH_EXPONENT) * QUALITY_SIZE[rung.jpeg_quality]
