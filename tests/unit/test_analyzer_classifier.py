"""``method: classifier``: any analyzer as a TFLite image classifier on its region.

Two interpreters: a fake one (a uint8-quantised "colour classifier", to test
quantisation, hysteresis and errors without a runtime) and a real one, a one-operator
.tflite (MEAN over the picture) written at test time with the flatbuffer schema that
ships with ai-edge-litert, run by the real LiteRT interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.analytics import SceneState
from edge_agent.analyzers import ClassifierAnalyzer, build_analyzers
from edge_agent.analyzers.classifier import ClassifierLoadError, resolve_classifier_model
from edge_agent.analyzers.config import (
    ClassifierConfig,
    FloodAnalyzerConfig,
    RegionConfig,
    TamperAnalyzerConfig,
)
from edge_agent.detect.runtime import Interpreter
from edge_agent.types import Frame, ImageBGR

WALL_S = 1_750_000_000.0


class ColourClassifier:
    """A fake quantised classifier: scores for "red", "green", "blue" are the mean of each
    RGB channel of its input, out of 255, as uint8 with scale 1/255."""

    def __init__(self, *, size: int = 8, labels: int = 3, input_shape: list[int] | None = None):
        self.shape = input_shape or [1, size, size, 3]
        self.outputs = labels
        self.inputs: list[npt.NDArray[Any]] = []
        self._scores = np.zeros((1, labels), np.uint8)

    def allocate_tensors(self) -> None: ...

    def get_input_details(self) -> Sequence[dict[str, Any]]:
        return [{"index": 0, "shape": np.array(self.shape), "dtype": np.uint8,
                 "quantization": (0.0078125, 128)}]  # fmt: skip

    def get_output_details(self) -> Sequence[dict[str, Any]]:
        return [{"index": 7, "shape": np.array([1, self.outputs]), "dtype": np.uint8,
                 "quantization": (1.0 / 255.0, 0)}]  # fmt: skip

    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any]) -> None:
        assert tensor_index == 0
        self.inputs.append(value)

    def invoke(self) -> None:
        means = self.inputs[-1][0].reshape(-1, 3).mean(axis=0)
        self._scores = np.rint(means[: self.outputs]).astype(np.uint8)[None, :]

    def get_tensor(self, tensor_index: int) -> npt.NDArray[np.generic]:
        assert tensor_index == 7
        return self._scores


def _factory(fake: ColourClassifier) -> Any:
    def make(path: Path, threads: int) -> Interpreter:
        return fake

    return make


def _config(**overrides: Any) -> ClassifierConfig:
    data: dict[str, Any] = {"model": "/models/colour.tflite", "labels": ["red", "green", "blue"]}
    data.update(overrides)
    return ClassifierConfig.model_validate(data)


def _analyzer(fake: ColourClassifier, config: ClassifierConfig | None = None,
              region: RegionConfig | None = None) -> ClassifierAnalyzer:  # fmt: skip
    return ClassifierAnalyzer(
        name="paint",
        resting="green",
        config=config or _config(),
        region=region or RegionConfig(),
        every_s=1.0,
        min_duration_s=2.0,
        camera_id="cam1",
        interpreter_factory=_factory(fake),
        model_path=Path("/models/colour.tflite"),
    )


def _solid(bgr: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> ImageBGR:
    return np.full((size[1], size[0], 3), bgr, np.uint8)


def _run(analyzer: ClassifierAnalyzer, pictures: list[ImageBGR]) -> list[tuple[int, SceneState]]:
    changes = []
    for t, picture in enumerate(pictures):
        frame = Frame("cam1", t, WALL_S + t, float(t), picture)
        changes.extend((t, s) for s in analyzer.update(frame, float(t)))
    return changes


def test_the_best_label_becomes_the_state_after_the_minimum_duration() -> None:
    fake = ColourClassifier()
    analyzer = _analyzer(fake)
    red, blue = _solid((0, 0, 250)), _solid((250, 0, 0))
    changes = _run(analyzer, [red] * 3 + [blue] * 4)
    assert [(t, s.state) for t, s in changes] == [(2, "red"), (5, "blue")]
    state = changes[0][1]
    assert state.analyzer == "paint" and state.camera_id == "cam1"
    assert state.score == pytest.approx(250 / 255, abs=0.01)
    assert state.detail["red"] == pytest.approx(250 / 255, abs=0.01)
    # The model got RGB (red first) at its input size, as uint8.
    assert fake.inputs[0].shape == (1, 8, 8, 3) and fake.inputs[0].dtype == np.uint8
    assert int(fake.inputs[0][0, 0, 0, 0]) == 250


def test_hysteresis_holds_a_state_above_the_exit_score_and_falls_back_to_resting() -> None:
    analyzer = _analyzer(ColourClassifier(), _config(enter_score=0.6, exit_score=0.4))
    strong, fading, gone = _solid((0, 0, 200)), _solid((0, 0, 120)), _solid((0, 0, 60))
    changes = _run(analyzer, [strong] * 3 + [fading] * 4 + [gone] * 3)
    assert [(t, s.state) for t, s in changes] == [(2, "red"), (9, "green")]


def test_the_region_is_what_the_model_sees() -> None:
    fake = ColourClassifier()
    analyzer = _analyzer(fake, region=RegionConfig(box=(0.5, 0.0, 1.0, 1.0)))
    picture = _solid((0, 0, 250))
    picture[:, 32:] = (250, 0, 0)  # the right half is blue
    assert [s.state for _, s in _run(analyzer, [picture] * 3)] == ["blue"]


def test_logits_get_a_softmax_and_float_inputs_are_normalised() -> None:
    fake = ColourClassifier()
    analyzer = _analyzer(fake, _config(output="logits"))
    scores = analyzer.classify(_solid((0, 0, 255)))
    assert scores.sum() == pytest.approx(1.0)
    assert int(np.argmax(scores)) == 0


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (ColourClassifier(labels=4), "4 outputs but 3 labels"),
        (ColourClassifier(input_shape=[1, 8, 8]), "not \\[1, height, width, 3\\]"),
    ],
)
def test_a_model_that_does_not_fit_the_config_is_refused(
    fake: ColourClassifier, message: str
) -> None:
    with pytest.raises(ClassifierLoadError, match=message):
        _analyzer(fake)


def test_a_missing_model_file_is_a_clear_error() -> None:
    with pytest.raises(ClassifierLoadError, match="does not exist"):
        resolve_classifier_model("/no/such/flood.tflite")


def test_build_analyzers_makes_a_classifier_when_configured(tmp_path: Path) -> None:
    model = tmp_path / "flood.tflite"
    model.write_bytes(b"not read by the fake")
    config = FloodAnalyzerConfig(
        method="classifier",
        min_duration_s=2.0,
        classifier={"model": str(model), "labels": ["dry", "none", "flooded"]},
    )
    fake = ColourClassifier()
    (analyzer,) = build_analyzers([config], camera_id="cam1", interpreter_factory=_factory(fake))
    assert isinstance(analyzer, ClassifierAnalyzer) and analyzer.name == "flood"
    # No label reaches enter_score on a grey picture: the kind's resting state "none".
    grey = _solid((120, 120, 120))
    states = [s.state for _ in range(4) for s in analyzer.update(
        Frame("cam1", 0, WALL_S, float(_), grey), float(_))]  # fmt: skip
    assert states == ["none"]


# --- a real .tflite, written at test time ------------------------------------------------


def _mean_model(path: Path, size: int = 8) -> None:
    """A float32 [1,size,size,3] -> [1,3] model: the mean of each channel (one MEAN op)."""
    # Both ship with ai-edge-litert (a dependency): a failure here is a real one.
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    empty, axes = schema.BufferT(), schema.BufferT()
    axes.data = np.frombuffer(np.array([1, 2], np.int32).tobytes(), np.uint8)
    model.buffers = [empty, axes]

    def tensor(name: str, shape: list[int], kind: int, buffer: int) -> Any:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array(shape, np.int32), kind, buffer
        return t

    graph = schema.SubGraphT()
    graph.tensors = [
        tensor("image", [1, size, size, 3], schema.TensorType.FLOAT32, 0),
        tensor("axes", [2], schema.TensorType.INT32, 1),
        tensor("scores", [1, 3], schema.TensorType.FLOAT32, 0),
    ]
    graph.inputs, graph.outputs, graph.name = [0], [2], "main"
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1], [2]
    operator.builtinOptionsType = schema.BuiltinOptions.ReducerOptions
    operator.builtinOptions = schema.ReducerOptionsT()
    graph.operators = [operator]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.MEAN
    code.version = 1
    model.operatorCodes, model.subgraphs = [code], [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def test_a_real_tflite_classifier_runs_on_the_region(tmp_path: Path) -> None:
    model = tmp_path / "colour.tflite"
    _mean_model(model)
    config = FloodAnalyzerConfig(
        method="classifier",
        min_duration_s=0.0,
        region={"box": (0.0, 0.5, 1.0, 1.0)},
        classifier={
            "model": str(model),
            "labels": ["flooded", "none", "puddle"],  # R, G, B means
            "input_mean": 0.0,
            "input_std": 25.5,  # pixels 0..10: mean channel values become logits
            "output": "logits",
        },
    )
    (analyzer,) = build_analyzers([config], camera_id="cam1")
    top_blue = np.zeros((60, 80, 3), np.uint8)
    top_blue[:30] = (255, 0, 0)  # outside the region
    top_blue[30:] = (0, 0, 255)  # the region is red
    (state,) = analyzer.update(Frame("cam1", 0, WALL_S, 0.0, top_blue), 0.0)
    assert state.state == "flooded" and state.score is not None and state.score > 0.99


def test_a_tamper_classifier_pauses_and_suspends_the_region_analyzers(tmp_path: Path) -> None:
    fake = ColourClassifier()
    model = tmp_path / "tamper.tflite"
    model.write_bytes(b"")
    configs = [
        TamperAnalyzerConfig(
            method="classifier",
            classifier=_config(model=str(model), labels=["moved", "ok", "covered"]),
            min_duration_s=2.0,
        ),
        FloodAnalyzerConfig(learn_s=2.0, min_duration_s=2.0),
    ]
    analyzers = build_analyzers(configs, camera_id="cam1", interpreter_factory=_factory(fake))
    published = []
    for t in range(20):
        colour = (0, 0, 255) if t >= 10 else (0, 255, 0)  # red: "moved"; green: "ok"
        image = np.full((36, 64, 3), colour, np.uint8)
        image[::4] = 40  # a little structure for the flood analyzer's texture
        frame = Frame("cam1", t, WALL_S + t, float(t), image)
        for analyzer in analyzers:
            published.extend(f"{s.analyzer}:{s.state}" for s in analyzer.update(frame, float(t)))
    assert published == ["tamper:ok", "flood:none", "tamper:moved", "flood:unknown"]
