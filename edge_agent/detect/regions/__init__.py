"""Region detection: run the detector on crops around motion and tracked objects.

Resizing a whole 960x540 frame to a 300 or 416 px model input shrinks a person 25 px tall
to ~11 px, and no model here finds that (0 % of trials; DESIGN.md §8); a crop of about the
model's input size around them keeps them at native resolution, and they are found half
the time or better. So, like Frigate, the detector runs on *regions* around motion and
tracked objects (at their predicted place), never on the whole frame alone:

- each track and motion box seeds a square with some context around it, at least
  ``min_region_px`` on a side (a larger object gets a larger square, which the detector
  shrinks to its input); seeds whose squares overlap enough are merged, so one invoke
  covers a group; a square is shifted inside the picture rather than cut;
- a per-frame budget of invokes is spent on tracks first (the least recently seen
  first, so over-budget tracks take turns), then on the largest motion: CPU stays
  bounded on a busy scene;
- a full-frame pass runs on a cadence and whenever nothing is tracked: it finds what
  motion missed (a low-contrast walker, something that stopped); it also runs instead
  of a region for an object large enough to be found in it (one invoke for all of them),
  and when it runs, a vehicle broad enough for it (``VEHICLE_BESIDE_FULL_INPUT_PX``)
  gets no region of its own;
  beside it, a region that would not show its content at least ``FULL_FRAME_MIN_ZOOM``
  times larger than the full frame does is not worth its invoke;
- a box touching a region's inner edge (not the picture's) is an object cut by the
  crop: a larger region, reaching as far again past that edge, is run around it;
- boxes are mapped back to the frame and de-duplicated across passes: a cut box goes
  when another pass sees the object whole, then NMS per label family.

Pure: no threads, no windows. Plan for the size of the image you will crop from; regions
are kept normalised, so a plan made for one size crops the same view from another.
``plan`` decides the regions, ``passes`` runs them; ``RegionDetector`` is what a camera's
pipeline holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.detect.base import Detector
from edge_agent.detect.regions.passes import RegionFigures, RegionResult, detect_regions
from edge_agent.detect.regions.plan import (
    WHOLE_FRAME,
    Region,
    RegionKind,
    RegionPlan,
    RegionSettings,
    min_side_px,
    plan_regions,
    untracked_motion,
)
from edge_agent.types import Box, ImageBGR, Track

__all__ = [
    "WHOLE_FRAME",
    "Region",
    "RegionDetector",
    "RegionFigures",
    "RegionKind",
    "RegionPlan",
    "RegionResult",
    "RegionSettings",
    "detect_regions",
    "min_side_px",
    "plan_regions",
    "untracked_motion",
]


class RegionDetector:
    """Region detection for one camera: keeps the full-frame cadence (not thread-safe)."""

    def __init__(self, input_px: tuple[int, int], settings: RegionSettings | None = None) -> None:
        self.input_px = input_px
        self.settings = settings or RegionSettings()
        self._last_full_s: float | None = None

    def full_frame_due(self, now_s: float, *, tracked: bool) -> bool:
        """Whether this frame's detection run must include a full-frame pass (with regions
        off every run is one)."""
        if not self.settings.enabled:
            return False
        if not tracked or self._last_full_s is None:
            return True
        return now_s - self._last_full_s >= self.settings.full_frame_every_s

    def detect(
        self,
        detector: Detector,
        image: ImageBGR,
        *,
        now_s: float,
        motion: Sequence[Box] = (),
        tracks: Sequence[Track] = (),
    ) -> RegionResult:
        """Plan and run one frame. ``tracks`` carry the boxes where they are expected now
        (``IouTracker.expected_tracks``), tentative ones included; ``motion`` is the
        gate's boxes; both normalised, so the analysis frame may be smaller than ``image``."""
        height_px, width_px = image.shape[:2]
        frame_px = (width_px, height_px)
        if not self.settings.enabled:
            plan = RegionPlan(frame_px, self.input_px, (Region(WHOLE_FRAME, "full"),), 1)
        else:
            # The least recently seen first: over the budget, tracks take turns.
            urgent = sorted(tracks, key=lambda t: (t.last_seen_s, -t.hits, t.track_id))
            plan = plan_regions(
                frame_px,
                self.input_px,
                tracks=[t.box for t in urgent],
                track_labels=[t.label for t in urgent],
                motion=motion,
                full_frame=self.full_frame_due(now_s, tracked=bool(tracks)),
                settings=self.settings,
            )
        if plan.full_frame:
            self._last_full_s = now_s
        return detect_regions(detector, image, plan, self.settings)
