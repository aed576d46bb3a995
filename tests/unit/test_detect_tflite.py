"""TFLiteDetector on fake interpreters: SSD output order, labels, box conversion, input checks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fakes.manifest import model_entry

from edge_agent import datafiles
from edge_agent.detect import tflite
from edge_agent.detect.labels import embedded_labels

# -- TFLiteDetector on a fake interpreter (SSD output order, labels, box conversion)


class FakeSsdInterpreter:
    """SSD post-process outputs in TF2 order (scores, boxes, count, classes), unnamed."""

    def __init__(self, named: bool) -> None:
        names = (
            ["TFLite_Detection_PostProcess:2", "TFLite_Detection_PostProcess",
             "TFLite_Detection_PostProcess:3", "TFLite_Detection_PostProcess:1"]
            if named
            else ["StatefulPartitionedCall:0", "StatefulPartitionedCall:1",
                  "StatefulPartitionedCall:2", "StatefulPartitionedCall:3"]
        )  # fmt: skip
        shapes = [[1, 10], [1, 10, 4], [1], [1, 10]]
        self.outputs = [
            {"name": n, "index": 10 + i, "shape": np.array(s)}
            for i, (n, s) in enumerate(zip(names, shapes, strict=True))
        ]
        scores = np.zeros((1, 10), np.float32)
        scores[0, :4] = (0.9, 0.8, 0.7, 0.2)
        classes = np.zeros((1, 10), np.float32)
        classes[0, :4] = (0, 2, 11, 7)  # person, car, "???" (unused id), truck (low score)
        boxes = np.zeros((1, 10, 4), np.float32)
        boxes[0, 0] = (0.1, 0.2, 0.5, 0.6)  # ymin, xmin, ymax, xmax
        boxes[0, 1] = (0.5, 0.5, 0.9, 1.2)  # spills over the edge: clipped
        self.tensors = {10: scores, 11: boxes, 12: np.array([4.0], np.float32), 13: classes}
        self.input: Any = None  # as the last invoke saw it
        self.buffer = np.zeros((1, 300, 300, 3), np.uint8)

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict[str, Any]]:
        shape = np.array([1, 300, 300, 3])
        return [{"name": "in", "index": 0, "shape": shape, "dtype": np.uint8}]

    def get_output_details(self) -> list[dict[str, Any]]:
        return self.outputs

    def set_tensor(self, tensor_index: int, value: Any) -> None:
        self.input = value

    def tensor(self, tensor_index: int) -> Any:
        """The input written in place, as the runtime allows."""
        buffer = self.buffer
        return lambda: buffer

    def invoke(self) -> None:
        self.input = self.buffer.copy()

    def get_tensor(self, tensor_index: int) -> Any:
        return self.tensors[tensor_index]


def _fake_model(tmp_path: Path, data: bytes) -> tuple[datafiles.Manifest, Path]:
    path = tmp_path / "fake.tflite"
    path.write_bytes(data)
    manifest = {
        "version": 1,
        "entries": [model_entry("fake", data, "https://example.invalid/fake.tflite")],
    }
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest))
    return datafiles.load_manifest(manifest_path), path


@pytest.mark.parametrize("named", [True, False])
def test_ssd_outputs_are_found_by_name_or_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    fake = FakeSsdInterpreter(named)
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, num_threads: fake)
    manifest, path = _fake_model(tmp_path, b"model bytes")
    detector = tflite.TFLiteDetector(
        "fake", score_threshold=0.5, manifest=manifest, model_path=path
    )
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 2] = 255  # BGR red
    result = detector.detect(image)
    assert fake.input.shape == (1, 300, 300, 3) and fake.input[0, 0, 0, 0] == 255  # RGB
    assert [d.label for d in result.detections] == ["person", "car"]
    person, car = result.detections
    assert person.box.as_list() == pytest.approx([0.2, 0.1, 0.6, 0.5])
    assert car.box.as_list() == pytest.approx([0.5, 0.5, 1.0, 0.9])
    assert result.invoke_s >= 0.0 and result.postprocess_s >= 0.0


def test_labels_of_interest_must_be_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, n: FakeSsdInterpreter(True))
    manifest, path = _fake_model(tmp_path, b"model bytes")
    with pytest.raises(ValueError, match="pedestrian"):
        tflite.TFLiteDetector(
            "fake", labels_of_interest=["pedestrian"], manifest=manifest, model_path=path
        )


def test_embedded_labelmap_wins_over_manifest_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("labelmap.txt", "???\nhuman\nbike\nauto\n")
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, n: FakeSsdInterpreter(True))
    manifest, path = _fake_model(tmp_path, b"flatbuffer bytes" + buffer.getvalue())
    assert embedded_labels(path) == ("human", "bike", "auto")
    detector = tflite.TFLiteDetector("fake", manifest=manifest, model_path=path)
    assert [d.label for d in detector.detect(np.zeros((8, 8, 3), np.uint8)).detections] == [
        "human",
        "auto",
    ]


def test_wrong_input_shape_is_a_model_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSsdInterpreter(True)
    fake.get_input_details = lambda: [  # type: ignore[method-assign]
        {"name": "in", "index": 0, "shape": np.array([1, 224, 224, 3]), "dtype": np.uint8}
    ]
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, n: fake)
    manifest, path = _fake_model(tmp_path, b"model bytes")
    with pytest.raises(tflite.ModelLoadError, match=r"\[1, 224, 224, 3\]"):
        tflite.TFLiteDetector("fake", manifest=manifest, model_path=path)


def test_detect_rejects_non_bgr_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tflite, "load_interpreter", lambda path, n: FakeSsdInterpreter(True))
    manifest, path = _fake_model(tmp_path, b"model bytes")
    detector = tflite.TFLiteDetector("fake", manifest=manifest, model_path=path)
    with pytest.raises(ValueError, match="BGR"):
        detector.detect(np.zeros((8, 8), np.uint8))


def test_ultralytics_metadata_names_are_embedded_labels(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "temp_meta.txt",
            "{'description': 'piles', 'license': 'AGPL-3.0', 'task': 'detect', "
            "'names': {0: 'garbage_pile', 1: 'water'}, 'args': {'nms': False}}",
        )
    path = tmp_path / "piles.tflite"
    path.write_bytes(b"flatbuffer bytes" + buffer.getvalue())
    assert embedded_labels(path) == ("garbage_pile", "water")
    broken = tmp_path / "broken.tflite"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("temp_meta.txt", "{'names': {0: 'a', 2: 'b'}}")  # a gap in the ids
    assert embedded_labels(broken) is None
