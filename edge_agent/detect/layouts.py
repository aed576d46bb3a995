"""Model output layouts: how to feed a detection model and how to read what it returns.

Each layout is one object with ``prepare(image)`` (the input tensor, and how the image was
fitted into it) and ``decode(interpreter, fit)`` (candidate detections, boxes normalised to
the image). The detector picks one by name from ``LAYOUTS`` — the manifest's ``format`` or the
config's ``detector.layout`` — so a new layout is one class and one ``@register_layout`` line,
never a new branch in the detector. A layout checks the model's tensors when it is built, so
a model of another layout, or a label file that does not match the model's classes, is a
clear error at load rather than nonsense boxes at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.detect.base import ModelLoadError
from edge_agent.detect.labels import UNUSED_LABEL
from edge_agent.detect.postprocess import (
    YOLOX_PAD_VALUE,
    Letterbox,
    Quantization,
    RawDetections,
    decode_ultralytics,
    decode_yolox,
)
from edge_agent.detect.runtime import Interpreter
from edge_agent.types import ImageBGR

TensorDetails = Mapping[str, Any]
_SSD_NAME = re.compile(r"TFLite_Detection_PostProcess(?::(\d))?$")


@dataclass(frozen=True)
class LayoutContext:
    """What a layout is built from: the loaded model's tensors and the detector's settings."""

    model_path: Path
    input: TensorDetails
    outputs: Sequence[TensorDetails]
    labels: tuple[str, ...]
    score_threshold: float
    allowed_class_ids: frozenset[int] | None

    @property
    def input_size_px(self) -> tuple[int, int]:
        """(width, height) of the model input, from its [1, H, W, 3] shape."""
        shape = [int(v) for v in self.input["shape"]]
        return shape[2], shape[1]

    @property
    def input_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.input["dtype"])


class OutputLayout(Protocol):
    """Feeds one model layout and reads its outputs (one per detector: it keeps buffers)."""

    def prepare(self, image: ImageBGR) -> tuple[npt.NDArray[Any], Letterbox | None]: ...

    def decode(self, interpreter: Interpreter, fit: Letterbox | None) -> RawDetections: ...


@runtime_checkable
class DirectInput(Protocol):
    """A layout that can also write the model input straight into the interpreter's input
    tensor (no copy of it by ``set_tensor``): the built-in ones. ``into`` is [1, H, W, 3]
    in the input's dtype, and its contents last from one call to the next."""

    def prepare_into(self, image: ImageBGR, into: npt.NDArray[Any]) -> Letterbox | None: ...


LayoutFactory = Callable[[LayoutContext], OutputLayout]
LAYOUTS: dict[str, LayoutFactory] = {}
"""Layout name (the manifest's ``format``, the config's ``detector.layout``) -> factory."""


_Factory = TypeVar("_Factory", bound=LayoutFactory)


def register_layout(name: str) -> Callable[[_Factory], _Factory]:
    """Class decorator: make a layout available under ``name`` in config and manifest."""

    def register(factory: _Factory) -> _Factory:
        if name in LAYOUTS:
            raise ValueError(f"layout {name!r} is registered twice")
        LAYOUTS[name] = factory
        return factory

    return register


def build_layout(name: str, context: LayoutContext) -> OutputLayout:
    factory = LAYOUTS.get(name)
    if factory is None:
        raise ModelLoadError(
            f"{context.model_path}: unknown model layout {name!r} (known: {', '.join(LAYOUTS)})"
        )
    return factory(context)


def _quantization(details: TensorDetails) -> Quantization:
    scale, zero_point = details.get("quantization", (0.0, 0))
    return Quantization(float(scale), int(zero_point))


def _shapes(details: Sequence[TensorDetails]) -> list[list[int]]:
    return [[int(v) for v in d["shape"]] for d in details]


