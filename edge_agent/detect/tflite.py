"""Object detection with TFLite models: SSD with in-model NMS, and YOLOX with NMS here.

Both layouts produce the same thing: COCO-named detections with boxes normalised to the
image given. Vehicle classes (bicycle, car, motorcycle, bus, truck) are suppressed together
so that one car that the model half believes is a truck is reported, and counted, once.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent import datafiles
from edge_agent.datafiles import DataFileError, Manifest, ModelEntry
from edge_agent.detect.base import Detector
from edge_agent.detect.labels import LABEL_SETS, UNUSED_LABEL, VEHICLE_LABELS, parse_labelmap
from edge_agent.detect.runtime import Interpreter, load_interpreter
from edge_agent.types import Box, Detection, DetectionResult, ImageBGR

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

YOLOX_PAD_VALUE = 114
DEFAULT_IOU_THRESHOLD = 0.45
_VEHICLE_GROUP = -1
_SSD_NAME = re.compile(r"TFLite_Detection_PostProcess(?::(\d))?$")


class ModelLoadError(DataFileError):
    """The model file is wrong, corrupt or not the layout the manifest says it is."""


# ---------------------------------------------------------------------------------------------
# Pure pre/post-processing (unit-tested without a model)


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a model input: scaled by ``scale``, padded right/bottom."""

    scale: float
    image_width_px: int
    image_height_px: int


