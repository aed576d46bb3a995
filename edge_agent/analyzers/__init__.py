"""Scene-state analyzers: flooding, garbage, camera tamper, on a region of interest.

``build_analyzers`` turns a camera's ``analyzers`` config into objects that follow the
``SceneAnalyzer`` protocol (``edge_agent.analytics``). Those that can also tell when the
camera went silent (tamper) follow ``SignalWatcher`` as well: the capture loop calls
``no_frames`` when its source delivers nothing, since ``update`` only runs on frames.

>>> from edge_agent.analyzers.config import TamperAnalyzerConfig
>>> [a.name for a in build_analyzers([TamperAnalyzerConfig()], camera_id="cam1")]
['tamper']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol, runtime_checkable

from edge_agent.analytics import SceneAnalyzer, SceneState
from edge_agent.analyzers.classifier import ClassifierAnalyzer, InterpreterFactory
from edge_agent.analyzers.config import (
    RESTING_STATES,
    AnalyzerConfig,
    FloodAnalyzerConfig,
    GarbageAnalyzerConfig,
    TamperAnalyzerConfig,
)
from edge_agent.analyzers.flood import FloodAnalyzer
from edge_agent.analyzers.garbage import GarbageAnalyzer
from edge_agent.analyzers.tamper import TamperAnalyzer
from edge_agent.detect.runtime import load_interpreter
from edge_agent.types import Frame

__all__ = [
    "ClassifierAnalyzer",
    "FloodAnalyzer",
    "GarbageAnalyzer",
    "PausedWhileTampered",
    "SignalWatcher",
    "TamperAnalyzer",
    "build_analyzers",
]


@runtime_checkable
class SignalWatcher(Protocol):
    """An analyzer that reports on a camera which stopped sending frames."""

    def no_frames(self, now_s: float, wall_s: float) -> tuple[SceneState, ...]:
        """``now_s`` monotonic, ``wall_s`` epoch seconds; state changes (usually none)."""
        ...


def build_analyzers(
    configs: Sequence[AnalyzerConfig],
    *,
    camera_id: str = "",
    interpreter_factory: InterpreterFactory = load_interpreter,
) -> list[SceneAnalyzer]:
    """The configured analyzers of one camera.

    Analyzer names must be unique per camera (they are topic levels); a classifier model
    that cannot be found or loaded raises ``ClassifierLoadError`` (a ``DataFileError``).
    """
    names = [config.name for config in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"analyzer names must be unique per camera: {', '.join(duplicates)}")
    built = [
        (config, _build_one(config, camera_id=camera_id, interpreter_factory=interpreter_factory))
        for config in configs
    ]
    tamper = next((a for c, a in built if isinstance(c, TamperAnalyzerConfig)), None)
    analyzers: list[SceneAnalyzer] = []
    for config, analyzer in built:
        if isinstance(config, TamperAnalyzerConfig):
            analyzers.insert(0, analyzer)  # judged first on each frame: the others ask it
        elif tamper is not None and config.pause_when_tampered:
            analyzers.append(
                PausedWhileTampered(
                    analyzer,
                    tamper,
                    relearn=partial(
                        _build_one,
                        config,
                        camera_id=camera_id,
                        interpreter_factory=interpreter_factory,
                    ),
                )
            )
        else:
            analyzers.append(analyzer)
    return analyzers


def _build_one(
    config: AnalyzerConfig, *, camera_id: str, interpreter_factory: InterpreterFactory
) -> SceneAnalyzer:
    if config.method == "classifier":
        assert config.classifier is not None  # the config validator guarantees it
        return ClassifierAnalyzer(
            name=config.name,
            resting=RESTING_STATES[config.kind],
            config=config.classifier,
            region=config.region,
            every_s=config.every_s,
            min_duration_s=config.min_duration_s,
            camera_id=camera_id,
            interpreter_factory=interpreter_factory,
        )
    if isinstance(config, FloodAnalyzerConfig):
        return FloodAnalyzer(config, camera_id)
    if isinstance(config, GarbageAnalyzerConfig):
        return GarbageAnalyzer(config, camera_id)
    return TamperAnalyzer(config, camera_id)


class PausedWhileTampered:
    """A region analyzer that only looks while the camera's tamper analyzer says the view is
    fine (or has not judged yet).

    A covered lens would otherwise become a pile of garbage after ``persistence_s``, and a
    camera knocked askew would make every region wrong. While paused, the analyzer's last
    published state stands (the tamper topic says why nothing changes). When the tamper
    analyzer learns a new reference view (``accept_moved_after_s``), the region analyzer
    is rebuilt and learns its region again.
    """

    def __init__(
        self,
        inner: SceneAnalyzer,
        tamper: SceneAnalyzer,
        relearn: Callable[[], SceneAnalyzer],
    ) -> None:
        self.inner = inner
        self._tamper = tamper
        self._relearn = relearn
        self._epoch = self._tamper_epoch()
        self.paused_frames = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def _tamper_epoch(self) -> int:
        return int(getattr(self._tamper, "reference_epoch", 0))

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        state = getattr(self._tamper, "state", None)
        if state not in (None, "ok"):
            self.paused_frames += 1
            return ()
        epoch = self._tamper_epoch()
        if epoch > max(1, self._epoch):  # a new view for good: the region moved too
            self.inner = self._relearn()
        self._epoch = epoch
        return self.inner.update(frame, now_s)
