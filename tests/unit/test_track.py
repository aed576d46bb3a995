from edge_agent.track import IouTracker, TrackerSettings
from edge_agent.types import Box, Detection

# Tests of the two-sighting rule set ``confirm_score=None``: their detections score 0.7-0.8,
# which would confirm a track on its first sighting (high-score confirmation, tested below).


def det(label: str, x: float, score: float = 0.8) -> Detection:
    return Detection(label, 0, score, Box(x, 0.4, x + 0.1, 0.6))


def test_a_moving_object_keeps_its_id() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    assert tracker.update((det("person", 0.10),), 0.0).seen == ()  # tentative
    ids = {
        t.track_id
        for step in range(1, 6)
        for t in tracker.update((det("person", 0.10 + 0.02 * step),), step * 0.2).seen
    }
    assert len(ids) == 1


def test_a_one_frame_false_positive_never_becomes_a_track() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
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


def walker(x_min: float, x_max: float, y_max: float = 0.92, height: float = 0.44) -> Detection:
    """A person's box, cut at the picture's edge when it reaches it (as a detector sees it)."""
    return Detection("person", 0, 0.7, Box(max(x_min, 0.0), y_max - height, min(x_max, 1.0), y_max))


def walk_out_right(tracker: IouTracker, steps: int = 8) -> tuple[int, float]:
    """Someone walks right at 0.075 frame widths/s (a slow shopper) until cut by the edge."""
    track_id, now_s = 0, 0.0
    for step in range(steps):
        now_s = step * 0.2
        x_min = 0.80 + 0.015 * step
        seen = tracker.update((walker(x_min, x_min + 0.11),), now_s).seen
        track_id = seen[0].track_id if seen else track_id
    return track_id, now_s


def test_someone_stepping_out_from_behind_a_leaver_gets_a_new_id() -> None:
    # The leaver is cut by the right edge; the next pass sees only someone who was
    # hidden behind them, fully in view on a farther lane, overlapping the leaver's box.
    tracker = IouTracker(TrackerSettings(min_hits=1))
    leaver_id, now_s = walk_out_right(tracker)
    newcomer = walker(0.861, 0.971, y_max=0.79, height=0.40)
    assert tracker.update((newcomer,), now_s + 0.2).seen[0].track_id != leaver_id


def test_a_leaver_keeps_its_id_while_its_box_shrinks_at_the_edge() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    leaver_id, now_s = walk_out_right(tracker)
    ids = {
        tracker.update((walker(0.93 + 0.015 * step, 1.2),), now_s + 0.2 * step).seen[0].track_id
        for step in range(1, 4)
    }
    assert ids == {leaver_id}


def test_someone_standing_at_the_edge_keeps_their_id_when_their_box_flickers() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    boxes = [(0.90, 1.0), (0.905, 0.985), (0.895, 1.0), (0.90, 0.97), (0.905, 1.0), (0.90, 0.96)]
    ids = {
        tracker.update((walker(x_min, x_max),), step * 0.2).seen[0].track_id
        for step, (x_min, x_max) in enumerate(boxes)
    }
    assert len(ids) == 1


def test_someone_leaving_by_the_left_edge_is_not_continued_by_a_newcomer() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    leaver_id, now_s = 0, 0.0
    for step in range(8):
        now_s = step * 0.2
        x_max = 0.20 - 0.015 * step
        leaver_id = tracker.update((walker(x_max - 0.11, x_max),), now_s).seen[0].track_id
    newcomer = walker(0.03, 0.14, y_max=0.79, height=0.40)
    assert tracker.update((newcomer,), now_s + 0.2).seen[0].track_id != leaver_id


def test_someone_hidden_by_a_passer_by_comes_out_with_their_own_id() -> None:
    # Traced in the market (seed 2029): A walks right on a far lane, B walks left on a
    # nearer one and hides A for three passes; then both are seen. B's box overlaps
    # where A vanished, A's box is where A has walked on to meanwhile.
    tracker = IouTracker(TrackerSettings(min_hits=1))
    a_id, now_s = 0, 0.0
    for step in range(6):
        now_s = step * 0.2
        x_min = 0.697 + 0.0186 * step
        a_id = (
            tracker.update((walker(x_min, x_min + 0.09, y_max=0.70, height=0.38),), now_s)
            .seen[0]
            .track_id
        )
    for step in range(1, 4):
        tracker.update((), now_s + 0.2 * step)
    b_box = walker(0.830, 0.928, y_max=0.82, height=0.41)
    a_box = walker(0.880, 0.974, y_max=0.72, height=0.38)
    seen = tracker.update((b_box, a_box), now_s + 0.8).seen
    by_x = {round(t.box.x_min, 3): t.track_id for t in seen}
    assert by_x[0.88] == a_id
    assert by_x[0.83] != a_id


