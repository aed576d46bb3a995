from edge_agent.track import IouTracker, TrackerSettings
from edge_agent.types import Box, Detection


def det(label: str, x: float, score: float = 0.8) -> Detection:
    return Detection(label, 0, score, Box(x, 0.4, x + 0.1, 0.6))


def test_a_moving_object_keeps_its_id() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=2))
    assert tracker.update((det("person", 0.10),), 0.0).seen == ()  # tentative
    ids = {
        t.track_id
        for step in range(1, 6)
        for t in tracker.update((det("person", 0.10 + 0.02 * step),), step * 0.2).seen
    }
    assert len(ids) == 1


def test_a_one_frame_false_positive_never_becomes_a_track() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=2))
    tracker.update((det("person", 0.1),), 0.0)
    tracker.update((), 0.2)
    tracker.update((), 0.4)
    assert not tracker.has_live_tracks
    assert tracker.tick(10.0).ended == ()


def test_track_ends_after_max_missed_time() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1, max_missed_s=2.0))
    first = tracker.update((det("car", 0.5),), 0.0)
    assert len(first.seen) == 1
    assert tracker.tick(1.9).ended == ()
    ended = tracker.tick(2.1).ended
    assert [t.track_id for t in ended] == [first.seen[0].track_id]
    assert not tracker.has_live_tracks


def test_vehicle_label_flips_do_not_split_a_track() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    labels = ["car", "truck", "car", "car", "bus"]
    ids = {
        tracker.update((det(label, 0.3),), i * 0.2).seen[0].track_id
        for i, label in enumerate(labels)
    }
    assert len(ids) == 1
    assert tracker.finish()[0].label == "car"


def test_a_person_and_a_car_in_the_same_place_are_two_tracks() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    update = tracker.update((det("person", 0.3), det("car", 0.3)), 0.0)
    assert len({t.track_id for t in update.seen}) == 2


def test_two_objects_swap_nothing_when_they_pass() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    first = tracker.update((det("person", 0.1), det("person", 0.7)), 0.0).seen
    left_id = next(t.track_id for t in first if t.box.x_min < 0.5)
    second = tracker.update((det("person", 0.12), det("person", 0.68)), 0.2).seen
    assert next(t.track_id for t in second if t.box.x_min < 0.5) == left_id
