"""What the pipeline takes: 8-bit BGR, three channels. What a source may give instead.

The backends convert (OpenCV's ``CONVERT_RGB``, PyAV's ``bgr24``, picamera2's ``RGB888``),
but a camera or a backend option can still hand over a greyscale (one channel), BGRA or
16-bit picture (a thermal or a machine-vision camera). The pipeline would fail on every
such frame, deep in a stage; the capture thread converts the unambiguous ones here, once
a frame, and refuses the rest with an error that says what came.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_agent.types import Frame


class UnusablePixels(ValueError):
    """A picture with no unambiguous 8-bit BGR reading (floats, 2 or 5+ channels, ...)."""


def as_bgr8(frame: Frame) -> tuple[Frame, str | None]:
    """``frame`` with an 8-bit BGR image, and what was converted (None: it already was).

    Greyscale is repeated into three channels, BGRA loses its alpha, 16-bit keeps its top
    8 bits. Raises :class:`UnusablePixels` for anything else.
    """
    image = frame.image
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return frame, None  # the common case: one check, no copy
    shape = "x".join(str(n) for n in image.shape)
    what = f"{shape} {image.dtype}"
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UnusablePixels(f"a {what} picture: expected 8- or 16-bit pixels")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, np.newaxis], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise UnusablePixels(f"a {what} picture: expected 1, 3 or 4 channels")
    return replace(frame, image=image), what
