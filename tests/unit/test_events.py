import cv2
import numpy as np

from edge_agent.encode import Topics, encode_event, encode_thumbnail
from edge_agent.events import EventEngine, EventSettings
from edge_agent.track import TrackUpdate
from edge_agent.types import Box, Frame, Lifecycle, MessageClass, Track
from edge_agent.zones import Zone

IMAGE = np.full((540, 960, 3), 128, np.uint8)
LOWER = Zone("lower", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))


def frame(t_s: float) -> Frame:
    return Frame("cam1", int(t_s * 10), 1_700_000_000.0 + t_s, t_s, IMAGE)


def track(t_s: float, box: Box, score: float = 0.7, label: str = "person") -> Track:
    return Track(1, label, score, box, 0.0, t_s, hits=3)


def engine(**settings: float) -> EventEngine:
    return EventEngine(
        "cam1",
        labels_of_interest=["person", "car"],
        zones=[LOWER],
        settings=EventSettings(**settings),  # type: ignore[arg-type]
    )


def seen(*tracks: Track) -> TrackUpdate:
    return TrackUpdate(seen=tracks, ended=(), live=len(tracks))


def test_lifecycle_new_then_end_with_one_thumbnail() -> None:
    events = engine()
    box = Box(0.4, 0.2, 0.5, 0.45)
    first = events.update(frame(0.0), seen(track(0.0, box)))
    assert [e.lifecycle for e in first.events] == [Lifecycle.NEW]
    assert len(first.thumbnails) == 1
    decoded = cv2.imdecode(np.frombuffer(first.thumbnails[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[1] <= 320
    quiet = events.update(frame(1.0), seen(track(1.0, box)))
    assert quiet.events == ()
    end = events.update(frame(5.0), TrackUpdate(seen=(), ended=(track(1.0, box),), live=0))
    assert [e.lifecycle for e in end.events] == [Lifecycle.END]
    assert end.events[0].event_id == first.events[0].event_id
    assert end.events[0].end_s is not None and end.events[0].end_s >= first.events[0].start_s
    assert events.open_events == 0


def test_entering_a_zone_is_an_update_once_inertia_agrees_whatever_the_rate_limit() -> None:
    events = engine(update_min_interval_s=60.0)
    events.update(frame(0.0), seen(track(0.0, Box(0.4, 0.1, 0.5, 0.4))))
    inside = Box(0.4, 0.3, 0.5, 0.7)
    steps = [events.update(frame(t_s), seen(track(t_s, inside))) for t_s in (0.2, 0.4, 0.6)]
    assert [s.events for s in steps[:2]] == [(), ()]  # LOWER's inertia: 3 sightings
    assert [(e.lifecycle, e.zones) for e in steps[2].events] == [(Lifecycle.UPDATE, ("lower",))]


def test_at_30_fps_a_zone_is_joined_after_as_long_as_at_5_fps() -> None:
    events = engine(update_min_interval_s=60.0)
    events.update(frame(0.0), seen(track(0.0, Box(0.4, 0.1, 0.5, 0.4))))
    inside = Box(0.4, 0.3, 0.5, 0.7)
    times = [k / 30 for k in range(1, 12)]
    steps = [events.update(frame(t_s), seen(track(t_s, inside))) for t_s in times]
    # Three sightings are 0.07 s here: the zone is joined at the tenth, 0.3 s after the first.
    assert [bool(s.events) for s in steps] == [False] * 9 + [True, False]
    assert [(e.lifecycle, e.zones) for e in steps[9].events] == [(Lifecycle.UPDATE, ("lower",))]


def test_a_box_flickering_on_a_zone_edge_sends_no_updates() -> None:
    events = engine(update_min_interval_s=60.0)
    events.update(frame(0.0), seen(track(0.0, Box(0.4, 0.1, 0.5, 0.45))))
    feet_in, feet_out = Box(0.4, 0.11, 0.5, 0.52), Box(0.4, 0.1, 0.5, 0.48)
    for k in range(1, 20):
        box = feet_in if k % 3 else feet_out  # in, in, out: never three in a row
        assert events.update(frame(0.2 * k), seen(track(0.2 * k, box))).events == ()


def test_small_jitter_is_not_an_update_and_big_moves_are_rate_limited() -> None:
    events = engine(update_min_interval_s=2.0)
    events.update(frame(0.0), seen(track(0.0, Box(0.10, 0.1, 0.2, 0.4))))
    assert events.update(frame(3.0), seen(track(3.0, Box(0.11, 0.1, 0.21, 0.4)))).events == ()
    moved = events.update(frame(3.5), seen(track(3.5, Box(0.30, 0.1, 0.4, 0.4))))
    assert [e.lifecycle for e in moved.events] == [Lifecycle.UPDATE]
    assert events.update(frame(4.0), seen(track(4.0, Box(0.50, 0.1, 0.6, 0.4)))).events == ()
    again = events.update(frame(5.6), seen(track(5.6, Box(0.55, 0.1, 0.65, 0.4))))
    assert [e.lifecycle for e in again.events] == [Lifecycle.UPDATE]


def test_a_better_sighting_sends_a_new_thumbnail() -> None:
    events = engine(update_min_interval_s=1.0, update_score_gain=0.1)
    box = Box(0.1, 0.1, 0.2, 0.4)
    events.update(frame(0.0), seen(track(0.0, box, score=0.55)))
    better = events.update(frame(2.0), seen(track(2.0, box, score=0.9)))
    assert len(better.thumbnails) == 1 and better.events[0].top_score == 0.9


def test_labels_not_of_interest_make_no_events() -> None:
    events = engine()
    assert (
        events.update(frame(0.0), seen(track(0.0, Box(0, 0, 0.1, 0.1), label="dog"))).events == ()
    )


def test_encoding_follows_the_documented_api() -> None:
    events = engine()
    out = events.update(frame(0.0), seen(track(0.0, Box(0.4, 0.3, 0.5, 0.7))))
    topics = Topics("city/plaza/pi-1")
    message = encode_event(topics, out.events[0], "boot1")
    assert message.topic == "city/plaza/pi-1/events/cam1"
    assert message.message_class is MessageClass.EVENT and message.qos == 1 and not message.retain
    body = message.json_body
    assert body is not None
    assert body["v"] == 1 and body["type"] == "new" and body["label"] == "person"
    assert body["zones"] == ["lower"] and body["boot"] == "boot1" and body["thumb"] is True
    assert set(body) >= {"id", "camera", "kind", "score", "top_score", "box", "start", "end", "ts"}
    thumb = encode_thumbnail(topics, out.thumbnails[0])
    assert thumb.topic == f"city/plaza/pi-1/thumbs/cam1/{body['id']}"
    assert thumb.binary_body and thumb.binary_body[:2] == b"\xff\xd8"
    assert thumb.content_type == "image/jpeg"


def test_a_label_the_vote_changes_is_an_update_at_once_and_the_end_carries_it() -> None:
    events = engine(update_min_interval_s=60.0)
    box = Box(0.4, 0.2, 0.5, 0.45)
    first = events.update(frame(0.0), seen(track(0.0, box, label="person")))
    assert [(e.lifecycle, e.label) for e in first.events] == [(Lifecycle.NEW, "person")]
    same = events.update(frame(0.2), seen(track(0.2, box, label="person")))
    assert same.events == ()
    flipped = events.update(frame(0.4), seen(track(0.4, box, label="car")))
    assert [(e.lifecycle, e.label) for e in flipped.events] == [(Lifecycle.UPDATE, "car")]


def test_end_carries_the_voted_label_even_when_no_update_fell_due() -> None:
    events = engine(update_min_interval_s=60.0)
    box = Box(0.4, 0.2, 0.5, 0.45)
    events.update(frame(0.0), seen(track(0.0, box, label="person")))
    ended = TrackUpdate(seen=(), ended=(track(1.0, box, label="car"),), live=0)
    assert [(e.lifecycle, e.label) for e in events.update(frame(2.0), ended).events] == [
        (Lifecycle.END, "car")
    ]


def test_an_event_follows_its_track_when_the_vote_turns_to_a_label_not_of_interest() -> None:
    events = engine(update_min_interval_s=60.0)
    box = Box(0.4, 0.2, 0.5, 0.45)
    events.update(frame(0.0), seen(track(0.0, box, label="car")))
    flipped = events.update(frame(0.2), seen(track(0.2, box, label="truck")))
    assert [(e.lifecycle, e.label) for e in flipped.events] == [(Lifecycle.UPDATE, "truck")]
    ended = TrackUpdate(seen=(), ended=(track(1.0, box, label="truck"),), live=0)
    assert [e.lifecycle for e in events.update(frame(2.0), ended).events] == [Lifecycle.END]
