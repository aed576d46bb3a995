"""Model layouts on synthetic tensors: the Ultralytics decode (int8 and float, both
orientations), the layout registry, user models with label files and their load errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fakes.interpreter import FakeInterpreter, tensor

from edge_agent.datafiles import load_manifest
from edge_agent.detect import layouts, tflite
from edge_agent.detect.labels import COCO80, LabelFileError, read_label_file
from edge_agent.detect.layouts import LAYOUTS, LayoutContext, build_layout, register_layout
from edge_agent.detect.postprocess import Letterbox, Quantization, RawDetections, decode_ultralytics
from edge_agent.detect.tflite import ModelLoadError, TFLiteDetector
from edge_agent.types import ImageBGR

CAR, PERSON = COCO80.index("car"), COCO80.index("person")
OUT_SCALE, OUT_ZP = 0.0045247, -119  # yolo11n_int8_416's output quantisation


def _columns(rows: list[tuple[float, float, float, float, int, float]], classes: int) -> Any:
    """[4+C, N] float: one column per (cx, cy, w, h, class id, score)."""
    table = np.zeros((4 + classes, len(rows)), np.float32)
    for n, (cx, cy, w, h, class_id, score) in enumerate(rows):
        table[:4, n] = (cx, cy, w, h)
        table[4 + class_id, n] = score
    return table


def _quantize(values: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
    return np.clip(np.round(values / OUT_SCALE + OUT_ZP), -128, 127).astype(np.int8)


# -- decode_ultralytics


@pytest.mark.parametrize("channels_first", [True, False])
def test_ultralytics_float_decode_in_input_pixels_either_orientation(channels_first: bool) -> None:
    fit = Letterbox(scale=0.5, image_width_px=832, image_height_px=416)  # 832x416 -> 416x208
    table = _columns([(208, 104, 100, 50, CAR, 0.8), (300, 150, 20, 40, PERSON, 0.3)], 80)
    output = (table if channels_first else table.T)[np.newaxis]
    raw = decode_ultralytics(
        output, fit, 0.5, channels_first=channels_first, input_size_px=(416, 416)
    )
    assert raw.class_ids.tolist() == [CAR]
    assert raw.scores.tolist() == pytest.approx([0.8])  # no objectness: the class score
    # input px (158..258, 79..129) / 0.5 -> original px (316..516, 158..258)
    assert raw.boxes[0].tolist() == pytest.approx([316 / 832, 158 / 416, 516 / 832, 258 / 416])


@pytest.mark.parametrize("channels_first", [True, False])
def test_ultralytics_int8_decode_dequantises_normalised_boxes(channels_first: bool) -> None:
    """TFLite exports give boxes normalised to the input; int8 with the tensor's scale/zp."""
    fit = Letterbox(scale=1.0, image_width_px=416, image_height_px=416)
    table = _columns(
        [(0.5, 0.5, 0.25, 0.5, PERSON, 0.9), (0.2, 0.2, 0.1, 0.1, CAR, 0.45)], classes=80
    )
    quantized = _quantize(table)
    output = (quantized if channels_first else quantized.T)[np.newaxis]
    raw = decode_ultralytics(
        output,
        fit,
        0.5,
        channels_first=channels_first,
        input_size_px=(416, 416),
        quantization=Quantization(OUT_SCALE, OUT_ZP),
    )
    assert raw.class_ids.tolist() == [PERSON]
    assert raw.scores[0] == pytest.approx(0.9, abs=OUT_SCALE)
    assert raw.boxes[0].tolist() == pytest.approx([0.375, 0.25, 0.625, 0.75], abs=0.01)


def test_ultralytics_threshold_is_exact_in_the_quantised_domain() -> None:
    quant = Quantization(OUT_SCALE, OUT_ZP)
    table = _columns([(0.5, 0.5, 0.2, 0.2, PERSON, 0.5)], classes=2)
    raw_output = _quantize(table)[np.newaxis]
    real_score = (int(raw_output[0, 4, 0]) - OUT_ZP) * OUT_SCALE

    def found(threshold: float) -> int:
        return decode_ultralytics(
            raw_output,
            Letterbox(1.0, 416, 416),
            threshold,
            channels_first=True,
            input_size_px=(416, 416),
            quantization=quant,
        ).scores.size

    assert found(real_score - 1e-4) == 1
    assert found(real_score + 1e-4) == 0


def test_ultralytics_allowed_classes_and_nothing_found() -> None:
    table = _columns([(100, 100, 20, 20, PERSON, 0.9), (200, 200, 20, 20, CAR, 0.9)], 80)
    kwargs: dict[str, Any] = {"channels_first": True, "input_size_px": (416, 416)}
    fit = Letterbox(1.0, 416, 416)
    raw = decode_ultralytics(table[np.newaxis], fit, 0.5, frozenset({CAR}), **kwargs)
    assert raw.class_ids.tolist() == [CAR]
    empty = decode_ultralytics(np.zeros((1, 84, 3549), np.float32), fit, 0.25, **kwargs)
    assert empty.boxes.shape == (0, 4) and empty.scores.shape == (0,)


# -- the registry


