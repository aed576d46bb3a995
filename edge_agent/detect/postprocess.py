"""Pure pre- and post-processing for detection models: letterboxing, decoding, NMS.

No interpreter here: every function takes arrays and returns arrays, so each layout's maths
is unit-tested on synthetic tensors. Boxes leave this module normalised to the image given.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import Box, Detection, ImageBGR

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

YOLOX_PAD_VALUE = 114
DEFAULT_IOU_THRESHOLD = 0.45
MAX_CANDIDATES = 1000
"""Candidates kept for NMS (best first): bounds its cost when a low threshold lets many by."""
_VEHICLE_GROUP = -1


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


def dequantize(values: npt.NDArray[Any], scale: float, zero_point: int) -> FloatArray:
    """Real values of a quantised tensor (scale 0 means it is not quantised)."""
    real: FloatArray = values.astype(np.float32)
    if scale != 0.0:
        real = (real - np.float32(zero_point)) * np.float32(scale)
    return real


def _centre_boxes_to_corners(xywh: FloatArray, fit: Letterbox) -> FloatArray:
    """cx, cy, w, h in model-input pixels -> corners normalised to the original image."""
    cx, cy, w, h = xywh[:, 0], xywh[:, 1], xywh[:, 2], xywh[:, 3]
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
    return np.clip(boxes, 0.0, 1.0).astype(np.float32)


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
    return RawDetections(_centre_boxes_to_corners(rows[:, :4], fit), scores, class_ids)


@dataclass(frozen=True)
class Quantization:
    """A tensor's affine quantisation, real = (q - zero_point) x scale; scale 0: float."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def params(self) -> tuple[float, int]:
        return self.scale, self.zero_point

    def quantize_threshold(self, value: float) -> float:
        """The smallest raw tensor value whose real value is at least ``value``."""
        if self.scale == 0.0:
            return value
        return float(np.ceil(value / self.scale + self.zero_point - 1e-6))


def decode_ultralytics(
    output: npt.NDArray[Any],
    fit: Letterbox,
    score_threshold: float,
    allowed_class_ids: frozenset[int] | None = None,
    *,
    channels_first: bool,
    input_size_px: tuple[int, int],
    quantization: Quantization = Quantization(),
) -> RawDetections:
    """Decode the Ultralytics YOLOv8/YOLO11 export: per anchor cx, cy, w, h, then C scores.

    ``output`` is the raw tensor, [1, 4+C, N] (``channels_first``) or [1, N, 4+C], int8/uint8
    (dequantised here with ``quantization``) or float. No objectness: the score is the best
    class score. Boxes are in model-input pixels, or normalised to the input (TFLite exports
    do that); which one is read off the box values themselves (all anchors <= 2 -> normalised).
    """
    table = output.reshape(output.shape[-2], output.shape[-1])
    rows_raw = table.T if channels_first else table  # [N, 4+C], still raw
    scores_raw = rows_raw[:, 4:]
    if scores_raw.shape[0] == 0 or scores_raw.shape[1] == 0:
        return RawDetections.empty()
    best_raw = scores_raw.max(axis=1)
    candidates = np.flatnonzero(best_raw >= quantization.quantize_threshold(score_threshold))
    if candidates.size == 0:
        return RawDetections.empty()
    if candidates.size > MAX_CANDIDATES:
        order = np.argsort(-best_raw[candidates].astype(np.float32), kind="stable")
        candidates = candidates[order[:MAX_CANDIDATES]]
    rows = dequantize(rows_raw[candidates], *quantization.params)
    class_ids = rows[:, 4:].argmax(axis=1).astype(np.int64)
    scores = rows[np.arange(rows.shape[0]), 4 + class_ids].astype(np.float32)
    keep = scores >= score_threshold
    if allowed_class_ids is not None:
        keep &= np.isin(class_ids, list(allowed_class_ids))
    if not keep.any():
        return RawDetections.empty()
    xywh = rows[keep, :4]
    box_peak = float(np.abs(dequantize(rows_raw[:, :4], *quantization.params)).max())
    if box_peak <= 2.0:  # normalised to the input: back to input pixels
        width_px, height_px = input_size_px
        xywh = xywh * np.array([width_px, height_px, width_px, height_px], np.float32)
    return RawDetections(_centre_boxes_to_corners(xywh, fit), scores[keep], class_ids[keep])


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


MATRIX_NMS_MAX = 128
"""Up to this many candidates ``nms_grouped`` measures every pair at once (a few array
operations instead of a dozen per group and kept box: most frames have a handful)."""


LOOP_NMS_MAX = 8
"""Up to this many candidates (SSD's usual handful) ``nms_grouped`` loops over them in
Python: after an invoke has evicted the caches, each distinct array operation costs
~10 us, the whole loop less than a few of them."""
_FLOAT32 = array("f", [0.0])


def _f32(value: float) -> float:
    """``value`` rounded to float32, as a float32 array stores the result of an operation
    on float32 values (rounding a double result once is exact for + - * /)."""
    _FLOAT32[0] = value
    return _FLOAT32[0]


