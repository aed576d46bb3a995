"""Water pooling and flooding on a road: none / puddle / flooded.

The analyzer learns the road dry (a per-pixel median over ``learn_s``, plus the median of
its texture) and then asks of every pixel of the region whether it now looks like
standing water, after undoing the change of light measured on the *rest* of the frame
(so dusk or a passing cloud is not water, and a flooded road does not hide its own
brightening by moving the measure of light):

- reflective: clearly brighter than the dry road (``brightness_shift``: water mirrors
  the sky or the lights), or clearly bluer and not darker (``blue_shift``: sky colour);
- smooth: its relative texture below ``texture_ratio_max`` of the dry road's: a film of
  water hides the grain of the asphalt, where sunlight on dry road keeps it.

Reflective pixels form patches, and a patch is water when a good part of it is smooth
(the rim of a puddle has the texture of its own edge but belongs to it). A pixel counts
as water when it looked like water for most of the last
``water_memory_s`` (a running average above one half), so a white car or a headlight
sweeping across the road does not count; the share of the region that is water then
goes through hysteresis (``puddle_*``, ``flooded_*``) and persistence (``min_duration_s``).
While the road is dry, the reference follows slow change (``reference_tau_s``) on the
pixels that look dry.

The dry reference is best *set* while the road is dry (``request_reference``) and kept on
disk (``edge_agent.analyzers.reference``): water already there at start is then reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import cv2
import numpy as np

from edge_agent.analytics import DetailValue, SceneState
from edge_agent.analyzers.common import (
    BoolImage,
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
    shrink,
)
from edge_agent.analyzers.config import FloodAnalyzerConfig
from edge_agent.analyzers.reference import (
    ReferenceSlot,
    SlotHolder,
    memory_slot,
    region_geometry,
)
from edge_agent.types import Frame, ImageBGR

NONE, PUDDLE, FLOODED = "none", "puddle", "flooded"
STATES = (NONE, PUDDLE, FLOODED)
CONTEXT_WIDTH_PX = 64  # the whole frame at this width measures the light
_TEXTURE_FLOOR = 0.02  # relative texture below which "more textured" is only noise
_SMOOTH_SHARE = 0.3  # a reflective patch is water when a good part of it is smooth
_RECENT_FRAMES = 3  # texture is measured on the median of the last few pictures
_DRIFT_SHARE = 0.25  # the adapted reference stays this share of the thresholds from the set one
_TEXTURE_DRIFT = (0.8, 1.25)  # and its texture within these factors of the set one's


def texture(grey: FloatImage) -> FloatImage:
    """Relative local texture: mean absolute Laplacian over a 5x5 neighbourhood, divided by
    the local brightness. Light falling on a surface scales both (a sunny patch keeps its
    grain), a mirror-like film of water removes the grain while it brightens."""
    laplacian = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    energy = np.asarray(cv2.blur(laplacian, (3, 3)), np.float32)
    brightness = np.asarray(cv2.blur(grey, (3, 3)), np.float32)
    return energy / (brightness + 10.0)


class FloodAnalyzer(SlotHolder):
    def __init__(
        self, config: FloodAnalyzerConfig, camera_id: str = "", slot: ReferenceSlot | None = None
    ) -> None:
        self.config = config
        self._camera_id = camera_id
        self.slot = slot or memory_slot(camera_id, config.name, config.kind, geometry_of(config))
        self._sampler = RegionSampler(config.region, config.work_width_px)
        self._hysteresis = Hysteresis(
            NONE,
            (
                Level(PUDDLE, config.puddle_enter, config.puddle_exit),
                Level(FLOODED, config.flooded_enter, config.flooded_exit),
            ),
        )
        self._persistence = Persistence(config.min_duration_s)
        self._ticker = Ticker(config.every_s, self._persistence)
        self._learner = ReferenceLearner(config.learn_s)
        self._reference: FloatImage | None = None  # region, BGR float
        self._reference_texture: FloatImage | None = None
        self._reference_context: FloatImage | None = None
        self._anchor: dict[str, FloatImage] = {}  # the reference as it was set or learnt
        self._outside: BoolImage | None = None  # context pixels outside the region
        self._memory: FloatImage | None = None
        self._recent: deque[FloatImage] = deque(maxlen=_RECENT_FRAMES)
        self.last_share = 0.0
        self.last_measures: dict[str, DetailValue] = {}

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> str | None:
        return self._persistence.state

    # -- the reference (docs/analyzers.md, Stored references)

    def relearn(self) -> None:
        """The view changed for good: learn the road again, and judge afresh."""
        self._forget()
        self.restart()

    def restart(self) -> None:
        """Judge afresh with the same reference: the next level is published again."""
        self._persistence.reset()
        self._memory = None
        self._recent.clear()

    def _arrays(self) -> dict[str, FloatImage]:
        assert self._reference is not None
        assert self._reference_texture is not None and self._reference_context is not None
        return {
            "region": self._reference,
            "texture": self._reference_texture,
            "context": self._reference_context,
        }

    def _install(self, arrays: Mapping[str, FloatImage]) -> bool:
        """Take these arrays as the reference, if their shapes fit this picture."""
        region, tex, context = arrays.get("region"), arrays.get("texture"), arrays.get("context")
        if region is None or tex is None or context is None:
            return False
        if tex.shape != region.shape[:2] or self._outside is None:
            return False
        if context.shape[:2] != self._outside.shape:
            return False
        self._reference = region.astype(np.float32, copy=True)
        self._reference_texture = tex.astype(np.float32, copy=True)
        self._reference_context = context.astype(np.float32, copy=True)
        self._anchor = {key: value.copy() for key, value in self._arrays().items()}
        self.restart()
        self.slot.judged()
        return True

    def _reference_step(
        self, region: FloatImage, context: FloatImage, size: tuple[int, int], now_s: float
    ) -> None:
        """Requests first, then the stored reference at the first frame."""
        request = self.slot.take_request()
        if request == "frame":
            arrays = {"region": region, "texture": texture(_grey(region)), "context": context}
            if self._install(arrays):
                self.slot.taken(self._arrays(), size, now_s, explicit=True)
        elif request == "learn":
            self.relearn()
        elif self._reference is None:
            stored = self.slot.stored_for(size)
            if stored is not None and not self._install(stored):
                self.slot.errors += 1  # the same size and geometry cannot give other shapes

    # -- judgement

    def update(self, frame: Frame, now_s: float) -> tuple[SceneState, ...]:
        tick = self._ticker.tick(now_s)
        if tick is None:
            return ()
        dt_s, gap = tick
        if gap:
            self._recent.clear()
        image = frame.for_analysis
        size = (int(image.shape[1]), int(image.shape[0]))
        small, mask = self._sampler.sample(image)
        region = small.astype(np.float32)
        context = shrink(image, CONTEXT_WIDTH_PX).astype(np.float32)
        if self._reference_context is not None and (
            self._reference_context.shape != context.shape
            or self._reference is None
            or self._reference.shape != region.shape
        ):
            self._forget()  # the camera's resolution changed: learn the road again
        if self._outside is None or self._outside.shape != context.shape[:2]:
            self._outside = ~self._region_in_context(image)
        self._reference_step(region, context, size, now_s)
        if self._reference is None:
            if not self.slot.may_learn:
                return self.slot.unknown_once(frame, self.name)
            learnt = self._learn(region, context, now_s)
            if learnt is not None and self._install(learnt):
                self.slot.taken(self._arrays(), size, now_s, explicit=False)
            return ()
        assert self._reference_texture is not None and self._reference_context is not None
        gain = channel_gain(context, self._reference_context, self._outside)
        normalised = region / gain
        delta = normalised - self._reference
        brightness = delta.mean(axis=2)
        blueness = delta[:, :, 0] - delta[:, :, 2]
        config = self.config
        reflective = (brightness > config.brightness_shift) | (
            (blueness > config.blue_shift) & (brightness > -0.5 * config.brightness_shift)
        )
        # Rain streaks and flicker change from picture to picture; water does not.
        self._recent.append(_grey(normalised))
        steady = np.median(np.stack(self._recent), axis=0) if len(self._recent) > 1 else None
        current_texture = texture(self._recent[-1] if steady is None else steady)
        smooth = current_texture <= (
            config.texture_ratio_max * self._reference_texture + _TEXTURE_FLOOR
        )
        water_now = (_smooth_regions(reflective & mask, smooth) & mask).astype(np.float32)
        if self._memory is None:
            self._memory = np.zeros_like(water_now)
        self._memory += blend_factor(dt_s, config.water_memory_s) * (water_now - self._memory)
        water = (self._memory >= 0.5) & mask
        share = float(water.sum()) / max(1, int(mask.sum()))
        self.last_share = share
        n_mask = max(1, int(mask.sum()))
        self.last_measures = {
            "share": round(share, 4),
            "reflective": round(float((reflective & mask).sum()) / n_mask, 4),
            "smooth": round(float((smooth & mask).sum()) / n_mask, 4),
            "water_now": round(float(water_now.sum()) / n_mask, 4),
            "gain": round(float(gain.mean()), 3),
        }
        if self._persistence.state in (None, NONE):
            dry = mask & ~reflective & (self._memory < 0.1)
            self._adapt(region, current_texture, context, dry, dt_s)
        level = self._hysteresis.level(share, self._persistence.state)
        change = self._persistence.update(level, now_s, frame.captured_at_s)
        if change is None:
            return ()
        detail: dict[str, DetailValue] = {
            "share": self.last_measures["share"],
            "reflective": self.last_measures["reflective"],
        }
        return (make_state(frame, self.name, change, round(share, 4), detail),)

    def _forget(self) -> None:
        self._reference = self._reference_texture = self._reference_context = None
        self._outside = self._memory = None
        self._recent.clear()
        self._learner.reset()

    def _region_in_context(self, image: ImageBGR) -> BoolImage:
        """The region's polygon drawn on the context picture (whole frame, small)."""
        context_w = min(CONTEXT_WIDTH_PX, image.shape[1])
        context_h = max(1, round(image.shape[0] * context_w / image.shape[1]))
        points = self.config.region.points()
        polygon = np.array([[x * context_w, y * context_h] for x, y in points], np.float32)
        mask = np.zeros((context_h, context_w), np.uint8)
        cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        return mask > 0

    def _learn(
        self, region: FloatImage, context: FloatImage, now_s: float
    ) -> dict[str, FloatImage] | None:
        """The learnt reference, once learning is over with this picture."""
        tex = texture(_grey(region))
        stacked = np.concatenate([region.ravel(), tex.ravel(), context.ravel()])
        median = self._learner.add(stacked, now_s)
        if median is None:
            return None
        n_region, n_tex = region.size, tex.size
        return {
            "region": median[:n_region].reshape(region.shape),
            "texture": median[n_region : n_region + n_tex].reshape(tex.shape),
            "context": median[n_region + n_tex :].reshape(context.shape),
        }

    def _adapt(
        self,
        region: FloatImage,
        current_texture: FloatImage,
        context: FloatImage,
        dry: BoolImage,
        dt_s: float,
    ) -> None:
        """Follow slow change of the dry road (raw values: the light reference moves too)."""
        assert self._reference is not None
        assert self._reference_texture is not None and self._reference_context is not None
        weight = blend_factor(dt_s, self.config.reference_tau_s)
        if weight <= 0.0:
            return
        self._reference_context += weight * (context - self._reference_context)
        self._reference[dry] += weight * (region[dry] - self._reference[dry])
        self._reference_texture[dry] += weight * (
            current_texture[dry] - self._reference_texture[dry]
        )
        self._bound_drift()

    def _bound_drift(self) -> None:
        """Keep the adapted reference near the one that was set (or learnt), after the change
        of light between the two: slow wear and dirt fit in the bounds, but a flood that
        deepens slowly, a little more each minute, is never taken for the dry road."""
        assert self._reference is not None and self._reference_texture is not None
        assert self._reference_context is not None and self._outside is not None
        if not self._anchor:
            return
        light = channel_gain(self._reference_context, self._anchor["context"], self._outside)
        dry = self._anchor["region"] * light
        bound = _DRIFT_SHARE * min(self.config.brightness_shift, self.config.blue_shift)
        np.clip(self._reference, dry - bound, dry + bound, out=self._reference)
        low, high = _TEXTURE_DRIFT
        anchor_texture = self._anchor["texture"]
        np.clip(
            self._reference_texture,
            low * anchor_texture,
            high * anchor_texture,
            out=self._reference_texture,
        )


def geometry_of(config: FloodAnalyzerConfig) -> str:
    """What the stored arrays' shapes depend on, besides the picture's size."""
    return region_geometry(
        config.region.points(), config.work_width_px, f"context={CONTEXT_WIDTH_PX}"
    )


def _smooth_regions(reflective: BoolImage, smooth: BoolImage) -> BoolImage:
    """The reflective patches most of whose pixels are smooth, whole.

    Judged per patch, not per pixel: a puddle's rim has the texture of its own edge but is
    part of the puddle, and a sunlit patch of road keeps its grain except here and there.
    """
    count, labels = cv2.connectedComponents(reflective.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(reflective)
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count)
    smooth_counts = np.bincount(flat, weights=smooth.ravel().astype(np.float64), minlength=count)
    water_label = smooth_counts >= _SMOOTH_SHARE * np.maximum(sizes, 1)
    water_label[0] = False  # the background label
    result: BoolImage = water_label[labels]
    return result


def _grey(bgr: FloatImage) -> FloatImage:
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), np.float32)