class _LetterboxInput:
    """Letterbox straight into a reused model input: the padding is written once per image
    size and only the picture area is converted each frame."""

    def __init__(
        self,
        size_px: tuple[int, int],
        dtype: np.dtype[Any],
        pad_value: float,
        convert: Callable[[ImageBGR], npt.NDArray[Any]],
    ) -> None:
        self._width_px, self._height_px = size_px
        self._dtype = dtype
        self._pad_value = pad_value
        self._convert = convert
        self._buffer: npt.NDArray[Any] | None = None  # ``fill``'s own, when not in place
        # (buffer address, picture width, height) the padding was last written for
        self._padded: tuple[int, int, int] = (0, 0, 0)

    def fill(self, image: ImageBGR) -> tuple[npt.NDArray[Any], Letterbox]:
        """The input in a buffer of its own (for ``set_tensor``), reused frame to frame."""
        if self._buffer is None:
            self._buffer = np.empty((1, self._height_px, self._width_px, 3), self._dtype)
        return self._buffer, self.fill_into(image, self._buffer)

    def fill_into(self, image: ImageBGR, into: npt.NDArray[Any]) -> Letterbox:
        """Letterbox ``image`` into ``into`` (the interpreter's input, or ``fill``'s buffer),
        which keeps its padding from one call to the next: written again only when the
        picture's size or the buffer changes."""
        width, height = self._width_px, self._height_px
        image_h, image_w = image.shape[:2]
        scale = min(width / image_w, height / image_h)
        new_w = max(1, min(width, int(image_w * scale)))
        new_h = max(1, min(height, int(image_h * scale)))
        padded = (int(into.__array_interface__["data"][0]), new_w, new_h)
        if self._padded != padded:
            into[...] = self._pad_value
            self._padded = padded
        resized = cast(ImageBGR, cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
        into[0, :new_h, :new_w] = self._convert(resized)
        return Letterbox(scale, image_w, image_h)


# ---------------------------------------------------------------------------------------------
# SSD with TFLite_Detection_PostProcess inside the model


@dataclass(frozen=True)
class _SsdOutputs:
    boxes: int
    classes: int
    scores: int
    count: int
    classes_by_name: bool


def _ssd_outputs(details: Sequence[TensorDetails], path: Path) -> _SsdOutputs:
    """Which output tensor is which, from names when they say, else from shapes."""
    by_suffix: dict[int, int] = {}
    for d in details:
        match = _SSD_NAME.search(str(d["name"]))
        if match:
            by_suffix[int(match.group(1) or 0)] = int(d["index"])
    if sorted(by_suffix) == [0, 1, 2, 3]:
        return _SsdOutputs(by_suffix[0], by_suffix[1], by_suffix[2], by_suffix[3], True)
    boxes = [d for d in details if len(d["shape"]) == 3 and int(d["shape"][-1]) == 4]
    counts = [d for d in details if int(np.prod(d["shape"])) == 1]
    pairs = [d for d in details if len(d["shape"]) == 2]
    if len(details) != 4 or len(boxes) != 1 or len(counts) != 1 or len(pairs) != 2:
        shapes = [(str(d["name"]), [int(v) for v in d["shape"]]) for d in details]
        raise ModelLoadError(
            f"{path}: outputs {shapes} are not the SSD post-process layout "
            "(boxes [1,N,4], classes [1,N], scores [1,N], count [1])"
        )
    return _SsdOutputs(
        int(boxes[0]["index"]),
        int(pairs[0]["index"]),
        int(pairs[1]["index"]),
        int(counts[0]["index"]),
        False,
    )


def _all_whole(values: npt.NDArray[Any]) -> bool:
    return bool(np.all(np.equal(np.mod(values, 1.0), 0.0)))


@register_layout("ssd_postprocess")
class SsdLayout:
    """SSD with NMS inside: the whole image resized (not letterboxed) to the input, RGB;
    boxes, classes, scores and a count come out already suppressed."""

    def __init__(self, context: LayoutContext) -> None:
        _require_input_dtype(context, "SSD", np.uint8, np.float32)
        self._outputs = _ssd_outputs(context.outputs, context.model_path)
        self._size_px = context.input_size_px
        self._float_input = context.input_dtype == np.float32
        self._labels = context.labels
        # Per class id: reported at all (not COCO's unused "???" ids, and among the labels of
        # interest when they are given).
        allowed = context.allowed_class_ids
        self._wanted_ids = [
            label != UNUSED_LABEL and (allowed is None or i in allowed)
            for i, label in enumerate(self._labels)
        ]
        # Scores are compared as float32, as an array of them is against a Python float.
        self._score_threshold = float(np.float32(context.score_threshold))

    def prepare(self, image: ImageBGR) -> tuple[npt.NDArray[Any], Letterbox | None]:
        resized = cv2.resize(image, self._size_px, interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        if not self._float_input:
            return rgb[np.newaxis], None
        return ((rgb.astype(np.float32) - 127.5) / 127.5)[np.newaxis], None

    def prepare_into(self, image: ImageBGR, into: npt.NDArray[Any]) -> Letterbox | None:
        resized = cv2.resize(image, self._size_px, interpolation=cv2.INTER_LINEAR)
        if self._float_input:
            rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
            into[0] = (rgb.astype(np.float32) - 127.5) / 127.5
            return None
        written = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB, dst=into[0])
        if written.ctypes.data != into.ctypes.data:  # OpenCV could not write in place
            into[0] = written
        return None

    def decode(self, interpreter: Interpreter, fit: Letterbox | None) -> RawDetections:
        outputs, get = self._outputs, interpreter.get_tensor
        classes = get(outputs.classes).reshape(-1)
        scores = get(outputs.scores).reshape(-1)
        if not outputs.classes_by_name and not _all_whole(classes) and _all_whole(scores):
            classes, scores = scores, classes
        count = min(int(get(outputs.count).reshape(-1)[0]), scores.shape[0])
        # At most the model's few boxes (its NMS has run): a loop over them costs less than
        # the dozen array operations a vectorised filter takes after each invoke.
        wanted, threshold, last_id = self._wanted_ids, self._score_threshold, len(self._labels)
        kept: list[int] = []
        kept_scores: list[float] = []
        kept_ids: list[int] = []
        for i, (class_value, score) in enumerate(
            zip(classes[:count].tolist(), scores[:count].astype(np.float32).tolist(), strict=True)
        ):
            # -1 < value < labels: the ids that truncate (as astype(int64) does) to a label
            if score >= threshold and -1.0 < class_value < last_id and wanted[int(class_value)]:
                kept.append(i)
                kept_scores.append(score)
                kept_ids.append(int(class_value))
        if not kept:
            return RawDetections.empty()
        boxes_yx = get(outputs.boxes).reshape(-1, 4)[kept].astype(np.float32)
        boxes = boxes_yx[:, [1, 0, 3, 2]]  # ymin,xmin,ymax,xmax -> x_min,y_min,...
        return RawDetections(
            np.clip(boxes, 0.0, 1.0),
            np.array(kept_scores, np.float32),
            np.array(kept_ids, np.int64),
        )


# ---------------------------------------------------------------------------------------------
# YOLOX, decoded in the model: [1, N, 5+C] with objectness, NMS here


def _require_input_dtype(context: LayoutContext, layout: str, *dtypes: type[Any]) -> None:
    if context.input_dtype not in dtypes:
        names = ", ".join(np.dtype(d).name for d in dtypes)
        raise ModelLoadError(
            f"{context.model_path}: input dtype {context.input_dtype.name} is not one the "
            f"{layout} layout feeds ({names})"
        )


def _single_output(context: LayoutContext, layout: str, expected: str) -> TensorDetails:
    outputs = context.outputs
    if len(outputs) != 1 or len(outputs[0]["shape"]) != 3 or int(outputs[0]["shape"][0]) != 1:
        raise ModelLoadError(
            f"{context.model_path}: outputs {_shapes(outputs)} are not the {layout} layout "
            f"(one output {expected})"
        )
    return outputs[0]


class _LetterboxLayout:
    """One output, and the input letterboxed into a reused buffer: what the YOLO layouts
    share."""

    def __init__(
        self, context: LayoutContext, output: TensorDetails, letterbox: _LetterboxInput
    ) -> None:
        self._input = letterbox
        self._output_index = int(output["index"])
        self._score_threshold = context.score_threshold
        self._allowed_ids = context.allowed_class_ids

    def prepare(self, image: ImageBGR) -> tuple[npt.NDArray[Any], Letterbox | None]:
        return self._input.fill(image)

    def prepare_into(self, image: ImageBGR, into: npt.NDArray[Any]) -> Letterbox | None:
        return self._input.fill_into(image, into)


@register_layout("yolox")
class YoloxLayout(_LetterboxLayout):
    """YOLOX exported with its decoder: rows of cx, cy, w, h (input px), objectness, C class
    scores; input BGR 0-255 float, letterboxed top-left with grey 114."""

    def __init__(self, context: LayoutContext) -> None:
        n_values = 5 + len(context.labels)
        output = _single_output(context, "YOLOX", f"[1, N, {n_values}]")
        if int(output["shape"][2]) != n_values:
            raise ModelLoadError(
                f"{context.model_path}: outputs {_shapes(context.outputs)} are not the YOLOX "
                f"layout [1, N, {n_values}] (4 box values, objectness, {len(context.labels)} "
                "class scores)"
            )
        _require_input_dtype(context, "YOLOX", np.float32)
        letterbox = _LetterboxInput(
            context.input_size_px, np.dtype(np.float32), YOLOX_PAD_VALUE, lambda bgr: bgr
        )
        super().__init__(context, output, letterbox)

    def decode(self, interpreter: Interpreter, fit: Letterbox | None) -> RawDetections:
        assert fit is not None
        # get_tensor returns a copy (no view of the runtime's memory outlives this call,
        # even in an exception's traceback): no second one.
        output = np.asarray(interpreter.get_tensor(self._output_index), np.float32)
        return decode_yolox(output, fit, self._score_threshold, self._allowed_ids)


# ---------------------------------------------------------------------------------------------
# Ultralytics YOLOv8 / YOLO11 export: [1, 4+C, N] (or [1, N, 4+C]), no objectness, NMS here


def _input_lut(details: TensorDetails) -> npt.NDArray[Any]:
    """Pixel 0..255 -> the input tensor's value for pixel/255 (quantised by the tensor's
    own scale and zero point when it is int8/uint8)."""
    dtype = np.dtype(details["dtype"])
    real = np.arange(256, dtype=np.float64) / 255.0
    quant = _quantization(details)
    if dtype.kind == "f":
        return real.astype(dtype)
    if quant.scale == 0.0:
        raise ValueError(f"{dtype.name} input without quantisation parameters")
    info = np.iinfo(dtype.type)  # type: ignore[type-var]  # an integer dtype here
    values = np.round(real / quant.scale + quant.zero_point)
    return np.clip(values, info.min, info.max).astype(dtype)


def _rgb_through(lut: npt.NDArray[Any]) -> Callable[[ImageBGR], npt.NDArray[Any]]:
    """BGR picture -> RGB in the input's own values (cv2.LUT on the bytes for 8-bit inputs:
    a third of the cost of numpy indexing at 416x416)."""
    if lut.dtype.itemsize == 1:
        lut_bytes = lut.view(np.uint8)
        return lambda bgr: cv2.LUT(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), lut_bytes).view(lut.dtype)
    return lambda bgr: lut[cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)]


