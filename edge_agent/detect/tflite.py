"""Object detection with TFLite models: load, check, invoke; the layout does the rest.

The detector resolves the model (a manifest name, verified by sha256, or a user's own file
with its layout and label file), loads one interpreter, checks the input tensor, and hands
pre- and post-processing to the layout object named by the manifest or config
(``edge_agent.detect.layouts``). Every layout produces the same thing: named detections with
boxes normalised to the image given. Vehicle classes (bicycle, car, motorcycle, bus, truck)
are suppressed together so that one car that the model half believes is a truck is reported,
and counted, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from edge_agent import datafiles
from edge_agent.datafiles import Manifest, ModelEntry, is_model_path
from edge_agent.detect.base import Detector, ModelLoadError
from edge_agent.detect.labels import LABEL_SETS, LabelFileError, embedded_labels, read_label_file
from edge_agent.detect.layouts import (
    LAYOUTS,
    DirectInput,
    LayoutContext,
    OutputLayout,
    build_layout,
)
from edge_agent.detect.postprocess import DEFAULT_IOU_THRESHOLD, nms_grouped, to_detections
from edge_agent.detect.runtime import Interpreter, RuntimeUnavailable, load_interpreter
from edge_agent.types import DetectionResult, ImageBGR

__all__ = ["ModelLoadError", "ModelSource", "TFLiteDetector", "create_detector", "model_source"]


@dataclass(frozen=True)
class ModelSource:
    """Which file to load and how to read it, once the manifest or config has been asked."""

    name: str
    path: Path
    layout: str
    labels: tuple[str, ...]
    entry: ModelEntry | None
    """The manifest entry (its input size and dtype are checked); None for a user's file."""


def model_source(
    model: str,
    *,
    layout: str | None = None,
    labels_file: Path | None = None,
    manifest: Manifest | None = None,
    model_path: Path | None = None,
) -> ModelSource:
    """Resolve a manifest name or a user's model path into a loadable ModelSource.

    Raises ModelLoadError (a DataFileError) with a message that names what to fix.
    """
    if layout is not None and layout not in LAYOUTS:
        raise ModelLoadError(f"unknown model layout {layout!r} (known: {', '.join(LAYOUTS)})")
    own_labels = _read_labels(labels_file)
    if is_model_path(model) and model_path is None:
        path = Path(model).expanduser()
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ModelLoadError(f"model file {path} {what}")
        if layout is None:
            raise ModelLoadError(
                f"model file {path}: say its layout (detector.layout / --layout: "
                f"{', '.join(LAYOUTS)})"
            )
        labels = own_labels or embedded_labels(path)
        if labels is None:
            _check_loads(path)  # a truncated copy has lost its labels too: say that first
            raise ModelLoadError(
                f"model file {path} carries no labels: give its label file "
                "(detector.labels_file / --labels-file; one label per line, or a YAML list)"
            )
        return ModelSource(path.name, path, layout, labels, None)
    manifest = datafiles.load_manifest() if manifest is None else manifest
    entry = manifest.model(model)
    if layout is not None and layout != entry.format:
        raise ModelLoadError(
            f"model {entry.name} is a {entry.format} model in the manifest, not {layout}"
        )
    try:
        if model_path is None:
            path = datafiles.resolve_model_file(entry.name, manifest=manifest)
        else:
            datafiles.verify_file(entry, model_path)
            path = model_path
    except datafiles.ChecksumMismatch as exc:
        raise ModelLoadError(f"model {entry.name}: {exc}") from exc
    labels = own_labels or embedded_labels(path) or LABEL_SETS[entry.labels]
    return ModelSource(entry.name, path, entry.format, labels, entry)


TFLITE_IDENTIFIER = b"TFL3"
"""The FlatBuffer file identifier every TFLite model carries at bytes 4..8."""


