"""Scenarios: scripted camera scenes with ground truth.

A *scenario* is a name registered with a ``Script``: what happens (actors, effects, the
``Expectations``), independent of the picture size and frame rate. ``load_scenario``
turns it into a ``Scenario`` at a size and rate, a pure function of the frame index:
``render(i)`` always returns the same bytes and ``truth(i)`` says what is in that
picture. Real cut-outs of people and cars (``hw_sim.sprites``) move along
piecewise-linear paths (``hw_sim.street``) over a procedural street, so the agent's real
detector, tracker and event engine can be scored against truth.

Scenarios loop: index ``n_frames`` shows the same picture as index 0, and objects
whose path runs past the end re-enter at the start, so a live demo never jumps.

>>> scenario = load_scenario("street", width=640, height=360)  # doctest: +SKIP
>>> image = scenario.render(42)                                 # doctest: +SKIP
>>> [(o.label, o.box) for o in scenario.truth(42)]              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.background import Sensor, StreetLayout, draw_street
from hw_sim.sprites import Sprite, load_sprites, sprite_media
from hw_sim.street import (
    FAR_LANE_Y,
    FAR_PAVEMENT_Y,
    HORIZON_Y,
    NEAR_LANE_Y,
    NEAR_PAVEMENT_Y,
    Actor,
    drive,
    person,
    perspective_scale,
    walk,
)
from hw_sim.street import Waypoint as Waypoint  # re-exported: scenario libraries used it

NormBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class TruthObject:
    """One object in one frame.

    ``box`` is (x_min, y_min, x_max, y_max) normalised to the frame, the part inside
    the frame. ``visible_fraction`` is the share of the whole object box that is
    inside the frame and not behind a nearer object's box (a box-level estimate), so
    scorers can leave out objects that no detector could be expected to find.
    """

    object_id: str
    label: str
    box: NormBox
    visible_fraction: float = 1.0


class Effect(Protocol):
    """A change to the picture over time: weather, light, litter, a hand over the lens.

    ``stage`` says where it acts: ``"scene"`` effects change the world before the
    sensor sees it (a puddle, dusk, garbage bags: noise and exposure still apply);
    ``"lens"`` effects act on what the sensor delivered (a covered lens, a camera
    knocked askew, a frozen or lost signal). ``apply`` must be a pure function of
    (image, t_s): same inputs, same bytes.
    """

    @property
    def stage(self) -> Literal["scene", "lens"]: ...

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR: ...


@dataclass(frozen=True)
class ExpectedAlert:
    """An alert the agent should raise: the condition holds from start_s to end_s (scene time)."""

    kind: str  # "intrusion", "loitering", "crowd", "stopped_vehicle", ...
    start_s: float
    end_s: float
    zone: str | None = None


@dataclass(frozen=True)
class ExpectedState:
    """A level an analyzer (or rule) should report from start_s to end_s (scene time)."""

    analyzer: str  # the state topic level: "flood", "garbage", "tamper", "congestion-bridge"
    state: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class ExpectedCount:
    """Objects that cross a counting line over the whole scenario."""

    line: str
    direction: str
    label: str
    count: int


@dataclass(frozen=True)
class Expectations:
    """Ground truth for rules and analyzers, plus the camera config to evaluate them with.

    ``camera`` is a fragment of an edge_agent camera config (zones, rules, analyzers,
    fps) that makes sense for this scene; ``clock_start`` is the local wall-clock time of
    frame 0 ("23:30") in ``timezone``, for schedules.
    """

    alerts: tuple[ExpectedAlert, ...] = ()
    states: tuple[ExpectedState, ...] = ()
    counts: tuple[ExpectedCount, ...] = ()
    camera: Mapping[str, Any] = field(default_factory=dict)
    clock_start: str | None = None
    timezone: str = "UTC"
    false_alarm_check: bool = False  # a scenario where no alert at all is expected


@dataclass(frozen=True)
class _Placement:
    actor: Actor
    sprite: Sprite
    mirror: bool
    rect_px: tuple[int, int, int, int]  # x0, y0, x1, y1; may reach outside the frame


class Scenario:
    """A deterministic camera scene. Frames are BGR uint8, height x width x 3."""

    def __init__(
        self,
        name: str,
        *,
        width: int,
        height: int,
        fps: float,
        duration_s: float,
        actors: tuple[Actor, ...] = (),
        seed: int = 2024,
        noise_sigma: float = 2.0,
        drift_amplitude: float = 0.0,
        horizon_y: float = HORIZON_Y,
        layout: StreetLayout | None = None,
        effects: tuple[Effect, ...] = (),
        expectations: Expectations | None = None,
        loops: bool = True,
    ) -> None:
        if width < 32 or height < 32:
            raise ValueError(f"scenario {name}: {width}x{height} is too small (32x32 at least)")
        if not fps > 0.0:
            raise ValueError(f"scenario {name}: fps must be positive, not {fps}")
        self.name = name
        self.width = width
        self.height = height
        self.fps = fps
        self.n_frames = max(1, round(duration_s * fps))
        self.actors = actors
        self.effects = effects
        self.expectations = expectations or Expectations()
        self.loops = loops
        self.layout = layout or StreetLayout()
        self._duration_s = self.n_frames / fps
        self._horizon_y = horizon_y
        self._sprites = load_sprites(actor.sprite for actor in actors)
        self._street = draw_street(width, height, seed, self.layout)
        self._sensor = Sensor(
            width,
            height,
            seed,
            noise_sigma=noise_sigma,
            drift_amplitude=drift_amplitude,
            drift_period_s=self._duration_s,
        )

    @property
    def duration_s(self) -> float:
        return self._duration_s

    def time_s(self, index: int) -> float:
        """Scene time of frame ``index`` (after looping)."""
        return self._wrap(index) / self.fps

    def background(self) -> ImageBGR:
        """The empty street without sensor noise (a copy)."""
        copied: ImageBGR = self._street.copy()
        return copied

    def render(self, index: int) -> ImageBGR:
        """Frame ``index``: same index, same bytes. Indices past the end loop."""
        t_s = self.time_s(index)
        scene = self._street.copy()
        for placement in self._placements(t_s):
            self._paste(scene, placement)
        for effect in self.effects:
            if effect.stage == "scene":
                scene = effect.apply(scene, t_s)
        image = self._sensor.expose(scene, self._wrap(index), t_s)
        for effect in self.effects:
            if effect.stage == "lens":
                image = effect.apply(image, t_s)
        return image

    def truth(self, index: int) -> list[TruthObject]:
        """The objects in frame ``index``, far to near."""
        placements = self._placements(self.time_s(index))
        objects: list[TruthObject] = []
        for i, placement in enumerate(placements):
            clipped = self._clip(placement.rect_px)
            if clipped is None:
                continue
            x0, y0, x1, y1 = clipped
            nearer = [p.rect_px for p in placements[i + 1 :]]
            objects.append(
                TruthObject(
                    object_id=placement.actor.object_id,
                    label=placement.sprite.label,
                    box=(x0 / self.width, y0 / self.height, x1 / self.width, y1 / self.height),
                    visible_fraction=_visible_fraction(placement.rect_px, clipped, nearer),
                )
            )
        return objects

    def _wrap(self, index: int) -> int:
        if index < 0:
            raise ValueError(f"frame index must not be negative, not {index}")
        return index % self.n_frames

    def _placements(self, t_s: float) -> list[_Placement]:
        placements: list[_Placement] = []
        for actor in self.actors:
            # The loop's previous lap may still be running: look one lap ahead as well.
            laps = (t_s, t_s + self._duration_s) if self.loops else (t_s,)
            for lap_t_s in laps:
                position = actor.position(lap_t_s)
                if position is None:
                    continue
                placements.append(self._place(actor, *position))
                break
        placements.sort(key=lambda p: (p.rect_px[3], p.actor.object_id))
        return placements

    def _place(self, actor: Actor, x: float, y: float, moving_right: bool) -> _Placement:
        sprite = self._sprites[actor.sprite]
        scale = perspective_scale(y, self._horizon_y)
        height_px = max(2, round(actor.height * scale * self.height))
        width_px = max(2, round(height_px * sprite.aspect))
        x0 = round(x * self.width - width_px / 2.0)
        y1 = round(y * self.height)
        mirror = sprite.faces != "none" and moving_right == (sprite.faces == "left")
        return _Placement(actor, sprite, mirror, (x0, y1 - height_px, x0 + width_px, y1))

    def _clip(self, rect: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        x0, y0, x1, y1 = rect
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(self.width, x1), min(self.height, y1)
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            return None
        return cx0, cy0, cx1, cy1

    def _paste(self, scene: ImageBGR, placement: _Placement) -> None:
        clipped = self._clip(placement.rect_px)
        if clipped is None:
            return
        x0, y0, x1, y1 = placement.rect_px
        bgr, alpha = placement.sprite.scaled(x1 - x0, y1 - y0, placement.mirror)
        cx0, cy0, cx1, cy1 = clipped
        source = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        target = scene[cy0:cy1, cx0:cx1]
        under = target.astype(np.float32)
        blended = under + (bgr[source].astype(np.float32) - under) * alpha[source]
        target[:] = np.rint(blended).astype(np.uint8)


def _visible_fraction(
    rect: tuple[int, int, int, int],
    clipped: tuple[int, int, int, int],
    nearer: list[tuple[int, int, int, int]],
) -> float:
    """Share of ``rect`` inside the frame and not covered by ``nearer`` rects (4 px grid)."""
    x0, y0, x1, y1 = rect
    step = 4
    xs = np.arange(x0, x1, step) + step / 2.0
    ys = np.arange(y0, y1, step) + step / 2.0
    cx0, cy0, cx1, cy1 = clipped
    seen = ((ys >= cy0) & (ys < cy1))[:, None] & ((xs >= cx0) & (xs < cx1))[None, :]
    for nx0, ny0, nx1, ny1 in nearer:
        seen &= ~(((ys >= ny0) & (ys < ny1))[:, None] & ((xs >= nx0) & (xs < nx1))[None, :])
    return round(float(seen.mean()), 3)


# --- the scenarios -------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """What happens in a scenario, independent of the picture size and frame rate."""

    name: str
    description: str
    duration_s: float
    actors: tuple[Actor, ...] = ()
    drift_amplitude: float = 0.0
    effects: tuple[Effect, ...] = ()
    expectations: Expectations = field(default_factory=Expectations)
    fps: float | None = None  # the rate the scenario is meant to be evaluated at
    horizon_y: float = HORIZON_Y  # nearer (a camera looking across a plaza): smaller far people
    loops: bool = True  # False for evaluation scenarios with a beginning and an end
    seed: int = 2024
    # Draws the actors for another seed (a scene whose people change with the seed, so
    # soaks meet new situations); None: the same ``actors`` whatever the seed.
    recast: Callable[[int], tuple[Actor, ...]] | None = None

    def reseeded(self, seed: int, name: str) -> Script:
        """This script drawn with ``seed`` (street, noise and, with ``recast``, actors)."""
        actors = self.actors if self.recast is None else self.recast(seed)
        return replace(self, name=name, seed=seed, actors=actors)


def _street() -> tuple[Actor, ...]:
    crossing_x = sum(StreetLayout().crossing_x) / 2.0
    return (
        walk("person-1", "person_tshirt", FAR_PAVEMENT_Y, -0.08, 1.08, 0.0, 15.0),
        walk("person-2", "person_black", NEAR_PAVEMENT_Y, 1.1, -0.1, 3.0, 17.0),
        drive("car-1", "car_dark", FAR_LANE_Y, False, 2.0, 7.0),
        drive("car-2", "car_white", NEAR_LANE_Y, True, 6.5, 11.5),
        person(
            "person-3", "person_shirt",
            (11.0, 1.08, FAR_PAVEMENT_Y), (14.0, crossing_x, FAR_PAVEMENT_Y),
            (15.0, crossing_x, FAR_PAVEMENT_Y), (21.0, crossing_x, 0.96),
            (22.0, crossing_x, 0.96), (26.0, 1.1, 0.96),
        ),
        drive("car-3", "car_red", FAR_LANE_Y, False, 21.0, 26.0),
        drive("car-4", "car_dark", NEAR_LANE_Y, True, 23.0, 27.5),
        walk("person-4", "person_black", NEAR_PAVEMENT_Y, -0.1, 1.1, 18.0, 32.0),
        walk("person-5", "person_blonde", FAR_PAVEMENT_Y, 1.08, -0.08, 24.0, 38.0),
    )  # fmt: skip


def _person_walks_in() -> tuple[Actor, ...]:
    return (
        person(
            "person-1", "person_tshirt",
            (5.0, -0.1, NEAR_PAVEMENT_Y), (11.0, 0.45, NEAR_PAVEMENT_Y),
            (21.0, 0.45, NEAR_PAVEMENT_Y), (26.0, 1.1, NEAR_PAVEMENT_Y),
        ),
    )  # fmt: skip


SCRIPTS: dict[str, Script] = {
    script.name: script
    for script in (
        Script(
            "empty_street", "no objects, sensor noise and slight exposure drift (30 s)",
            30.0, drift_amplitude=0.03,
        ),
        Script(
            "street", "people walking and cars driving, overlapping in time (30 s loop)",
            30.0, _street(), drift_amplitude=0.02,
        ),
        Script(
            "person_walks_in",
            "empty, one person walks in, stands 10 s, walks out, empty again (32 s)",
            32.0, _person_walks_in(), drift_amplitude=0.02,
        ),
    )
}  # fmt: skip


SCENARIO_NAMES: tuple[str, ...] = tuple(SCRIPTS)
"""The street scenes of hw-sim v1; ``scenario_names()`` adds the analytics library."""


def register(*scripts: Script) -> None:
    """Add scenarios (the analytics scenario modules call this when imported)."""
    for script in scripts:
        if script.name in SCRIPTS:
            raise ValueError(f"scenario {script.name!r} is registered twice")
        SCRIPTS[script.name] = script


def _load_libraries() -> None:
    """Import the scenario libraries that register themselves (once)."""
    import importlib

    for module in ("hw_sim.scenarios_objects", "hw_sim.scenarios_scene", "hw_sim.scenarios_crowd"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def scenario_names() -> tuple[str, ...]:
    _load_libraries()
    return tuple(SCRIPTS)


def _script(name: str) -> Script:
    _load_libraries()
    if name not in SCRIPTS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCRIPTS)}")
    return SCRIPTS[name]


def script(name: str) -> Script:
    """The scenario's script: what happens, its expectations, its evaluation fps."""
    return _script(name)


def describe_scenario(name: str) -> str:
    """One line on what scenario ``name`` shows."""
    return _script(name).description


def required_media(name: str) -> list[str]:
    """Media files scenario ``name`` cuts its sprites from (for skips and error messages)."""
    return sprite_media(actor.sprite for actor in _script(name).actors)


def load_scenario(name: str, *, width: int = 960, height: int = 540, fps: float = 10.0) -> Scenario:
    """Build scenario ``name``.

    Raises ``KeyError`` for an unknown name, ``ValueError`` for a bad size or rate and
    ``hw_sim.media.MediaNotFound`` (an ``OSError``) when the footage sprites are cut
    from is not on ``EDGE_AGENT_MEDIA_PATH``.
    """
    script = _script(name)
    return Scenario(
        script.name,
        width=width,
        height=height,
        fps=fps,
        duration_s=script.duration_s,
        actors=script.actors,
        drift_amplitude=script.drift_amplitude,
        effects=script.effects,
        expectations=script.expectations,
        loops=script.loops,
        seed=script.seed,
        horizon_y=script.horizon_y,
    )