def test_a_walker_lost_for_over_a_second_is_not_taken_up_by_the_next_passer_by() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1, max_missed_s=3.0))
    walker_id = 0
    for step in range(6):
        x_min = 0.2 + 0.02 * step
        walker_id = tracker.update((walker(x_min, x_min + 0.1),), step * 0.2).seen[0].track_id
    tracker.update((), 1.2)
    # Seen again where expected within a second: the same walker.
    assert tracker.update((walker(0.32, 0.42),), 1.4).seen[0].track_id == walker_id
    for step in range(1, 8):
        assert tracker.update((), 1.4 + 0.2 * step).ended == ()  # still coasting
    # 1.4 s later, someone where the walker would have been 1 s on: someone else.
    assert tracker.update((walker(0.42, 0.52),), 3.0).seen[0].track_id != walker_id


def test_someone_standing_still_is_taken_up_again_after_a_long_miss() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1, max_missed_s=3.0))
    still_id = 0
    for step in range(6):
        still_id = tracker.update((walker(0.40, 0.50),), step * 0.2).seen[0].track_id
    for step in range(1, 13):
        tracker.update((), 1.0 + 0.2 * step)
    assert tracker.update((walker(0.401, 0.501),), 3.8).seen[0].track_id == still_id


def test_a_leaver_missed_twice_has_left_and_ends_at_once() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1, max_missed_s=3.0))
    leaver_id, now_s = walk_out_right(tracker)
    assert tracker.update((), now_s + 0.2).ended == ()
    ended = tracker.update((), now_s + 0.4).ended
    assert [t.track_id for t in ended] == [leaver_id]
    # Whoever comes in by that edge next is someone new: confirmed once in full view
    # (until then, at the edge the leaver just left, it may be the leaver's legs).
    steps = [walker(0.93, 1.2), walker(0.88, 1.15), walker(0.80, 1.0), walker(0.72, 0.96)]
    seen = [tracker.update((box,), now_s + 0.6 + 0.2 * i).seen for i, box in enumerate(steps)]
    assert seen[:3] == [(), (), ()]
    assert len(seen[3]) == 1 and seen[3][0].track_id != leaver_id


def test_what_a_leaver_leaves_at_the_edge_is_not_a_new_object() -> None:
    # Room clip, frame 198: the person has left by the right edge; a region still boxes
    # their legs there, twice, shrinking out of view: no second person.
    tracker = IouTracker(TrackerSettings(min_hits=2, max_missed_s=3.0))
    leaver_id, now_s = walk_out_right(tracker)
    tracker.update((), now_s + 0.2)
    assert [t.track_id for t in tracker.update((), now_s + 0.4).ended] == [leaver_id]
    legs = [walker(0.93, 1.0, y_max=0.99, height=0.3), walker(0.95, 1.0, y_max=0.99, height=0.3)]
    for i, box in enumerate(legs):
        assert tracker.update((box,), now_s + 0.6 + 0.2 * i).seen == ()
    assert not tracker.has_live_tracks


def test_a_part_of_a_leaver_boxed_just_inside_the_edge_is_not_a_new_object() -> None:
    # Room clip, frame 699: the leaver's track has ended; a region boxes their lower half
    # just inside the picture, where their last box was, for two frames.
    tracker = IouTracker(TrackerSettings(min_hits=2, max_missed_s=3.0, confirm_score=None))
    leaver_id, now_s = walk_out_right(tracker)
    tracker.update((), now_s + 0.2)
    assert [t.track_id for t in tracker.update((), now_s + 0.4).ended] == [leaver_id]
    lower_half = [walker(0.915, 0.975, height=0.2), walker(0.91, 0.975, height=0.22)]
    for i, box in enumerate(lower_half):
        assert tracker.update((box,), now_s + 0.6 + 0.2 * i).seen == ()
    # Long after (the remnant gone), the same spot is someone else's.
    tracker.update((), now_s + 4.0)
    late = [tracker.update((box,), now_s + 5.0 + 0.2 * i).seen for i, box in enumerate(lower_half)]
    assert late[0] == () and len(late[1]) == 1


