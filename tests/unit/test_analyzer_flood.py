"""Flood analyzer on a synthetic road: water that grows and dries, and what is not water."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge_agent.analytics import SceneState
from edge_agent.analyzers.config import FloodAnalyzerConfig
from edge_agent.analyzers.flood import FloodAnalyzer
from edge_agent.types import Frame, ImageBGR

WALL_S = 1_750_000_000.0
W, H = 320, 180
ROAD_TOP = 90  # the road is the bottom half; the top half is buildings


def _street(seed: int = 5) -> ImageBGR:
    rng = np.random.default_rng(seed)
    image = np.zeros((H, W, 3), np.float32)
    image[:ROAD_TOP] = (120, 140, 170)
    for x in range(0, W, 40):
        image[10:70, x + 8 : x + 28] = (60, 70, 80)  # windows
    grain = cv2.GaussianBlur(rng.normal(0, 14, (H, W)).astype(np.float32), (0, 0), 0.8)
    image[ROAD_TOP:] = 85
    image[ROAD_TOP:] += grain[ROAD_TOP:, :, None]  # asphalt has grain
    image[134:137, ::20] = 220  # dashes
    return np.clip(image, 0, 255).astype(np.uint8)


STREET = _street()
YS, XS = np.mgrid[0:H, 0:W]


def _with_water(
    image: ImageBGR, radius_px: float, centre: tuple[int, int] = (140, 140)
) -> ImageBGR:
    """A smooth, bright, bluish patch on the road (sky mirrored in standing water)."""
    if radius_px <= 0:
        return image
    inside = ((XS - centre[0]) / 2.5) ** 2 + (YS - centre[1]) ** 2 <= radius_px**2
    inside &= YS >= ROAD_TOP
    out = image.copy()
    out[inside] = (205, 195, 180)
    return out


_NOISE = [
    np.random.default_rng(i).normal(0, 2, (H, W, 3)).astype(np.float32) for i in range(7)
]  # sensor noise: a live camera never delivers the same picture twice


def _noisy(image: ImageBGR, index: int, gain: float = 1.0) -> ImageBGR:
    noisy = image.astype(np.float32) * gain + _NOISE[index % len(_NOISE)]
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _analyzer() -> FloodAnalyzer:
    config = FloodAnalyzerConfig(
        region={"box": (0.0, 0.5, 1.0, 1.0)},
        learn_s=10.0,
        min_duration_s=5.0,
        water_memory_s=4.0,
    )
    return FloodAnalyzer(config, "cam1")


def _run(
    analyzer: FloodAnalyzer, picture: Callable[[int], ImageBGR], seconds: range
) -> list[tuple[int, SceneState]]:
    changes = []
    for t in seconds:
        frame = Frame("cam1", t, WALL_S + t, float(t), picture(t))
        changes.extend((t, state) for state in analyzer.update(frame, float(t)))
    return changes


def _share(radius_px: float) -> float:
    water = np.any(_with_water(STREET, radius_px) != STREET, axis=2)
    return float(water[ROAD_TOP:].mean())


def test_water_that_grows_and_dries_goes_puddle_flooded_puddle_none() -> None:
    assert 0.1 < _share(25) < 0.3 and _share(60) > 0.6  # what the scenes below mean
    radius = {**dict.fromkeys(range(20, 50), 25.0), **dict.fromkeys(range(50, 80), 60.0)}
    radius.update(dict.fromkeys(range(80, 110), 25.0))
    analyzer = _analyzer()
    changes = _run(
        analyzer, lambda t: _noisy(_with_water(STREET, radius.get(t, 0.0)), t), range(140)
    )
    states = [(t, s.state) for t, s in changes]
    assert [s for _, s in states] == ["none", "puddle", "flooded", "puddle", "none"]
    times = dict((s, t) for t, s in reversed(states))  # first time of each
    assert 20 < times["puddle"] <= 20 + 5 + 4 + 2  # persistence plus memory
    flood = next(s for _, s in changes if s.state == "flooded")
    assert flood.score is not None and flood.score > 0.35
    assert flood.since_s < WALL_S + flood.frame_time_s - WALL_S  # began before it was said


def test_dusk_is_not_water() -> None:
    analyzer = _analyzer()
    changes = _run(analyzer, lambda t: _noisy(STREET, t, gain=max(0.3, 1.0 - 0.01 * t)), range(100))
    assert [s.state for _, s in changes] == ["none"]


def test_a_bright_car_driving_through_is_not_water() -> None:
    def picture(t: int) -> ImageBGR:
        image = STREET.copy()
        x = 20 + (t % 10) * 30  # a white car crossing every 10 s
        if t >= 15:
            image[110:150, x : x + 60] = (235, 235, 235)
        return _noisy(image, t)

    assert [s.state for _, s in _run(_analyzer(), picture, range(90))] == ["none"]


def test_sunlight_on_the_road_keeps_its_grain_so_it_is_not_water() -> None:
    lit = STREET.astype(np.float32)
    lit[100:170, 40:280] *= 1.8  # a sunny patch: brighter, grain and all
    sunny = np.clip(lit, 0, 255).astype(np.uint8)
    changes = _run(_analyzer(), lambda t: _noisy(sunny if t >= 15 else STREET, t), range(80))
    assert [s.state for _, s in changes] == ["none"]


def test_the_same_patch_without_grain_is_water() -> None:
    glassy = STREET.copy()
    glassy[100:170, 40:280] = (170, 170, 170)  # brighter by the same amount, but smooth
    changes = _run(_analyzer(), lambda t: _noisy(glassy if t >= 15 else STREET, t), range(80))
    assert "none" in [s.state for _, s in changes]
    assert [s.state for _, s in changes][-1] in ("puddle", "flooded")
