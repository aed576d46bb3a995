"""`edge-agent snapshot [--config F] [--camera C] --out x.jpg`: what the camera sees now,
with its zones, counting lines and the detector's findings drawn on it.

For the technician at the pole: are the zones where they should be, is the camera pointed
right, does the model find the people and vehicles in this view?
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

from edge_agent.assemble import camera_detector
from edge_agent.capture import CaptureError, open_source
from edge_agent.capture.live import camera_fix, first_frame_timeout_s, grab_frames
from edge_agent.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_config_option,
    default_config_path,
    error,
    load_checked_config,
    positive_int,
    quiet_camera_logs,
    running_agent_note,
)
from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.datafiles import DataFileError
from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import RegionSettings
from edge_agent.detect.runtime import RuntimeUnavailable
from edge_agent.files import write_atomic
from edge_agent.overlay import draw_overlay
from edge_agent.privacy import protect
from edge_agent.security import redact_url
from edge_agent.types import Detection, ImageBGR


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "snapshot",
        help="a JPEG from a camera of the config, zones, lines and detections drawn",
        description=__doc__,
    )
    add_config_option(parser)
    parser.add_argument("--camera", help="the camera's id in the config (default: its only camera)")
    parser.add_argument("--out", type=Path, required=True, help="the JPEG to write")
    parser.add_argument(
        "--frames",
        type=positive_int,
        default=5,
        metavar="N",
        help="read N frames and keep the last (a stream's first frames can be stale; default 5)",
    )
    parser.add_argument(
        "--no-detect", action="store_true", help="draw zones and lines only (no model)"
    )
    parser.set_defaults(handler=snapshot_handler)


def camera_of(config: AgentConfig, camera_id: str) -> CameraConfig | None:
    return next((c for c in config.cameras if c.id == camera_id), None)


def detections_on(config: AgentConfig, camera: CameraConfig, image: ImageBGR) -> list[Detection]:
    """What the agent's detector finds in ``image`` (one full-frame pass, the camera's
    filters applied)."""
    detector = FrameDetector(
        camera_detector(config, camera),
        regions=RegionSettings.from_config(camera.regions),
        filters=camera.detection_filters,
    )
    return list(detector.detect(image, now_s=time.time()).result.detections)


def write_jpeg(path: Path, image: ImageBGR, quality: int = 90) -> int:
    """Write atomically (a half-written JPEG is never left behind); the size in bytes."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode {path} as JPEG")
    data = encoded.tobytes()
    write_atomic(path, data, 0o600)  # a picture of people: owner-only
    return len(data)


def snapshot_handler(args: argparse.Namespace) -> int:
    config_path: Path = args.config or default_config_path()
    config = load_checked_config(config_path, offline=True)
    if config is None:
        return error(f"{config_path}: fix the config first (edge-agent check-config)")
    known = ", ".join(c.id for c in config.cameras)
    if args.camera is None and len(config.cameras) > 1:
        count = len(config.cameras)
        return error(f"{config_path} has {count} cameras: give --camera ({known})")
    wanted = args.camera or config.cameras[0].id
    camera = camera_of(config, wanted)
    if camera is None:
        return error(f"no camera {wanted!r} in {config_path} (cameras: {known})")
    if not args.out.parent.is_dir():
        return error(f"{args.out.parent}: no such directory")
    where = redact_url(getattr(camera.source, "uri", camera.source.kind))
    quiet_camera_logs(args.log_level)  # the error line below says why and what to check
    try:
        source = open_source(camera)
    except CaptureError as exc:  # not a video file, a Pi camera that will not open
        return error(f"{exc} -> {camera_fix(camera)}{running_agent_note(config)}")
    try:
        frames = grab_frames(source, args.frames, first_frame_timeout_s(camera))
        reason = source.health().last_error
    finally:
        source.close()
    if not frames:
        print(
            f"edge-agent: error: camera {camera.id} ({where}) gave no frame: "
            f"{reason or 'nothing within the timeout'} -> {camera_fix(camera)}"
            f"{running_agent_note(config)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    image = frames[-1].image
    detections: list[Detection] = []
    if not args.no_detect:
        try:
            detections = detections_on(config, camera, image)
        except (DataFileError, RuntimeUnavailable, ValueError) as exc:
            return error(f"model {config.detector.model}: {exc}")
    try:  # detections on the real scene, the picture as it may leave: masked, faces blurred
        shown = protect(camera, image)
    except (DataFileError, RuntimeUnavailable, ValueError) as exc:
        return error(f"privacy face model {camera.privacy.face_model}: {exc}")
    try:
        size_bytes = write_jpeg(args.out, draw_overlay(shown, camera, detections))
    except OSError as exc:
        return error(f"cannot write {args.out}: {exc}")
    height_px, width_px = image.shape[:2]
    lines = sum(1 for rule in camera.rules if rule.kind == "line_crossing")
    found = ", ".join(f"{d.label} {d.score:.2f}" for d in detections) or "none"
    print(
        f"{args.out}: {width_px}x{height_px}, {size_bytes} bytes; {len(camera.zones)} zone(s), "
        f"{lines} line(s); detections: {'not run' if args.no_detect else found}"
    )
    return EXIT_OK
