"""The preview controller (edge_agent/preview.py) on a fake clock and a fake encoder whose
JPEG sizes follow a scene's complexity, with noise and spikes: the budget holds over every
10 s window, the floor of 1 fps at 320 px is kept when the budget allows it, a static
scene costs a small part of the budget, and the controller climbs back with headroom."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import numpy as np
import pytest

from edge_agent.preview import (
    OVERHEAD_BYTES,
    STATIC_REFRESH_S,
    WINDOW_S,
    PreviewBudget,
    Rung,
    changed_share,
    ladder,
    thumbnail,
)

# JPEG bytes relative to quality 80, deliberately not the controller's own table
TRUE_QUALITY_SIZE = {80: 1.0, 70: 0.75, 60: 0.62, 50: 0.55, 40: 0.5, 30: 0.45, 20: 0.4}


def fake_encoder(
    bytes_per_pixel: Callable[[], float], log: list[Rung] | None = None
) -> Callable[[Rung], bytes]:
    def encode(rung: Rung) -> bytes:
        if log is not None:
            log.append(rung)
        pixels = rung.width_px * rung.width_px * 9 / 16
        return b"x" * max(
            200, round(pixels * TRUE_QUALITY_SIZE[rung.jpeg_quality] * bytes_per_pixel())
        )

    return encode


def moving_thumbs(seed: int) -> Callable[[], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda: rng.integers(0, 256, (36, 64), np.uint8)


def run(
    budget: PreviewBudget,
    encode: Callable[[Rung], bytes],
    thumb: Callable[[], np.ndarray],
    seconds: float,
) -> list[tuple[float, int, Rung]]:
    """Offer a frame whenever the controller is due, as housekeeping does; what was sent."""
    sent = []
    while budget.next_due_s < seconds:
        now_s = budget.next_due_s
        result = budget.offer(now_s, thumb(), encode)
        if result is not None:
            sent.append((now_s, len(result.jpeg), result.rung))
    return sent


def max_window_bytes(sent: list[tuple[float, int, Rung]], overhead: int = 0) -> int:
    """The most bytes in any closed 10 s window (the largest starts at a send)."""
    return max(
        (
            sum(n + overhead for t, n, _ in sent if start <= t <= start + WINDOW_S)
            for start, _, _ in sent
        ),
        default=0,
    )


def test_the_ladder_lowers_quality_then_width_then_fps() -> None:
    rungs = ladder(480, 5.0, min_width_px=320, min_fps=1.0)
    assert rungs[0] == Rung(80, 480, 5.0)
    qualities = [r.jpeg_quality for r in rungs if r.width_px == 480 and r.fps == 5.0]
    assert qualities == sorted(qualities, reverse=True) and qualities[-1] == 40
    widths = [r.width_px for r in rungs if r.fps == 5.0]
    assert widths == sorted(widths, reverse=True) and widths[-1] == 320
    rates = [r.fps for r in rungs]
    assert rates == sorted(rates, reverse=True) and rates[-1] == 1.0
    assert rungs[-1] == Rung(20, 320, 1.0)  # the lowest quality only at the floor
    # A request below a floor is its own floor.
    assert ladder(200, 0.5, min_width_px=320, min_fps=1.0)[-1] == Rung(20, 200, 0.5)


@pytest.mark.parametrize("budget_bps", [8_000, 16_000, 64_000, 256_000])
@pytest.mark.parametrize("complexity", [0.05, 0.2, 0.6, 1.5])  # JPEG bytes per pixel at q80
@pytest.mark.parametrize(("fps", "width_px"), [(1.0, 480), (5.0, 1280), (5.0, 320), (0.5, 640)])
def test_no_10_s_window_carries_more_than_the_budget(
    budget_bps: int, complexity: float, fps: float, width_px: int
) -> None:
    rng = random.Random(budget_bps + int(complexity * 100) + width_px)

    def noisy() -> float:  # frame to frame noise, and now and then a frame 4x the usual
        spike = 4.0 if rng.random() < 0.05 else 1.0
        return complexity * rng.uniform(0.5, 1.5) * spike

    budget = PreviewBudget(budget_bps=budget_bps, width_px=width_px, fps=fps)
    sent = run(budget, fake_encoder(noisy), moving_thumbs(1), 120.0)
    window_bytes = budget_bps * WINDOW_S / 8
    assert max_window_bytes(sent, OVERHEAD_BYTES) <= window_bytes  # the controller's cap
    assert max_window_bytes(sent) <= 1.1 * window_bytes  # the acceptance line
    assert budget.bytes_sent == sum(n for _, n, _ in sent)


def test_one_fps_at_320_px_is_kept_when_the_budget_allows() -> None:
    # A busy scene: 320 px at quality 40 is about 3.5 kB, so 64 kbit/s (8 kB/s) allows 1 fps.
    budget = PreviewBudget(budget_bps=64_000, width_px=1280, fps=5.0)
    sent = run(budget, fake_encoder(lambda: 0.12), moving_thumbs(2), 60.0)
    steady = [s for s in sent if s[0] >= 10.0]
    assert len(steady) >= 50  # 50 s at 1 fps or more
    assert all(rung.width_px >= 320 for _, _, rung in steady)
    assert all(rung.fps >= 1.0 for _, _, rung in steady)
    assert max_window_bytes(sent, OVERHEAD_BYTES) <= 80_000


def test_a_static_scene_uses_a_small_part_of_the_budget() -> None:
    still = np.full((36, 64), 90, np.uint8)
    budget = PreviewBudget(budget_bps=64_000, width_px=480, fps=5.0)
    sent = run(budget, fake_encoder(lambda: 0.4), lambda: still, 120.0)
    assert sum(n for _, n, _ in sent) <= 0.3 * 8_000 * 120  # under 30 % of the budget
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert gaps and min(gaps) >= STATIC_REFRESH_S  # still refreshed, never faster
    assert max(gaps) <= STATIC_REFRESH_S + 1.0  # and never much slower: the viewer sees it live
    assert budget.frames_static > 0


def test_it_lowers_quality_first_and_climbs_back_with_headroom() -> None:
    # 480 px at quality 80 is about 10 kB here: 1 fps at 64 kbit/s (8 kB/s) needs less.
    complexity = [0.08]
    budget = PreviewBudget(budget_bps=64_000, width_px=480, fps=1.0)
    encode = fake_encoder(lambda: complexity[0])
    thumbs = moving_thumbs(3)
    busy = run(budget, encode, thumbs, 30.0)
    last = busy[-1][2]
    assert (last.width_px, last.fps) == (480, 1.0) and last.jpeg_quality < 80  # quality first
    complexity[0] = 0.2  # busier: quality alone is not enough, the width goes down too
    while budget.next_due_s < 60.0:
        budget.offer(budget.next_due_s, thumbs(), encode)
    assert budget.rungs[budget.level].width_px < 480
    complexity[0] = 0.02  # the scene got simple: room to climb back
    while budget.next_due_s < 90.0:
        budget.offer(budget.next_due_s, thumbs(), encode)
    assert budget.rungs[budget.level] == Rung(80, 480, 1.0)


def test_not_due_or_no_frame_sends_nothing() -> None:
    budget = PreviewBudget(budget_bps=64_000, width_px=480, fps=1.0, start_s=10.0)
    thumb = moving_thumbs(4)
    assert budget.offer(9.0, thumb(), fake_encoder(lambda: 0.1)) is None
    assert budget.offer(10.0, thumb(), lambda rung: None) is None
    assert budget.next_due_s == 11.0 and budget.frames_sent == 0
    assert budget.offer(11.0, thumb(), fake_encoder(lambda: 0.1)) is not None


def test_thumbnails_tell_a_changed_scene_from_noise() -> None:
    rng = np.random.default_rng(5)
    scene = rng.integers(0, 256, (432, 768, 3), np.uint8)
    noisy = np.clip(scene + rng.normal(0, 2, scene.shape), 0, 255).astype(np.uint8)
    moved = scene.copy()
    moved[100:250, 300:400] = 255  # an object walked in
    base = thumbnail(scene)
    assert base.shape == (36, 64)
    assert changed_share(base, thumbnail(noisy)) == 0.0
    assert changed_share(base, thumbnail(moved)) > 0.02
    assert changed_share(base, np.zeros((10, 10), np.uint8)) == 1.0
