"""Cut-outs of real people and vehicles, taken from real footage at run time.

A sprite is defined in code as (media file, frame index, pixel box) plus a "plate":
frames of the same camera without the object. The difference to the plate gives a
silhouette matte, so a sprite carries the person's outline, not the office wall
behind them. Sprites are decoded once per process and cached.

Why real pixels: the scenes exist to test the real detector. Drawn stick figures
would test nothing; committed footage would bloat the repository and carry
licences. Cutting at run time from the media search path gives both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.types import ImageBGR
from hw_sim.media import read_frames, resolve_media

PixelBox = tuple[int, int, int, int]
"""(x_min, y_min, x_max, y_max) in source pixels, max exclusive."""

AlphaMap = npt.NDArray[np.float32]
"""Opacity 0..1, height x width x 1 (so it broadcasts over BGR)."""


@dataclass(frozen=True)
class Plate:
    """Frames of ``media`` without the object; their per-pixel median is the backdrop."""

    media: str
    frames: tuple[int, ...]


@dataclass(frozen=True)
class SpriteSpec:
    """Where a sprite comes from and how to cut it out."""

    name: str
    label: str
    media: str
    frame: int
    box: PixelBox
    plate: Plate | None = None
    """None: no clean backdrop exists, the matte is an ellipse filling ``box``."""
    threshold: int = 35
    """Difference to the plate (max over channels) that counts as object."""
    exclude: tuple[PixelBox, ...] = ()
    """Source regions to drop from the matte (a neighbouring car touching this one)."""
    faces: str = "none"
    """Direction the object faces ("left", "right", or "none" for people seen from behind);
    scenes mirror a sprite so it faces the way it moves."""
    pixel_aspect: float = 1.0
    """Horizontal stretch to undo in the source (a 960x540 picture stored as 256x256)."""
    tint_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel gain, so one white car can also be a red one."""


@dataclass(frozen=True, eq=False)
class Sprite:
    """A decoded cut-out: colour plus feathered opacity, cropped tight to the object."""

    name: str
    label: str
    bgr: ImageBGR
    alpha: AlphaMap
    faces: str = "none"
    _scaled: dict[tuple[int, int, bool], tuple[ImageBGR, AlphaMap]] = field(
        default_factory=dict, repr=False
    )

    @property
    def aspect(self) -> float:
        """Width over height in square pixels."""
        return float(self.bgr.shape[1]) / float(self.bgr.shape[0])

    def scaled(self, width_px: int, height_px: int, mirror: bool) -> tuple[ImageBGR, AlphaMap]:
        """The sprite resized (and maybe mirrored); small LRU-free cache, sizes repeat a lot."""
        key = (width_px, height_px, mirror)
        hit = self._scaled.get(key)
        if hit is not None:
            return hit
        shrinking = width_px < self.bgr.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        bgr = cv2.resize(self.bgr, (width_px, height_px), interpolation=interpolation)
        alpha = cv2.resize(self.alpha[:, :, 0], (width_px, height_px), interpolation=interpolation)
        if mirror:
            bgr = bgr[:, ::-1]
            alpha = alpha[:, ::-1]
        result = (
            np.ascontiguousarray(bgr, dtype=np.uint8),
            np.ascontiguousarray(alpha, dtype=np.float32)[:, :, None],
        )
        if len(self._scaled) > 512:
            self._scaled.clear()
        self._scaled[key] = result
        return result


_PERSON_VIDEO = "intel_one-by-one-person-detection.mp4"
_TRAFFIC_VIDEO = "automl_traffic_frames.mp4"
# coral_traffic_0001.bmp is a 960x540 highway frame stored as 256x256.
_CORAL_SQUASH = (960 / 256) / (540 / 256)
_TRAFFIC_PLATE = Plate(_TRAFFIC_VIDEO, tuple(range(20)))
# In frame 9 a pickup's bumper, shadow and rear wheel touch the white car's roof.
_TRUCK_ABOVE_WHITE_CAR = (
    (520, 340, 606, 386), (606, 340, 650, 381), (650, 340, 800, 372), (732, 340, 800, 379),
    (750, 340, 800, 392),
)  # fmt: skip