def test_someone_walking_in_head_first_stays_one_track_as_their_box_grows() -> None:
    # Room clip, frames 228-230: a sliver at the bottom edge grows to most of a person in
    # two frames; IoU with the last box falls to 0.27, but most of it lies inside.
    tracker = IouTracker(TrackerSettings(min_hits=2))
    boxes = [
        Box(0.24, 0.79, 0.39, 1.0),
        Box(0.24, 0.64, 0.42, 0.99),
        Box(0.28, 0.5, 0.61, 0.98),
        Box(0.29, 0.39, 0.63, 1.0),
    ]
    ids = set()
    for i, box in enumerate(boxes):
        ids |= {
            t.track_id for t in tracker.update((Detection("person", 0, 0.7, box),), i * 0.1).seen
        }
    assert len(ids) == 1
    assert len(tracker.live_tracks()) == 1


def test_someone_standing_at_the_edge_coasts_for_the_usual_time() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1, max_missed_s=3.0))
    for step in range(6):
        tracker.update((walker(0.90, 1.2),), step * 0.2)
    assert all(tracker.update((), 1.0 + 0.2 * step).ended == () for step in range(1, 10))


def test_a_second_box_on_one_person_does_not_become_a_second_person() -> None:
    # Room clip: for one frame the detector boxes a walker twice (the whole body and a
    # part of it); next frame the one box left overlaps the part more than the body.
    tracker = IouTracker(TrackerSettings(min_hits=2))
    person_id = 0
    for step in range(4):
        x_min = 0.45 + 0.02 * step
        seen = tracker.update(
            (walker(x_min, x_min + 0.28, y_max=0.92, height=0.89),), step * 0.2
        ).seen
        person_id = seen[0].track_id if seen else person_id
    body = walker(0.53, 0.81, y_max=0.92, height=0.89)
    part = walker(0.64, 0.80, y_max=0.76, height=0.73)
    tracker.update((body, part), 0.8)
    seen = tracker.update((walker(0.65, 0.85, y_max=0.91, height=0.85),), 1.0).seen
    assert [t.track_id for t in seen] == [person_id]


def test_the_label_is_a_score_weighted_vote_not_the_first_or_the_most_frequent() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=1))
    # One confident "bus" first, then two hesitant "truck" sightings and a "car" pair:
    # counted, "truck" and "car" tie; weighted by score, "car" (0.6 + 0.6) wins over
    # "bus" (0.9) and "truck" (0.3 + 0.3).
    sightings = [("bus", 0.9), ("truck", 0.3), ("car", 0.6), ("truck", 0.3), ("car", 0.6)]
    labels = [
        tracker.update((det(label, 0.3, score),), i * 0.2).seen[0].label
        for i, (label, score) in enumerate(sightings)
    ]
    assert labels == ["bus", "bus", "bus", "bus", "car"]
    assert tracker.finish()[0].label == "car"


def test_two_sightings_a_frame_apart_at_30_fps_do_not_confirm_a_track() -> None:
    # Store-aisle clip analysed at every frame: a second box on one shopper for two
    # frames (0.06 s) became an event; at 5 fps two sightings are 0.2 s apart.
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    frame_s = 1 / 30
    assert tracker.update((det("person", 0.3),), 0.0).seen == ()
    assert tracker.update((det("person", 0.3),), frame_s).seen == ()
    for i in range(2, 12):  # gone: dropped once missed twice and unseen for 0.3 s
        tracker.update((), i * frame_s)
    assert not tracker.has_live_tracks
    assert tracker.finish() == ()


def test_an_object_seen_for_as_long_as_two_passes_at_5_fps_is_confirmed_at_30_fps() -> None:
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    frame_s = 1 / 30
    seen = [tracker.update((det("person", 0.3),), i * frame_s).seen for i in range(6)]
    assert [len(s) for s in seen] == [0, 0, 0, 0, 0, 1]  # 5 frames = 0.17 s >= 0.15 s


def test_a_tentative_track_missed_for_two_frames_at_30_fps_is_not_dropped() -> None:
    # At 5 fps two missed passes are 0.4 s; at 30 fps 0.07 s, too short to call the
    # first sightings a false positive.
    tracker = IouTracker(TrackerSettings(min_hits=2))
    frame_s = 1 / 30
    tracker.update((det("person", 0.3),), 0.0)
    tracker.update((), frame_s)
    tracker.update((), 2 * frame_s)
    ids = {t.track_id for t in tracker.update((det("person", 0.3),), 5 * frame_s).seen}
    assert ids == {1}