def _nms_grouped_loop(
    raw: RawDetections, groups: list[int], iou_threshold: float
) -> list[int] | None:
    """``nms_grouped``'s kept indices in its order, by a loop in float32 arithmetic: the
    same IoUs to the last bit, so the same decisions. None unless every value is a finite
    float32 (the arrays' rules for the others are theirs)."""
    if raw.boxes.dtype != np.float32 or raw.scores.dtype != np.float32:
        return None
    boxes, scores = raw.boxes.tolist(), raw.scores.tolist()
    if not all(math.isfinite(v) for box in boxes for v in box) or not all(
        math.isfinite(v) for v in scores
    ):
        return None
    threshold = _f32(iou_threshold)  # compared as float32 (numpy casts a Python float)
    areas = [
        _f32(max(_f32(x_max - x_min), 0.0) * max(_f32(y_max - y_min), 0.0))
        for x_min, y_min, x_max, y_max in boxes
    ]
    kept: list[int] = []
    # best first; equal scores in candidate order (a stable argsort of -score)
    for index in sorted(range(len(scores)), key=lambda i: -scores[i]):
        x_min, y_min, x_max, y_max = boxes[index]
        suppressed = False
        for best in kept:
            if groups[best] != groups[index]:
                continue
            bx_min, by_min, bx_max, by_max = boxes[best]
            iw = max(0.0, _f32(min(bx_max, x_max) - max(bx_min, x_min)))
            ih = max(0.0, _f32(min(by_max, y_max) - max(by_min, y_min)))
            inter = _f32(iw * ih)
            union = _f32(_f32(areas[best] + areas[index]) - inter)
            iou = _f32(inter / union) if union > 0.0 else 0.0
            if not iou <= threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(index)
    return sorted(kept, key=lambda i: (-scores[i], groups[i], i))


@lru_cache(maxsize=8)
def _merged_ids(labels: tuple[str, ...], merged_labels: frozenset[str]) -> frozenset[int]:
    return frozenset(i for i, label in enumerate(labels) if label in merged_labels)


def _groups(class_ids: IntArray, merged_ids: frozenset[int]) -> list[int]:
    """Each candidate's NMS group: one for all ``merged_ids``, else its own class id."""
    return [_VEHICLE_GROUP if c in merged_ids else c for c in class_ids.tolist()]


def nms_grouped(
    raw: RawDetections,
    labels: Sequence[str],
    iou_threshold: float,
    max_detections: int,
    merged_labels: frozenset[str] = VEHICLE_LABELS,
) -> RawDetections:
    """NMS per class, except that all ``merged_labels`` form one group (the best label wins).

    Best first; equal scores in group order (the merged group first, then by class id),
    then in candidate order: what running ``nms`` group by group and merging gives."""
    count = raw.scores.size
    if count == 0:
        return raw
    group_list = _groups(raw.class_ids, _merged_ids(tuple(labels), merged_labels))
    if count <= LOOP_NMS_MAX:
        looped = _nms_grouped_loop(raw, group_list, iou_threshold)
        if looped is not None:
            return raw.take(np.asarray(looped[:max_detections], np.int64))
    groups = np.asarray(group_list, np.int64)
    if count > MATRIX_NMS_MAX:
        return _nms_group_by_group(raw, groups, iou_threshold, max_detections)
    # ``nms`` over every pair at once, with the same float32 operations in the same order
    # (so each IoU, and each decision, is the one ``nms`` makes).
    scores = raw.scores
    order = np.argsort(-scores, kind="stable")
    boxes = raw.boxes
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    iw = np.maximum(0.0, np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1))
    ih = np.maximum(0.0, np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1))
    inter = iw * ih
    union = areas[:, None] + areas - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    suppresses = (~(iou <= iou_threshold) & (groups[:, None] == groups)).tolist()
    alive = [True] * count
    kept: list[int] = []
    for best in order.tolist():
        if alive[best]:
            kept.append(best)
            alive = [a and not s for a, s in zip(alive, suppresses[best], strict=True)]
    kept_array = np.asarray(kept, np.int64)
    ranked = np.lexsort((kept_array, groups[kept_array], -scores[kept_array]))
    return raw.take(kept_array[ranked][:max_detections])


def _nms_group_by_group(
    raw: RawDetections, groups: IntArray, iou_threshold: float, max_detections: int
) -> RawDetections:
    kept_parts: list[IntArray] = []
    # sorted(set()) not np.unique: numpy 2's unique imports numpy.ma (~1.5 MB resident)
    for group in sorted(set(groups.tolist())):
        members = np.flatnonzero(groups == group)
        kept_parts.append(members[nms(raw.boxes[members], raw.scores[members], iou_threshold)])
    kept = np.concatenate(kept_parts)
    kept = kept[np.argsort(-raw.scores[kept], kind="stable")][:max_detections]
    return raw.take(kept)


def to_detections(raw: RawDetections, labels: Sequence[str]) -> tuple[Detection, ...]:
    # tolist(): Python floats and ints at once (the same values as float() and int() of each)
    return tuple(
        Detection(
            label=labels[class_id],
            class_id=class_id,
            score=score,
            box=Box(x_min, y_min, x_max, y_max).clipped(),
        )
        for (x_min, y_min, x_max, y_max), score, class_id in zip(
            raw.boxes.tolist(), raw.scores.tolist(), raw.class_ids.tolist(), strict=True
        )
    )