def letterbox(
    image: ImageBGR, input_width_px: int, input_height_px: int, pad_value: int = YOLOX_PAD_VALUE
) -> tuple[ImageBGR, Letterbox]:
    """Resize keeping the aspect ratio and pad bottom/right (YOLOX's training layout)."""
    height_px, width_px = image.shape[:2]
    scale = min(input_width_px / width_px, input_height_px / height_px)
    new_w = max(1, min(input_width_px, int(width_px * scale)))
    new_h = max(1, min(input_height_px, int(height_px * scale)))
    padded = np.full((input_height_px, input_width_px, 3), pad_value, dtype=np.uint8)
    padded[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return padded, Letterbox(scale, width_px, height_px)


@dataclass(frozen=True)
class RawDetections:
    """Candidate detections as arrays: boxes (N,4) x_min,y_min,x_max,y_max normalised."""

    boxes: FloatArray
    scores: FloatArray
    class_ids: IntArray

    @staticmethod
    def empty() -> RawDetections:
        return RawDetections(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        )

    def take(self, keep: IntArray | npt.NDArray[np.bool_]) -> RawDetections:
        return RawDetections(self.boxes[keep], self.scores[keep], self.class_ids[keep])


def decode_yolox(
    output: FloatArray,
    fit: Letterbox,
    score_threshold: float,
    allowed_class_ids: frozenset[int] | None = None,
) -> RawDetections:
    """Turn YOLOX rows (cx, cy, w, h in input px, objectness, class scores) into detections.

    score = objectness x best class score; boxes are mapped back through the letterbox and
    normalised to the original image.
    """
    rows = output.reshape(-1, output.shape[-1])
    rows = rows[rows[:, 4] >= score_threshold]  # score <= objectness, so this is safe
    if rows.shape[0] == 0:
        return RawDetections.empty()
    class_scores = rows[:, 5:] * rows[:, 4:5]
    class_ids = class_scores.argmax(axis=1).astype(np.int64)
    scores = class_scores[np.arange(rows.shape[0]), class_ids].astype(np.float32)
    keep = scores >= score_threshold
    if allowed_class_ids is not None:
        keep &= np.isin(class_ids, list(allowed_class_ids))
    rows, scores, class_ids = rows[keep], scores[keep], class_ids[keep]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    x_scale = 1.0 / (fit.scale * fit.image_width_px)
    y_scale = 1.0 / (fit.scale * fit.image_height_px)
    boxes = np.stack(
        [
            (cx - w / 2) * x_scale,
            (cy - h / 2) * y_scale,
            (cx + w / 2) * x_scale,
            (cy + h / 2) * y_scale,
        ],
        axis=1,
    )
    return RawDetections(np.clip(boxes, 0.0, 1.0).astype(np.float32), scores, class_ids)


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Greedy non-maximum suppression; indices kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    kept: list[int] = []
    while order.size > 0:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = iw * ih
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def nms_grouped(
    raw: RawDetections,
    labels: Sequence[str],
    iou_threshold: float,
    max_detections: int,
    merged_labels: frozenset[str] = VEHICLE_LABELS,
) -> RawDetections:
    """NMS per class, except that all ``merged_labels`` form one group (the best label wins)."""
    if raw.scores.size == 0:
        return raw
    merged_ids = {i for i, label in enumerate(labels) if label in merged_labels}
    groups = np.array(
        [_VEHICLE_GROUP if int(c) in merged_ids else int(c) for c in raw.class_ids], np.int64
    )
    kept_parts: list[IntArray] = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        kept_parts.append(members[nms(raw.boxes[members], raw.scores[members], iou_threshold)])
    kept = np.concatenate(kept_parts)
    kept = kept[np.argsort(-raw.scores[kept], kind="stable")][:max_detections]
    return raw.take(kept)


def to_detections(raw: RawDetections, labels: Sequence[str]) -> tuple[Detection, ...]:
    return tuple(
        Detection(
            label=labels[int(class_id)],
            class_id=int(class_id),
            score=float(score),
            box=Box(float(b[0]), float(b[1]), float(b[2]), float(b[3])).clipped(),
        )
        for b, score, class_id in zip(raw.boxes, raw.scores, raw.class_ids, strict=True)
    )


def embedded_labels(path: Path) -> tuple[str, ...] | None:
    """The labelmap from a model's TFLite metadata (a zip appended to the file), if any."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".txt") and "label" in n.lower()]
            if not names:
                return None
            labels = parse_labelmap(archive.read(names[0]).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None
    return labels or None


# ---------------------------------------------------------------------------------------------
# The detector


@dataclass(frozen=True)
class _SsdOutputs:
    boxes: int
    classes: int
    scores: int
    count: int
    classes_by_name: bool


def _ssd_outputs(details: Sequence[dict[str, Any]], path: Path) -> _SsdOutputs:
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
        shapes = [(d["name"], list(d["shape"])) for d in details]
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
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in 0..1, got {score_threshold}")
        if num_threads < 1 or max_detections < 1:
            raise ValueError("num_threads and max_detections must be at least 1")
        manifest = datafiles.load_manifest() if manifest is None else manifest
        self._entry: ModelEntry = manifest.model(model_name)
        self._model_name = self._entry.name
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.iou_threshold = iou_threshold
        self.model_path = self._resolve(model_path, manifest)
        try:
            self._interpreter: Interpreter = load_interpreter(self.model_path, num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"{self.model_path} is not a loadable TFLite model ({self._model_name}): {exc}"
            ) from exc
        self._input_index = self._check_input()
        outputs = self._interpreter.get_output_details()
        if self._entry.format == "ssd_postprocess":
            self._ssd: _SsdOutputs | None = _ssd_outputs(outputs, self.model_path)
            self._yolox_output = -1
        else:
            self._ssd = None
            self._yolox_output = self._check_yolox_output(outputs)
        self._labels = embedded_labels(self.model_path) or LABEL_SETS[self._entry.labels]
        self._usable_ids = np.array([label != UNUSED_LABEL for label in self._labels], dtype=bool)
        self._allowed_ids = self._class_ids_of(labels_of_interest)
        self._yolox_input: FloatArray | None = None  # reused letterbox buffer (YOLOX)
        self._yolox_fill: tuple[int, int] = (0, 0)

    # -- Detector protocol

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def labels(self) -> Sequence[str]:
        return self._labels

    def detect(self, image: ImageBGR) -> DetectionResult:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError(f"expected a HxWx3 uint8 BGR image, got {image.shape} {image.dtype}")
        start = time.perf_counter()
        if self._ssd is not None:
            tensor = self._preprocess_ssd(image)
            fit = None
        else:
            tensor, fit = self._preprocess_yolox(image)
        preprocessed = time.perf_counter()
        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        invoked = time.perf_counter()
        if self._ssd is not None:
            raw = self._decode_ssd(self._ssd)
        else:
            assert fit is not None
            # get_tensor already returns a copy: no second one.
            output = np.asarray(self._interpreter.get_tensor(self._yolox_output), np.float32)
            raw = decode_yolox(output, fit, self.score_threshold, self._allowed_ids)
        raw = nms_grouped(raw, self._labels, self.iou_threshold, self.max_detections)
        detections = to_detections(raw, self._labels)
        done = time.perf_counter()
        return DetectionResult(
            detections=detections,
            preprocess_s=preprocessed - start,
            invoke_s=invoked - preprocessed,
            postprocess_s=done - invoked,
        )

    # -- loading

    def _resolve(self, model_path: Path | None, manifest: Manifest) -> Path:
        try:
            if model_path is None:
                return datafiles.resolve_model_file(self._model_name, manifest=manifest)
            datafiles.verify_file(self._entry, model_path)
            return model_path
        except datafiles.ChecksumMismatch as exc:
            raise ModelLoadError(f"model {self._model_name}: {exc}") from exc

    def _check_input(self) -> int:
        details = self._interpreter.get_input_details()
        entry = self._entry
        expected_shape = [1, entry.input_height, entry.input_width, 3]
        if len(details) != 1:
            raise ModelLoadError(f"{self.model_path}: expected 1 input, found {len(details)}")
        shape = [int(v) for v in details[0]["shape"]]
        dtype = np.dtype(details[0]["dtype"]).name
        if shape != expected_shape or dtype != entry.input_dtype:
            raise ModelLoadError(
                f"{self.model_path}: input is {shape} {dtype}, the manifest says "
                f"{expected_shape} {entry.input_dtype} for {entry.name}"
            )
        return int(details[0]["index"])

    def _check_yolox_output(self, details: Sequence[dict[str, Any]]) -> int:
        n_values = 5 + len(LABEL_SETS[self._entry.labels])
        if len(details) != 1 or len(details[0]["shape"]) != 3 or details[0]["shape"][2] != n_values:
            shapes = [list(d["shape"]) for d in details]
            raise ModelLoadError(
                f"{self.model_path}: outputs {shapes} are not the YOLOX layout [1, N, {n_values}]"
            )
        return int(details[0]["index"])

    def _class_ids_of(self, labels_of_interest: Iterable[str] | None) -> frozenset[int] | None:
        if labels_of_interest is None:
            return None
        wanted = set(labels_of_interest)
        unknown = wanted - set(self._labels)
        if unknown:
            raise ValueError(f"unknown labels for {self._model_name}: {sorted(unknown)}")
        return frozenset(i for i, label in enumerate(self._labels) if label in wanted)

    # -- per-frame work

    def _preprocess_ssd(self, image: ImageBGR) -> npt.NDArray[Any]:
        size = (self._entry.input_width, self._entry.input_height)
        rgb = cv2.cvtColor(
            cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB
        )
        if self._entry.input_dtype == "uint8":
            return rgb[np.newaxis]
        return ((rgb.astype(np.float32) - 127.5) / 127.5)[np.newaxis]

    def _preprocess_yolox(self, image: ImageBGR) -> tuple[npt.NDArray[Any], Letterbox]:
        """Letterbox straight into a reused float32 input: the padding is written once per
        image size and only the picture area is converted each frame."""
        width, height = self._entry.input_width, self._entry.input_height
        image_h, image_w = image.shape[:2]
        scale = min(width / image_w, height / image_h)
        new_w = max(1, min(width, int(image_w * scale)))
        new_h = max(1, min(height, int(image_h * scale)))
        if self._yolox_input is None or self._yolox_fill != (new_w, new_h):
            self._yolox_input = np.full((1, height, width, 3), YOLOX_PAD_VALUE, np.float32)
            self._yolox_fill = (new_w, new_h)
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        self._yolox_input[0, :new_h, :new_w] = resized
        return self._yolox_input, Letterbox(scale, image_w, image_h)

    def _decode_ssd(self, outputs: _SsdOutputs) -> RawDetections:
        get = self._interpreter.get_tensor
        boxes_yx = get(outputs.boxes).reshape(-1, 4).astype(np.float32)
        classes = get(outputs.classes).reshape(-1)
        scores = get(outputs.scores).reshape(-1)
        if not outputs.classes_by_name and not _all_whole(classes) and _all_whole(scores):
            classes, scores = scores, classes
        count = min(int(get(outputs.count).reshape(-1)[0]), scores.shape[0])
        class_ids = classes[:count].astype(np.int64)
        scores_f = scores[:count].astype(np.float32)
        in_range = (class_ids >= 0) & (class_ids < len(self._labels))
        keep = (scores_f >= self.score_threshold) & in_range
        keep[in_range] &= self._usable_ids[class_ids[in_range]]  # drop COCO's unused "???" ids
        if self._allowed_ids is not None:
            keep &= np.isin(class_ids, list(self._allowed_ids))
        boxes = boxes_yx[:count][:, [1, 0, 3, 2]]  # ymin,xmin,ymax,xmax -> x_min,y_min,...
        return RawDetections(np.clip(boxes, 0.0, 1.0), scores_f, class_ids).take(keep)


def _all_whole(values: npt.NDArray[Any]) -> bool:
    return bool(np.all(np.equal(np.mod(values, 1.0), 0.0)))


def create_detector(
    model_name: str,
    *,
    score_threshold: float = 0.5,
    labels_of_interest: Iterable[str] | None = None,
    num_threads: int = 1,
    max_detections: int = 50,
    manifest: Manifest | None = None,
) -> Detector:
    """A detector for a manifest model name (every manifest model is a TFLite model today)."""
    return TFLiteDetector(
        model_name,
        score_threshold=score_threshold,
        labels_of_interest=labels_of_interest,
        num_threads=num_threads,
        max_detections=max_detections,
        manifest=manifest,
    )
