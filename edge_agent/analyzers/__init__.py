"""Scene-state analyzers: flooding, garbage, camera tamper, on a region of interest.

``build_analyzers`` turns a camera's ``analyzers`` config into objects that follow the
``SceneAnalyzer`` protocol (``edge_agent.analytics``). Those that can also tell when the
camera went silent (tamper) follow ``SignalWatcher`` as well: the capture loop calls
``no_frames`` when its source delivers nothing, since ``update`` only runs on frames.

Every analyzer judges against a reference of the clear scene; ``request_references``
asks a camera's analyzers for a new one (an operator's command, the technician's install
step) and a ``ReferenceStoreConfig`` keeps them on disk (``reference.py``). Flood and
garbage ask the camera's tamper analyzer whether the view is still the one their
reference shows (``PausedWhileTampered``, through the small ``ViewWatcher`` seam).

>>> from edge_agent.analyzers.config import TamperAnalyzerConfig
>>> [a.name for a in build_analyzers([TamperAnalyzerConfig()], camera_id="cam1")]
['tamper']
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

from edge_agent.analytics import SceneAnalyzer, SceneState
from edge_agent.analyzers import flood, garbage, tamper
from edge_agent.analyzers.classifier import ClassifierAnalyzer, InterpreterFactory
from edge_agent.analyzers.common import ViewReport
from edge_agent.analyzers.config import (
    RESTING_STATES,
    AnalyzerConfig,
    FloodAnalyzerConfig,
    GarbageAnalyzerConfig,
    ReferenceStoreConfig,
    TamperAnalyzerConfig,
)
from edge_agent.analyzers.flood import FloodAnalyzer
from edge_agent.analyzers.garbage import GarbageAnalyzer
from edge_agent.analyzers.reference import (
    UNKNOWN,
    ReferenceFileError,
    ReferenceMode,
    ReferenceSlot,
    ReferenceStore,
    unknown_state,
)
from edge_agent.analyzers.tamper import MOVED, OK, TamperAnalyzer
from edge_agent.detect.runtime import load_interpreter
from edge_agent.types import Frame

log = logging.getLogger(__name__)
__all__ = [
    "UNKNOWN",
    "ClassifierAnalyzer",
    "FloodAnalyzer",
    "GarbageAnalyzer",
    "PausedWhileTampered",
    "ReferenceFileError",
    "ReferenceHolder",
    "ReferenceStore",
    "SignalWatcher",
    "TamperAnalyzer",
    "ViewReport",
    "ViewWatcher",
    "build_analyzers",
    "request_references",
]


@runtime_checkable
class SignalWatcher(Protocol):
    """An analyzer that reports on a camera which stopped sending frames."""

    def no_frames(self, now_s: float, wall_s: float) -> tuple[SceneState, ...]:
        """``now_s`` monotonic, ``wall_s`` epoch seconds; state changes (usually none)."""
        ...


@runtime_checkable
class ReferenceHolder(Protocol):
    """An analyzer whose reference of the clear scene can be set."""

    @property
    def name(self) -> str: ...

    def request_reference(self, mode: ReferenceMode = "learn") -> None:
        """Take a new reference from the next frame(s); any thread. ``ReferenceFileError``
        when it could not be kept on disk."""
        ...

    @property
    def reference_pending(self) -> bool:
        """A request not yet taken, or a requested reference still being learnt."""
        ...

    @property
    def reference_errors(self) -> int:
        """Since start: stored references refused (another size or region) and new ones
        that could not be kept on disk (a full disk); stats show them."""
        ...


class RegionAnalyzer(SceneAnalyzer, ReferenceHolder, Protocol):
    """Flood, garbage or a classifier: what the tamper analyzer can pause and resume."""

    def relearn(self) -> None:
        """The view changed for good: learn the reference again, and judge afresh."""
        ...

    def restart(self) -> None:
        """Judge afresh with the same reference: the next level is published again."""
        ...


class ViewWatcher(Protocol):
    """Tells the region analyzers of a camera whether its view is the one they know."""

    def view(self) -> ViewReport: ...


def request_references(
    analyzers: Sequence[SceneAnalyzer],
    mode: ReferenceMode = "learn",
    names: Collection[str] | None = None,
) -> list[str]:
    """Ask a camera's analyzers (all, or those ``names``) for a new reference; the names asked.

    ``KeyError`` for a name the camera does not have, ``ReferenceFileError`` when the
    reference directory cannot be written (then nothing is asked).
    """
    holders = [a for a in analyzers if isinstance(a, ReferenceHolder)]
    if names is not None:
        unknown = sorted(set(names) - {a.name for a in holders})
        if unknown:
            raise KeyError(", ".join(unknown))
        holders = [a for a in holders if a.name in names]
    for analyzer in holders:
        analyzer.request_reference(mode)
    return [a.name for a in holders]


def build_analyzers(
    configs: Sequence[AnalyzerConfig],
    *,
    camera_id: str = "",
    interpreter_factory: InterpreterFactory = load_interpreter,
    references: ReferenceStoreConfig | None = None,
) -> list[SceneAnalyzer]:
    """The configured analyzers of one camera.

    Analyzer names must be unique per camera (they are topic levels); a classifier model
    that cannot be found or loaded raises ``ClassifierLoadError`` (a ``DataFileError``).
    ``references``: where references are kept (None: in memory only, learnt at start).
    """
    names = [config.name for config in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"analyzer names must be unique per camera: {', '.join(duplicates)}")
    store = (
        ReferenceStore(references.directory)
        if references is not None and references.directory is not None
        else None
    )
    built = [
        (
            config,
            _build_one(
                config,
                camera_id=camera_id,
                interpreter_factory=interpreter_factory,
                store=store,
                references=references or ReferenceStoreConfig(directory=None),
            ),
        )
        for config in configs
    ]
    tamper_config, watcher = next(
        ((c, a) for c, a in built if isinstance(c, TamperAnalyzerConfig)), (None, None)
    )
    analyzers: list[SceneAnalyzer] = []
    for config, analyzer in built:
        if isinstance(config, TamperAnalyzerConfig):
            analyzers.insert(0, analyzer)  # judged first on each frame: the others ask it
        elif tamper_config is not None and config.pause_when_tampered:
            assert isinstance(analyzer, (FloodAnalyzer, GarbageAnalyzer, ClassifierAnalyzer))
            assert isinstance(watcher, (TamperAnalyzer, ClassifierAnalyzer))
            if config.min_duration_s < tamper_config.min_duration_s:
                log.warning(
                    "camera %s: %s min_duration_s %.0f is shorter than tamper's %.0f: a view "
                    "that moved may be judged before it is 'moved'",
                    camera_id,
                    config.name,
                    config.min_duration_s,
                    tamper_config.min_duration_s,
                )
            analyzers.append(PausedWhileTampered(analyzer, watcher))
        else:
            analyzers.append(analyzer)
    return analyzers


def _build_one(
    config: AnalyzerConfig,
    *,
    camera_id: str,
    interpreter_factory: InterpreterFactory,
    store: ReferenceStore | None,
    references: ReferenceStoreConfig,
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

    def slot(geometry: str, *, may_wait: bool = True) -> ReferenceSlot:
        return ReferenceSlot(
            store=store,
            camera_id=camera_id,
            analyzer=config.name,
            kind=config.kind,
            geometry=geometry,
            # A view is a view: tamper learns one at start whatever, to judge covers and
            # moves from then on. A region's reference must show the clear scene.
            learn_at_start=references.learn_at_start or not may_wait,
        )

    if isinstance(config, FloodAnalyzerConfig):
        return FloodAnalyzer(config, camera_id, slot(flood.geometry_of(config)))
    if isinstance(config, GarbageAnalyzerConfig):
        return GarbageAnalyzer(config, camera_id, slot(garbage.geometry_of(config)))
    return TamperAnalyzer(config, camera_id, slot(tamper.geometry_of(config), may_wait=False))


class PausedWhileTampered:
    """A region analyzer that only looks while the camera's tamper analyzer says the view is
    the one its reference shows.

    - The tamper level is covered, blurred, frozen or no_signal: paused. The last published
      level stands (the tamper topic says why nothing changes) and nothing is learnt or
      adapted from that picture. (Until tamper has decided, the analyzer looks: its own
      persistence is longer than tamper's, so a view that moved is ``moved`` first.)
    - The tamper level is ``moved``: suspended. The region no longer shows what the
      reference shows, so the analyzer publishes ``unknown`` (``detail.reason: moved``)
      instead of reading the new view as water or a pile, and stays so until the view
      comes back (tamper ``ok`` again: judged afresh with the same reference) or a new
      reference view is taken (set by a person, or ``accept_moved_after_s``): then the
      analyzer takes the reference set for it too, or learns its region again.
    """

    def __init__(self, inner: RegionAnalyzer, watcher: ViewWatcher) -> None:
        self.inner = inner
        self._watcher = watcher
        self._epoch = watcher.view().epoch
        self.suspended = False
        self.paused_frames = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def state(self) -> str | None:
        return UNKNOWN if self.suspended else getattr(self.inner, "state", None)

    def request_reference(self, mode: ReferenceMode = "learn") -> None:
        self.inner.request_reference(mode)

    @property
    def reference_pending(self) -> bool:
        return self.inner.reference_pending

    @property
    def reference_errors(self) -> int:
        return self.inner.reference_errors

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        report = self._watcher.view()
        if report.epoch != self._epoch:  # a new reference view
            if self._epoch > 0 and not self.inner.reference_pending:
                self.inner.relearn()  # the view changed for good: the region moved too
            self._epoch = report.epoch
            self.suspended = False
        if self.suspended:
            if report.state != OK:
                return ()
            self.suspended = False  # re-aimed: the reference fits again
            self.inner.restart()
        if report.state == MOVED:
            self.suspended = True
            return (unknown_state(frame, self.name, MOVED),)
        if report.state not in (None, OK):
            self.paused_frames += 1
            return ()
        return self.inner.update(frame, now_s)
