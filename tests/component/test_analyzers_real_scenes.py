"""The scene analyzers on real pictures, with water or a pile painted in.

Two real views from the shared media: an overhead parking lot with cars driving through
(``intel_car-detection.mp4``, played at one analysed frame per second of the clip) and a
highway (``automl_traffic_frames.mp4``: its first frame, still, with sensor noise).
Water and piles come from ``fakes.scene_paint``, painted under the passing cars.

What is checked, with the references of the clear scene stored on disk as the technician
would at install: a flood or a pile present when the agent starts is reported; the clear
scene stays ``none``; a flood that deepens slowly is not absorbed into the dry reference;
a knocked camera is tamper ``moved`` with flood and garbage ``unknown`` (not flooded); a
new reference resumes them. Times are compressed as in the simulator's scenarios.

Without the media these tests skip, or fail where CI is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes.scene_paint import foreground, paint_pile, paint_water, region_share, shifted
from realdata import require_media

from edge_agent.analytics import SceneAnalyzer
from edge_agent.analyzers import build_analyzers, request_references
from edge_agent.analyzers.config import (
    AnalyzerConfig,
    FloodAnalyzerConfig,
    GarbageAnalyzerConfig,
    ReferenceStoreConfig,
    TamperAnalyzerConfig,
)
from edge_agent.analyzers.flood import FloodAnalyzer
from edge_agent.analyzers.reference import ReferenceMode
from edge_agent.types import Frame, ImageBGR

WALL_S = 1_750_000_000.0
Box = tuple[float, float, float, float]
Published = list[tuple[int, str, str]]  # second, analyzer, state


@dataclass(frozen=True)
class Scene:
    name: str
    frames: tuple[ImageBGR, ...]  # one per analysed second, looped
    empty: ImageBGR  # the view without traffic
    flood_box: Box
    water: tuple[tuple[float, float], tuple[float, float]]  # centre, radii
    garbage_box: Box
    pile: tuple[tuple[float, float], tuple[float, float]]  # centre, size
    install: ReferenceMode  # how the technician sets the reference: traffic needs "learn"
    cache: dict[tuple[int, bool, bool], ImageBGR] = field(default_factory=dict, compare=False)

    def picture(
        self, t: int, *, water: float = 0.0, pile: bool = False, knocked: bool = False
    ) -> ImageBGR:
        """Second ``t`` of the scene, with water ``water`` deep (0..1) and the pile."""
        index = t % len(self.frames)
        frame = self.frames[index]
        painted = frame
        if water > 0.0:
            full = self._painted(index, True, pile).astype(np.float32)
            under = self._painted(index, False, pile).astype(np.float32)
            painted = (under * (1.0 - water) + full * water).astype(np.uint8)  # = its depth
        elif pile:
            painted = self._painted(index, False, True)
        picture = np.clip(painted + _noise(t, frame.shape), 0, 255).astype(np.uint8)
        return shifted(picture, 0.06, 0.03, 3.0) if knocked else picture

    def _painted(self, index: int, water: bool, pile: bool) -> ImageBGR:
        """Frame ``index`` with full water and/or the pile, under the cars (painted once)."""
        key = (index, water, pile)
        if key not in self.cache:
            frame = self.frames[index]
            painted = frame
            if water:
                painted = paint_water(painted, *self.water, seed=3)[0]
            if pile:
                painted = paint_pile(painted, *self.pile, seed=4)[0]
            if len(self.frames) > 1:
                painted = np.where(foreground(frame, self.empty)[..., None], frame, painted)
            self.cache[key] = painted
        return self.cache[key]


_NOISES: dict[tuple[int, ...], list[np.ndarray]] = {}


def _noise(t: int, shape: tuple[int, ...]) -> np.ndarray:
    """Sensor noise: a live camera never delivers the same picture twice."""
    if shape not in _NOISES:
        _NOISES[shape] = [
            np.random.default_rng(i).normal(0.0, 2.0, shape).astype(np.float32) for i in range(7)
        ]
    return _NOISES[shape][t % 7]


def _read(name: str) -> list[ImageBGR]:
    capture = cv2.VideoCapture(str(require_media(name)))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.asarray(frame, np.uint8))
    capture.release()
    assert frames, name
    return frames


@pytest.fixture(scope="module")
def lot() -> Scene:
    clip = _read("intel_car-detection.mp4")  # 12.5 fps: every 12th frame is a second
    return Scene(
        name="lot",
        frames=tuple(clip[::12]),
        empty=np.median(np.stack(clip[::4]), axis=0).astype(np.uint8),
        flood_box=(0.15, 0.3, 0.85, 0.95),
        water=((0.5, 0.62), (0.22, 0.16)),
        garbage_box=(0.05, 0.05, 0.4, 0.5),
        pile=((0.2, 0.28), (0.14, 0.18)),
        install="learn",
    )


@pytest.fixture(scope="module")
def highway() -> Scene:
    first = _read("automl_traffic_frames.mp4")[0]
    return Scene(
        name="highway",
        frames=(first,),
        empty=first,
        flood_box=(0.0, 0.76, 0.9, 0.95),
        water=((0.45, 0.86), (0.22, 0.06)),
        garbage_box=(0.0, 0.84, 0.3, 1.0),
        pile=((0.14, 0.92), (0.1, 0.12)),
        install="frame",
    )


@pytest.fixture(params=["lot", "highway"])
def scene(request: pytest.FixtureRequest) -> Scene:
    value: Scene = request.getfixturevalue(request.param)
    return value


def _configs(scene: Scene, **flood: float) -> list[AnalyzerConfig]:
    return [
        TamperAnalyzerConfig(learn_s=10.0, min_duration_s=10.0),
        FloodAnalyzerConfig(
            region={"box": scene.flood_box},
            learn_s=20.0,
            min_duration_s=10.0,
            water_memory_s=8.0,
            **flood,
        ),
        GarbageAnalyzerConfig(
            region={"box": scene.garbage_box},
            learn_s=20.0,
            min_duration_s=10.0,  # not shorter than tamper's: a moved view is "moved" first
            persistence_s=30.0,
        ),
    ]


def _run(
    analyzers: Sequence[SceneAnalyzer], picture: Callable[[int], ImageBGR], seconds: range
) -> Published:
    published = []
    for t in seconds:
        frame = Frame("cam1", t, WALL_S + t, float(t), picture(t))
        for analyzer in analyzers:
            published.extend((t, s.analyzer, s.state) for s in analyzer.update(frame, float(t)))
    return published


def _states(published: Published, analyzer: str) -> list[str]:
    return [state for _, name, state in published if name == analyzer]


def _install(scene: Scene, directory: Path) -> ReferenceStoreConfig:
    """The technician's install step: the clear scene, a reference set and kept."""
    references = ReferenceStoreConfig(directory=directory)
    analyzers = build_analyzers(_configs(scene), camera_id="cam1", references=references)
    _run(analyzers, scene.picture, range(0, 5))
    assert request_references(analyzers, scene.install) == ["tamper", "flood", "garbage"]
    _run(analyzers, scene.picture, range(5, 30))
    assert sorted(p.name for p in (directory / "cam1").iterdir()) == [
        "flood.npz",
        "garbage.npz",
        "tamper.npz",
    ]
    return references


