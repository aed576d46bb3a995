"""An IoU tracker: gives each object a stable id across frames.

Greedy matching on IoU, best pairs first, is enough at the frame rates and
object counts of a street camera, and it is predictable. Vehicles match each
other across labels (a detector that flips between "car" and "truck" must not
split one vehicle into two events); the label shown is the one seen most often.
A track is *confirmed* after ``min_hits`` detections, so a one-frame false
positive never becomes an event, and it ends when it has not been seen for
``max_missed_s`` (time, not frames, because the detector does not run on every
frame).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.types import Box, Detection, Track


def label_family(label: str) -> str:
    return "vehicle" if label in VEHICLE_LABELS else label


@dataclass(frozen=True)
class TrackerSettings:
    iou_threshold: float = 0.3
    max_missed_s: float = 3.0
    min_hits: int = 2


@dataclass
class _LiveTrack:
    track_id: int
    box: Box
    score: float
    first_seen_s: float
    last_seen_s: float
    hits: int = 1
    missed: int = 0
    labels: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> Track:
        return Track(
            track_id=self.track_id,
            label=self.labels.most_common(1)[0][0],
            score=self.score,
            box=self.box,
            first_seen_s=self.first_seen_s,
            last_seen_s=self.last_seen_s,
            hits=self.hits,
            missed=self.missed,
        )


@dataclass(frozen=True)
class TrackUpdate:
    """What one call to ``IouTracker.update`` changed."""

    seen: tuple[Track, ...]  # confirmed tracks matched or created in this frame
    ended: tuple[Track, ...]  # confirmed tracks that expired
    live: int  # confirmed tracks still alive (seen or not)


class IouTracker:
    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._tracks: list[_LiveTrack] = []
        self._next_id = 1

    @property
    def has_live_tracks(self) -> bool:
        return any(t.hits >= self.settings.min_hits for t in self._tracks)

    def update(self, detections: tuple[Detection, ...], now_s: float) -> TrackUpdate:
        settings = self.settings
        pairs = sorted(
            (
                (track.box.iou(det.box), t_index, d_index)
                for t_index, track in enumerate(self._tracks)
                for d_index, det in enumerate(detections)
                if label_family(track.labels.most_common(1)[0][0]) == label_family(det.label)
            ),
            reverse=True,
        )
        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        for iou, t_index, d_index in pairs:
            if iou < settings.iou_threshold:
                break
            if t_index in matched_tracks or d_index in matched_detections:
                continue
            matched_tracks.add(t_index)
            matched_detections.add(d_index)
            track, det = self._tracks[t_index], detections[d_index]
            track.box = det.box
            track.score = det.score
            track.last_seen_s = now_s
            track.hits += 1
            track.missed = 0
            track.labels[det.label] += 1

        seen_now = [t for i, t in enumerate(self._tracks) if i in matched_tracks]
        for t_index, track in enumerate(self._tracks):
            if t_index not in matched_tracks:
                track.missed += 1
        # A tentative track missed by two detection passes was a false positive: drop it quietly.
        self._tracks = [t for t in self._tracks if t.hits >= settings.min_hits or t.missed < 2]
        for d_index, det in enumerate(detections):
            if d_index not in matched_detections:
                track = _LiveTrack(self._next_id, det.box, det.score, now_s, now_s)
                track.labels[det.label] += 1
                self._next_id += 1
                self._tracks.append(track)
                seen_now.append(track)

        seen = tuple(t.snapshot() for t in seen_now if t.hits >= settings.min_hits)
        return TrackUpdate(seen=seen, ended=self._expire(now_s), live=self._live_count())

    def live_tracks(self) -> tuple[Track, ...]:
        """Every confirmed track still alive, seen this frame or coasting on its last box."""
        return tuple(t.snapshot() for t in self._tracks if t.hits >= self.settings.min_hits)

    def tick(self, now_s: float) -> TrackUpdate:
        """Advance time without a detection pass (the gate kept the detector idle)."""
        return TrackUpdate(seen=(), ended=self._expire(now_s), live=self._live_count())

    def finish(self) -> tuple[Track, ...]:
        """End every confirmed track (end of a file, agent stopping)."""
        ended = tuple(t.snapshot() for t in self._tracks if t.hits >= self.settings.min_hits)
        self._tracks = []
        return ended

    def _expire(self, now_s: float) -> tuple[Track, ...]:
        keep: list[_LiveTrack] = []
        ended: list[Track] = []
        for track in self._tracks:
            if now_s - track.last_seen_s > self.settings.max_missed_s:
                if track.hits >= self.settings.min_hits:
                    ended.append(track.snapshot())
            else:
                keep.append(track)
        self._tracks = keep
        return tuple(ended)

    def _live_count(self) -> int:
        return sum(1 for t in self._tracks if t.hits >= self.settings.min_hits)
