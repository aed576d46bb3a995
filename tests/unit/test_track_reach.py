"""The tracker's second stage: objects seen again further than their boxes overlap
(edge_agent/track_reach.py). The tracker runs with its defaults: a sighting at 0.7 or more
confirms at once, two sightings 0.15 s apart otherwise."""

from edge_agent.pipeline import CARRY_MAX_S
from edge_agent.track import IouTracker
from edge_agent.track_reach import CARRIED_MAX_ELAPSED_S
from edge_agent.types import Box, Detection

STEP_S = 0.2  # 5 fps, the default rate


def car(x_min: float, width: float = 0.3, *, y_min: float = 0.6, score: float = 0.6) -> Detection:
    return Detection("car", 0, score, Box(x_min, y_min, x_min + width, y_min + 0.2))


def person(x_min: float, score: float = 0.9) -> Detection:
    return Detection("person", 0, score, Box(x_min, 0.3, x_min + 0.1, 0.8))


def test_a_car_seen_again_beyond_its_length_keeps_its_track() -> None:
    # The highway at 5 fps: a car moves about its own length between passes; its boxes
    # never overlap. Seen once at 0.6, it is confirmed by the second sighting.
    tracker = IouTracker()
    assert tracker.update((car(0.65),), 0.0).seen == ()
    ids = []
    for step, x in enumerate((0.37, 0.09), start=1):
        seen = tracker.update((car(x),), step * STEP_S).seen
        ids += [t.track_id for t in seen]
    assert ids == [1, 1]


def test_too_far_or_unlike_is_another_object() -> None:
    for later in (
        car(0.0),
        car(0.35, width=0.12),
        Detection("car", 0, 0.6, Box(0.4, 0.7, 0.7, 0.8)),
    ):
        tracker = IouTracker()
        tracker.update((car(0.65),), 0.0)  # 0.3 wide, 0.2 high
        tracker.update((later,), STEP_S)  # 2 lengths away; a third as wide; half as high
        assert not tracker.has_live_tracks, later


def test_two_cars_side_by_side_in_neighbouring_lanes_keep_their_tracks() -> None:
    tracker = IouTracker()
    near, far = [], []
    for step in range(4):
        x = 0.7 - 0.25 * step
        seen = tracker.update((car(x, y_min=0.68), car(x + 0.03, y_min=0.5)), step * STEP_S).seen
        near += [t.track_id for t in seen if t.box.y_min == 0.68]
        far += [t.track_id for t in seen if t.box.y_min == 0.5]
    assert len(set(near)) == len(set(far)) == 1 and set(near) != set(far)
    assert len(near) == len(far) == 3  # confirmed from the second pass on


def test_a_mover_is_expected_where_its_speed_takes_it_not_where_it_came_from() -> None:
    tracker = IouTracker()
    first = [
        tracker.update((car(x, width=0.15),), i * STEP_S).seen
        for i, x in enumerate((0.8, 0.66, 0.52))
    ]
    track_id = first[-1][0].track_id
    ahead = tracker.update((car(0.38, width=0.15),), 3 * STEP_S).seen
    assert [t.track_id for t in ahead] == [track_id]
    # Turning back by its whole move is not the same car: a new, tentative track.
    assert tracker.update((car(0.52, width=0.15),), 4 * STEP_S).seen == ()


def test_a_passer_by_does_not_take_the_id_of_someone_standing() -> None:
    tracker = IouTracker()
    for step in range(3):
        (stander,) = tracker.update((person(0.5),), step * STEP_S).seen
    # The stander is hidden for a pass; a passer-by most of a box width away is new.
    passer = tracker.update((person(0.58, score=0.6),), 3 * STEP_S)
    assert passer.seen == ()
    assert [t.track_id for t in tracker.live_tracks()] == [stander.track_id]


def test_a_car_carried_through_skipped_frames_is_still_reached() -> None:
    """The pipeline carries a busy, fully tracked scene through up to two frames without the
    detector (``max_skipped_frames``, ``CARRY_MAX_S``): at 5 fps the next pass comes 0.6 s
    after the last, past the 0.5 s the second stage gave any track, so a carried car that
    braked (no overlap with where its speed put it) became a new track."""
    tracker = IouTracker()
    for step, x in enumerate((0.2, 0.3, 0.4, 0.5)):  # 0.15 wide, 0.5 of the picture a second
        seen = tracker.update((car(x, width=0.15),), step * STEP_S).seen
    (track,) = seen
    assert tracker.carried_boxes(4 * STEP_S) is not None  # steady, confirmed, moving
    tracker.tick(4 * STEP_S, carried=True)
    tracker.tick(5 * STEP_S, carried=True)
    later = tracker.update((car(0.66, width=0.15),), 6 * STEP_S).seen  # expected at 0.8
    assert [t.track_id for t in later] == [track.track_id]
    assert CARRIED_MAX_ELAPSED_S >= 2 * CARRY_MAX_S  # the longest gap the pipeline leaves
