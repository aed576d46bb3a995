"""Stored references: kept on disk atomically and privately, refused with a reason when they
do not fit, and what an analyzer does with or without one."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edge_agent.analyzers.reference as reference_module
from edge_agent.analytics import SceneAnalyzer, SceneState
from edge_agent.analyzers import (
    PausedWhileTampered,
    ViewReport,
    build_analyzers,
    request_references,
)
from edge_agent.analyzers.config import (
    AnalyzerConfig,
    FloodAnalyzerConfig,
    GarbageAnalyzerConfig,
    ReferenceStoreConfig,
    TamperAnalyzerConfig,
)
from edge_agent.analyzers.reference import (
    FORMAT_VERSION,
    ReferenceFileError,
    ReferenceMode,
    ReferenceStore,
    StoredReference,
)
from edge_agent.pipeline import CameraPipeline
from edge_agent.types import Frame, ImageBGR

WALL_S = 1_750_000_000.0


def _view(width: int = 320, height: int = 180, seed: int = 2) -> ImageBGR:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 90, np.uint8)
    for _ in range(30):
        x, y = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
        colour = tuple(int(c) for c in rng.integers(30, 220, 3))
        image[y : y + int(rng.integers(6, 30)), x : x + int(rng.integers(6, 30))] = colour
    return image


def _run(
    analyzers: list[SceneAnalyzer], image: ImageBGR, seconds: range
) -> list[tuple[str, str, str]]:
    published = []
    for t in seconds:
        noise = np.random.default_rng(t % 5).integers(0, 3, image.shape, dtype=np.uint8)
        frame = Frame("cam1", t, WALL_S + t, float(t), image + noise)
        for analyzer in analyzers:
            published.extend(
                (s.analyzer, s.state, str(s.detail.get("reason", "")))
                for s in analyzer.update(frame, float(t))
            )
    return published


def _flood(directory: Path | None, *, learn_at_start: bool = True) -> list[SceneAnalyzer]:
    configs: list[AnalyzerConfig] = [
        FloodAnalyzerConfig(region={"box": (0.0, 0.5, 1.0, 1.0)}, learn_s=4.0, min_duration_s=2.0)
    ]
    references = ReferenceStoreConfig(directory=directory, learn_at_start=learn_at_start)
    return build_analyzers(configs, camera_id="cam1", references=references)


def _reference(**changes: object) -> StoredReference:
    values: dict[str, object] = {
        "kind": "garbage",
        "frame_size_px": (320, 180),
        "geometry": "g",
        "arrays": {"region": np.arange(12, dtype=np.float32).reshape(2, 2, 3)},
        "saved_at_s": WALL_S,
    }
    values.update(changes)
    return StoredReference(**values)  # type: ignore[arg-type]


def test_a_reference_is_kept_whole_private_and_versioned(tmp_path: Path) -> None:
    store = ReferenceStore(tmp_path / "refs")
    path = store.save("cam1", "garbage", _reference())
    assert path == tmp_path / "refs" / "cam1" / "garbage.npz"
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0  # owner-only: a picture of the site
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert [p.name for p in path.parent.iterdir()] == ["garbage.npz"]  # no temporary left
    loaded = store.load("cam1", "garbage")
    assert loaded is not None
    assert (loaded.kind, loaded.frame_size_px, loaded.geometry) == ("garbage", (320, 180), "g")
    np.testing.assert_array_equal(loaded.arrays["region"], _reference().arrays["region"])
    assert store.load("cam1", "flood") is None  # none stored: not an error


def test_files_that_cannot_be_used_are_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ReferenceStore(tmp_path)
    path = store.save("cam1", "garbage", _reference())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReferenceFileError, match="not a readable reference"):
        store.load("cam1", "garbage")
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ReferenceFileError, match="not a readable reference"):
        store.load("cam1", "garbage")
    other = store.save("cam2", "garbage", _reference())
    path.write_bytes(other.read_bytes())  # copied from another camera
    with pytest.raises(ReferenceFileError, match="belongs to camera 'cam2'"):
        store.load("cam1", "garbage")
    with monkeypatch.context() as patch:  # written by a later agent
        patch.setattr(reference_module, "FORMAT_VERSION", FORMAT_VERSION + 1)
        store.save("cam1", "garbage", _reference())
    with pytest.raises(ReferenceFileError, match=f"version {FORMAT_VERSION + 1}"):
        store.load("cam1", "garbage")


def test_a_corrupt_file_falls_back_to_learning_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cam1").mkdir()
    (tmp_path / "cam1" / "flood.npz").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        analyzers = _flood(tmp_path)
    assert "flood.npz: not a readable reference file" in caplog.text
    assert "learning the reference afresh" in caplog.text
    assert _run(analyzers, _view(), range(10)) == [("flood", "none", "")]


def test_a_reference_of_another_resolution_is_not_misapplied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    installed = _flood(tmp_path)
    request_references(installed, "frame")
    _run(installed, _view(320, 180), range(3))
    kept = (tmp_path / "cam1" / "flood.npz").read_bytes()
    with caplog.at_level(logging.WARNING):
        analyzers = _flood(tmp_path, learn_at_start=False)
        published = _run(analyzers, _view(640, 360), range(10))
    assert "was taken at 320x180, the camera now delivers 640x360" in caplog.text
    assert published == [("flood", "unknown", "no_reference")]  # told not to learn alone
    assert (tmp_path / "cam1" / "flood.npz").read_bytes() == kept  # left for a person to redo


def test_without_a_reference_and_not_learning_the_state_is_unknown_until_one_is_set(
    tmp_path: Path,
) -> None:
    analyzers = _flood(tmp_path, learn_at_start=False)
    view = _view()
    assert _run(analyzers, view, range(10)) == [("flood", "unknown", "no_reference")]
    assert not (tmp_path / "cam1").exists()  # nothing written until a person sets one
    assert request_references(analyzers, "frame") == ["flood"]
    assert _run(analyzers, view, range(10, 20)) == [("flood", "none", "")]
    assert (tmp_path / "cam1" / "flood.npz").exists()


def test_a_requested_learning_is_kept_when_it_is_learnt(tmp_path: Path) -> None:
    configs: list[AnalyzerConfig] = [
        TamperAnalyzerConfig(learn_s=4.0, min_duration_s=2.0),
        GarbageAnalyzerConfig(learn_s=6.0, min_duration_s=2.0, persistence_s=10.0),
    ]
    references = ReferenceStoreConfig(directory=tmp_path)
    analyzers = build_analyzers(configs, camera_id="cam1", references=references)
    view = _view()
    _run(analyzers, view, range(10))
    assert not (tmp_path / "cam1").exists()  # learnt at start: not set by anyone, not kept
    request_references(analyzers)
    _run(analyzers, view, range(10, 13))
    assert sorted(p.name for p in (tmp_path / "cam1").iterdir()) == []  # still learning
    assert analyzers[1].reference_pending  # type: ignore[attr-defined]
    _run(analyzers, view, range(13, 20))
    assert sorted(p.name for p in (tmp_path / "cam1").iterdir()) == [
        "garbage.npz",
        "tamper.npz",
    ]
    # The next start uses them: no learning, the first levels come after the persistence.
    restarted = build_analyzers(configs, camera_id="cam1", references=references)
    assert _run(restarted, view, range(100, 104)) == [("tamper", "ok", ""), ("garbage", "none", "")]


def test_a_request_that_could_not_be_kept_is_refused_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    analyzers = _flood(blocker / "refs")
    with pytest.raises(ReferenceFileError, match="cannot create"):
        request_references(analyzers)
    assert not analyzers[0].reference_pending  # type: ignore[attr-defined]
    with pytest.raises(KeyError, match="nope"):
        request_references(analyzers, names=["nope"])
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        (locked / "cam1").mkdir(parents=True)
        (locked / "cam1").chmod(0o500)
        with pytest.raises(ReferenceFileError, match="not writable"):
            request_references(_flood(locked))


class _View:
    """A stand-in tamper analyzer: what it says of the view is set by the test."""

    def __init__(self) -> None:
        self.report = ViewReport(None, 1)

    def view(self) -> ViewReport:
        return self.report


class _Region:
    """A stand-in region analyzer that records what the gate asks of it."""

    name = "flood"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.pending = False

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        self.calls.append("update")
        return ()

    def request_reference(self, mode: ReferenceMode = "learn") -> None:
        self.pending = True

    @property
    def reference_pending(self) -> bool:
        return self.pending

    reference_errors = 0

    def relearn(self) -> None:
        self.calls.append("relearn")

    def restart(self) -> None:
        self.calls.append("restart")


def _step(gate: PausedWhileTampered, t: int) -> list[str]:
    frame = Frame("cam1", t, WALL_S + t, float(t), _view())
    return [f"{s.state}:{s.detail.get('reason')}" for s in gate.update(frame, float(t))]


def test_a_full_disk_when_a_reference_is_kept_is_said_and_the_analyzer_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The reference was asked for (the directory is writable), but by the time it is
    learnt the disk is full: an error naming the analyzer, the camera and the reason, no
    temporary file left, and the analyzer judges by the reference it holds in memory."""
    analyzers = _flood(tmp_path)
    view = _view()
    _run(analyzers, view, range(6))
    request_references(analyzers)
    real_replace = os.replace

    def disk_full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with caplog.at_level(logging.ERROR):
        levels = _run(analyzers, view, range(6, 20))
    monkeypatch.setattr(os, "replace", real_replace)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["cannot keep the flood reference of cam1: [Errno 28] No space left on device"]
    assert list((tmp_path / "cam1").iterdir()) == []  # the temporary file is gone too
    assert ("flood", "none", "") in levels  # judged by the reference learnt
    assert not analyzers[0].reference_pending  # type: ignore[attr-defined]
    assert analyzers[0].reference_errors == 1  # type: ignore[attr-defined]
    # ... and the camera's stats say it beside its stage errors (the pipeline's own method)
    camera = SimpleNamespace(_analyzers=tuple(analyzers))
    assert CameraPipeline.reference_errors(camera) == {"flood reference": 1}  # type: ignore[arg-type]


