"""Faces: mediapipe's BlazeFace full-range detector, decoded here, and a blur that
cannot be undone.

The model (``mediapipe_face_detection_full_range_sparse.tflite``, Apache-2.0) takes one
192×192 RGB picture scaled to -1..1 and gives, for each of 2304 SSD anchors, 16 regressors
(box centre x, y, width, height, then six keypoints, in input pixels relative to the anchor)
and one logit. The anchors are mediapipe's ``face_detection_full_range.pbtxt``
SsdAnchorsCalculator options: one layer of stride 4 (a 48×48 grid), one anchor per cell
(``interpolated_scale_aspect_ratio: 0``), offset 0.5, ``fixed_anchor_size: true`` (so every
anchor is 1×1 and the regressors are simply divided by 192). The picture is letterboxed
(kept whole, padded, centred) as mediapipe's ``keep_aspect_ratio`` does; overlapping faces are
merged by weighted NMS at IoU 0.3, as its ``TensorsToDetections`` + ``NonMaxSuppression``.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent import datafiles
from edge_agent.detect.runtime import Interpreter, load_interpreter
from edge_agent.types import ImageBGR

INPUT_PX = 192
STRIDE_PX = 4
NMS_IOU = 0.3
RAW_SCORE_LIMIT = 100.0  # mediapipe's score_clipping_thresh
BLUR_CELLS = 4  # a face becomes 4×4 averages, smoothed: nothing of it can be recovered
FACE_MARGIN = 0.25  # blur this much more than the box on each side (hair, ears, chin)


class FaceModelError(ValueError):
    """The face model is not the BlazeFace layout this module decodes."""


@dataclass(frozen=True)
class Face:
    """A face in pixel coordinates of the picture it was found in."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float

    @property
    def width_px(self) -> float:
        return self.x_max - self.x_min


def full_range_anchors() -> npt.NDArray[np.float32]:
    """The 2304 anchor centres (x, y) in 0..1, row by row, as mediapipe's SSD anchors."""
    cells = INPUT_PX // STRIDE_PX
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


@dataclass(frozen=True)
class _Letterbox:
    scale: float  # input px per picture px
    pad_x_px: float
    pad_y_px: float


