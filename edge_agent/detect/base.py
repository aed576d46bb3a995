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

    def detect(self, image: ImageBGR) -> DetectionResult: ...


class LockedDetector:
    """A detector shared by several cameras' analysis threads: one ``detect`` at a time
    (a TFLite interpreter is not thread-safe, and one model is loaded per device)."""

    def __init__(self, inner: Detector) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def labels(self) -> Sequence[str]:
        return self._inner.labels

    def detect(self, image: ImageBGR) -> DetectionResult:
        with self._lock:
            return self._inner.detect(image)


class ModelLoadError(DataFileError):
    """The model file is wrong, corrupt or not the layout the manifest or config says it is."""