def test_a_leavers_box_jittering_back_from_the_edge_is_not_a_second_object() -> None:
    # Car park at 12.5 fps: a car leaving by the bottom edge; for three frames the
    # detector's box ends a little above the edge (back "in view"), which does not
    # continue a leaver, and started a second track that was confirmed before the
    # leaver was lost: one car, two events.
    tracker = IouTracker(TrackerSettings(min_hits=2))
    frame_s = 0.08
    ids: set[int] = set()

    def see(box: Box, i: int) -> None:
        ids.update(
            t.track_id for t in tracker.update((Detection("car", 0, 0.6, box),), i * frame_s).seen
        )

    for i in range(10):  # moving down, cut by the bottom edge from frame 6 on
        y_max = min(1.0, 0.70 + 0.05 * i)
        see(Box(0.1, y_max - 0.65 + 0.02 * max(0, i - 6), 0.3, y_max), i)
    for i, y_max in enumerate((0.96, 0.93, 0.97, 0.99, 1.0, 1.0), start=10):
        see(Box(0.1, 0.29 + 0.03 * (i - 10), 0.3, y_max), i)
    ids |= {t.track_id for t in tracker.tick(20.0).ended}
    assert len(ids) == 1, ids


def test_a_sighting_at_the_confirm_score_confirms_its_track_at_once() -> None:
    # Issue 14: a person seen at 0.7 or more is an event on that frame, not the next one.
    tracker = IouTracker(TrackerSettings(confirm_score=0.7))
    seen = tracker.update((det("person", 0.1, score=0.7), det("car", 0.5, score=0.69)), 0.0).seen
    assert [t.label for t in seen] == ["person"]
    assert [t.label for t in tracker.update((det("car", 0.5, score=0.6),), 0.2).seen] == ["car"]


def test_a_high_score_sighting_confirms_a_tentative_track() -> None:
    tracker = IouTracker(TrackerSettings(confirm_score=0.7))
    frame_s = 1 / 30
    assert tracker.update((det("person", 0.3, score=0.5),), 0.0).seen == ()
    assert len(tracker.update((det("person", 0.3, score=0.9),), frame_s).seen) == 1


def test_a_high_score_part_of_someone_waits_for_a_second_sighting() -> None:
    # A part of a person boxed beside (inside) their whole body scores as high as the body:
    # on its first sighting it is no new person, whether the body's track is new or not.
    tracker = IouTracker(TrackerSettings(confirm_score=0.7))
    body = Detection("person", 0, 0.9, Box(0.4, 0.1, 0.6, 0.9))
    part = Detection("person", 0, 0.8, Box(0.45, 0.1, 0.6, 0.5))
    first = tracker.update((body, part), 0.0).seen
    assert [t.box for t in first] == [body.box]
    later = Detection("person", 0, 0.8, Box(0.2, 0.1, 0.35, 0.5))  # someone else
    part_again = Detection("person", 0, 0.8, Box(0.46, 0.5, 0.6, 0.9))
    seen = tracker.update((body, part_again, later), 0.2).seen
    assert sorted(t.box.x_min for t in seen) == [0.2, 0.4]


def test_a_part_of_someone_below_the_confirm_score_is_no_new_person() -> None:
    # The store aisle in a dim, blurred or rotated picture: a standing shopper half hidden
    # is boxed by the upper body alone at 0.5-0.6, inside their own track's box, for a few
    # passes; each such part confirmed a second track (a fragment event).
    tracker = IouTracker(TrackerSettings(confirm_score=0.7))
    body = Detection("person", 0, 0.8, Box(0.5, 0.2, 0.62, 0.9))
    part = Detection("person", 0, 0.55, Box(0.5, 0.2, 0.62, 0.5))
    ids = {t.track_id for t in tracker.update((body,), 0.0).seen}
    for i in range(1, 8):
        ids |= {t.track_id for t in tracker.update((body, part), 0.2 * i).seen}
    assert len(ids) == 1
    # Someone who walks out from behind them is confirmed once clear of the box.
    out = Detection("person", 0, 0.55, Box(0.56, 0.2, 0.68, 0.5))
    seen = tracker.update((body, out), 1.6).seen
    assert sorted(t.box.x_min for t in seen) == [0.5, 0.56]


def test_a_part_is_held_for_at_most_part_hold_s() -> None:
    tracker = IouTracker(TrackerSettings(confirm_score=0.7))
    body = Detection("person", 0, 0.8, Box(0.5, 0.2, 0.62, 0.9))
    part = Detection("person", 0, 0.55, Box(0.51, 0.2, 0.61, 0.5))
    tracker.update((body,), 0.0)
    counts = [len(tracker.update((body, part), 0.2 * i).seen) for i in range(1, 13)]
    assert counts == [1] * 10 + [2, 2]  # first seen at 0.2 s, held until 2.2 s