@register_layout("ultralytics")
class UltralyticsLayout(_LetterboxLayout):
    """The YOLOv8/YOLO11 export most users train: input RGB 0..1 (quantised per the input
    tensor), letterboxed with grey 114; one output of cx, cy, w, h and one score per class
    for each of N anchors, either orientation, int8/uint8 (dequantised here) or float."""

    def __init__(self, context: LayoutContext) -> None:
        n_values = 4 + len(context.labels)
        expected = f"[1, {n_values}, N] or [1, N, {n_values}]"
        output = _single_output(context, "Ultralytics", expected)
        shape = [int(v) for v in output["shape"]]
        if shape[1] == n_values:
            self._channels_first = True
        elif shape[2] == n_values:
            self._channels_first = False
        else:
            classes = min(shape[1], shape[2]) - 4
            raise ModelLoadError(
                f"{context.model_path}: output {shape} does not fit the Ultralytics layout with "
                f"{len(context.labels)} labels: expected {expected} (4 box values and one score "
                f"per label). The model seems to have {classes} classes: check that the label "
                "file is the one the model was trained with."
            )
        _require_input_dtype(context, "Ultralytics", np.int8, np.uint8, np.float32)
        dtype = context.input_dtype
        try:
            lut = _input_lut(context.input)
        except ValueError as exc:
            raise ModelLoadError(f"{context.model_path}: {exc}") from exc
        letterbox = _LetterboxInput(
            context.input_size_px,
            dtype,
            float(lut[YOLOX_PAD_VALUE]),
            _rgb_through(lut),
        )
        super().__init__(context, output, letterbox)
        self._output_quant = _quantization(output)
        self._input_size_px = context.input_size_px

    def decode(self, interpreter: Interpreter, fit: Letterbox | None) -> RawDetections:
        assert fit is not None
        return decode_ultralytics(
            interpreter.get_tensor(self._output_index),
            fit,
            self._score_threshold,
            self._allowed_ids,
            channels_first=self._channels_first,
            input_size_px=self._input_size_px,
            quantization=self._output_quant,
        )