# Found by running the real SSD detector over the footage and checking the mattes by eye.
# Plates for people are empty frames shortly before or after, so auto-exposure agrees.
# Two more people in that video (frames 100 and 1000) score below 0.5 on a street: left out.
SPRITES: dict[str, SpriteSpec] = {
    spec.name: spec
    for spec in (
        SpriteSpec(
            "person_black", "person", _PERSON_VIDEO, 300, (363, 0, 552, 377),
            plate=Plate(_PERSON_VIDEO, (470,)),
        ),
        SpriteSpec(
            "person_blonde", "person", _PERSON_VIDEO, 620, (388, 0, 583, 389),
            plate=Plate(_PERSON_VIDEO, (710,)),
        ),
        SpriteSpec(
            "person_tshirt", "person", _PERSON_VIDEO, 800, (348, 17, 506, 397),
            plate=Plate(_PERSON_VIDEO, (740,)),
        ),
        SpriteSpec(
            "person_shirt", "person", _PERSON_VIDEO, 1300, (338, 0, 530, 406),
            plate=Plate(_PERSON_VIDEO, (1210,)),
        ),
        SpriteSpec(
            "person_portrait", "person", "coral_grace_hopper.bmp", 0, (40, 20, 480, 600),
        ),
        SpriteSpec(
            "car_dark", "car", _TRAFFIC_VIDEO, 0, (185, 312, 470, 428),
            plate=_TRAFFIC_PLATE, threshold=30, faces="left",
        ),
        SpriteSpec(
            "car_white", "car", _TRAFFIC_VIDEO, 9, (524, 366, 795, 480),
            plate=_TRAFFIC_PLATE, threshold=30, faces="left", exclude=_TRUCK_ABOVE_WHITE_CAR,
        ),
        SpriteSpec(
            "car_red", "car", _TRAFFIC_VIDEO, 9, (524, 366, 795, 480),
            plate=_TRAFFIC_PLATE, threshold=30, faces="left", exclude=_TRUCK_ABOVE_WHITE_CAR,
            tint_bgr=(0.35, 0.4, 0.95),
        ),
        SpriteSpec(
            "car_dark_small", "car", "coral_traffic_0001.bmp", 0, (48, 146, 127, 205),
            plate=_TRAFFIC_PLATE, threshold=30, faces="left", pixel_aspect=_CORAL_SQUASH,
        ),
    )
}  # fmt: skip

_cache: dict[str, Sprite] = {}
_cache_lock = threading.Lock()


def sprite_media(names: Iterable[str]) -> list[str]:
    """Media files the named sprites need, for error messages and test skips."""
    files: list[str] = []
    for name in names:
        spec = SPRITES[name]
        for media in (spec.media, *([spec.plate.media] if spec.plate else [])):
            if media not in files:
                files.append(media)
    return files


def load_sprites(names: Iterable[str]) -> dict[str, Sprite]:
    """Decode (once per process) and return the named sprites.

    Raises ``KeyError`` for an unknown name and ``MediaNotFound`` when footage is missing.
    """
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name not in SPRITES:
            raise KeyError(f"unknown sprite {name!r}; known: {', '.join(sorted(SPRITES))}")
    with _cache_lock:
        missing = [name for name in wanted if name not in _cache]
        if missing:
            frames = _decode_needed(SPRITES[name] for name in missing)
            for name in missing:
                _cache[name] = _cut(SPRITES[name], frames)
        return {name: _cache[name] for name in wanted}


def _decode_needed(specs: Iterable[SpriteSpec]) -> dict[tuple[str, int], ImageBGR]:
    """All source and plate frames the specs need, one decoding pass per media file."""
    needed: dict[str, set[int]] = {}
    for spec in specs:
        needed.setdefault(spec.media, set()).add(spec.frame)
        if spec.plate is not None:
            needed.setdefault(spec.plate.media, set()).update(spec.plate.frames)
    frames: dict[tuple[str, int], ImageBGR] = {}
    for media, indices in needed.items():
        for index, image in read_frames(resolve_media(media), indices).items():
            frames[(media, index)] = image
    return frames