def test_the_painted_conditions_are_what_the_regions_measure(scene: Scene) -> None:
    frame = scene.frames[0]
    water = paint_water(frame, *scene.water, seed=3)[1]
    pile = paint_pile(frame, *scene.pile, seed=4)[1]
    assert 0.1 < region_share(water, scene.flood_box) < 0.35  # a puddle, not yet a flood
    assert 0.05 < region_share(pile, scene.garbage_box) < 0.3


def test_a_flood_and_a_pile_present_at_start_are_reported(scene: Scene, tmp_path: Path) -> None:
    references = _install(scene, tmp_path)

    def wet(t: int) -> ImageBGR:
        return scene.picture(t, water=1.0, pile=True)

    restarted = build_analyzers(_configs(scene), camera_id="cam1", references=references)
    published = _run(restarted, wet, range(100, 190))
    assert _states(published, "flood") == ["puddle"]  # never "none": wet from the start
    assert set(_states(published, "garbage")) == {"present"}  # and again as it settles
    assert "moved" not in _states(published, "tamper")
    # What happened before: the reference learnt at start shows the water and the pile.
    learnt = _run(build_analyzers(_configs(scene), camera_id="cam1"), wet, range(100, 190))
    assert _states(learnt, "flood") == ["none"] and _states(learnt, "garbage") == ["none"]


