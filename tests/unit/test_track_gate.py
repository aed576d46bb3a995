"""The tracker's box gates, run over all pairs at once, decide as ``Box`` does pair by pair."""

from __future__ import annotations

import random

from edge_agent.track import EDGE_GROWTH_OVERLAP, EDGE_MARGIN, PART_MIN_WIDTH_SHARE, cut_edges
from edge_agent.track_gate import gate
from edge_agent.types import Box


def random_box(rng: random.Random) -> Box:
    x, y = rng.uniform(-0.05, 0.95), rng.uniform(-0.05, 0.95)
    return Box(x, y, x + rng.uniform(0.0, 0.3), y + rng.uniform(0.0, 0.3)).clipped()


def grows_from_edge(track_box: Box, box: Box) -> bool:
    """The rule as the tracker stated it pair by pair before the gates."""
    if not cut_edges(track_box) & cut_edges(box):
        return False
    inside = track_box.intersection(box)
    smaller = min(track_box.area, box.area)
    return smaller > 0.0 and inside >= EDGE_GROWTH_OVERLAP * smaller


def test_the_gates_let_through_exactly_the_pairs_box_lets_through() -> None:
    rng = random.Random(14)
    for _ in range(20):
        tracks = [random_box(rng) for _ in range(rng.randint(0, 30))]
        dets = [random_box(rng) for _ in range(rng.randint(0, 30))]
        track_families = [rng.choice(("person", "vehicle")) for _ in tracks]
        det_families = [rng.choice(("person", "vehicle")) for _ in dets]
        takeable = [rng.random() < 0.9 for _ in tracks]
        gated = gate(
            tracks,
            track_families,
            takeable,
            [False] * len(tracks),
            dets,
            det_families,
            iou_threshold=0.3,
            edge_margin=EDGE_MARGIN,
            most=EDGE_GROWTH_OVERLAP,
        )
        expected = [
            (t, d, track.iou(det))
            for t, track in enumerate(tracks)
            for d, det in enumerate(dets)
            if track_families[t] == det_families[d]
            and takeable[t]
            and (track.iou(det) >= 0.3 or grows_from_edge(track, det))
        ]
        assert sorted(gated.pairs) == sorted(expected)  # the IoUs equal to the last bit


def test_a_box_mostly_inside_another_of_its_family_is_inside() -> None:
    body, part, car = Box(0.4, 0.1, 0.6, 0.9), Box(0.45, 0.1, 0.6, 0.5), Box(0.4, 0.1, 0.6, 0.9)
    confirmed_track = Box(0.0, 0.0, 0.2, 0.5)
    in_track = Box(0.05, 0.1, 0.15, 0.3)
    gated = gate(
        [confirmed_track],
        ["person"],
        [True],
        [True],
        [body, part, car, in_track],
        ["person", "person", "vehicle", "person"],
        iou_threshold=0.3,
        edge_margin=EDGE_MARGIN,
        most=EDGE_GROWTH_OVERLAP,
    )
    assert gated.inside == [False, True, False, True]


def edge_box(rng: random.Random) -> Box:
    """A box often cut by a picture edge (where the growing rule decides), sometimes empty."""
    box = random_box(rng)
    if rng.random() < 0.4:
        box = Box(0.0, box.y_min, box.x_max, box.y_max)
    if rng.random() < 0.4:
        box = Box(box.x_min, box.y_min, box.x_max, 1.0)
    if rng.random() < 0.05:
        box = Box(box.x_min, box.y_min, box.x_min, box.y_max)
    return box


def test_pair_by_pair_and_arrays_decide_the_same() -> None:
    rng = random.Random(41)
    for _ in range(300):
        tracks = [edge_box(rng) for _ in range(rng.randint(0, 8))]
        dets = [edge_box(rng) for _ in range(rng.randint(0, 8))]
        dets += [Box(d.x_min, d.y_min, d.x_max * 0.9, d.y_max) for d in dets[:2]]  # parts
        dets += tracks[:1] + dets[:1]  # exactly a track's box, another detection's box
        track_families = [rng.choice(("person", "vehicle")) for _ in tracks]
        args = (
            tracks,
            track_families,
            [rng.random() < 0.8 for _ in tracks],
            [rng.random() < 0.5 for _ in tracks],
            dets,
            [rng.choice(("person", "vehicle")) for _ in dets],
        )
        # most=1.0: a box exactly inside another is on the threshold
        most = rng.choice((EDGE_GROWTH_OVERLAP, 1.0))
        share = rng.choice((PART_MIN_WIDTH_SHARE, 0.9))
        settings = {
            "iou_threshold": 0.3,
            "edge_margin": EDGE_MARGIN,
            "most": most,
            "part_width_share": share,
        }
        by_pairs = gate(*args, **settings, by_pairs=True)
        by_arrays = gate(*args, **settings, by_pairs=False)
        assert by_pairs.pairs == by_arrays.pairs  # same order, IoUs equal to the last bit
        assert by_pairs.inside == by_arrays.inside
        assert by_pairs.parts == by_arrays.parts