def _cut(spec: SpriteSpec, frames: dict[tuple[str, int], ImageBGR]) -> Sprite:
    image = frames[(spec.media, spec.frame)]
    height, width = image.shape[:2]
    x0, y0, x1, y1 = spec.box
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise ValueError(
            f"sprite {spec.name}: box {spec.box} is outside the {width}x{height} frame"
        )
    crop = image[y0:y1, x0:x1]
    matte: npt.NDArray[np.uint8]
    if spec.plate is None:
        matte = np.zeros(crop.shape[:2], np.uint8)
        centre = ((x1 - x0) // 2, (y1 - y0) // 2)
        cv2.ellipse(matte, centre, ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 255, -1)
    else:
        plate = _plate_image(spec.plate, frames, (width, height))
        matte = _difference_matte(image, plate, spec)[y0:y1, x0:x1]
    ys, xs = np.nonzero(matte)
    if len(xs) == 0:
        raise ValueError(f"sprite {spec.name}: nothing differs from the plate inside {spec.box}")
    tight = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    bgr: npt.NDArray[np.float32] = crop[tight].astype(np.float32)
    matte = matte[tight]
    # Feather inwards: erode a pixel, then blur, so edges blend instead of cutting.
    matte = np.asarray(cv2.erode(matte, np.ones((3, 3), np.uint8)), np.uint8)
    alpha = np.asarray(cv2.GaussianBlur(matte.astype(np.float32) / 255.0, (0, 0), 1.2), np.float32)
    bgr *= np.array(spec.tint_bgr, np.float32)
    if spec.pixel_aspect != 1.0:
        new_width = max(1, round(bgr.shape[1] * spec.pixel_aspect))
        size = (new_width, bgr.shape[0])
        bgr = np.asarray(cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC), np.float32)
        alpha = np.asarray(cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR), np.float32)
    return Sprite(
        name=spec.name,
        label=spec.label,
        bgr=np.clip(bgr, 0, 255).astype(np.uint8),
        alpha=np.clip(alpha, 0.0, 1.0).astype(np.float32)[:, :, None],
        faces=spec.faces,
    )


def _plate_image(
    plate: Plate, frames: dict[tuple[str, int], ImageBGR], size: tuple[int, int]
) -> ImageBGR:
    stack = np.stack([frames[(plate.media, i)] for i in plate.frames])
    median = np.median(stack, axis=0).astype(np.uint8)
    if (median.shape[1], median.shape[0]) != size:
        median = cv2.resize(median, size, interpolation=cv2.INTER_AREA)
    return np.asarray(median, np.uint8)


def _difference_matte(image: ImageBGR, plate: ImageBGR, spec: SpriteSpec) -> npt.NDArray[np.uint8]:
    """Silhouette of what differs from the plate inside the box: one blob, holes filled."""
    x0, y0, x1, y1 = spec.box
    outside = np.ones(image.shape[:2], bool)
    outside[max(0, y0) : y1, max(0, x0) : x1] = False
    # Auto-exposure moves between frames: match the plate's brightness on the surroundings.
    gain = np.median(image[outside].astype(np.float32) + 1.0, axis=0) / np.median(
        plate[outside].astype(np.float32) + 1.0, axis=0
    )
    matched = np.clip(plate.astype(np.float32) * gain, 0, 255)
    difference = np.abs(image.astype(np.float32) - matched).max(axis=2)
    matte = (difference > spec.threshold).astype(np.uint8) * 255
    matte[outside] = 0
    for ex0, ey0, ex1, ey1 in spec.exclude:
        matte[max(0, ey0) : ey1, max(0, ex0) : ex1] = 0
    matte = cv2.morphologyEx(matte, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    matte = cv2.morphologyEx(matte, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(matte)
    if count <= 1:
        return np.asarray(matte, np.uint8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = np.where(labels == largest, 255, 0).astype(np.uint8)
    # Fill holes: flood the outside from a border pixel outside the blob, invert.
    height, width = blob.shape
    flood = blob.copy()
    seed = (0, 0) if blob[0, 0] == 0 else (width - 1, height - 1)
    cv2.floodFill(flood, np.zeros((height + 2, width + 2), np.uint8), seed, 255)
    filled: npt.NDArray[np.uint8] = blob | cv2.bitwise_not(flood)
    return filled
