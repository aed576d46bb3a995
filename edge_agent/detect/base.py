"""The seam between the pipeline and whatever finds objects in a picture."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from edge_agent.datafiles import DataFileError
from edge_agent.types import DetectionResult, ImageBGR


class Detector(Protocol):
    """Finds objects in one BGR image.

    Boxes in the result are normalised to 0..1 of the image given; labels are COCO names
    ("person", "car"). Implementations are not thread-safe: one detector per thread.
    """

    @property
    def model_name(self) -> str: ...

    @property
    def labels(self) -> Sequence[str]: ...

    @property
    def input_size_px(self) -> tuple[int, int]:
        """(width, height) the model sees: region detection sizes its crops from it."""
        ...

    def detect(self, image: ImageBGR) -> DetectionResult: ...


class DetectorWrapper:
    """A detector around another that changes only ``detect``; the rest passes through."""

    def __init__(self, inner: Detector) -> None:
        self._inner = inner

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def labels(self) -> Sequence[str]:
        return self._inner.labels

    @property
    def input_size_px(self) -> tuple[int, int]:
        return self._inner.input_size_px

    def detect(self, image: ImageBGR) -> DetectionResult:
        return self._inner.detect(image)


class LockedDetector(DetectorWrapper):
    """A detector shared by several cameras' analysis threads: one ``detect`` at a time
    (a TFLite interpreter is not thread-safe, and each model is loaded once per device)."""

    def __init__(self, inner: Detector) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()

    def detect(self, image: ImageBGR) -> DetectionResult:
        with self._lock:
            return self._inner.detect(image)


class ModelLoadError(DataFileError):
    """The model file is wrong, corrupt or not the layout the manifest or config says it is."""