def test_the_gate_pauses_suspends_and_resumes_on_what_tamper_says() -> None:
    view, region = _View(), _Region()
    gate = PausedWhileTampered(region, view)
    assert _step(gate, 0) == [] and region.calls == ["update"]  # undecided: it looks
    view.report = ViewReport("covered", 1)
    assert _step(gate, 1) == [] and region.calls == ["update"]  # paused, state stands
    view.report = ViewReport("moved", 1)
    assert _step(gate, 2) == ["unknown:moved"] and gate.state == "unknown"
    assert _step(gate, 3) == [] and region.calls == ["update"]  # suspended, said once
    view.report = ViewReport("ok", 1)  # re-aimed: the reference fits again
    assert _step(gate, 4) == [] and region.calls == ["update", "restart", "update"]
    view.report = ViewReport("moved", 1)
    assert _step(gate, 5) == ["unknown:moved"]
    view.report = ViewReport(None, 2)  # tamper took a new view by itself
    _step(gate, 6)
    assert region.calls[-2:] == ["relearn", "update"] and gate.state != "unknown"
    view.report = ViewReport("moved", 2)
    _step(gate, 7)
    gate.request_reference("frame")  # a person sets the camera: tamper and the region
    view.report = ViewReport(None, 3)
    _step(gate, 8)
    assert region.calls[-1] == "update" and "relearn" not in region.calls[-2:]


