"""One track's state for the tracker (``edge_agent.track``): its box, sightings, speed,
confirmation, and the geometry and constants the tracker's rules use (the module docstring
of ``edge_agent.track`` says what each rule is for). Pure: no threads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import REFERENCE_INTERVAL_S, Box, Detection, Track

if TYPE_CHECKING:
    from edge_agent.config import TrackerConfig

# A box edge within this of the picture's edge is cut by it (normalised units).
EDGE_MARGIN = 0.02
# A detection has stepped back into view when its edge on that side is inside the
# margin and this much further in than the track's was: more than a box edge's
# frame-to-frame jitter, so a leaver whose box flickers is not split.
BACK_IN_VIEW_STEP = 0.01
# A leaver's far side may move back from the edge by a step and this share of its box
# (the detector's jitter); further back, it is someone entering there.
FAR_SIDE_RETREAT_BOXES = 0.15
# A track missed by this many detection passes, and unseen for this long, is lost: a
# tentative one was a false positive and is dropped quietly; one leaving by an edge has
# left, and ends at once rather than coasting for ``max_missed_s`` where the next person
# to come in by that edge would pick it up. Both, because passes count frames: at 5 fps
# two passes are 0.32-0.4 s (every 2nd or 3rd frame of a 12.5-16.7 fps file), at 30 fps
# 0.07 s, in which a box that flickers for a moment would be lost.
LOST_AFTER_MISSED_PASSES = 2
LOST_AFTER_S = LOST_AFTER_MISSED_PASSES * REFERENCE_INTERVAL_S
# Frame times are rounded (a file's frame index / fps): durations compared with this slack.
TIME_SLACK_S = 1e-3
# Moving (and, for a box cut by an edge, moving towards it: its far side, the one the
# edge does not cut) means at least this many box widths (or heights) per second: a
# standing person's jitter is below, the slowest walkers in the market ~0.6.
MOVING_MIN_SPEED_BOXES_PER_S = 0.25
# The tracker carries a track through a skipped frame as a mover (its motion explained by
# it) only at this speed or more: below, it may be setting off or stopping, and like a still
# one it explains no motion (the room clip at 3.3 fps: someone who had stood for 10 s set
# off at 0.29 box widths a second, was carried, and came back at a run as a second person).
# At 0.5 hw-sim eval's no_stopping lost one of its two stopped-vehicle alerts; 0.35-0.4 keep both.
CARRY_MIN_SPEED_BOXES_PER_S = 0.4
# A coasting track's box is moved on at its recent speed for at most this long (after
# that, whoever it was may have stopped or turned: it waits where it was expected).
COAST_PREDICTION_MAX_S = 1.0
# How far back the track's own boxes are kept to measure speeds.
VELOCITY_WINDOW_S = 1.0
# Two boxes cut by the same picture edge are one object growing into view (or shrinking
# out of it) when this share of the smaller lies inside the larger.
EDGE_GROWTH_OVERLAP = 0.6
# A track whose box changed size by at most this share over its recent sightings is steady:
# the tracker may carry it through frames the detector skips (``IouTracker.carried_boxes``).
STEADY_SIZE_CHANGE = 0.2
# A track born this soon after a leaver ended, at its edge and beside it, is a remnant ...
REMNANT_WINDOW_S = 1.0
# ... not confirmed while it stays cut by that edge, for at most this long.
REMNANT_HOLD_S = 2.0
# A track every sighting of which lay mostly inside another box of its family and scored
# below ``confirm_score`` (a part of someone) is not confirmed for at most this long.
PART_HOLD_S = 2.0
# ... and a part is at least this share of the width of a box it lies inside: narrower, it
# is someone else among a group the detector boxed as one "person" (a crowd).
PART_MIN_WIDTH_SHARE = 0.25


def label_family(label: str) -> str:
    return "vehicle" if label in VEHICLE_LABELS else label


def cut_edges(box: Box) -> frozenset[str]:
    """The picture edges (left, right, bottom) that cut ``box``."""
    edges = set()
    if box.x_min <= EDGE_MARGIN:
        edges.add("left")
    if box.x_max >= 1.0 - EDGE_MARGIN:
        edges.add("right")
    if box.y_max >= 1.0 - EDGE_MARGIN:
        edges.add("bottom")
    return frozenset(edges)


def _beside(a: Box, b: Box, edge: str) -> bool:
    """Whether ``a`` and ``b`` overlap along ``edge`` (rows for a side, columns for the
    bottom)."""
    if edge == "bottom":
        return a.x_min < b.x_max and b.x_min < a.x_max
    return a.y_min < b.y_max and b.y_min < a.y_max


@dataclass(frozen=True)
class Leaver:
    """A track that ended leaving the picture: where, by which edges, and when."""

    box: Box
    edges: frozenset[str]
    at_s: float

    def left_behind(self, box: Box) -> bool:
        """Whether ``box`` can be a part of this leaver still in view: cut by an edge it left
        by, beside where it left, or mostly inside its last box."""
        if any(_beside(box, self.box, edge) for edge in cut_edges(box) & self.edges):
            return True
        return box.area > 0.0 and box.intersection(self.box) >= EDGE_GROWTH_OVERLAP * box.area


@dataclass(frozen=True)
class TrackerSettings:
    iou_threshold: float = 0.3
    max_missed_s: float = 3.0
    min_hits: int = 2
    min_confirm_s: float = 0.15  # and first to last sighting at least this long
    # A sighting at this score or above confirms at once (None: never at once).
    confirm_score: float | None = 0.7

    @classmethod
    def from_config(cls, config: TrackerConfig) -> TrackerSettings:
        return cls(**config.model_dump())


@dataclass
class LiveTrack:
    track_id: int
    box: Box
    score: float
    first_seen_s: float
    last_seen_s: float
    family: str  # ``label_family`` of its sightings: only its own family continues it
    hits: int = 1
    missed: int = 0
    # Seen once at ``confirm_score`` or above, clear of other objects' boxes: confirmed then.
    sure: bool = False
    # label -> sum of the scores of the sightings that said it (the label vote)
    label_votes: dict[str, float] = field(default_factory=dict)
    # (time, box) of the sightings before the last one within ``VELOCITY_WINDOW_S``:
    # how fast the track moves, and towards which picture edge.
    recent: deque[tuple[float, Box]] = field(default_factory=deque)
    # The leaver this track was born as a remnant of (None: it was not).
    remnant_of: Leaver | None = None
    # The detector skipped frames since the last sighting: the next pass expects it moved on.
    carried: bool = False
    # Every sighting so far a part (``IouTracker._associate``): not confirmed while it holds.
    part: bool = False

    def confirmed(self, settings: TrackerSettings) -> bool:
        """Seen often enough, for long enough, to be an object, and not what a leaver left
        at the edge."""
        return (
            self.remnant_of is None
            and not self.part
            and (
                self.sure
                or (
                    self.hits >= settings.min_hits
                    and (
                        settings.min_hits == 1
                        or self.last_seen_s - self.first_seen_s
                        >= settings.min_confirm_s - TIME_SLACK_S
                    )
                )
            )
        )

    def lost(self, now_s: float) -> bool:
        """Missed by ``LOST_AFTER_MISSED_PASSES`` passes and unseen for ``LOST_AFTER_S``."""
        unseen_s = now_s - self.last_seen_s
        return self.missed >= LOST_AFTER_MISSED_PASSES and unseen_s >= LOST_AFTER_S - TIME_SLACK_S

    def _window(self) -> tuple[Box, float] | None:
        """The oldest recent box and the time from it to the last sighting, if any."""
        if not self.recent:
            return None
        then_s, then = self.recent[0]
        elapsed_s = self.last_seen_s - then_s
        return (then, elapsed_s) if elapsed_s > 0.0 else None

    def leaving_edges(self) -> frozenset[str]:
        """The picture edges this track's box is cut by while it moves towards them."""
        window = self._window()
        if window is None:
            return frozenset()
        then, elapsed_s = window
        box = self.box
        width, height = max(box.width, 1e-3), max(box.height, 1e-3)
        min_speed_x = MOVING_MIN_SPEED_BOXES_PER_S * width * elapsed_s
        min_speed_y = MOVING_MIN_SPEED_BOXES_PER_S * height * elapsed_s
        edges: set[str] = set()
        if box.x_max >= 1.0 - EDGE_MARGIN and box.x_min - then.x_min > min_speed_x:
            edges.add("right")
        if box.x_min <= EDGE_MARGIN and then.x_max - box.x_max > min_speed_x:
            edges.add("left")
        if box.y_max >= 1.0 - EDGE_MARGIN and box.y_min - then.y_min > min_speed_y:
            edges.add("bottom")
        return frozenset(edges)

    def still_leaving_by(self, box: Box, edges: frozenset[str]) -> bool:
        """Whether ``box`` can be this track still leaving by ``edges``. It cannot if it
        came back into full view on one of them, or if its far side moved back from that
        edge (someone entering there grows into the picture; a leaver shrinks out of it).
        """
        step, inside = BACK_IN_VIEW_STEP, 1.0 - EDGE_MARGIN
        retreat_x = step + FAR_SIDE_RETREAT_BOXES * self.box.width
        retreat_y = step + FAR_SIDE_RETREAT_BOXES * self.box.height
        return not (
            (
                "right" in edges
                and (
                    box.x_max < min(inside, self.box.x_max - step)
                    or box.x_min < self.box.x_min - retreat_x
                )
            )
            or (
                "left" in edges
                and (
                    box.x_min > max(EDGE_MARGIN, self.box.x_min + step)
                    or box.x_max > self.box.x_max + retreat_x
                )
            )
            or (
                "bottom" in edges
                and (
                    box.y_max < min(inside, self.box.y_max - step)
                    or box.y_min < self.box.y_min - retreat_y
                )
            )
        )

    def follow(self, det: Detection, now_s: float, *, part: bool = False) -> None:
        """Move onto ``det``, seen at ``now_s`` (``part``: a part of someone else)."""
        self.recent.append((self.last_seen_s, self.box))
        while self.recent and now_s - self.recent[0][0] > VELOCITY_WINDOW_S:
            self.recent.popleft()
        self.box = det.box
        self.score = det.score
        self.last_seen_s = now_s
        self.hits += 1
        self.missed = 0
        self.carried = False
        self.vote(det)
        if self.remnant_of is not None and (
            not self.remnant_of.left_behind(self.box) or now_s - self.first_seen_s >= REMNANT_HOLD_S
        ):
            self.remnant_of = None  # walked out of the spot, or there too long to be a remnant
        self.part = self.part and part and now_s - self.first_seen_s < PART_HOLD_S - TIME_SLACK_S

    def vote(self, det: Detection) -> None:
        """Count ``det``'s label towards the track's label, weighted by its score."""
        self.label_votes[det.label] = self.label_votes.get(det.label, 0.0) + det.score

    def voted_label(self) -> str:
        """The label with the highest summed score (the first one seen wins a tie)."""
        return max(self.label_votes, key=lambda label: self.label_votes[label])

    def velocity(self) -> tuple[float, float]:
        """Box-centre speed over the recent sightings (normalised units per second)."""
        window = self._window()
        if window is None:
            return 0.0, 0.0
        then, elapsed_s = window
        (then_x, then_y), (now_x, now_y) = then.centre, self.box.centre
        return (now_x - then_x) / elapsed_s, (now_y - then_y) / elapsed_s

    def measured_velocity(self) -> tuple[float, float] | None:
        """``velocity``, or None until two sightings apart in time measure one."""
        return None if self._window() is None else self.velocity()

    def steady(self) -> bool:
        """Its box the same size (``STEADY_SIZE_CHANGE``) over its recent sightings: moving on
        at its speed predicts it (entering, leaving, turning, nearing: it changes shape)."""
        window, box = self._window(), self.box
        if window is None:
            return False
        then = window[0]
        return all(
            abs(now - before) <= STEADY_SIZE_CHANGE * max(before, 1e-3)
            for now, before in ((box.width, then.width), (box.height, then.height))
        )

    def moving(self, min_speed_boxes_per_s: float = MOVING_MIN_SPEED_BOXES_PER_S) -> bool:
        """At least ``min_speed_boxes_per_s`` box widths (or heights) a second."""
        (velocity_x, velocity_y), box = self.velocity(), self.box
        return (
            abs(velocity_x) >= min_speed_boxes_per_s * box.width
            or abs(velocity_y) >= min_speed_boxes_per_s * box.height
        )

    def predicted_box(self, now_s: float, *, carried: bool = False) -> Box:
        """Where a track still coasting should be by ``now_s``: its last box moved on at the
        speed it had over its recent sightings, for at most ``COAST_PREDICTION_MAX_S``.
        Someone hidden for a moment behind a passer-by comes out ahead of where they
        were hidden, not where they vanished (where the passer-by now is). So is a track
        the tracker carried through frames the detector skipped (or would: ``carried``)."""
        if self.missed == 0 and not (self.carried or carried):
            return self.box
        velocity_x, velocity_y = self.velocity()
        ahead_s = min(now_s - self.last_seen_s, COAST_PREDICTION_MAX_S)
        dx, dy = velocity_x * ahead_s, velocity_y * ahead_s
        box = self.box
        return Box(box.x_min + dx, box.y_min + dy, box.x_max + dx, box.y_max + dy)

    def can_be_taken_up(self, now_s: float) -> bool:
        """Whether a detection may continue this track. One that was walking or driving
        and has been lost for longer than its position can be predicted may be anywhere
        by now: in a busy place, whoever next walks through where it was expected would
        take its id (and its dwell) over. It coasts on unmatched until it ends. Someone
        standing still stays matchable for the whole ``max_missed_s``."""
        if self.missed == 0 or now_s - self.last_seen_s <= COAST_PREDICTION_MAX_S:
            return True
        return not self.moving()

    def snapshot(self, box: Box | None = None) -> Track:
        """The track as it is (``box``: at that box instead of its last one)."""
        return Track(
            track_id=self.track_id,
            label=self.voted_label(),
            score=self.score,
            box=self.box if box is None else box,
            first_seen_s=self.first_seen_s,
            last_seen_s=self.last_seen_s,
            hits=self.hits,
            missed=self.missed,
        )
