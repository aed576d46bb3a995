from edge_agent.types import Box
from edge_agent.zones import Zone, zones_of

LOWER_HALF = Zone("lower", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))
PEOPLE_ONLY = Zone(
    "people", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), frozenset({"person"})
)


def test_iou_of_identical_and_disjoint_boxes() -> None:
    box = Box(0.1, 0.1, 0.3, 0.3)
    assert box.iou(box) == 1.0
    assert box.iou(Box(0.5, 0.5, 0.6, 0.6)) == 0.0
    assert 0.14 < box.iou(Box(0.2, 0.1, 0.4, 0.3)) < 0.34


def test_box_pixels_and_bottom_centre() -> None:
    box = Box(0.25, 0.5, 0.75, 1.0)
    assert box.to_pixels(200, 100) == (50, 50, 150, 100)
    assert box.bottom_centre == (0.5, 1.0)


def test_zone_uses_the_bottom_centre_of_the_box() -> None:
    feet_in_zone = Box(0.4, 0.2, 0.6, 0.7)  # head above the zone, feet inside
    feet_outside = Box(0.4, 0.1, 0.6, 0.4)
    assert zones_of([LOWER_HALF], "person", feet_in_zone) == ("lower",)
    assert zones_of([LOWER_HALF], "person", feet_outside) == ()


def test_zone_labels_filter() -> None:
    box = Box(0.1, 0.6, 0.2, 0.8)
    assert zones_of([LOWER_HALF, PEOPLE_ONLY], "person", box) == ("lower", "people")
    assert zones_of([LOWER_HALF, PEOPLE_ONLY], "car", box) == ("lower",)


def test_concave_polygon() -> None:
    u_shape = Zone(
        "u", ((0, 0), (0.3, 0), (0.3, 0.7), (0.7, 0.7), (0.7, 0), (1, 0), (1, 1), (0, 1))
    )
    assert u_shape.contains((0.5, 0.9))
    assert not u_shape.contains((0.5, 0.3))
    assert u_shape.contains((0.1, 0.3))
