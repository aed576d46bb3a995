"""Paint standing water or a pile of rubbish into a real frame, for the scene analyzers.

Real footage with a flood or a dumped pile in it, from a camera whose clear view is also on
file, is not to be had; these paint one in, with what the analyzers are meant to see:

- water: the road under it loses its grain (a film of water is a mirror), takes the colour
  of what it mirrors (a dull, slightly blue sky: a little bluer, about as bright as the
  asphalt or a little darker), ripples faintly, and fades in over a soft, irregular rim;
- a pile: a cluster of bags and boxes in many colours, each with its own texture (folds,
  print, creases), with a shadow under it.

Shapes are in fractions of the frame, so one call means the same place at any resolution.
Both return the picture and the painted share (0..1) per pixel, so a test can say how much
of a region the painting covers.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

ImageBGR = npt.NDArray[np.uint8]
Coverage = npt.NDArray[np.float32]

SKY_TINT_BGR = (26.0, 8.0, -10.0)
"""What a dull sky adds to the road it is mirrored in: bluer, hardly brighter."""


def _blob(
    shape: tuple[int, int],
    centre: tuple[float, float],
    radii: tuple[float, float],
    rng: np.random.Generator,
    lobes: int,
) -> npt.NDArray[np.float32]:
    """An irregular filled shape (a few overlapping ellipses), 0/1, at frame size."""
    height, width = shape
    mask = np.zeros((height, width), np.uint8)
    cx, cy = centre[0] * width, centre[1] * height
    rx, ry = radii[0] * width, radii[1] * height
    cv2.ellipse(
        mask, (round(cx), round(cy)), (max(1, round(rx)), max(1, round(ry))), 0, 0, 360, 1, -1
    )
    for _ in range(lobes):
        ox, oy = rng.uniform(-0.6, 0.6) * rx, rng.uniform(-0.6, 0.6) * ry
        lx, ly = rng.uniform(0.35, 0.6) * rx, rng.uniform(0.35, 0.6) * ry
        angle = float(rng.uniform(0, 180))
        centre_px = (round(cx + ox), round(cy + oy))
        cv2.ellipse(mask, centre_px, (max(1, round(lx)), max(1, round(ly))), angle, 0, 360, 1, -1)
    return mask.astype(np.float32)


def paint_water(
    image: ImageBGR,
    centre: tuple[float, float],
    radii: tuple[float, float],
    *,
    depth: float = 1.0,
    tint_bgr: tuple[float, float, float] = SKY_TINT_BGR,
    darken: float = 0.92,
    feather: float = 0.15,
    seed: int = 0,
) -> tuple[ImageBGR, Coverage]:
    """Standing water: an irregular patch about ``radii`` (fractions of width, height) round
    ``centre``; ``depth`` 0..1 fades it in (a puddle forming), ``feather`` is the width of
    its soft rim as a share of the smaller radius."""
    height, width = image.shape[:2]
    rng = np.random.default_rng(seed)
    shape = _blob((height, width), centre, radii, rng, lobes=5)
    rim_px = max(1.0, feather * min(radii[0] * width, radii[1] * height))
    alpha = np.asarray(cv2.GaussianBlur(shape, (0, 0), rim_px), np.float32)
    alpha = np.clip(alpha * 1.5 - 0.25, 0.0, 1.0) * float(np.clip(depth, 0.0, 1.0))
    road = image.astype(np.float32)
    mirror = np.asarray(cv2.GaussianBlur(road, (0, 0), max(3.0, 0.01 * width)), np.float32)
    mirror = mirror * darken + np.array(tint_bgr, np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ripple = 2.5 * np.sin(xs / (0.03 * width) + 0.7 * np.sin(ys / (0.02 * height)))
    mirror += ripple[..., None]  # faint, long waves: smooth to the analyzer's 3x3 texture
    out = road * (1.0 - alpha[..., None]) + mirror * alpha[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), alpha


def paint_pile(
    image: ImageBGR,
    centre: tuple[float, float],
    size: tuple[float, float],
    *,
    items: int = 9,
    seed: int = 0,
) -> tuple[ImageBGR, Coverage]:
    """A pile of ``items`` bags and boxes in a ``size`` (fractions of width, height) area
    round ``centre``: saturated colours, each with its own texture, a shadow beneath."""
    height, width = image.shape[:2]
    rng = np.random.default_rng(seed)
    out = image.astype(np.float32)
    cover = np.zeros((height, width), np.float32)
    cx, cy = centre[0] * width, centre[1] * height
    sx, sy = size[0] * width / 2, size[1] * height / 2
    shadow = np.zeros((height, width), np.float32)
    cv2.ellipse(
        shadow, (round(cx), round(cy + 0.35 * sy)), (round(1.1 * sx), round(0.8 * sy)),
        0, 0, 360, 1.0, -1,
    )  # fmt: skip
    shadow = np.asarray(cv2.GaussianBlur(shadow, (0, 0), max(1.0, 0.15 * sy)), np.float32)
    out *= 1.0 - 0.45 * shadow[..., None]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(items):
        ix = cx + rng.uniform(-0.65, 0.65) * sx
        iy = cy + rng.uniform(-0.55, 0.55) * sy
        rx = rng.uniform(0.25, 0.45) * sx
        ry = rng.uniform(0.25, 0.45) * sy
        item = np.zeros((height, width), np.uint8)
        if rng.random() < 0.5:  # a bag
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(
                item,
                (round(ix), round(iy)),
                (max(2, round(rx)), max(2, round(ry))),
                angle,
                0,
                360,
                1,
                -1,
            )
        else:  # a box, at an angle
            box = cv2.boxPoints(((ix, iy), (2 * rx, 2 * ry), float(rng.uniform(0, 90))))
            cv2.fillPoly(item, [np.round(box).astype(np.int32)], 1)
        inside = item.astype(bool)
        colour = np.array(rng.choice(_COLOURS), np.float32)
        period = float(rng.uniform(3.0, 7.0))
        folds = 40.0 * np.sin((xs * rng.uniform(0.5, 1.5) + ys) / period)  # creases, print
        grain = rng.normal(0.0, 18.0, (height, width)).astype(np.float32)
        shading = folds + grain
        out[inside] = np.clip(colour + shading[inside][:, None], 0, 255)
        cover[inside] = 1.0
    return np.clip(out, 0, 255).astype(np.uint8), cover


_COLOURS: list[tuple[int, int, int]] = [
    (30, 30, 35),  # black bin bag
    (40, 140, 40),  # green bag
    (170, 90, 30),  # blue bag (BGR)
    (60, 120, 200),  # cardboard
    (220, 220, 225),  # white sack
    (30, 60, 190),  # red crate
    (40, 190, 220),  # yellow bag
]


def region_share(cover: Coverage, box: tuple[float, float, float, float]) -> float:
    """How much of ``box`` (fractions x0, y0, x1, y1) the painting covers, 0..1."""
    height, width = cover.shape
    x0, y0, x1, y1 = box
    part = cover[round(y0 * height) : round(y1 * height), round(x0 * width) : round(x1 * width)]
    return float(part.mean()) if part.size else 0.0


def shifted(image: ImageBGR, dx: float, dy: float, angle_deg: float = 0.0) -> ImageBGR:
    """The view of a camera knocked by ``dx``, ``dy`` (fractions of the frame) and turned by
    ``angle_deg``: what was at the edge is gone, the border repeats the picture's edge."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
    matrix[0, 2] += dx * width
    matrix[1, 2] += dy * height
    moved = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return np.asarray(moved, np.uint8)


def foreground(frame: ImageBGR, empty: ImageBGR, threshold: float = 40.0) -> npt.NDArray[np.bool_]:
    """Where ``frame`` shows something ``empty`` (the scene without traffic, e.g. the median
    of a clip) does not, after matching their light: the cars, so water or a pile can be
    painted *under* passing traffic with ``np.where(foreground(...), frame, painted)``."""
    current = frame.astype(np.float32)
    base = empty.astype(np.float32)
    gain = (np.median(base.reshape(-1, 3), axis=0) + 1.0) / (
        np.median(current.reshape(-1, 3), axis=0) + 1.0
    )
    differs = (np.abs(current * gain - base).max(axis=2) > threshold).astype(np.uint8)
    differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    return np.asarray(cv2.dilate(differs, np.ones((9, 9), np.uint8)), np.uint8) > 0
