"""`edge-agent detect FILE...`: run a model on images or videos and print what it finds.

For a technician or developer checking a model on real pictures before trusting the agent
with them: boxes are printed in pixels of the original image, or as JSON lines. Live
sources too: ``--config F [--camera C]`` (a camera of the agent's config, with its
detector settings) or ``--source URI`` (RTSP/HTTP URL, ``/dev/video0``, ``picamera2``,
``sim:SCENE``, or a video file read as a stream), ``--frames N`` of them.
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
from edge_agent.capture import CaptureError, open_source
from edge_agent.capture.live import camera_fix, camera_from_uri, first_frame_timeout_s, grab_frames
from edge_agent.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    load_checked_config,
    quiet_camera_logs,
    running_agent_note,
)
from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.config_check import source_problems
from edge_agent.datafiles import DataFileError
from edge_agent.detect.base import Detector
from edge_agent.detect.runtime import RuntimeUnavailable
from edge_agent.detect.tflite import create_detector
from edge_agent.security import redact_url
from edge_agent.types import ImageBGR

IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".ppm"})
EXIT_NO_FRAMES = EXIT_FAILED  # a live source that gave nothing: a failure, not bad input
DEFAULT_MODEL = "ssd_mobilenet_v1"
DEFAULT_SCORE = 0.5


class InputError(Exception):
    """An input file is missing or cannot be decoded."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="run object detection on images or videos",
        description="Print each detection: file, frame index, label, score and box in pixels "
        "of the original image. A bare media name from the manifest (e.g. "
        "coral_grace_hopper.bmp) is looked up on the media search path. Live: --config F "
        "[--camera C] or --source URI (rtsp://..., /dev/video0, picamera2[:N], sim:SCENE, "
        "or a video file read as a stream).",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="IMAGE_OR_VIDEO",
        help="image or video files, or media names of the manifest",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="live: the agent's config (its detector too)"
    )
    parser.add_argument(
        "--camera", default=None, help="live: a camera id of --config (default: its only one)"
    )
    parser.add_argument("--source", default=None, metavar="URI", help="live: a source by name")
    parser.add_argument(
        "--frames",
        type=_positive_int,
        default=5,
        metavar="N",
        help="live: frames to grab (default 5)",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        action=_Given,
        help="manifest model name, or a path to your own .tflite (then give --layout); "
        "default: the config's, else ssd_mobilenet_v1",
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
    parser.add_argument(
        "--score",
        type=_unit_float,
        default=DEFAULT_SCORE,
        action=_Given,
        help="score threshold 0..1 (default: the config's, else 0.5)",
    )
    parser.add_argument(
        "--every",
        type=_positive_int,
        default=1,
        metavar="N",
        help="video: every Nth frame (default 1)",
    )
    parser.add_argument(
        "--labels", default=None, help="comma-separated labels to keep (default: all)"
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=1, help="interpreter threads (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.set_defaults(handler=detect_handler, given=frozenset())


class _Given(argparse.Action):
    """Stores the value and notes it was given: with --config, what the command line
    does not say comes from the config's detector."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = frozenset({*namespace.given, self.dest})


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
        _print_detections(detector, image, "file", str(path), index, args)
    return frames


def _print_detections(
    detector: Detector,
    image: ImageBGR,
    kind: str,
    name: str,
    index: int,
    args: argparse.Namespace,
) -> None:
    height_px, width_px = image.shape[:2]
    for det in detector.detect(image).detections:
        box_px = det.box.to_pixels(width_px, height_px)
        if args.json:
            record = {
                kind: name,
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
                f"{name}\tframe {index}\t{det.label}\t{det.score:.2f}\t"
                f"{x_min} {y_min} {x_max} {y_max}"
            )


def _live_camera(args: argparse.Namespace) -> tuple[AgentConfig | None, CameraConfig | None]:
    """The config (with --config) and the live camera (--config or --source), or raises
    InputError when the command line is contradictory or names nothing that exists."""
    chosen = [bool(args.inputs), args.source is not None, args.config is not None]
    if sum(chosen) != 1:
        raise InputError("give files, or --source URI, or --config FILE [--camera ID]")
    if args.camera is not None and args.config is None:
        raise InputError("--camera needs --config")
    if args.source is not None:
        try:
            live = camera_from_uri(args.source)
        except ValueError as exc:
            raise InputError(f"--source {redact_url(args.source)}: {exc}") from None
        problems = source_problems("--source", live)  # an unknown scene, a missing file
        if problems:
            raise InputError("; ".join(problems))
        return None, live
    if args.config is None:
        return None, None
    config = load_checked_config(args.config, offline=True)
    if config is None:
        raise InputError(f"{args.config}: fix the config first (edge-agent check-config)")
    ids = [c.id for c in config.cameras]
    if args.camera is None and len(ids) > 1:
        raise InputError(f"{args.config} has {len(ids)} cameras: give --camera ({', '.join(ids)})")
    wanted = args.camera or ids[0]
    camera = next((c for c in config.cameras if c.id == wanted), None)
    if camera is None:
        raise InputError(f"no camera {wanted!r} in {args.config} (cameras: {', '.join(ids)})")
    return config, camera


def _run_live(
    detector: Detector,
    camera: CameraConfig,
    name: str,
    args: argparse.Namespace,
    config: AgentConfig | None,
) -> int:
    """Grab --frames frames from the live source and print their detections."""
    # What to look at when it gives nothing: by the kind of source, and a running agent.
    fix = f" -> {camera_fix(camera)}{running_agent_note(config) if config else ''}"
    quiet_camera_logs(args.log_level)  # the error line below says why and what to check
    try:
        source = open_source(camera)
    except CaptureError as exc:
        print(f"error: {exc}{fix}", file=sys.stderr)
        return EXIT_NO_FRAMES
    try:
        frames = grab_frames(source, args.frames, first_frame_timeout_s(camera))
        reason = source.health().last_error
    finally:
        source.close()
    for frame in frames:
        _print_detections(detector, frame.image, "source", name, frame.index, args)
    if not frames:
        why = reason or f"nothing within {first_frame_timeout_s(camera):g} s"
        print(f"error: {name}: no frame: {why}{fix}", file=sys.stderr)
        return EXIT_NO_FRAMES
    shape = frames[-1].image.shape
    print(
        f"{name}: {len(frames)} frame(s) of {shape[1]}x{shape[0]} analysed with "
        f"{detector.model_name}",
        file=sys.stderr,
    )
    return 0


def detect_handler(args: argparse.Namespace) -> int:
    try:
        config, camera = _live_camera(args)
        paths = [_locate_input(text) for text in args.inputs]
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = config.detector if config is not None else None
    own_model = settings is not None and "model" not in args.given  # with its files
    model = settings.model if settings and own_model else args.model
    labels = settings.labels if settings else None
    if args.labels:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    score = settings.score_threshold if settings and "score" not in args.given else args.score
    try:
        detector = create_detector(
            model,
            score_threshold=score,
            labels_of_interest=labels,
            num_threads=args.threads,
            layout=args.layout or (settings.layout if settings and own_model else None),
            labels_file=args.labels_file
            or (settings.labels_file if settings and own_model else None),
        )
    except RuntimeUnavailable as exc:  # the installation, not the input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (DataFileError, ValueError) as exc:  # missing/corrupt model, unknown --labels
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if camera is not None:
        name = camera.id if config is not None else redact_url(args.source)
        return _run_live(detector, camera, name, args, config)
    status = 0
    for path in paths:
        try:
            frames = _run_file(detector, path, args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        print(f"{path}: {frames} frame(s) analysed with {model}", file=sys.stderr)
    sys.stdout.flush()
    return status