def _letterbox(image: ImageBGR) -> tuple[npt.NDArray[np.float32], _Letterbox]:
    height_px, width_px = image.shape[:2]
    scale = INPUT_PX / max(height_px, width_px)
    new_w, new_h = max(1, round(width_px * scale)), max(1, round(height_px * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((INPUT_PX, INPUT_PX, 3), dtype=np.uint8)
    pad_x, pad_y = (INPUT_PX - new_w) // 2, (INPUT_PX - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
    return (rgb / 127.5 - 1.0)[np.newaxis], _Letterbox(scale, pad_x, pad_y)


def _iou(box: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    result: npt.NDArray[np.float32] = inter / np.maximum(area + areas - inter, 1e-9)
    return result


def weighted_nms(
    boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou: float = NMS_IOU
) -> list[tuple[npt.NDArray[np.float32], float]]:
    """Mediapipe's WEIGHTED suppression: each cluster of boxes overlapping the best by more
    than ``iou`` becomes their score-weighted mean, with the best score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept: list[tuple[npt.NDArray[np.float32], float]] = []
    remaining = np.ones(len(scores), dtype=bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > iou)
        cluster[i] = True
        weights = scores[cluster]
        kept.append(((boxes[cluster] * weights[:, None]).sum(0) / weights.sum(), float(scores[i])))
        remaining &= ~cluster
    return kept


class BlazeFace:
    """One BlazeFace full-range interpreter; ``detect`` is safe from several threads
    (one lock: snapshots, previews and thumbnails of every camera share the model).
    :meth:`with_score_threshold` gives the same interpreter with another threshold."""

    def __init__(self, interpreter: Interpreter, *, score_threshold: float = 0.5) -> None:
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        shapes = sorted(tuple(int(v) for v in o["shape"]) for o in outputs)
        anchors = full_range_anchors()
        n = len(anchors)
        if (
            len(inputs) != 1
            or tuple(int(v) for v in inputs[0]["shape"]) != (1, INPUT_PX, INPUT_PX, 3)
            or shapes != [(1, n, 1), (1, n, 16)]
        ):
            raise FaceModelError(
                f"not a BlazeFace full-range model: input {[i['shape'] for i in inputs]}, "
                f"outputs {shapes} (expected [1,{INPUT_PX},{INPUT_PX},3] in, "
                f"[1,{n},16] and [1,{n},1] out)"
            )
        self._interpreter = interpreter
        self._input = int(inputs[0]["index"])
        by_width = {int(o["shape"][-1]): int(o["index"]) for o in outputs}
        self._regressors, self._logits = by_width[16], by_width[1]
        self._anchors = anchors
        self.score_threshold = score_threshold
        self._min_logit = _logit(score_threshold)
        self._lock = threading.Lock()
        # A view (another threshold) keeps the model it was made from alive, for the cache
        # below; None on the model itself (no cycle: it is freed with its last user).
        self._loaded: BlazeFace | None = None

    def with_score_threshold(self, score_threshold: float) -> BlazeFace:
        """This model with another score threshold: the interpreter and its lock are
        shared (the threshold only filters the decoded scores), nothing is loaded."""
        if score_threshold == self.score_threshold:
            return self
        view = copy.copy(self)
        view.score_threshold = score_threshold
        view._min_logit = _logit(score_threshold)
        view._loaded = self._loaded or self
        return view

    def detect(self, image: ImageBGR) -> list[Face]:
        """The faces in ``image`` (any size; letterboxed into the model's input)."""
        if image.shape[0] < 2 or image.shape[1] < 2:
            return []
        tensor, box = _letterbox(image)
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._regressors)[0].astype(np.float32)
            logits = self._interpreter.get_tensor(self._logits)[0, :, 0].astype(np.float32)
        hits = np.flatnonzero(logits > self._min_logit)
        if hits.size == 0:
            return []
        anchors, reg = self._anchors[hits], raw[hits]
        centre_x = reg[:, 0] + anchors[:, 0] * INPUT_PX  # in input pixels
        centre_y = reg[:, 1] + anchors[:, 1] * INPUT_PX
        half_w, half_h = reg[:, 2] / 2.0, reg[:, 3] / 2.0
        boxes = np.stack(
            [centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1
        )
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        faces: list[Face] = []
        for (x0, y0, x1, y1), score in weighted_nms(boxes, scores.astype(np.float32)):
            if x1 <= x0 or y1 <= y0:
                continue
            faces.append(
                Face(
                    float((x0 - box.pad_x_px) / box.scale),
                    float((y0 - box.pad_y_px) / box.scale),
                    float((x1 - box.pad_x_px) / box.scale),
                    float((y1 - box.pad_y_px) / box.scale),
                    score,
                )
            )
        return faces


def _logit(score_threshold: float) -> float:
    return float(np.log(score_threshold / (1.0 - score_threshold)))


# Loaded models by what loading depends on (file, threads), each kept while something
# uses it (a camera's privacy filter) and dropped with the last user: a config change
# (another model, a reload) leaves only the models the live cameras use.
_models: weakref.WeakValueDictionary[tuple[str, int], BlazeFace] = weakref.WeakValueDictionary()
_models_lock = threading.Lock()


def load_face_model(name: str, *, score_threshold: float = 0.5, num_threads: int = 1) -> BlazeFace:
    """The face model of that manifest name (verified on the search path), loaded once per
    file and thread count while anything uses it, and shared (``score_threshold`` makes a
    view, not a copy): raises DataFileError, RuntimeUnavailable or FaceModelError."""
    path = datafiles.resolve_model_file(name)
    key = (str(path.resolve()), num_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = BlazeFace(load_interpreter(path, num_threads=num_threads))
            _models[key] = model
    return model.with_score_threshold(score_threshold)


def loaded_face_models() -> int:
    """How many face models are loaded now (tests)."""
    with _models_lock:
        return len(_models)


def blur_faces(
    image: ImageBGR, faces: Sequence[Face], *, offset_px: tuple[int, int] = (0, 0)
) -> None:
    """Replace each face (and a margin around it) in place by a smooth 4×4 average.

    Downsampling to 4×4 cells throws the face away (16 colours remain); scaling back up
    with linear interpolation leaves no block edges. A Gaussian would need a kernel about
    the face's size to be as final, and a deblurring attack recovers more from it.
    ``offset_px``: where the picture the faces were found in lies in ``image``."""
    height_px, width_px = image.shape[:2]
    for face in faces:
        margin_x = face.width_px * FACE_MARGIN
        margin_y = (face.y_max - face.y_min) * FACE_MARGIN
        x0 = max(0, int(np.floor(face.x_min - margin_x)) + offset_px[0])
        y0 = max(0, int(np.floor(face.y_min - margin_y)) + offset_px[1])
        x1 = min(width_px, int(np.ceil(face.x_max + margin_x)) + offset_px[0])
        y1 = min(height_px, int(np.ceil(face.y_max + margin_y)) + offset_px[1])
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = image[y0:y1, x0:x1]
        small = cv2.resize(region, (BLUR_CELLS, BLUR_CELLS), interpolation=cv2.INTER_AREA)
        image[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
