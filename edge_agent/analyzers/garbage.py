"""Garbage dumped in a no-dumping region: none / present, with the pile's area.

Two backgrounds of the region (the classic dual-background test for left objects):

- the long-term reference: the empty region (a median over ``learn_s`` at start-up),
  following only slow change on pixels where nothing new is (``reference_tau_s``);
- the short-term background: a running average with time constant ``short_tau_s``.

A pixel is changed when the current picture differs from the reference by more than
``diff_threshold``, and still when it agrees with the short-term background within
``stable_threshold``. The age of a changed pixel grows while it is still, holds while it
is not (someone walks in front of the pile), and drops to zero as soon as the pixel is
back to the reference (the pile was taken away). Pixels older than ``persistence_s`` form the
pile; its share of the region goes through hysteresis (``present_enter``/``present_exit``)
and persistence (``min_duration_s``). Growth is republished when the share moved by
``report_step``.

People and vehicles passing never become candidates for long (they move); light
changing over the day is divided out per colour channel, measured on the region's
pixels where nothing new is.

The empty reference is best *set* while the region is empty (``request_reference``) and
kept on disk (``edge_agent.analyzers.reference``): a pile already there at start is then
reported.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.analytics import DetailValue, SceneState
from edge_agent.analyzers.common import (
    BoolImage,
    Change,
    FloatImage,
    Hysteresis,
    Level,
    Persistence,
    ReferenceLearner,
    RegionSampler,
    Ticker,
    blend_factor,
    channel_gain,
    make_state,
)
from edge_agent.analyzers.config import GarbageAnalyzerConfig
from edge_agent.analyzers.reference import (
    ReferenceSlot,
    SlotHolder,
    memory_slot,
    region_geometry,
)
from edge_agent.types import Frame

NONE, PRESENT = "none", "present"
STATES = (NONE, PRESENT)
_OPEN_KERNEL = np.ones((3, 3), np.uint8)
_DRIFT_SHARE = 0.25  # the adapted reference stays this share of diff_threshold from the set one


class GarbageAnalyzer(SlotHolder):
    def __init__(
        self,
        config: GarbageAnalyzerConfig,
        camera_id: str = "",
        slot: ReferenceSlot | None = None,
    ) -> None:
        self.config = config
        self._camera_id = camera_id
        self.slot = slot or memory_slot(camera_id, config.name, config.kind, geometry_of(config))
        self._sampler = RegionSampler(config.region, config.work_width_px)
        self._hysteresis = Hysteresis(
            NONE, (Level(PRESENT, config.present_enter, config.present_exit),)
        )
        self._persistence = Persistence(config.min_duration_s)
        self._ticker = Ticker(config.every_s, self._persistence)
        self._learner = ReferenceLearner(config.learn_s)
        self._reference: FloatImage | None = None
        self._anchor: FloatImage | None = None  # the reference as it was set or learnt
        self._short: FloatImage | None = None
        self._age: FloatImage | None = None
        self._changed: BoolImage | None = None
        self._present_since: Change | None = None
        self._first_share = 0.0
        self._reported_share = 0.0
        self.last_share = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> str | None:
        return self._persistence.state

    # -- the reference (docs/analyzers.md, Stored references)

    def relearn(self) -> None:
        """The view changed for good: learn the empty region again, and judge afresh."""
        self._reference = None
        self._learner.reset()
        self.restart()

    def restart(self) -> None:
        """Judge afresh with the same reference: what differs from it ages from zero, and the
        next level is published again."""
        self._persistence.reset()
        self._present_since = None
        self._reported_share = self._first_share = 0.0
        if self._reference is not None:
            self._short = self._reference.copy()
            self._age = np.zeros(self._reference.shape[:2], np.float32)
            self._changed = np.zeros(self._reference.shape[:2], bool)

    def _install(self, reference: FloatImage) -> None:
        self._reference = reference.astype(np.float32, copy=True)
        self._anchor = self._reference.copy()
        self.restart()
        self.slot.judged()

    def _reference_step(self, region: FloatImage, size: tuple[int, int], now_s: float) -> None:
        """Requests first, then the stored reference at the first frame."""
        request = self.slot.take_request()
        if request == "frame":
            self._install(region)
            self.slot.taken({"region": region}, size, now_s, explicit=True)
        elif request == "learn":
            self.relearn()
        elif self._reference is None:
            stored: Mapping[str, FloatImage] | None = self.slot.stored_for(size)
            reference = None if stored is None else stored.get("region")
            if reference is not None and reference.shape == region.shape:
                self._install(reference)
            elif stored is not None:
                self.slot.errors += 1  # the same size and geometry cannot give other shapes

    # -- judgement

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        tick = self._ticker.tick(now_s)
        if tick is None:
            return ()
        dt_s, gap = tick
        image = frame.for_analysis
        size = (int(image.shape[1]), int(image.shape[0]))
        small, mask = self._sampler.sample(image)
        region = small.astype(np.float32)
        if self._reference is not None and self._reference.shape != region.shape:
            self._reference = None  # the camera's resolution changed: learn again
            self._learner.reset()
        self._reference_step(region, size, now_s)
        if self._reference is None:
            if not self.slot.may_learn:
                return self.slot.unknown_once(frame, self.name)
            reference = self._learner.add(region, now_s)
            if reference is not None:
                self._install(reference)
                self.slot.taken({"region": reference}, size, now_s, explicit=False)
            return ()
        assert self._short is not None and self._age is not None and self._changed is not None
        config = self.config
        gain = channel_gain(region, self._reference, mask & ~self._changed)
        normalised: FloatImage = (region / gain).astype(np.float32)
        if gap:  # what moved while nobody looked is unknown: start the short term afresh
            self._short[:] = normalised
        self._short += blend_factor(dt_s, config.short_tau_s) * (normalised - self._short)
        from_reference = np.abs(normalised - self._reference).max(axis=2)
        from_short = np.abs(normalised - self._short).max(axis=2)
        changed = (from_reference > config.diff_threshold) & mask
        still = from_short < config.stable_threshold
        age = self._age
        age[changed & still] += dt_s  # something new that is not moving: it ages
        age[~changed] = 0.0  # back to the reference: gone
        # changed but moving (someone passing in front): the age holds
        self._changed = changed
        self._adapt(normalised, dt_s)

        pile = (age >= config.persistence_s).astype(np.uint8)
        pile = np.asarray(cv2.morphologyEx(pile, cv2.MORPH_OPEN, _OPEN_KERNEL), np.uint8)
        share = float(pile.sum()) / max(1, int(mask.sum()))
        self.last_share = share
        level = self._hysteresis.level(share, self._persistence.state)
        if self._persistence.state is None and level == NONE:
            settling = np.asarray(
                cv2.morphologyEx((age > 0).astype(np.uint8), cv2.MORPH_OPEN, _OPEN_KERNEL)
            )
            if float(settling.sum()) / max(1, int(mask.sum())) >= config.present_enter:
                # The first level, with something already there and still: "none" could be
                # wrong within persistence_s (a pile there when the reference was set).
                self._persistence.interrupt()
                return ()
        began = None
        if level == PRESENT and pile.any():  # the pile is there since its oldest part came
            oldest_s = float(age[pile > 0].max())
            began = (now_s - oldest_s, frame.captured_at_s - oldest_s)
        change = self._persistence.update(level, now_s, frame.captured_at_s, began=began)
        if change is not None:
            if change.state == PRESENT:
                self._present_since = change
                self._first_share = share
            else:
                self._present_since = None
        elif (
            self._present_since is not None
            and self._persistence.state == PRESENT
            and level == PRESENT  # not while it is being taken away
            and abs(share - self._reported_share) >= config.report_step
        ):
            change = self._present_since  # growth (or shrinkage) of a pile already reported
        if change is None:
            return ()
        self._reported_share = share
        detail: dict[str, DetailValue] = {
            "area": round(share, 4),
            "growth": round(share - self._first_share, 4) if change.state == PRESENT else 0.0,
        }
        detail.update(self._pile_box(pile))
        return (make_state(frame, self.name, change, round(share, 4), detail),)

    def _adapt(self, normalised: FloatImage, dt_s: float) -> None:
        """While the region is clear, unchanged pixels follow slow change, near the reference
        that was set; with ``absorb_after_s``, old piles become part of it."""
        assert self._reference is not None and self._age is not None and self._changed is not None
        config = self.config
        weight = blend_factor(dt_s, config.reference_tau_s)
        quiet = ~self._changed
        if weight > 0.0 and self._persistence.state in (None, NONE):
            self._reference[quiet] += weight * (normalised[quiet] - self._reference[quiet])
            if self._anchor is not None:
                bound = _DRIFT_SHARE * config.diff_threshold
                np.clip(
                    self._reference, self._anchor - bound, self._anchor + bound, out=self._reference
                )
        if config.absorb_after_s is not None:
            absorbed = self._age >= config.absorb_after_s
            if absorbed.any():
                self._reference[absorbed] = normalised[absorbed]
                if self._anchor is not None:
                    self._anchor[absorbed] = normalised[absorbed]  # part of the scene now
                self._age[absorbed] = 0.0

    def _pile_box(self, pile: npt.NDArray[np.uint8]) -> dict[str, DetailValue]:
        """Where the pile is, as a box normalised to the frame (x_min, y_min, x_max, y_max)."""
        ys, xs = np.nonzero(pile)
        if len(xs) == 0:
            return {}
        x0, y0, x1, y1 = self._sampler.to_frame(
            float(xs.min()), float(ys.min()), float(xs.max()) + 1.0, float(ys.max()) + 1.0
        )
        return {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}


def geometry_of(config: GarbageAnalyzerConfig) -> str:
    """What the stored array's shape depends on, besides the picture's size."""
    return region_geometry(config.region.points(), config.work_width_px)
