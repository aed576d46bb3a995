"""Garbage analyzer on a synthetic pavement: piles that stay, and what must not count."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from edge_agent.analytics import SceneState
from edge_agent.analyzers.config import GarbageAnalyzerConfig
from edge_agent.analyzers.garbage import GarbageAnalyzer
from edge_agent.types import Frame, ImageBGR

WALL_S = 1_750_000_000.0
W, H = 320, 180


def _pavement(seed: int = 9) -> ImageBGR:
    rng = np.random.default_rng(seed)
    image = np.full((H, W, 3), (160, 165, 168), np.float32)
    image[::16] *= 0.85  # slab joints
    image[:, ::24] *= 0.85
    image += cv2.GaussianBlur(rng.normal(0, 5, (H, W)).astype(np.float32), (0, 0), 1.0)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


PAVEMENT = _pavement()


def _bag(image: ImageBGR, x: int, y: int, size: int = 44) -> ImageBGR:
    out = image.copy()
    cv2.ellipse(out, (x, y), (size // 2, size // 2 - 2), 0, 0, 360, (30, 32, 35), -1)
    return out


_NOISE = [
    np.random.default_rng(i).normal(0, 2, (H, W, 3)).astype(np.float32) for i in range(7)
]  # sensor noise: a live camera never delivers the same picture twice


def _noisy(image: ImageBGR, index: int, gain: float = 1.0) -> ImageBGR:
    noisy = image.astype(np.float32) * gain + _NOISE[index % len(_NOISE)]
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _analyzer() -> GarbageAnalyzer:
    config = GarbageAnalyzerConfig(
        region={"box": (0.1, 0.1, 0.9, 0.9)},
        learn_s=10.0,
        min_duration_s=3.0,
        persistence_s=20.0,
        report_step=0.01,
    )
    return GarbageAnalyzer(config, "cam1")


def _run(
    analyzer: GarbageAnalyzer, picture: Callable[[int], ImageBGR], seconds: range
) -> list[tuple[int, SceneState]]:
    changes = []
    for t in seconds:
        frame = Frame("cam1", t, WALL_S + t, float(t), picture(t))
        changes.extend((t, state) for state in analyzer.update(frame, float(t)))
    return changes


def test_a_bag_that_stays_is_present_since_it_came_and_growth_is_reported() -> None:
    one = _bag(PAVEMENT, 120, 100)
    two = _bag(one, 170, 104)

    def picture(t: int) -> ImageBGR:
        return _noisy(two if t >= 70 else one if t >= 20 else PAVEMENT, t)

    changes = _run(_analyzer(), picture, range(120))
    assert [s.state for _, s in changes][:2] == ["none", "present"]
    first = changes[1][1]
    assert 20 + 20 <= changes[1][0] <= 20 + 20 + 5  # persistence, a second or two to settle
    assert first.since_s == pytest.approx(WALL_S + 20, abs=3.0)
    assert first.score is not None and first.score > 0.01
    box = (
        first.detail["x_min"],
        first.detail["y_min"],
        first.detail["x_max"],
        first.detail["y_max"],
    )
    assert box == pytest.approx((98 / W, 80 / H, 142 / W, 120 / H), abs=0.02)  # the first bag
    growth = [s for t, s in changes[2:] if t >= 90]
    assert growth and all(s.state == "present" for s in growth)
    assert growth[-1].score is not None and growth[-1].score > 1.6 * first.score
    assert growth[-1].detail["growth"] == pytest.approx(growth[-1].score - first.score, abs=1e-3)
    assert growth[-1].since_s == first.since_s


def test_the_pile_taken_away_goes_back_to_none() -> None:
    bag = _bag(PAVEMENT, 120, 100)
    changes = _run(_analyzer(), lambda t: _noisy(bag if 20 <= t < 60 else PAVEMENT, t), range(80))
    states = [(t, s.state) for t, s in changes]
    assert [s for _, s in states] == ["none", "present", "none"]
    assert 60 <= states[-1][0] <= 60 + 3 + 2


def test_people_walking_through_are_not_garbage() -> None:
    def picture(t: int) -> ImageBGR:
        image = PAVEMENT.copy()
        for offset in (0, 37):  # two walkers, one after the other, back and forth
            x = 40 + ((t + offset) * 17) % 240
            cv2.rectangle(image, (x, 60), (x + 18, 150), (40, 60, 120), -1)
        return _noisy(image, t)

    assert [s.state for _, s in _run(_analyzer(), picture, range(120))] == ["none"]


def test_someone_waiting_shorter_than_the_persistence_is_not_garbage() -> None:
    waiting = PAVEMENT.copy()
    cv2.rectangle(waiting, (150, 60), (170, 150), (40, 60, 120), -1)
    changes = _run(
        _analyzer(), lambda t: _noisy(waiting if 20 <= t < 35 else PAVEMENT, t), range(80)
    )
    assert [s.state for _, s in changes] == ["none"]


def test_light_changing_over_the_day_is_not_garbage() -> None:
    def gain(t: int) -> float:
        return 1.0 - 0.6 * min(1.0, t / 100.0)  # to 40 % over 100 s

    changes = _run(_analyzer(), lambda t: _noisy(PAVEMENT, t, gain(t)), range(130))
    assert [s.state for _, s in changes] == ["none"]


def test_a_bag_seen_in_changing_light_is_still_found() -> None:
    bag = _bag(PAVEMENT, 120, 100)
    changes = _run(
        _analyzer(), lambda t: _noisy(bag if t >= 20 else PAVEMENT, t, 1.0 - 0.004 * t), range(90)
    )
    assert [s.state for _, s in changes][:2] == ["none", "present"]


def test_a_passer_by_in_front_of_the_pile_does_not_reset_it() -> None:
    bag = _bag(PAVEMENT, 120, 100)

    def picture(t: int) -> ImageBGR:
        image = bag.copy() if t >= 20 else PAVEMENT.copy()
        if t in (35, 36, 37):  # someone stands in front of it for 3 s
            cv2.rectangle(image, (105, 50), (140, 150), (40, 60, 120), -1)
        return _noisy(image, t)

    changes = _run(_analyzer(), picture, range(60))
    present = [t for t, s in changes if s.state == "present"]
    assert present and present[0] <= 20 + 20 + 5 + 3
