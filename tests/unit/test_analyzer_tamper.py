"""Camera tamper on synthetic pictures: covered, dim, blurred, moved, frozen, no signal."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from edge_agent.analytics import SceneState
from edge_agent.analyzers.config import TamperAnalyzerConfig
from edge_agent.analyzers.tamper import TamperAnalyzer, phase_shift
from edge_agent.types import Frame, ImageBGR

WALL_S = 1_750_000_000.0
W, H = 320, 180


def _view(seed: int = 3) -> ImageBGR:
    """A picture with structure at several scales (blocks, edges, fine grain), 2x the frame
    so that a moved view can be cut from it."""
    rng = np.random.default_rng(seed)
    big = np.full((2 * H, 2 * W, 3), 110, np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(0, 2 * W - 40)), int(rng.integers(0, 2 * H - 40))
        w, h = int(rng.integers(8, 60)), int(rng.integers(8, 60))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(big, (x, y), (x + w, y + h), colour, -1)
    grain = rng.normal(0, 6, big.shape)
    return np.clip(big + grain, 0, 255).astype(np.uint8)


BIG = _view()


def _frame_of(dx: int = 0, dy: int = 0) -> ImageBGR:
    return np.ascontiguousarray(BIG[H // 2 + dy : H // 2 + dy + H, W // 2 + dx : W // 2 + dx + W])


_NOISE = [
    np.random.default_rng(i).normal(0, 2, (H, W, 3)).astype(np.float32) for i in range(7)
]  # sensor noise: a live camera never delivers the same picture twice


def _noisy(image: ImageBGR, index: int, gain: float = 1.0) -> ImageBGR:
    noisy = image.astype(np.float32) * gain + _NOISE[index % len(_NOISE)]
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _run(
    analyzer: TamperAnalyzer, picture: Callable[[int], ImageBGR], seconds: range
) -> list[tuple[int, SceneState]]:
    changes = []
    for t in seconds:
        frame = Frame("cam1", t, WALL_S + t, float(t), picture(t))
        changes.extend((t, state) for state in analyzer.update(frame, float(t)))
    return changes


def _analyzer(**overrides: float | None) -> TamperAnalyzer:
    settings: dict[str, float | None] = {
        "learn_s": 5.0,
        "min_duration_s": 3.0,
        "frozen_after_s": 5.0,
        "no_signal_after_s": 4.0,
    }
    settings.update(overrides)
    return TamperAnalyzer(TamperAnalyzerConfig.model_validate(settings), "cam1")


def _learned() -> tuple[TamperAnalyzer, list[tuple[int, SceneState]]]:
    analyzer = _analyzer()
    changes = _run(analyzer, lambda t: _noisy(_frame_of(), t), range(10))
    return analyzer, changes


def test_a_steady_view_is_ok_once_learned() -> None:
    _, changes = _learned()
    # The reference is the median of 5 s; judged from 6 s, "ok" holds 3 s by 9 s.
    assert [(t, s.state) for t, s in changes] == [(9, "ok")]
    state = changes[0][1]
    assert state.camera_id == "cam1" and state.analyzer == "tamper"
    assert (state.since_s, state.frame_time_s) == (WALL_S + 6, WALL_S + 9)
    assert state.detail["similarity"] == pytest.approx(1.0, abs=0.05)


def test_a_covered_lens_is_reported_after_the_minimum_duration_with_its_onset() -> None:
    analyzer, _ = _learned()
    dark = np.full((H, W, 3), (40, 45, 60), np.uint8)
    changes = _run(analyzer, lambda t: _noisy(dark, t), range(10, 20))
    assert [(t, s.state) for t, s in changes] == [(13, "covered")]
    assert changes[0][1].since_s == WALL_S + 10
    back = _run(analyzer, lambda t: _noisy(_frame_of(), t), range(20, 30))
    assert [(t, s.state) for t, s in back] == [(23, "ok")]


def test_a_dim_view_that_is_still_recognisable_is_night_not_a_cover() -> None:
    analyzer, _ = _learned()
    dim = (_frame_of().astype(np.float32) * 0.12).astype(np.uint8)
    assert float(cv2.cvtColor(dim, cv2.COLOR_BGR2GRAY).std()) < analyzer.config.covered_std
    assert _run(analyzer, lambda t: _noisy(dim, t), range(10, 25)) == []


def test_a_short_cover_is_not_reported() -> None:
    analyzer, _ = _learned()
    dark = np.full((H, W, 3), 30, np.uint8)
    pictures = {10: dark, 11: dark}
    changes = _run(analyzer, lambda t: _noisy(pictures.get(t, _frame_of()), t), range(10, 20))
    assert changes == []


def test_a_blurred_view_is_reported() -> None:
    analyzer, _ = _learned()
    blurred = cv2.GaussianBlur(_frame_of(), (0, 0), 2.5)
    changes = _run(analyzer, lambda t: _noisy(blurred, t), range(10, 20))
    assert [(t, s.state) for t, s in changes] == [(13, "blurred")]
    assert changes[0][1].score is not None and changes[0][1].score < 0.4


def test_a_shifted_view_is_moved_and_a_small_shake_is_not() -> None:
    analyzer, _ = _learned()
    shaken = _run(analyzer, lambda t: _noisy(_frame_of(dx=1, dy=1), t), range(10, 20))
    assert shaken == []
    moved = _run(analyzer, lambda t: _noisy(_frame_of(dx=40, dy=15), t), range(20, 30))
    assert [(t, s.state) for t, s in moved] == [(23, "moved")]
    assert moved[0][1].detail["shift"] == pytest.approx(np.hypot(20, 7.5) / 160, abs=0.01)


def test_moved_is_accepted_as_the_new_view_when_configured() -> None:
    analyzer = _analyzer(accept_moved_after_s=5.0)
    _run(analyzer, lambda t: _noisy(_frame_of(), t), range(10))
    changes = _run(analyzer, lambda t: _noisy(_frame_of(dx=40), t), range(10, 40))
    assert [s.state for _, s in changes] == ["moved", "ok"]


def test_bit_identical_frames_are_frozen_since_the_first_repeat() -> None:
    analyzer, _ = _learned()
    held = _noisy(_frame_of(), 10)
    changes = _run(
        analyzer, lambda t: held if 10 <= t < 20 else _noisy(_frame_of(), t), range(10, 30)
    )
    assert [(t, s.state) for t, s in changes] == [(15, "frozen"), (23, "ok")]
    assert changes[0][1].since_s == WALL_S + 10


def test_a_static_but_live_view_is_not_frozen() -> None:
    analyzer, _ = _learned()
    assert _run(analyzer, lambda t: _noisy(_frame_of(), t), range(10, 40)) == []


def test_no_frames_reports_no_signal_and_frames_bring_it_back() -> None:
    analyzer, _ = _learned()
    assert analyzer.no_frames(12.0, WALL_S + 12) == ()  # 3 s of silence: not yet
    lost = analyzer.no_frames(13.5, WALL_S + 13.5)
    assert [s.state for s in lost] == ["no_signal"]
    assert lost[0].since_s == pytest.approx(WALL_S + 9)  # the last frame came at 9 s
    assert analyzer.no_frames(20.0, WALL_S + 20) == ()  # said once
    back = _run(analyzer, lambda t: _noisy(_frame_of(), t), range(21, 30))
    assert [(t, s.state) for t, s in back] == [(24, "ok")]


def test_no_frames_before_any_frame_counts_from_the_first_call() -> None:
    analyzer = _analyzer()
    assert analyzer.no_frames(100.0, WALL_S) == ()
    assert [s.state for s in analyzer.no_frames(104.0, WALL_S + 4)] == ["no_signal"]


def test_every_s_skips_frames_in_between() -> None:
    analyzer = _analyzer(every_s=2.0)
    changes = _run(analyzer, lambda t: _noisy(_frame_of(), t), range(14))
    assert [(t, s.state) for t, s in changes] == [(12, "ok")]  # 0, 2, 4, 6 learn; 8, 10, 12


def test_phase_shift_finds_a_translation() -> None:
    grey = cv2.cvtColor(BIG, cv2.COLOR_BGR2GRAY).astype(np.float32)
    reference = grey[40:130, 60:220].copy()
    current = grey[45:135, 52:212].copy()  # the view went 8 px left, 5 px down
    window = np.outer(np.hanning(90), np.hanning(160)).astype(np.float32)
    assert phase_shift(reference, current, window) == (8, -5)