def test_a_person_inside_a_group_box_is_no_part() -> None:
    # The detector boxes a crowd's group as one "person": the narrow people inside it are
    # people (a part of someone is at least a quarter of their width).
    tracker = IouTracker(TrackerSettings(confirm_score=0.7))
    group = Detection("person", 0, 0.8, Box(0.1, 0.3, 0.7, 0.8))
    person = Detection("person", 0, 0.55, Box(0.3, 0.35, 0.36, 0.7))
    tracker.update((group,), 0.0)
    tracker.update((group, person), 0.2)
    assert len(tracker.update((group, person), 0.4).seen) == 2


def test_high_score_confirmation_can_be_turned_off() -> None:
    tracker = IouTracker(TrackerSettings(confirm_score=None))
    assert tracker.update((det("person", 0.1, score=0.99),), 0.0).seen == ()


def test_a_walker_carried_through_skipped_frames_is_matched_where_their_speed_took_them() -> None:
    """Frames the detector skips (``tick(carried=True)``): the next pass matches the walker
    ahead of their last box, where a box three frames on no longer overlaps the old one."""
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    for step in range(3):  # 0.05 of the picture a frame: half a box width
        tracker.update((det("person", 0.3 + 0.05 * step),), step * 0.2)
    (carried,) = tracker.carried_boxes(0.6) or ()
    assert abs(carried.x_min - 0.45) < 1e-6  # moved on, not where it was last seen
    tracker.tick(0.6, carried=True)
    tracker.tick(0.8, carried=True)
    (seen,) = tracker.update((det("person", 0.3 + 0.05 * 5),), 1.0).seen
    assert seen.track_id == 1


def test_the_tracker_carries_nothing_it_is_not_sure_of() -> None:
    """No carried boxes with a tentative track, a track missed by the last pass, one seen only
    once (no speed), or one cut by the picture's edge (its box changes shape)."""
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    assert tracker.carried_boxes(0.0) is None  # nothing tracked
    tracker.update((det("person", 0.3),), 0.0)
    assert tracker.carried_boxes(0.1) is None  # tentative
    tracker.update((det("person", 0.32),), 0.2)
    assert tracker.carried_boxes(0.3) is not None
    tracker.update((det("person", 0.34), det("car", 0.7)), 0.4)
    assert tracker.carried_boxes(0.5) is None  # a tentative car
    tracker.update((det("person", 0.36), det("car", 0.7)), 0.6)
    assert tracker.carried_boxes(0.7) is not None
    tracker.update((det("car", 0.7),), 0.8)
    assert tracker.carried_boxes(0.9) is None  # the person was missed
    edge = IouTracker(TrackerSettings(min_hits=1, confirm_score=None))
    edge.update((det("person", 0.0),), 0.0)
    edge.update((det("person", 0.005),), 0.2)
    assert edge.carried_boxes(0.3) is None  # cut by the left edge


def test_a_still_track_explains_no_motion_it_may_be_starting_to_move() -> None:
    """Someone standing still is carried only while nothing moves there: their carried boxes
    leave them out, so motion at their place runs the detector (seen on the room clip: a
    person who set off while carried at speed zero came back as a second person)."""
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    for step in range(3):
        tracker.update((det("person", 0.3),), step * 0.2)
    assert tracker.carried_boxes(0.6) == ()


def test_someone_setting_off_slowly_explains_no_motion_either() -> None:
    """A track that is moving, but slowly (0.3 box widths a second: above the tracker's
    ``moving``, as someone who stood and sets off), may be about to run: its motion runs the
    detector as a still track's does. The room clip at 3.3 fps: carried at that speed, the
    person came back 0.2 of the picture on, and as a second person."""
    tracker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    for step in range(6):  # 0.1 wide, 0.03 a second: 0.3 widths a second
        tracker.update((det("person", 0.3 + 0.006 * step),), step * 0.2)
    assert tracker.carried_boxes(1.2) == ()
    walker = IouTracker(TrackerSettings(min_hits=2, confirm_score=None))
    for step in range(6):  # 0.6 widths a second, the market's slowest walkers: a mover
        walker.update((det("person", 0.3 + 0.012 * step),), step * 0.2)
    assert len(walker.carried_boxes(1.2) or ()) == 1
