"""Camera tamper: is the picture still useful? ok / covered / blurred / moved / frozen / no_signal.

Each analysed frame is reduced to a grey picture ``work_width_px`` wide (sharpness) and
half that (everything else), and compared with a reference view learned at start-up
(a median over ``learn_s``, so passers-by do not end up in it):

- covered: almost no contrast left (grey-level spread below ``covered_std``) or almost
  no light (mean below ``dark_mean``): a hand, a bag, paint, a dead sensor;
- frozen: consecutive analysed frames bit-identical for ``frozen_after_s``. A live sensor
  never repeats its noise; a stuck encoder or a DVR replaying its last picture does;
- blurred: sharpness (Laplacian energy over contrast, so it does not change with the
  light) fell below ``blur_ratio`` of the reference's: out of focus, condensation, spray;
- moved: phase correlation with the reference finds a shift of more than ``moved_shift``
  of the width, or the structure no longer correlates with the reference (rotated,
  pointing somewhere else);
- no_signal: no frames at all for ``no_signal_after_s`` (``no_frames``, called by the
  capture loop when its source goes quiet).

The reference view can be *set* (``request_reference``) and kept on disk
(``edge_agent.analyzers.reference``), so a camera knocked while the agent was down is
``moved`` at start. ``view()`` tells the region analyzers of the camera what the tamper
analyzer sees (``ViewReport``): they pause while it is not fine, and stop at ``unknown``
when it moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from edge_agent.analytics import DetailValue, SceneState
from edge_agent.analyzers.common import (
    Cadence,
    Change,
    FloatImage,
    Persistence,
    ReferenceLearner,
    ViewReport,
    blend_factor,
    elapsed,
    make_state,
    shrink,
)
from edge_agent.analyzers.config import TamperAnalyzerConfig
from edge_agent.analyzers.reference import (
    ReferenceSlot,
    SlotHolder,
    memory_slot,
    region_geometry,
)
from edge_agent.types import Frame, ImageBGR

OK, COVERED, BLURRED, MOVED, FROZEN, NO_SIGNAL = (
    "ok",
    "covered",
    "blurred",
    "moved",
    "frozen",
    "no_signal",
)
STATES = (OK, COVERED, BLURRED, MOVED, FROZEN, NO_SIGNAL)
_FROZEN_SAMPLE_STEP = 4  # compare every 4th pixel: a live picture's noise differs everywhere


class TamperAnalyzer(SlotHolder):
    def __init__(
        self,
        config: TamperAnalyzerConfig,
        camera_id: str = "",
        slot: ReferenceSlot | None = None,
    ) -> None:
        self.config = config
        self._camera_id = camera_id
        self.slot = slot or memory_slot(camera_id, config.name, config.kind, geometry_of(config))
        self._cadence = Cadence(config.every_s)
        self._persistence = Persistence(config.min_duration_s, {FROZEN: config.frozen_after_s})
        self._learner = ReferenceLearner(config.learn_s)
        self._reference: FloatImage | None = None  # grey, half work width
        self._reference_sharpness = 0.0
        self._sharpness_samples: list[float] = []
        self._window: FloatImage | None = None
        self._previous_sample: ImageBGR | None = None
        self._previous_analysed_s: float | None = None
        self._last_frame_s: float | None = None
        self._quiet_since_s: float | None = None
        self._moved_since_s: float | None = None
        self._still_since: tuple[float, float] = (0.0, 0.0)
        self._recognised = False
        self._epoch = 0
        self.last_measures: dict[str, DetailValue] = {}

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> str | None:
        return self._persistence.state

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        self._camera_id = frame.camera_id
        self._last_frame_s = now_s
        self._quiet_since_s = None
        if not self._cadence.due(now_s):
            return ()
        image = frame.for_analysis
        sample = np.ascontiguousarray(image[::_FROZEN_SAMPLE_STEP, ::_FROZEN_SAMPLE_STEP])
        frozen = self._previous_sample is not None and np.array_equal(sample, self._previous_sample)
        if not frozen:
            self._still_since = (now_s, frame.captured_at_s)  # this picture is new
        self._previous_sample = sample.copy()
        dt_s, gap = elapsed(self._previous_analysed_s, now_s, self.config.every_s)
        if gap:
            self._persistence.interrupt()
        self._previous_analysed_s = now_s

        grey_full: FloatImage = np.asarray(
            cv2.cvtColor(shrink(image, self.config.work_width_px), cv2.COLOR_BGR2GRAY), np.float32
        )
        half = (max(16, grey_full.shape[1] // 2), max(9, grey_full.shape[0] // 2))
        grey: FloatImage = np.asarray(
            cv2.resize(grey_full, half, interpolation=cv2.INTER_AREA), np.float32
        )
        mean, std = float(grey.mean()), float(grey.std())
        sharpness = _sharpness(grey_full)
        measures: dict[str, DetailValue] = {
            "brightness": round(mean, 1),
            "contrast": round(std, 1),
        }
        if self._reference is not None and self._reference.shape != grey.shape:
            self._reference = None  # the camera's resolution changed: learn the view again
            self._learner.reset()
            self._sharpness_samples.clear()
        size = (int(image.shape[1]), int(image.shape[0]))
        self._reference_step(grey, sharpness, size, now_s)
        view = self._compare(grey, sharpness, measures) if self._reference is not None else None
        candidate = self._candidate(mean, std, frozen, view)
        began: tuple[float, float] | None = None
        if candidate is None:
            self._learn(grey, sharpness, size, now_s)
        elif candidate == FROZEN:
            began = self._still_since  # frozen since the first of the identical pictures
        elif candidate == OK and self._persistence.state == OK:
            self._adapt(grey, sharpness, dt_s)
        self.last_measures = measures
        if candidate is None:
            return ()
        change = self._persistence.update(candidate, now_s, frame.captured_at_s, began=began)
        self._maybe_accept_move(now_s)
        if change is None:
            return ()
        return (make_state(frame, self.name, change, _score(change.state, measures), measures),)

    def _candidate(self, mean: float, std: float, frozen: bool, view: str | None) -> str | None:
        """What this picture says; None while there is no reference to judge it by."""
        config = self.config
        dim = std < config.covered_std or mean < config.dark_mean
        # A dim picture that still shows the reference view is night, not a covered lens.
        if dim and not (view is not None and self._recognised):
            return COVERED
        if frozen:
            return FROZEN
        return view

    def no_frames(self, now_s: float, wall_s: float) -> tuple[SceneState, ...]:
        """Called when the source delivered nothing for a while; reports ``no_signal``
        once no frame came for ``no_signal_after_s`` (monotonic ``now_s``)."""
        last_s = self._last_frame_s
        if last_s is None:
            if self._quiet_since_s is None:
                self._quiet_since_s = now_s
            last_s = self._quiet_since_s
        quiet_s = now_s - last_s
        if quiet_s < self.config.no_signal_after_s or not self._camera_id:
            return ()
        change = self._persistence.force(NO_SIGNAL, now_s, wall_s)
        if change is None:
            return ()
        self._previous_sample = None
        state = SceneState(
            camera_id=self._camera_id,
            analyzer=self.name,
            state=NO_SIGNAL,
            since_s=wall_s - quiet_s,
            frame_time_s=wall_s,
            score=round(quiet_s, 1),
            detail={"silent_s": round(quiet_s, 1)},
        )
        return (state,)

    # -- reference

    @property
    def reference_epoch(self) -> int:
        """How many times a reference view was learned: it grows when the view changed for
        good (``accept_moved_after_s``, a new resolution), so region analyzers relearn too."""
        return self._epoch

    def view(self) -> ViewReport:
        return ViewReport(self._persistence.state, self._epoch)

    def _arrays(self) -> dict[str, FloatImage]:
        assert self._reference is not None
        return {
            "view": self._reference,
            "sharpness": np.array([self._reference_sharpness], np.float32),
        }

    def _install(self, reference: FloatImage, sharpness: float) -> None:
        """A new reference view: judge afresh (the next level is published again)."""
        self._epoch += 1
        self._reference = reference.astype(np.float32, copy=True)
        self._reference_sharpness = sharpness
        self._sharpness_samples.clear()
        self._persistence.reset()
        self._moved_since_s = None

    def _reference_step(
        self, grey: FloatImage, sharpness: float, size: tuple[int, int], now_s: float
    ) -> None:
        """Requests first, then the stored reference at the first frame."""
        request = self.slot.take_request()
        if request == "frame":
            self._install(grey, sharpness)
            self.slot.taken(self._arrays(), size, now_s, explicit=True)
        elif request == "learn":
            self._reference = None  # the published level stands until the new view is learnt
            self._learner.reset()
            self._sharpness_samples.clear()
        elif self._reference is None:
            stored: Mapping[str, FloatImage] | None = self.slot.stored_for(size)
            view = None if stored is None else stored.get("view")
            stored_sharpness = None if stored is None else stored.get("sharpness")
            if view is not None and stored_sharpness is not None and view.shape == grey.shape:
                self._install(view, float(stored_sharpness.reshape(-1)[0]))
            elif stored is not None:
                self.slot.errors += 1  # the same size and geometry cannot give other shapes

    def _learn(
        self, grey: FloatImage, sharpness: float, size: tuple[int, int], now_s: float
    ) -> None:
        self._sharpness_samples.append(sharpness)
        reference = self._learner.add(grey, now_s)
        if reference is not None:
            self._install(reference, float(np.median(self._sharpness_samples)))
            self.slot.taken(self._arrays(), size, now_s, explicit=False)

    def _adapt(self, grey: FloatImage, sharpness: float, dt_s: float) -> None:
        """Follow slow change (light over the day, seasons) while the view is fine."""
        assert self._reference is not None
        weight = blend_factor(dt_s, self.config.reference_tau_s)
        self._reference += weight * (grey - self._reference)
        self._reference_sharpness += weight * (sharpness - self._reference_sharpness)

    def _maybe_accept_move(self, now_s: float) -> None:
        """After ``accept_moved_after_s`` of moved, take the new view as the reference."""
        accept_s = self.config.accept_moved_after_s
        if self._persistence.state != MOVED:
            self._moved_since_s = None
            return
        if self._moved_since_s is None:
            self._moved_since_s = now_s
        if accept_s is not None and now_s - self._moved_since_s >= accept_s:
            self._reference = None
            self._learner.reset()
            self._moved_since_s = None

    # -- judgement

    def _compare(self, grey: FloatImage, sharpness: float, measures: dict[str, DetailValue]) -> str:
        """The picture against the reference view: ok, blurred or moved."""
        assert self._reference is not None
        config = self.config
        sharpness_ratio = sharpness / max(self._reference_sharpness, 1e-6)
        if self._window is None or self._window.shape != grey.shape:
            self._window = np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1])).astype(
                np.float32
            )
        dx, dy = phase_shift(self._reference, grey, self._window)
        shift = math.hypot(dx, dy) / grey.shape[1]
        similarity = _structure_similarity(self._reference, grey)
        if shift >= config.moved_shift and not _shift_explains(
            self._reference, grey, dx, dy, similarity
        ):
            shift = 0.0  # the peak came from something new in view (a car), not a move
        self._recognised = similarity >= config.moved_similarity and shift < config.moved_shift
        measures.update(
            sharpness=round(sharpness_ratio, 3),
            shift=round(shift, 4),
            similarity=round(similarity, 3),
        )
        if sharpness_ratio < config.blur_ratio:
            return BLURRED
        if not self._recognised:
            return MOVED
        return OK


def geometry_of(config: TamperAnalyzerConfig) -> str:
    """What the stored arrays' shapes depend on, besides the picture's size."""
    return region_geometry([(0.0, 0.0), (1.0, 1.0)], config.work_width_px, "half")


def phase_shift(reference: FloatImage, current: FloatImage, window: FloatImage) -> tuple[int, int]:
    """How far (dx, dy) in pixels ``current`` is shifted from ``reference``: the peak of
    their phase correlation. (numpy rather than cv2.phaseCorrelate, which in OpenCV 5.0
    writes the window into its inputs.)"""
    spectrum_ref = np.fft.rfft2((reference - reference.mean()) * window)
    spectrum_cur = np.fft.rfft2((current - current.mean()) * window)
    cross = spectrum_cur * np.conj(spectrum_ref)
    cross /= np.abs(cross) + 1e-9
    correlation = np.fft.irfft2(cross, s=reference.shape)
    peak_y, peak_x = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    height, width = reference.shape
    dx = int(peak_x) - width if peak_x > width // 2 else int(peak_x)
    dy = int(peak_y) - height if peak_y > height // 2 else int(peak_y)
    return dx, dy


def _sharpness(grey: FloatImage) -> float:
    """High-frequency energy over contrast: falls when focus is lost, not when light drops."""
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float(laplacian.var()) / (float(grey.var()) + 1.0)


def _structure_similarity(reference: FloatImage, current: FloatImage) -> float:
    """How well the two pictures' edge maps (gradient magnitude, blurred a little) agree:
    1 for the same view whatever the light, near 0 for a different view.

    The better of two measures: the correlation over the whole picture, and the median of
    the correlations of ``_TILES`` tiles weighted by how much structure each shows in the
    reference. A pile, a flood or a lorry changes a few tiles of a bare view (asphalt seen
    from above) and can dominate its edges; a moved camera changes every tile.
    """
    a, b = _edges(reference), _edges(current)
    whole = _correlation(a, b)
    columns, rows = _TILES
    height, width = a.shape
    values: list[float] = []
    weights: list[float] = []
    for row in range(rows):
        for column in range(columns):
            ys = slice(row * height // rows, (row + 1) * height // rows)
            xs = slice(column * width // columns, (column + 1) * width // columns)
            tile_a = a[ys, xs]
            values.append(_correlation(tile_a, b[ys, xs]))
            weights.append(float(tile_a.std()))
    return max(whole, _weighted_median(values, weights))


_TILES = (4, 3)  # columns, rows of the tiled similarity
_ALIGNED_GAIN = 0.1  # a real shift: the aligned pictures agree this much better


def _shift_explains(
    reference: FloatImage, current: FloatImage, dx: int, dy: int, similarity: float
) -> bool:
    """Whether the view really shifted by (dx, dy): the pictures, so aligned, agree clearly
    better than as they are. A car or a pile in a bare view can put the peak of the phase
    correlation anywhere; aligning by it then agrees no better."""
    height, width = reference.shape
    if abs(dx) >= width // 2 or abs(dy) >= height // 2:
        return False  # too little overlap to tell: only the similarity can say "moved"
    ys_ref = slice(max(0, -dy), height - max(0, dy))
    xs_ref = slice(max(0, -dx), width - max(0, dx))
    ys_cur = slice(max(0, dy), height - max(0, -dy))
    xs_cur = slice(max(0, dx), width - max(0, -dx))
    aligned = _structure_similarity(reference[ys_ref, xs_ref], current[ys_cur, xs_cur])
    return aligned >= similarity + _ALIGNED_GAIN


def _edges(grey: FloatImage) -> FloatImage:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy)
    return np.asarray(cv2.GaussianBlur(magnitude, (0, 0), 1.5), np.float32)


def _correlation(a: FloatImage, b: FloatImage) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0.0 else 0.0


def _weighted_median(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    if total <= 0.0:
        return 0.0
    running = 0.0
    for value, weight in sorted(zip(values, weights, strict=True)):
        running += weight
        if running >= total / 2.0:
            return value
    return values[-1]


def _score(state: str, measures: dict[str, DetailValue]) -> float | None:
    key = {COVERED: "contrast", BLURRED: "sharpness", MOVED: "shift", OK: "similarity"}.get(state)
    value = measures.get(key) if key else None
    return float(value) if isinstance(value, (int, float)) else None


__all__ = ["STATES", "Change", "TamperAnalyzer", "ViewReport"]
