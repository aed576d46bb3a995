"""Any analyzer as a TFLite image classifier on its region (``method: classifier``).

A city that has trained a model ("dry / puddle / flooded" from its own cameras) drops the
file in and names it in config; no code changes. The model sees the region's bounding box
resized to its input (aspect ratio not kept, as classifiers are usually trained), and its
[1, N] scores go through the same hysteresis and persistence as the pixel analyzers:

- the best label becomes the candidate state when its score reaches ``enter_score``;
- otherwise the current state holds while its own score stays at ``exit_score`` or more;
- otherwise the candidate is the resting state (the kind's "none"/"ok" if it is one of
  the labels, else the first label).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent import datafiles
from edge_agent.analytics import DetailValue, SceneState
from edge_agent.analyzers.common import Cadence, Persistence, ViewReport, make_state
from edge_agent.analyzers.config import ClassifierConfig, RegionConfig
from edge_agent.datafiles import DataFileError
from edge_agent.detect.runtime import Interpreter, load_interpreter
from edge_agent.types import Frame, ImageBGR

InterpreterFactory = Callable[[Path, int], Interpreter]


class ClassifierLoadError(DataFileError):
    """The classifier model is missing, not loadable, or not an image classifier."""


def resolve_classifier_model(model: str) -> Path:
    """A path (``/opt/models/flood.tflite``, ``./flood.tflite``) or a manifest name."""
    if "/" in model or model.endswith(".tflite"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ClassifierLoadError(f"classifier model file {model} does not exist")
        return path
    return datafiles.resolve_model_file(model)


class ClassifierAnalyzer:
    def __init__(
        self,
        *,
        name: str,
        resting: str,
        config: ClassifierConfig,
        region: RegionConfig,
        every_s: float,
        min_duration_s: float,
        camera_id: str = "",
        interpreter_factory: InterpreterFactory = load_interpreter,
        model_path: Path | None = None,
    ) -> None:
        self._name = name
        self.config = config
        self._camera_id = camera_id
        self._labels = tuple(config.labels)
        self._resting = resting if resting in self._labels else self._labels[0]
        self._cadence = Cadence(every_s)
        self._persistence = Persistence(min_duration_s)
        self._restart_requested = False
        self.model_path = model_path or resolve_classifier_model(config.model)
        try:
            self._interpreter = interpreter_factory(self.model_path, config.threads)
        except (ValueError, RuntimeError) as error:
            raise ClassifierLoadError(
                f"{self.model_path} is not a loadable TFLite model: {error}"
            ) from error
        self._input = _single(self._interpreter.get_input_details(), "input", self.model_path)
        self._output = _single(self._interpreter.get_output_details(), "output", self.model_path)
        shape = [int(v) for v in self._input["shape"]]
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ClassifierLoadError(
                f"{self.model_path}: input shape {shape} is not [1, height, width, 3]"
            )
        self._input_size = (shape[2], shape[1])  # width, height
        self._input_dtype = np.dtype(self._input["dtype"])
        if self._input_dtype not in (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32)):
            raise ClassifierLoadError(
                f"{self.model_path}: input type {self._input_dtype} is not uint8, int8 or float32"
            )
        outputs = int(np.prod([int(v) for v in self._output["shape"]]))
        if outputs != len(self._labels):
            raise ClassifierLoadError(
                f"{self.model_path}: the model has {outputs} outputs but {len(self._labels)} "
                f"labels are configured ({', '.join(self._labels)})"
            )
        points = region.points()
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        self._box = (min(xs), min(ys), max(xs), max(ys))
        self.last_scores: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> str | None:
        return self._persistence.state

    # A classifier has no reference to set or learn; these let it stand where the pixel
    # analyzers do (paused and resumed by the camera's tamper analyzer).

    def request_reference(self, mode: str = "learn") -> None:
        """Nothing to learn: judge afresh from the next frame."""
        self._restart_requested = True

    @property
    def reference_pending(self) -> bool:
        return self._restart_requested

    @property
    def reference_errors(self) -> int:
        return 0  # nothing stored

    def relearn(self) -> None:
        self.restart()

    def view(self) -> ViewReport:
        """As a camera's tamper analyzer: its labels (``ok``, ``moved``, ...) pause or
        suspend the region analyzers; it has no reference view, so one epoch."""
        return ViewReport(self._persistence.state, 1)

    def restart(self) -> None:
        """Judge afresh: the next level is published again."""
        self._persistence.reset()
        self._restart_requested = False

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        if not self._cadence.due(now_s):
            return ()
        if self._restart_requested:
            self.restart()
        scores = self.classify(frame.for_analysis)
        self.last_scores = dict(zip(self._labels, (float(s) for s in scores), strict=True))
        candidate = self._candidate(scores)
        change = self._persistence.update(candidate, now_s, frame.captured_at_s)
        if change is None:
            return ()
        detail: dict[str, DetailValue] = {
            label: round(score, 4) for label, score in self.last_scores.items()
        }
        score = round(self.last_scores[change.state], 4)
        return (make_state(frame, self.name, change, score, detail),)

    def classify(self, image: ImageBGR) -> npt.NDArray[np.float32]:
        """The model's scores for the region of ``image``, one per label."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = self._box
        px0, py0 = int(x0 * width), int(y0 * height)
        px1, py1 = max(px0 + 1, round(x1 * width)), max(py0 + 1, round(y1 * height))
        crop = image[py0:py1, px0:px1]
        resized = cv2.resize(crop, self._input_size, interpolation=cv2.INTER_AREA)
        if self.config.input_order == "rgb":
            resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        tensor = self._to_input(np.asarray(resized, np.uint8))[None, ...]
        self._interpreter.set_tensor(int(self._input["index"]), tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(int(self._output["index"]))
        scores = _dequantize(raw, self._output).reshape(-1)
        if self.config.output == "logits":
            exp = np.exp(scores - scores.max())
            scores = exp / exp.sum()
        return scores.astype(np.float32)

    def _to_input(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        if self._input_dtype == np.dtype(np.uint8):
            return pixels
        if self._input_dtype == np.dtype(np.int8):
            return (pixels.astype(np.int16) - 128).astype(np.int8)
        config = self.config
        return ((pixels.astype(np.float32) - config.input_mean) / config.input_std).astype(
            np.float32
        )

    def _candidate(self, scores: npt.NDArray[np.float32]) -> str:
        best = int(np.argmax(scores))
        if float(scores[best]) >= self.config.enter_score:
            return self._labels[best]
        current = self._persistence.state
        if (
            current in self._labels
            and float(scores[self._labels.index(current)]) >= self.config.exit_score
        ):
            return current
        return self._resting


def _single(details: Sequence[dict[str, Any]], what: str, path: Path) -> dict[str, Any]:
    if len(details) != 1:
        raise ClassifierLoadError(f"{path}: expected one {what} tensor, found {len(details)}")
    return details[0]


def _dequantize(raw: npt.NDArray[Any], details: dict[str, Any]) -> npt.NDArray[np.float32]:
    values = raw.astype(np.float32)
    if np.dtype(details["dtype"]) in (np.dtype(np.uint8), np.dtype(np.int8)):
        scale, zero_point = details.get("quantization", (0.0, 0))
        # Without quantisation parameters, integer scores 0..255 mean 0..1.
        values = (values - float(zero_point)) * float(scale) if scale else values / 255.0
    return values
