"""COCO label lists, so both model layouts report the same names ("person", "car", ...)."""

from __future__ import annotations

UNUSED_LABEL = "???"
"""Placeholder for COCO ids that have no class (and for the background line of a labelmap)."""

COCO90: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "???", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "???", "backpack",
    "umbrella", "???", "???", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "???", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "???", "dining table", "???", "???",
    "toilet", "???", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "???", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""COCO's 91 category ids minus background, 0-based (person 0, car 2, bus 5, truck 7)."""

COCO80: tuple[str, ...] = tuple(label for label in COCO90 if label != UNUSED_LABEL)
"""The 80 contiguous COCO classes used by YOLO-family models (person 0, car 2, truck 7)."""

LABEL_SETS: dict[str, tuple[str, ...]] = {"coco90": COCO90, "coco80": COCO80}

VEHICLE_LABELS: frozenset[str] = frozenset({"bicycle", "car", "motorcycle", "bus", "truck"})
"""Classes a detector easily confuses with each other; merged in NMS so a car counts once."""


def parse_labelmap(text: str) -> tuple[str, ...]:
    """Labels from a labelmap.txt, dropping a leading background line ("???" or "background")."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if lines and lines[0].lower() in (UNUSED_LABEL, "background"):
        lines = lines[1:]
    return tuple(lines)