def not_tflite(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a TFLite model (empty, truncated to a few bytes,
    another kind of file), read from its first 8 bytes; None when it may be one."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if not head:
        return "the file is empty (0 bytes): copy it again"
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        return (
            f"it does not begin as a TFLite file does ({TFLITE_IDENTIFIER.decode()} at byte 4): "
            "another kind of file, or a broken copy"
        )
    return None


def _check_loads(path: Path) -> None:
    """``ModelLoadError`` when the runtime cannot load the file as a model."""
    try:
        load_interpreter(path, 1)
    except RuntimeUnavailable:
        return  # a laptop's check-config: the labels are what it can say
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(unloadable(path, path.name, exc)) from exc


def unloadable(path: Path, name: str, error: Exception) -> str:
    """Why the runtime could not load ``path``, in the words a technician can act on when
    the file's first bytes already say it (empty, not a TFLite file)."""
    return f"{path} is not a loadable TFLite model ({name}): {not_tflite(path) or error}"


def _read_labels(labels_file: Path | None) -> tuple[str, ...] | None:
    if labels_file is None:
        return None
    try:
        return read_label_file(labels_file)
    except LabelFileError as exc:
        raise ModelLoadError(str(exc)) from exc


class TFLiteDetector:
    """A Detector backed by one TFLite interpreter (not thread-safe: one per thread)."""

    def __init__(
        self,
        model_name: str,
        *,
        score_threshold: float = 0.5,
        labels_of_interest: Iterable[str] | None = None,
        num_threads: int = 1,
        max_detections: int = 50,
        iou_threshold: float = DEFAULT_IOU_THRESHOLD,
        manifest: Manifest | None = None,
        model_path: Path | None = None,
        layout: str | None = None,
        labels_file: Path | None = None,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in 0..1, got {score_threshold}")
        if num_threads < 1 or max_detections < 1:
            raise ValueError("num_threads and max_detections must be at least 1")
        source = model_source(
            model_name,
            layout=layout,
            labels_file=labels_file,
            manifest=manifest,
            model_path=model_path,
        )
        self._model_name = source.name
        self.layout_name = source.layout
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.iou_threshold = iou_threshold
        self.model_path = source.path
        try:
            self._interpreter: Interpreter = load_interpreter(self.model_path, num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(unloadable(self.model_path, self._model_name, exc)) from exc
        self._labels = source.labels
        input_details = self._check_input(source.entry)
        self._input_index = int(input_details["index"])
        context = LayoutContext(
            model_path=self.model_path,
            input=input_details,
            outputs=self._interpreter.get_output_details(),
            labels=self._labels,
            score_threshold=score_threshold,
            allowed_class_ids=self._class_ids_of(labels_of_interest),
        )
        self._input_size_px = context.input_size_px
        self._layout: OutputLayout = build_layout(source.layout, context)
        # The input written in place when layout and runtime can (no copy by set_tensor):
        # a function that returns a view of the input tensor, which must be gone before
        # invoke (the runtime refuses to run while one exists).
        tensor = getattr(self._interpreter, "tensor", None)
        self._input_view: Callable[[], npt.NDArray[Any]] | None = (
            tensor(self._input_index)
            if tensor is not None and isinstance(self._layout, DirectInput)
            else None
        )

    # -- Detector protocol

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def labels(self) -> Sequence[str]:
        return self._labels

    @property
    def input_size_px(self) -> tuple[int, int]:
        return self._input_size_px

    def detect(self, image: ImageBGR) -> DetectionResult:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError(f"expected a HxWx3 uint8 BGR image, got {image.shape} {image.dtype}")
        start = time.perf_counter()
        if self._input_view is not None:
            fit = cast(DirectInput, self._layout).prepare_into(image, self._input_view())
            preprocessed = time.perf_counter()
        else:
            tensor, fit = self._layout.prepare(image)
            preprocessed = time.perf_counter()
            self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        invoked = time.perf_counter()
        raw = self._layout.decode(self._interpreter, fit)
        raw = nms_grouped(raw, self._labels, self.iou_threshold, self.max_detections)
        detections = to_detections(raw, self._labels)
        done = time.perf_counter()
        return DetectionResult(
            detections=detections,
            preprocess_s=preprocessed - start,
            invoke_s=invoked - preprocessed,
            postprocess_s=done - invoked,
        )

    def invoke(self) -> None:
        """Run the interpreter on its current input: the runtime's cost alone (bench/)."""
        self._interpreter.invoke()

    # -- loading

    def _check_input(self, entry: ModelEntry | None) -> dict[str, Any]:
        details = self._interpreter.get_input_details()
        if len(details) != 1:
            raise ModelLoadError(f"{self.model_path}: expected 1 input, found {len(details)}")
        shape = [int(v) for v in details[0]["shape"]]
        dtype = np.dtype(details[0]["dtype"]).name
        if entry is not None:
            expected_shape = [1, entry.input_height, entry.input_width, 3]
            if shape != expected_shape or dtype != entry.input_dtype:
                raise ModelLoadError(
                    f"{self.model_path}: input is {shape} {dtype}, the manifest says "
                    f"{expected_shape} {entry.input_dtype} for {entry.name}"
                )
        elif len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelLoadError(
                f"{self.model_path}: input is {shape} {dtype}, expected one picture [1, H, W, 3]"
            )
        return dict(details[0])

    def _class_ids_of(self, labels_of_interest: Iterable[str] | None) -> frozenset[int] | None:
        if labels_of_interest is None:
            return None
        wanted = set(labels_of_interest)
        unknown = wanted - set(self._labels)
        if unknown:
            raise ValueError(f"unknown labels for {self._model_name}: {sorted(unknown)}")
        return frozenset(i for i, label in enumerate(self._labels) if label in wanted)


def create_detector(
    model_name: str,
    *,
    score_threshold: float = 0.5,
    labels_of_interest: Iterable[str] | None = None,
    num_threads: int = 1,
    max_detections: int = 50,
    manifest: Manifest | None = None,
    layout: str | None = None,
    labels_file: Path | None = None,
) -> Detector:
    """A detector for a manifest model name, or for a user's model file with its layout and
    label file (every model is a TFLite model today)."""
    return TFLiteDetector(
        model_name,
        score_threshold=score_threshold,
        labels_of_interest=labels_of_interest,
        num_threads=num_threads,
        max_detections=max_detections,
        manifest=manifest,
        layout=layout,
        labels_file=labels_file,
    )


def model_labels(
    model: str,
    *,
    layout: str | None = None,
    labels_file: Path | None = None,
    manifest: Manifest | None = None,
) -> tuple[str, ...]:
    """The labels a configured model reports, without loading it (for check-config).

    A manifest model need not be on this machine: its manifest label set is used, unless a
    label file is given. A model file must exist and bring its labels (file or metadata).
    """
    if is_model_path(model):
        return model_source(model, layout=layout, labels_file=labels_file).labels
    manifest = datafiles.load_manifest() if manifest is None else manifest
    entry = manifest.model(model)
    return _read_labels(labels_file) or LABEL_SETS[entry.labels]