# -- wiring: only the running agent's pipelines keep references (assemble.build_pipeline)


@pytest.mark.parametrize("kept", [True, False])
def test_only_a_pipeline_built_for_the_agent_keeps_references(tmp_path: Path, kept: bool) -> None:
    from fakes.detect import StaticDetector

    from edge_agent.assemble import build_pipeline
    from edge_agent.config import parse_config
    from edge_agent.sinks import CollectingSink

    flood = {"kind": "flood", "region": {"box": [0.0, 0.5, 1.0, 1.0]}}
    config = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "references": {"directory": str(tmp_path / "agent")},
            "cameras": [
                {
                    "id": "cam1",
                    "source": {"kind": "sim"},
                    "analyzers": [flood],
                    "references": {"directory": str(tmp_path / "camera")},
                }
            ],
        }
    )
    pipeline = build_pipeline(
        config,
        config.cameras[0],
        detector=StaticDetector(),
        sink=CollectingSink(),
        references=kept,
    )
    assert request_references(pipeline.analyzers, "frame") == ["flood"]
    for t in range(3):
        pipeline.process(Frame("cam1", t, WALL_S + t, float(t), _view()))
    assert (tmp_path / "camera" / "cam1" / "flood.npz").is_file() is kept  # the camera's wins
    assert not (tmp_path / "agent").exists()
