"""An IoU tracker: gives each object a stable id across frames.

Greedy matching on IoU, best pairs first, is enough at the frame rates and
object counts of a street camera, and it is predictable. Confirmed tracks choose
first: a second box the detector put on part of a person for one frame seeds a
tentative track, which must not take that person's box in the next frame. Vehicles match each
other across labels (a detector that flips between "car" and "truck" must not
split one vehicle into two events); the label shown is a vote over the track's
sightings, each weighted by its score, so one confident early "bus" does not
outvote six later "car" sightings.
A track is *confirmed* after ``min_hits`` detections spanning ``min_confirm_s`` (two
frames are 0.2 s at 5 fps but 0.03 s at 30 fps), so a one-frame false positive below
``confirm_score`` never becomes an event at any rate; a sighting at ``confirm_score`` or
above confirms at once (its event goes out a frame sooner: 0.2 s at 5 fps), unless most
of its box lies inside another box of its family (a part of someone boxed beside their
body). The trade, measured in docs/pipeline.md ("Confirmation at a high score"): a
one-frame false positive at that score is an event. A track ends when it has not been
seen for ``max_missed_s`` (time, not frames, because the detector does not run on every
frame).

The box gates (IoU, growth at an edge, same family) run over all track-detection pairs
at once in NumPy (``edge_agent.track_gate``): the cost per update grows about linearly
with the objects in view, where measuring each pair in Python cost 35 ms at 100 objects.
What that IoU stage leaves, a second stage pairs by distance (``edge_agent.track_reach``):
a fast mover seen again further than its boxes overlap (a car on a highway at 5 fps moves
about its own length between passes), never a track that stood still.

Three rules keep an id from passing from one person to the next in a busy place,
where it would make one "loiterer" out of a string of passers-by (each traced to a
false alarm in the market soak; docs/analytics.md, "The tracker"):

- a *coasting* track (missed by the last pass) is matched where its speed over its
  last second puts it now, for at most ``COAST_PREDICTION_MAX_S``: someone hidden by
  a passer-by comes out ahead of where they vanished, where the passer-by now is;
- a track that was *moving* and has been lost for longer than that is no longer
  matched (it coasts on until it ends): the next person through the spot is someone
  else. A still one stays matchable for the whole ``max_missed_s``;
- a track *leaving* the picture (its box cut by the left, right or bottom edge while
  it moves towards that edge) is only continued by a box still leaving by that edge,
  and ends when missed twice (and unseen for 0.3 s): someone leaving shrinks out of the
  picture, someone entering there or stepping out from behind them grows into it.

Two more keep one person one track at the picture's edge, where region detection (crops
around motion, up-scaled) sees parts of people the whole frame never showed:

- a box cut by a picture edge continues a track cut by the same edge when most of the
  smaller of the two lies inside the other, whatever their IoU: someone walking in
  head first grows from a sliver to a whole person in a few frames;
- a track born while a leaver coasts or within ``REMNANT_WINDOW_S`` of it ending, at the
  edge it leaves by and beside it, or mostly inside the leaver's last box, is a *remnant*
  (the legs still in view, a part boxed alone, the leaver's own box come back from the
  edge by the detector's jitter): it is not confirmed while it stays there, for up to
  ``REMNANT_HOLD_S``. Someone really entering there walks out of that spot into view and
  is confirmed then.

One more keeps a person half hidden one event: a box below ``confirm_score`` most of which
lies inside a confirmed track's box or another box of its family, and at least
``PART_MIN_WIDTH_SHARE`` of that box's width, is a *part* (an upper body or legs the
detector boxed alone, at 0.5-0.6, when a standing shopper is hidden by a passer-by or the
picture is dim, blurred or tilted). A track every sighting of which was a part is not
confirmed, for up to ``PART_HOLD_S``; one sighting clear of the box confirms it as usual.
A narrower box inside is someone else among a group the detector boxed as one "person".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.track_gate import gate
from edge_agent.track_live import (
    CARRY_MIN_SPEED_BOXES_PER_S,
    EDGE_GROWTH_OVERLAP,
    EDGE_MARGIN,
    LOST_AFTER_S,
    PART_MIN_WIDTH_SHARE,
    REMNANT_WINDOW_S,
    TIME_SLACK_S,
    Leaver,
    LiveTrack,
    TrackerSettings,
    cut_edges,
    label_family,
)
from edge_agent.track_reach import reach_pairs
from edge_agent.types import Box, Detection, Track

__all__ = [  # the tracker's names, and those of its tracks' module its users import from here
    "EDGE_GROWTH_OVERLAP",
    "EDGE_MARGIN",
    "LOST_AFTER_S",
    "PART_MIN_WIDTH_SHARE",
    "TIME_SLACK_S",
    "IouTracker",
    "TrackUpdate",
    "TrackerSettings",
    "cut_edges",
    "label_family",
]


@dataclass(frozen=True)
class TrackUpdate:
    """What one call to ``IouTracker.update`` changed."""

    seen: tuple[Track, ...]  # confirmed tracks matched or created in this frame
    ended: tuple[Track, ...]  # confirmed tracks that expired
    live: int  # confirmed tracks still alive (seen or not)


class IouTracker:
    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._tracks: list[LiveTrack] = []
        self._next_id = 1
        self._left: list[Leaver] = []  # leavers that ended within ``REMNANT_WINDOW_S``

    @property
    def has_live_tracks(self) -> bool:
        return any(t.confirmed(self.settings) for t in self._tracks)

    def update(
        self,
        detections: tuple[Detection, ...],
        now_s: float,
        looked_at: Callable[[Box], bool] | None = None,
    ) -> TrackUpdate:
        """Match this pass's detections. ``looked_at(box)`` says whether the pass covered a
        track's expected box (region detection looks at parts of the frame): a track it did
        not cover was not looked for, so it is not missed (it still ends by time)."""
        settings = self.settings
        tracks = self._tracks
        leaving = [track.leaving_edges() for track in tracks]
        expected = [track.predicted_box(now_s) for track in tracks]
        confirmed = [track.confirmed(settings) for track in tracks]
        pairs, sure, inside, part = self._associate(detections, now_s, expected, leaving, confirmed)
        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        for _confirmed, _iou, t_index, d_index in pairs:
            if t_index in matched_tracks or d_index in matched_detections:
                continue
            matched_tracks.add(t_index)
            matched_detections.add(d_index)
            tracks[t_index].follow(detections[d_index], now_s, part=part[d_index])
            tracks[t_index].sure |= sure[d_index]
        # The second stage: what IoU left, by distance; never a part of someone (inside).
        taken = matched_detections | {d for d, part in enumerate(inside) if part}
        for t_index, d_index in reach_pairs(
            tracks,
            [det.box for det in detections],
            [label_family(det.label) for det in detections],
            now_s,
            leaving,
            matched_tracks,
            taken,
            edge_margin=EDGE_MARGIN,
        ):
            matched_detections.add(d_index)
            tracks[t_index].follow(detections[d_index], now_s)
            tracks[t_index].sure |= sure[d_index]

        seen_now = [t for i, t in enumerate(self._tracks) if i in matched_tracks]
        for t_index, track in enumerate(self._tracks):
            if t_index not in matched_tracks and (
                looked_at is None or looked_at(expected[t_index])
            ):
                track.missed += 1
        # A confirmed leaver missed by this pass has not ended yet, but a box born beside it
        # at its edge is as much a remnant as one born after it ended: its own box, come
        # back from the edge for a moment by the detector's jitter (the more passes per
        # second, the likelier), which must not confirm a second track for it.
        leavers = self._left + [
            Leaver(track.box, leaving[t_index], now_s)
            for t_index, track in enumerate(self._tracks)
            if t_index not in matched_tracks and leaving[t_index] and confirmed[t_index]
        ]
        # A tentative track missed by two detection passes was a false positive: drop it quietly.
        self._tracks = [t for t in self._tracks if t.confirmed(settings) or not t.lost(now_s)]
        for d_index, det in enumerate(detections):
            if d_index not in matched_detections:
                track = LiveTrack(
                    self._next_id, det.box, det.score, now_s, now_s, label_family(det.label)
                )
                track.vote(det)
                track.sure = sure[d_index]
                track.part = part[d_index]
                track.remnant_of = next(
                    (
                        left
                        for left in leavers
                        if now_s - left.at_s <= REMNANT_WINDOW_S and left.left_behind(det.box)
                    ),
                    None,
                )
                self._next_id += 1
                self._tracks.append(track)
                seen_now.append(track)

        seen = tuple(t.snapshot() for t in seen_now if t.confirmed(settings))
        return TrackUpdate(seen=seen, ended=self._expire(now_s), live=self._live_count())

    def _associate(
        self,
        detections: tuple[Detection, ...],
        now_s: float,
        expected: list[Box],
        leaving: list[frozenset[str]],
        confirmed: list[bool],
    ) -> tuple[list[tuple[bool, float, int, int]], list[bool], list[bool], list[bool]]:
        """The (confirmed, IoU, track, detection) pairs that may match, best first, which
        detections confirm their track at once, and which lie mostly inside another box.

        The box gates run over all pairs at once (``track_gate``); only the pairs they let
        through are checked against the leaving rule here. Confirmed tracks choose first,
        best overlap first; tentative ones get what is left. A detector that boxes one
        person twice for a frame (the whole body and a part) seeds a tentative track on
        the part; in the next frame the one box left may overlap that part more than the
        whole, and must still go to the person's own track, not confirm a duplicate (seen
        on the room clip). That part scores as high as a person: a high-score sighting
        mostly inside a confirmed track's box or another box of this pass waits for a
        second sighting like any other."""
        tracks, threshold = self._tracks, self.settings.confirm_score
        gated = gate(
            expected,
            [track.family for track in tracks],
            [track.can_be_taken_up(now_s) for track in tracks],
            confirmed,
            [det.box for det in detections],
            [label_family(det.label) for det in detections],
            iou_threshold=self.settings.iou_threshold,
            edge_margin=EDGE_MARGIN,
            most=EDGE_GROWTH_OVERLAP,
            part_width_share=PART_MIN_WIDTH_SHARE,
        )
        pairs = sorted(
            (
                (confirmed[t_index], iou, t_index, d_index)
                for t_index, d_index, iou in gated.pairs
                if tracks[t_index].still_leaving_by(detections[d_index].box, leaving[t_index])
            ),
            reverse=True,
        )
        sure = [
            threshold is not None and det.score >= threshold and not inside
            for det, inside in zip(detections, gated.inside, strict=True)
        ]
        # Below that score, a part of someone (inside a box not too wide for it) seeds a
        # track that is not confirmed while every sighting of it is one (``PART_HOLD_S``).
        part = [
            threshold is not None and part and det.score < threshold
            for det, part in zip(detections, gated.parts, strict=True)
        ]
        return pairs, sure, gated.inside, part

    def live_tracks(self) -> tuple[Track, ...]:
        """Every confirmed track still alive, seen this frame or coasting on its last box."""
        return tuple(t.snapshot() for t in self._tracks if t.confirmed(self.settings))

    def expected_tracks(self, now_s: float) -> tuple[Track, ...]:
        """Every live track, tentative ones too, with its box where it is expected at
        ``now_s`` (a coasting one moved on at its recent speed): where region detection
        looks for it, and a tentative one is looked for so it can be confirmed."""
        return tuple(t.snapshot(t.predicted_box(now_s)) for t in self._tracks)

    def carried_boxes(self, now_s: float) -> tuple[Box, ...] | None:
        """Where every moving track is expected at ``now_s`` (moved on at its speed), if the
        tracker can carry them all through a frame without a detection pass: every track
        confirmed, seen by the last pass, ``steady`` and clear of the picture's edges (a box
        cut by one changes shape as its object enters or leaves). None otherwise. Motion
        anywhere else, at a still track too (it is starting to move), is not theirs."""
        tracks = self._tracks
        if not tracks or any(
            t.missed or cut_edges(t.box) or not t.steady() or not t.confirmed(self.settings)
            for t in tracks
        ):
            return None
        return tuple(
            t.predicted_box(now_s, carried=True)
            for t in tracks
            if t.moving(CARRY_MIN_SPEED_BOXES_PER_S)
        )

    def tick(self, now_s: float, *, carried: bool = False) -> TrackUpdate:
        """Advance time without a detection pass (the gate kept the detector idle, or with
        ``carried`` it was skipped: the next pass matches each track where its speed took it)."""
        for track in self._tracks if carried else ():
            track.carried = True
        return TrackUpdate(seen=(), ended=self._expire(now_s), live=self._live_count())

    def finish(self) -> tuple[Track, ...]:
        """End every confirmed track (end of a file, agent stopping)."""
        ended = tuple(t.snapshot() for t in self._tracks if t.confirmed(self.settings))
        self._tracks = []
        return ended

    def _expire(self, now_s: float) -> tuple[Track, ...]:
        keep: list[LiveTrack] = []
        ended: list[Track] = []
        self._left = [left for left in self._left if now_s - left.at_s <= REMNANT_WINDOW_S]
        for track in self._tracks:
            timed_out = now_s - track.last_seen_s > self.settings.max_missed_s
            lost = track.lost(now_s)  # (the edges are worked out only when either holds)
            leaving = track.leaving_edges() if timed_out or lost else frozenset()
            if timed_out or (leaving and lost):
                if track.confirmed(self.settings):
                    ended.append(track.snapshot())
                    if leaving:
                        self._left.append(Leaver(track.box, leaving, now_s))
            else:
                keep.append(track)
        self._tracks = keep
        return tuple(ended)

    def _live_count(self) -> int:
        return sum(1 for t in self._tracks if t.confirmed(self.settings))
