"""`edge-agent detect FILE...`: run a model on images or videos and print what it finds.

For a technician or developer checking a model on real pictures before trusting the agent
with them: boxes are printed in pixels of the original image, or as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import cv2

from edge_agent import datafiles
from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_FAILED
from edge_agent.datafiles import DataFileError
from edge_agent.detect.base import Detector
from edge_agent.detect.runtime import RuntimeUnavailable
from edge_agent.detect.tflite import create_detector
from edge_agent.types import ImageBGR

IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".ppm"})


class InputError(Exception):
    """An input file is missing or cannot be decoded."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="run object detection on images or videos",
        description="Print each detection: file, frame index, label, score and box in pixels "
        "of the original image. A bare media name from the manifest (e.g. "
        "coral_grace_hopper.bmp) is looked up on the media search path.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_VIDEO")
    parser.add_argument(
        "--model",
        default="ssd_mobilenet_v1",
        help="manifest model name, or a path to your own .tflite (then give --layout)",
    )
    parser.add_argument(
        "--layout",
        default=None,
        help="output layout of a model file: ssd_postprocess, yolox or ultralytics",
    )
    parser.add_argument(
        "--labels-file",
        type=Path,
        default=None,
        help="the model's labels: one per line, or a YAML list (docs/models.md)",
    )
    parser.add_argument("--score", type=_unit_float, default=0.5, help="score threshold 0..1")
    parser.add_argument(
        "--every", type=_positive_int, default=1, metavar="N", help="video: every Nth frame"
    )
    parser.add_argument(
        "--labels", default=None, help="comma-separated labels to keep (default: all)"
    )
    parser.add_argument("--threads", type=_positive_int, default=1, help="interpreter threads")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.set_defaults(handler=detect_handler)


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _locate_input(text: str) -> Path:
    path = Path(text)
    if path.is_file():
        return path
    if path.name == text:  # a bare name: maybe a manifest media file on the search path
        try:
            return datafiles.resolve_media(text)
        except DataFileError:
            pass
    raise InputError(f"{text}: no such file")


def _frames(path: Path, every: int) -> Iterator[tuple[int, ImageBGR]]:
    """(frame index, image) of an image file (index 0) or every Nth frame of a video."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{path}: not a readable image")
        yield 0, cast(ImageBGR, image)
        return
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: not a readable video")
        index = 0
        while capture.grab():  # grab() alone for skipped frames: no colour conversion
            if index % every == 0:
                ok, frame = capture.retrieve()
                if not ok:
                    raise InputError(f"{path}: frame {index} cannot be decoded")
                yield index, cast(ImageBGR, frame)
            index += 1
        if index == 0:
            raise InputError(f"{path}: no decodable frames")
    finally:
        capture.release()


def _run_file(detector: Detector, path: Path, args: argparse.Namespace) -> int:
    """Print detections for one file; the number of frames analysed."""
    frames = 0
    for index, image in _frames(path, args.every):
        frames += 1
        height_px, width_px = image.shape[:2]
        for det in detector.detect(image).detections:
            box_px = det.box.to_pixels(width_px, height_px)
            if args.json:
                record = {
                    "file": str(path),
                    "frame": index,
                    "label": det.label,
                    "class_id": det.class_id,
                    "score": round(det.score, 4),
                    "box_px": list(box_px),
                    "box": det.box.as_list(),
                }
                print(json.dumps(record))
            else:
                x_min, y_min, x_max, y_max = box_px
                print(
                    f"{path}\tframe {index}\t{det.label}\t{det.score:.2f}\t"
                    f"{x_min} {y_min} {x_max} {y_max}"
                )
    return frames


def detect_handler(args: argparse.Namespace) -> int:
    try:
        paths = [_locate_input(text) for text in args.inputs]
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    labels = None
    if args.labels:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    try:
        detector = create_detector(
            args.model,
            score_threshold=args.score,
            labels_of_interest=labels,
            num_threads=args.threads,
            layout=args.layout,
            labels_file=args.labels_file,
        )
    except RuntimeUnavailable as exc:  # the installation, not the input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (DataFileError, ValueError) as exc:  # missing/corrupt model, unknown --labels
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    status = 0
    for path in paths:
        try:
            frames = _run_file(detector, path, args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        print(f"{path}: {frames} frame(s) analysed with {args.model}", file=sys.stderr)
    sys.stdout.flush()
    return status