def test_registry_holds_every_layout_and_refuses_duplicates() -> None:
    assert {"ssd_postprocess", "yolox", "ultralytics"} <= set(LAYOUTS)
    with pytest.raises(ValueError, match="twice"):
        register_layout("yolox")(layouts.YoloxLayout)


def _context(outputs: list[dict[str, Any]], labels: tuple[str, ...] = COCO80) -> LayoutContext:
    return LayoutContext(
        model_path=Path("model.tflite"),
        input=tensor("in", 0, [1, 416, 416, 3], np.int8, (1 / 255, -128)),
        outputs=outputs,
        labels=labels,
        score_threshold=0.5,
        allowed_class_ids=None,
    )


def test_unknown_layout_names_the_known_ones() -> None:
    with pytest.raises(ModelLoadError, match=r"unknown model layout 'yolov5'.*ultralytics"):
        build_layout("yolov5", _context([]))


def test_a_registered_layout_is_used_by_the_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extending the detector is one class in the registry, no branch in the detector."""

    class EverythingIsAPerson:
        def __init__(self, context: LayoutContext) -> None:
            self.labels = context.labels

        def prepare(self, image: ImageBGR) -> tuple[npt.NDArray[Any], Letterbox | None]:
            return np.zeros((1, 416, 416, 3), np.int8), None

        def decode(self, interpreter: Any, fit: Letterbox | None) -> RawDetections:
            return RawDetections(
                np.array([[0.1, 0.2, 0.3, 0.4]], np.float32),
                np.array([0.9], np.float32),
                np.array([0], np.int64),
            )

    monkeypatch.setitem(LAYOUTS, "everything_person", EverythingIsAPerson)
    detector, _ = _user_detector(tmp_path, monkeypatch, [], "everything_person", ["person"])
    assert [d.label for d in detector.detect(np.zeros((8, 8, 3), np.uint8)).detections] == [
        "person"
    ]


# -- Ultralytics layout through the detector: a user's model with its own labels


def _user_detector(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outputs: list[dict[str, Any]],
    layout: str,
    labels: list[str],
    values: dict[int, Any] | None = None,
    input_details: dict[str, Any] | None = None,
) -> tuple[TFLiteDetector, FakeInterpreter]:
    model = tmp_path / "piles.tflite"
    model.write_bytes(b"not read by the fake runtime")
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(labels) + "\n")
    fake = FakeInterpreter(
        [input_details or tensor("images", 0, [1, 416, 416, 3], np.int8, (1 / 255, -128))],
        outputs,
        values,
    )
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, n: fake)
    detector = TFLiteDetector(
        str(model), layout=layout, labels_file=labels_file, score_threshold=0.5
    )
    return detector, fake


def test_user_ultralytics_model_with_its_own_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = ["garbage_pile", "water", "person"]
    table = _columns([(0.5, 0.25, 0.5, 0.5, 1, 0.8), (0.1, 0.1, 0.1, 0.1, 0, 0.2)], 3)
    out = tensor("out", 7, [1, 7, 2], np.int8, (OUT_SCALE, OUT_ZP))
    detector, fake = _user_detector(
        tmp_path, monkeypatch, [out], "ultralytics", labels, {7: _quantize(table)[np.newaxis]}
    )
    image = np.zeros((208, 416, 3), np.uint8)  # letterboxed into the top half
    image[..., 2] = 255  # BGR red
    result = detector.detect(image)
    assert detector.labels == tuple(labels) and detector.model_name == "piles.tflite"
    assert [d.label for d in result.detections] == ["water"]
    # cx 208 cy 104 w 208 h 208 input px on a 416x208 image (scale 1)
    assert result.detections[0].box.as_list() == pytest.approx([0.25, 0.0, 0.75, 1.0], abs=0.01)
    fed = fake.last_input
    assert fed is not None
    assert fed.dtype == np.int8 and fed.shape == (1, 416, 416, 3)
    assert fed[0, 0, 0].tolist() == [127, -128, -128]  # RGB red: q = pixel - 128
    assert fed[0, 300, 0].tolist() == [114 - 128] * 3  # the grey letterbox pad


def test_the_padding_follows_the_picture_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tensor("out", 7, [1, 7, 2], np.int8, (OUT_SCALE, OUT_ZP))
    table = _quantize(_columns([(0.1, 0.1, 0.1, 0.1, 0, 0.2)] * 2, 3))[np.newaxis]
    detector, fake = _user_detector(
        tmp_path, monkeypatch, [out], "ultralytics", ["a", "b", "c"], {7: table}
    )
    square, wide = np.full((416, 416, 3), 255, np.uint8), np.full((208, 416, 3), 255, np.uint8)
    for image, row_300 in ((wide, 114), (square, 255), (wide, 114), (wide, 114)):
        detector.detect(image)
        fed = fake.last_input
        assert fed is not None
        assert fed[0, 0, 0].tolist() == [127] * 3  # white: q = pixel - 128
        assert fed[0, 300, 0].tolist() == [row_300 - 128] * 3  # pad, or picture


def test_float_input_is_fed_0_to_1_rgb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tensor("out", 7, [1, 8400, 5])
    detector, fake = _user_detector(
        tmp_path,
        monkeypatch,
        [out],
        "ultralytics",
        ["pile"],
        {7: np.zeros((1, 8400, 5), np.float32)},
        input_details=tensor("images", 0, [1, 640, 640, 3], np.float32),
    )
    image = np.zeros((640, 640, 3), np.uint8)
    image[..., 0] = 255  # BGR blue
    assert detector.detect(image).detections == ()
    fed = fake.last_input
    assert fed is not None
    assert fed[0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_label_count_not_matching_the_output_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tensor("out", 7, [1, 84, 3549], np.int8, (OUT_SCALE, OUT_ZP))
    with pytest.raises(ModelLoadError) as caught:
        _user_detector(tmp_path, monkeypatch, [out], "ultralytics", ["pile", "water"])
    message = str(caught.value)
    assert "[1, 84, 3549]" in message and "2 labels" in message and "80 classes" in message


def test_a_model_of_another_layout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssd_outputs = [tensor(f"o{i}", i + 1, s) for i, s in enumerate([[1, 10, 4], [1, 10], [1]])]
    with pytest.raises(ModelLoadError, match="not the Ultralytics layout"):
        _user_detector(tmp_path, monkeypatch, ssd_outputs, "ultralytics", ["pile"])


def test_model_file_needs_layout_and_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "piles.tflite"
    model.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="layout"):
        tflite.model_source(str(model))
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, n: FakeInterpreter([], []))
    with pytest.raises(ModelLoadError, match="label file"):
        tflite.model_source(str(model), layout="ultralytics")
    with pytest.raises(ModelLoadError, match="is not a file"):
        tflite.model_source(str(tmp_path), layout="ultralytics")
    with pytest.raises(ModelLoadError, match="does not exist"):
        tflite.model_source(str(tmp_path / "absent.tflite"), layout="ultralytics")
    with pytest.raises(ModelLoadError, match="unknown model layout 'yolo'"):
        tflite.model_source(str(model), layout="yolo")


def test_a_manifest_model_keeps_its_own_layout() -> None:
    with pytest.raises(ModelLoadError, match="yolox model in the manifest"):
        tflite.model_source("yolox_nano", layout="ultralytics")


# -- label files


@pytest.mark.parametrize(
    "text",
    [
        "garbage_pile\nwater\n\n",
        "- garbage_pile\n- water\n",
        "[garbage_pile, water]\n",
        "names:\n  0: garbage_pile\n  1: water\n",
        "0: garbage_pile\n1: water\n",
    ],
)
def test_label_file_forms(tmp_path: Path, text: str) -> None:
    path = tmp_path / "labels"
    path.write_text(text)
    assert read_label_file(path) == ("garbage_pile", "water")


def test_label_file_line_i_is_class_i(tmp_path: Path) -> None:
    """No background line is dropped from a user's file: that would shift every class."""
    path = tmp_path / "labels.txt"
    path.write_text("background\npile\n")
    assert read_label_file(path) == ("background", "pile")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no labels"),
        ("pile\n\nwater\n", "empty name"),
        ("names:\n  0: pile\n  2: water\n", "ids must be 0..1"),
        ("- pile\n- [water]\n", "must list names"),
        ("- pile\n  - : [\n", "not valid YAML"),
        # were a TypeError (sorting 0 and 'x'), the last 'car' kept, a RecursionError:
        ("names: {0: person, x: car}\n", r"ids must be 0, 1, 2, \.\.\., got 0, 'x'"),
        ("{0: person, 0: car, 1: bus}\n", "'0' given twice"),
        ("[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64 levels"),
    ],
)
def test_label_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(text)
    with pytest.raises(LabelFileError, match=message):
        read_label_file(path)


