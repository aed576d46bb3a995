"""The seam between the pipeline and whatever finds objects in a picture."""

from __future__ import annotations

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


class ModelLoadError(DataFileError):
    """The model file is wrong, corrupt or not the layout the manifest or config says it is."""