def test_the_clear_scene_stays_none_against_the_stored_reference(
    lot: Scene, tmp_path: Path
) -> None:
    references = _install(lot, tmp_path)
    restarted = build_analyzers(_configs(lot), camera_id="cam1", references=references)
    published = _run(restarted, lot.picture, range(100, 220))  # cars drive through
    assert _states(published, "flood") == ["none"]
    assert _states(published, "garbage") == ["none"]
    assert not {"moved", "covered", "blurred"} & set(_states(published, "tamper"))


def test_a_flood_deepening_slowly_does_not_drift_into_the_dry_reference(lot: Scene) -> None:
    # The reference follows slow change fast here (a minute), the water deepens over five:
    # unbounded, the dry road would follow the water and never see it.
    config = _configs(lot, reference_tau_s=60.0)[1]
    assert isinstance(config, FloodAnalyzerConfig)
    flood = FloodAnalyzer(config, "cam1")

    def deepening(t: int) -> ImageBGR:
        return lot.picture(t, water=float(np.clip((t - 40) / 300.0, 0.0, 1.0)))

    published = _run([flood], deepening, range(0, 400))
    states = [(t, state) for t, _, state in published]
    assert states[0][1] == "none" and states[-1][1] in ("puddle", "flooded")
    assert all(t > 40 for t, state in states if state != "none")


def test_a_knocked_camera_is_moved_not_flooded_until_a_new_reference(
    scene: Scene, tmp_path: Path
) -> None:
    references = _install(scene, tmp_path)
    analyzers = build_analyzers(_configs(scene), camera_id="cam1", references=references)
    # Knocked while the agent was down, and it rains: the stored view says "moved".
    published = _run(
        analyzers, lambda t: scene.picture(t, water=1.0, knocked=True), range(100, 160)
    )
    assert _states(published, "tamper") == ["moved"]
    assert _states(published, "flood") == ["unknown"]
    assert _states(published, "garbage") == ["unknown"]
    moved_at = next(t for t, name, state in published if state == "moved")
    assert next(t for t, name, state in published if name == "flood") == moved_at
    # The technician sets the new view (dry again): judged afresh against it.
    request_references(analyzers, scene.install)
    published = _run(analyzers, lambda t: scene.picture(t, knocked=True), range(160, 220))
    assert _states(published, "tamper") == ["ok"]
    assert _states(published, "flood") == ["none"]
    assert _states(published, "garbage") == ["none"]
    published = _run(
        analyzers, lambda t: scene.picture(t, water=1.0, knocked=True), range(220, 260)
    )
    assert _states(published, "flood") == ["puddle"]


def test_a_camera_knocked_while_running_suspends_flood_and_garbage(lot: Scene) -> None:
    analyzers = build_analyzers(_configs(lot), camera_id="cam1")

    def picture(t: int) -> ImageBGR:
        return lot.picture(t, knocked=t >= 60)

    published = _run(analyzers, picture, range(0, 100))
    assert _states(published, "tamper")[-1] == "moved"
    assert _states(published, "flood") == ["none", "unknown"]
    assert _states(published, "garbage") == ["none", "unknown"]
