"""Test fakes for rules: drive any ``ObjectRule`` with scripted tracks, no detector needed.

Public on purpose (like gpiozero's mock pins): a city integrator writing a rule of
their own tests it the same way.

>>> from edge_agent.rules.testing import RuleDriver, Seen
>>> driver = RuleDriver([my_rule])                                   # doctest: +SKIP
>>> out = driver.step([Seen(1, "person", Box(0.4, 0.5, 0.5, 0.95))])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.analytics import ObjectRule, RuleContext, RuleOutput, merge
from edge_agent.types import Box, Frame, Track

WALL_START_S = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC: a fixed, arbitrary wall clock


@dataclass(frozen=True)
class Seen:
    """A track on one frame: ``missed`` > 0 means the detector did not see it (coasting)."""

    track_id: int
    label: str
    box: Box
    missed: int = 0
    score: float = 0.8


def standing(x: float, y: float, height: float = 0.4, aspect: float = 0.4) -> Box:
    """The box of an object whose feet are at (x, y), ``height`` tall (frame heights) and
    ``aspect`` wide (of its height, in frame heights; a 16:9 frame is assumed)."""
    width = height * aspect * 9.0 / 16.0
    return Box(x - width / 2.0, y - height, x + width / 2.0, y)


class RuleDriver:
    """Feeds frames of scripted tracks to rules at ``fps``, with monotonic and wall clocks."""

    def __init__(
        self,
        rules: Sequence[ObjectRule],
        *,
        fps: float = 5.0,
        wall_start_s: float = WALL_START_S,
        camera_id: str = "cam",
        size: tuple[int, int] = (64, 36),
    ) -> None:
        self.rules = list(rules)
        self.fps = fps
        self.wall_start_s = wall_start_s
        self.camera_id = camera_id
        self.index = 0
        self._image = np.zeros((size[1], size[0], 3), np.uint8)
        self._first_seen: dict[int, float] = {}
        self._last_seen: dict[int, float] = {}
        self._hits: dict[int, int] = {}

    @property
    def now_s(self) -> float:
        return self.index / self.fps

    def wall_of(self, t_s: float) -> float:
        return self.wall_start_s + t_s

    def _context(self, seen: Sequence[Seen], detection_ran: bool) -> RuleContext:
        now_s = self.now_s
        tracks = []
        for s in seen:
            self._first_seen.setdefault(s.track_id, now_s)
            if s.missed == 0 and detection_ran:
                self._last_seen[s.track_id] = now_s
                self._hits[s.track_id] = self._hits.get(s.track_id, 0) + 1
            tracks.append(
                Track(
                    track_id=s.track_id,
                    label=s.label,
                    score=s.score,
                    box=s.box,
                    first_seen_s=self._first_seen[s.track_id],
                    last_seen_s=self._last_seen.get(s.track_id, now_s),
                    hits=max(2, self._hits.get(s.track_id, 0)),
                    missed=s.missed,
                )
            )
        frame = Frame(
            camera_id=self.camera_id,
            index=self.index,
            captured_at_s=self.wall_of(now_s),
            monotonic_s=now_s,
            image=self._image,
        )
        return RuleContext(
            camera_id=self.camera_id,
            frame=frame,
            now_s=now_s,
            wall_s=self.wall_of(now_s),
            tracks=tuple(tracks),
            detection_ran=detection_ran,
        )

    def step(self, seen: Sequence[Seen], *, detection_ran: bool = True) -> RuleOutput:
        """One frame; then the clock moves on by 1/fps."""
        context = self._context(seen, detection_ran)
        output = merge([rule.update(context) for rule in self.rules])
        self.index += 1
        return output

    def run(
        self, seconds: float, scene: Callable[[float], Sequence[Seen]]
    ) -> list[tuple[float, RuleOutput]]:
        """Frames for ``seconds``; ``scene(t)`` says what is seen at scene time t.

        Returns (time, output) for every frame that produced something.
        """
        produced = []
        for _ in range(round(seconds * self.fps)):
            t_s = self.now_s
            output = self.step(scene(t_s))
            if output:
                produced.append((t_s, output))
        return produced

    def finish(self) -> RuleOutput:
        context = self._context((), False)
        return merge([rule.finish(context) for rule in self.rules])
