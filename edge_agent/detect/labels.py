"""Label lists: COCO's, so every model layout reports the same names ("person", "car", ...),
and a user's own, read from a label file or from the model's metadata."""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path

import yaml

from edge_agent.yaml_text import load_yaml

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

LABEL_SETS: dict[str, tuple[str, ...]] = {"coco90": COCO90, "coco80": COCO80, "face": ("face",)}

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


class LabelFileError(ValueError):
    """A label file is missing, unreadable or not a list of names."""


def read_label_file(path: Path) -> tuple[str, ...]:
    """Labels of a user's model, in class-id order: one per line, or a YAML list.

    A YAML mapping {0: name, 1: name} (Ultralytics' ``names:``) is accepted too, so the
    ``data.yaml`` a model was trained with can be named as is when it holds only the names.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"label file {path} cannot be read: {exc}") from exc
    labels = _yaml_labels(text, path) if _looks_like_yaml(text) else _lines(text)
    if not labels:
        raise LabelFileError(f"label file {path} names no labels")
    blank = [i for i, label in enumerate(labels) if not label]
    if blank:
        raise LabelFileError(f"label file {path}: class ids {blank} have an empty name")
    return labels


def _lines(text: str) -> tuple[str, ...]:
    """One label per line, line i naming class i (no background line is dropped here)."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


def _looks_like_yaml(text: str) -> bool:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first.startswith(("-", "[", "{", "names:")) or bool(re.match(r"^\d+\s*:", first))


def _yaml_labels(text: str, path: Path) -> tuple[str, ...]:
    try:
        data = load_yaml(text)  # a class id given twice is refused, not the last kept
    except yaml.YAMLError as exc:
        raise LabelFileError(f"label file {path} is not valid YAML: {exc}") from exc
    except RecursionError:
        raise LabelFileError(f"label file {path} is nested too deeply to be labels") from None
    if isinstance(data, dict) and set(data) == {"names"}:
        data = data["names"]
    if isinstance(data, dict):
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in data):
            shown = ", ".join(repr(k) for k in list(data)[:5])
            raise LabelFileError(f"label file {path}: ids must be 0, 1, 2, ..., got {shown}")
        keys = sorted(data)
        if keys != list(range(len(keys))):
            raise LabelFileError(f"label file {path}: ids must be 0..{len(keys) - 1}, got {keys}")
        data = [data[k] for k in keys]
    if not isinstance(data, list) or not all(isinstance(v, str | int) for v in data):
        raise LabelFileError(
            f"label file {path} must list names: one per line, a YAML list, or names: {{0: ...}}"
        )
    return tuple(str(v).strip() for v in data)


def embedded_labels(path: Path) -> tuple[str, ...] | None:
    """The labels in a model's TFLite metadata (a zip appended to the file), if any: a
    labelmap ``*label*.txt`` (TF Hub models), else the ``names`` of Ultralytics' metadata."""
    try:
        with zipfile.ZipFile(path) as archive:
            texts = [n for n in archive.namelist() if n.endswith(".txt")]
            labelmaps = [n for n in texts if "label" in n.lower()]
            if labelmaps:
                return parse_labelmap(archive.read(labelmaps[0]).decode("utf-8")) or None
            for name in texts:
                labels = _ultralytics_names(archive.read(name).decode("utf-8"))
                if labels:
                    return labels
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None
    return None


def _ultralytics_names(text: str) -> tuple[str, ...] | None:
    """``names`` from Ultralytics' export metadata: a Python dict literal, {0: 'person', ...}."""
    try:
        metadata = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    names = metadata.get("names") if isinstance(metadata, dict) else None
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        return None
    if not all(isinstance(v, str) and v for v in names.values()):
        return None
    return tuple(names[i] for i in range(len(names))) or None