def test_missing_label_file_is_a_model_load_error(tmp_path: Path) -> None:
    model = tmp_path / "piles.tflite"
    model.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        tflite.model_source(str(model), layout="yolox", labels_file=tmp_path / "none.txt")


# -- the shipped manifest


def test_yolo11n_is_listed_as_agpl_and_is_never_a_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from edge_agent.assemble import CROWD_MODEL
    from edge_agent.cli import detect, models
    from edge_agent.config import DetectorConfig

    manifest = load_manifest()
    entry = manifest.model("yolo11n_int8_416")
    assert (entry.licence, entry.format, entry.input_dtype) == ("AGPL-3.0", "ultralytics", "int8")
    assert entry.sha256 == "9d89088ef2c23a296bff00e101a869b5ce9ffcf7af9e4c2ffb26ec26cc3efd1d"
    parser = argparse.ArgumentParser(prog="edge-agent")
    subparsers = parser.add_subparsers(dest="command", required=True)
    detect.register(subparsers)
    models.register(subparsers)
    defaults = {DetectorConfig().model, parser.parse_args(["detect", "x.jpg"]).model, CROWD_MODEL}
    for name in defaults:
        assert "GPL" not in manifest.model(name).licence, name
    args = parser.parse_args(["models", "list"])
    assert args.handler(args) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "AGPL-3.0" in rows["yolo11n_int8_416"]
