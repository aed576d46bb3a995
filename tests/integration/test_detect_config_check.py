"""`edge-agent check-config` on a config that brings its own model, layout and label file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from realdata import require_model


def _check(tmp_path: Path, detector: dict[str, object], camera: dict[str, object]) -> str:
    config = {
        "site_id": "s",
        "device_id": "d",
        "cameras": [{"id": "c", "source": {"kind": "sim"}, **camera}],
        "detector": detector,
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"{result.returncode}\n{result.stdout}{result.stderr}"


def test_own_model_labels_are_checked_against_its_label_file(tmp_path: Path) -> None:
    model = require_model("yolo11n_int8_416")
    labels = tmp_path / "labels.txt"
    labels.write_text("garbage_pile\nwater\n")
    detector = {
        "model": str(model),
        "layout": "ultralytics",
        "labels_file": str(labels),
        "labels": ["garbage_pile"],
    }
    good = _check(tmp_path, detector, {"detection_filters": {"water": {"min_area": 0.01}}})
    assert good.startswith("0\n"), good
    bad = _check(
        tmp_path,
        {**detector, "labels": ["garbage_pile", "person"]},
        {"detection_filters": {"cell phone": {"max_area": 0.01}}},
    )
    assert bad.startswith("2\n"), bad
    assert "detector.labels: 'person' is not a label of model" in bad
    assert "cameras[0].detection_filters: 'cell phone' is not a label of model" in bad
    missing = _check(tmp_path, {**detector, "labels_file": str(tmp_path / "none.txt")}, {})
    assert missing.startswith("2\n") and "none.txt cannot be read" in missing, missing
