"""A street drawn procedurally, plus the sensor's noise and exposure drift.

The street is deterministic from a seed. Noise and drift exist so that a motion
gate is tested honestly: a real camera never delivers two identical frames of an
empty street. Noise comes from one pre-drawn field viewed at a per-frame offset,
so a frame costs two saturating adds instead of drawing random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.types import ImageBGR


@dataclass(frozen=True)
class StreetLayout:
    """Where the bands of the street are, as fractions of the frame height (top = 0)."""

    facade_bottom: float = 0.26
    far_kerb: float = 0.37
    """Bottom of the far pavement: where far pedestrians stand."""
    road_bottom: float = 0.82
    centre_line: float = 0.61
    crossing_x: tuple[float, float] = (0.62, 0.76)
    """A zebra crossing across the road, between these fractions of the width."""


_NOISE_MARGIN_PX = 64


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, cell_px: int
) -> npt.NDArray[np.float32]:
    """Value noise: random numbers on a coarse grid, blown up smoothly. Range about -1..1."""
    grid = rng.standard_normal((height // cell_px + 2, width // cell_px + 2)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)


def draw_street(width: int, height: int, seed: int, layout: StreetLayout | None = None) -> ImageBGR:
    """An empty street seen from a camera on a pole: facade, pavements, road, markings."""
    layout = layout or StreetLayout()
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)

    def row(fraction: float) -> int:
        return round(fraction * height)

    def col(fraction: float) -> int:
        return round(fraction * width)

    facade_y, kerb_y, road_y = (
        row(layout.facade_bottom),
        row(layout.far_kerb),
        row(layout.road_bottom),
    )
    # Facade: a few buildings of different colours with rows of windows.
    x = 0
    while x < width:
        building_w = int(rng.integers(col(0.18), col(0.34) + 1))
        base = np.array([rng.uniform(90, 170), rng.uniform(100, 170), rng.uniform(120, 190)])
        image[:facade_y, x : x + building_w] = base
        window_w = max(4, col(0.028))
        window_h = max(4, row(0.06))
        for wy in range(row(0.03), facade_y - window_h - row(0.02), row(0.11)):
            for wx in range(x + col(0.02), x + building_w - window_w - col(0.01), col(0.055)):
                shade = rng.uniform(40, 75)
                image[wy : wy + window_h, wx : wx + window_w] = (shade + 15, shade + 5, shade)
        image[:facade_y, x : x + max(1, col(0.003))] = base * 0.7
        x += building_w
    # Pavements: pale slabs with joints.
    slab = np.array([165.0, 170.0, 172.0])
    image[facade_y:kerb_y] = slab
    image[road_y:] = slab * 0.97
    for top, bottom in ((facade_y, kerb_y), (road_y, height)):
        step_px = max(6, col(0.05))
        for jx in range(int(rng.integers(0, step_px)), width, step_px):
            image[top:bottom, jx : jx + 1] *= 0.85
        for jy in range(top, bottom, max(6, row(0.05))):
            image[jy : jy + 1, :] *= 0.85
    # Kerbs and road.
    kerb_px = max(2, row(0.012))
    image[kerb_y:road_y] = (84.0, 86.0, 88.0)
    image[kerb_y : kerb_y + kerb_px] = (190.0, 192.0, 192.0)
    image[road_y - kerb_px : road_y] = (190.0, 192.0, 192.0)
    line_px = max(1, row(0.008))
    centre_y = row(layout.centre_line)
    dash_px, gap_px = col(0.06), col(0.045)
    for dx in range(0, width, dash_px + gap_px):
        image[centre_y : centre_y + line_px, dx : dx + dash_px] = (215.0, 218.0, 220.0)
    for edge_y in (kerb_y + kerb_px + row(0.02), road_y - kerb_px - row(0.025)):
        image[edge_y : edge_y + line_px] = (200.0, 204.0, 206.0)
    stripe_px = max(2, row(0.025))
    x0, x1 = col(layout.crossing_x[0]), col(layout.crossing_x[1])
    for sy in range(kerb_y + kerb_px + row(0.015), road_y - kerb_px - stripe_px, 2 * stripe_px):
        image[sy : sy + stripe_px, x0:x1] = (205.0, 208.0, 210.0)
    # Texture: blotches on everything, grain on the road, then a slight blur like a lens.
    image *= 1.0 + 0.06 * _smooth_noise(rng, height, width, max(4, col(0.04)))[:, :, None]
    grain = rng.normal(0.0, 5.0, (height, width)).astype(np.float32)
    image[kerb_y:road_y] += grain[kerb_y:road_y, :, None]
    image = np.asarray(cv2.GaussianBlur(image, (0, 0), 0.7), np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


class Sensor:
    """Per-frame noise and exposure drift, deterministic per frame index."""

    def __init__(
        self,
        width: int,
        height: int,
        seed: int,
        *,
        noise_sigma: float = 2.0,
        drift_amplitude: float = 0.0,
        drift_period_s: float = 30.0,
    ) -> None:
        rng = np.random.default_rng(seed + 7919)
        field = rng.normal(
            0.0, noise_sigma, (height + _NOISE_MARGIN_PX, width + _NOISE_MARGIN_PX, 3)
        )
        field = np.rint(field)
        self._noise_plus = np.clip(field, 0, 255).astype(np.uint8)
        self._noise_minus = np.clip(-field, 0, 255).astype(np.uint8)
        self._width = width
        self._height = height
        self._drift_amplitude = drift_amplitude
        self._drift_period_s = drift_period_s

    def gain(self, t_s: float) -> float:
        """Exposure as a factor of nominal: a slow sine, like clouds or auto-exposure hunting."""
        if self._drift_amplitude == 0.0:
            return 1.0
        return 1.0 + self._drift_amplitude * float(np.sin(2.0 * np.pi * t_s / self._drift_period_s))

    def expose(self, scene: ImageBGR, index: int, t_s: float) -> ImageBGR:
        """What the sensor delivers for ``scene`` at frame ``index``: a new array."""
        gain = self.gain(t_s)
        image: ImageBGR = scene.copy()
        if gain != 1.0:
            cv2.convertScaleAbs(scene, dst=image, alpha=gain, beta=0.0)
        # A different window of the noise field for every frame; 64*64 offsets before repeating.
        dy = (index * 37) % _NOISE_MARGIN_PX
        dx = (index * 11 + index // _NOISE_MARGIN_PX) % _NOISE_MARGIN_PX
        window = (slice(dy, dy + self._height), slice(dx, dx + self._width))
        cv2.add(image, self._noise_plus[window], dst=image)
        cv2.subtract(image, self._noise_minus[window], dst=image)
        return image
