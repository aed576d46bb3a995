"""The tracker's second stage: a mover seen again further than its boxes overlap.

At 5 fps a car on a highway seen side-on moves more than its own length between two
detection passes (``automl_traffic_frames.mp4``: about 4.5 lengths a second), so its next
box does not overlap its last one and the IoU stage cannot continue it: every sighting
starts a new track, and one seen once below ``confirm_score`` is never confirmed.
After the IoU stage, the tracks and detections it left over are paired by *distance*,
measured in the object's own box sizes from where the track is expected:

- a track seen once (no speed yet) reaches as far as something moving
  ``FAST_BOXES_PER_S`` box sizes a second goes in the time since its last sighting
  (capped at ``MAX_ELAPSED_S``; ``CARRIED_MAX_ELAPSED_S`` for a track the pipeline carried
  through skipped frames): at 5 fps, one box length for a car;
- a track with a speed is expected where that speed puts it (the IoU stage looks for a
  track the last pass saw where it was seen), within half a box plus half its own move
  (speeds from a few jittery boxes are rough);
- never a track that stood still (a passer-by beside someone who stands does not take
  their id: the market's hand-overs, docs/analytics.md), nor one that can no longer be
  taken up (a mover lost for over a second);
- only the same family, boxes of like size (each side within ``SIZE_RATIO``, except a side
  a picture edge cuts), and pairs chosen nearest first (in box sizes), one to one: two
  cars side by side in neighbouring lanes each keep their own track, the nearer one wins.

Pure: no state of its own; ``edge_agent.track`` calls ``reach_pairs`` after its IoU stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from edge_agent.types import Box

# How fast, in its own box sizes a second, a track with no speed yet may have moved: a car
# side-on at highway speed (the highway clip: 4-4.5 lengths a second; a person running is
# about 5 body widths a second).
FAST_BOXES_PER_S = 5.0
# ... over at most this long since its last sighting (longer, it may be anyone).
MAX_ELAPSED_S = 0.5
# A track the pipeline carried through frames the detector skipped (confirmed, steady and
# moving: it has a speed) is looked for this long: the pipeline carries at most
# ``CARRY_MAX_S`` (0.4 s) after a pass, and the next frame comes at most as long after that
# (at 5 fps the next pass is 0.6 s after the last).
CARRIED_MAX_ELAPSED_S = 0.8
# A track with a speed: within this share of a box of where it is expected, plus this
# share of its expected move.
PREDICTED_SLACK_BOXES = 0.5
PREDICTED_SLACK_MOVE = 0.5
# Two boxes of one object: each side within this factor of the other's (a side cut by a
# picture edge excepted).
SIZE_RATIO = 1.5


def _cut_x(box: Box, margin: float) -> bool:
    return box.x_min <= margin or box.x_max >= 1.0 - margin


def _cut_y(box: Box, margin: float) -> bool:
    return box.y_max >= 1.0 - margin


def _alike(a: float, b: float) -> bool:
    small, large = min(a, b), max(a, b)
    return small > 0.0 and large <= SIZE_RATIO * small


def reach_cost(
    last: Box,
    velocity: tuple[float, float] | None,
    elapsed_s: float,
    det: Box,
    *,
    edge_margin: float,
    max_elapsed_s: float = MAX_ELAPSED_S,
) -> float | None:
    """How far (in box sizes) ``det`` lies from where a track last seen at ``last``,
    ``elapsed_s`` ago (at most ``max_elapsed_s``), moving at ``velocity`` (None: not known,
    seen once) is expected; None when it is out of reach or not alike. The caller has
    excluded tracks that stood still."""
    if elapsed_s <= 0.0 or elapsed_s > max_elapsed_s:
        return None
    if not (_cut_x(last, edge_margin) or _cut_x(det, edge_margin)) and not _alike(
        last.width, det.width
    ):
        return None
    if not (_cut_y(last, edge_margin) or _cut_y(det, edge_margin)) and not _alike(
        last.height, det.height
    ):
        return None
    width, height = max(last.width, det.width), max(last.height, det.height)
    (last_x, last_y), (det_x, det_y) = last.centre, det.centre
    if velocity is None:
        expected_x, expected_y = last_x, last_y
        reach_x = FAST_BOXES_PER_S * width * elapsed_s
        reach_y = FAST_BOXES_PER_S * height * elapsed_s
    else:
        move_x, move_y = velocity[0] * elapsed_s, velocity[1] * elapsed_s
        expected_x, expected_y = last_x + move_x, last_y + move_y
        reach_x = PREDICTED_SLACK_BOXES * width + PREDICTED_SLACK_MOVE * abs(move_x)
        reach_y = PREDICTED_SLACK_BOXES * height + PREDICTED_SLACK_MOVE * abs(move_y)
    off_x, off_y = abs(det_x - expected_x), abs(det_y - expected_y)
    if off_x > reach_x or off_y > reach_y:
        return None
    return math.hypot(off_x / width, off_y / height)


class Follower(Protocol):
    """What the second stage asks of a live track (``edge_agent.track``'s)."""

    @property
    def box(self) -> Box: ...
    @property
    def family(self) -> str: ...
    @property
    def last_seen_s(self) -> float: ...
    @property
    def carried(self) -> bool: ...
    def measured_velocity(self) -> tuple[float, float] | None: ...
    def moving(self) -> bool: ...
    def can_be_taken_up(self, now_s: float) -> bool: ...
    def still_leaving_by(self, box: Box, edges: frozenset[str]) -> bool: ...


def reach_pairs(
    tracks: Sequence[Follower],
    boxes: Sequence[Box],
    families: Sequence[str],
    now_s: float,
    leaving: Sequence[frozenset[str]],
    matched_tracks: set[int],
    taken: set[int],
    *,
    edge_margin: float,
) -> list[tuple[int, int]]:
    """The second stage's (track, detection) pairs, among the tracks not in
    ``matched_tracks`` and the detections (``boxes``, ``families`` by label) not in
    ``taken``: nearest first (in box sizes), one to one, each added to those sets. A track
    that stood still, or can no longer be taken up, is left alone; a leaver takes only a box
    still leaving by its edge (``leaving``: the edges each track is leaving by)."""
    candidates: list[tuple[float, int, int]] = []
    for t_index, track in enumerate(tracks):
        if t_index in matched_tracks or not track.can_be_taken_up(now_s):
            continue
        velocity = track.measured_velocity()
        if velocity is not None and not track.moving():
            continue  # it stood still: whoever is near it now is someone else
        elapsed_s = now_s - track.last_seen_s
        for d_index, box in enumerate(boxes):
            if (
                d_index in taken
                or families[d_index] != track.family
                or not track.still_leaving_by(box, leaving[t_index])
            ):
                continue
            cost = reach_cost(
                track.box,
                velocity,
                elapsed_s,
                box,
                edge_margin=edge_margin,
                max_elapsed_s=CARRIED_MAX_ELAPSED_S if track.carried else MAX_ELAPSED_S,
            )
            if cost is not None:
                candidates.append((cost, t_index, d_index))
    chosen: list[tuple[int, int]] = []
    for _cost, t_index, d_index in sorted(candidates):
        if t_index not in matched_tracks and d_index not in taken:
            matched_tracks.add(t_index)
            taken.add(d_index)
            chosen.append((t_index, d_index))
    return chosen
