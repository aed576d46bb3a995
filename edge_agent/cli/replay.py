"""`edge-agent replay VIDEO --config FILE`: the full pipeline offline on a video file,
as fast as it can, the events on stdout — for evaluation and tuning a site's config on a
laptop. The config's first camera's settings (fps, zones, rules, filters) and its detector
apply; its broker, TLS files and outbox are not used, so they are not checked (as
`check-config --offline`). VIDEO may be a bare media name of the manifest
(intel_car-detection.mp4), looked up on the media search path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edge_agent import datafiles
from edge_agent.capture import CaptureError, open_source
from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_OK, error, load_checked_config, positive_int
from edge_agent.config import OpenCVSourceConfig
from edge_agent.datafiles import DataFileError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="run the full pipeline offline on a video file and print the events",
        description=__doc__,
    )
    replay.add_argument("video", help="a video file, or a media name of the manifest")
    replay.add_argument(
        "--config", required=True, help="config whose first camera's settings apply"
    )
    replay.add_argument("--json", action="store_true", help="JSON lines (the event payloads)")
    replay.add_argument(
        "--every",
        type=positive_int,
        default=None,
        help="analyse every Nth frame (default: by camera fps)",
    )
    replay.add_argument("--detect-every-frame", action="store_true", help="bypass the motion gate")
    replay.set_defaults(handler=cmd_replay)


def _video(text: str) -> Path | None:
    """The file ``text`` names, or a bare media name found on the media search path."""
    path = Path(text)
    if path.is_file():
        return path
    if path.name == text:
        try:
            return datafiles.resolve_media(text)
        except DataFileError:
            return None
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    from edge_agent.assemble import build_pipeline, camera_detector, new_boot_id
    from edge_agent.detect.tflite import ModelLoadError
    from edge_agent.pipeline import run_offline
    from edge_agent.sinks import PrintSink

    # Away from the device: its broker, TLS files and outbox play no part in a replay.
    config = load_checked_config(Path(args.config), offline=True)
    if config is None:
        return EXIT_BAD_INPUT
    video = _video(args.video)
    if video is None:
        return error(f"video file not found: {args.video}")
    base_camera = config.cameras[0]
    camera = base_camera.model_copy(
        update={"source": OpenCVSourceConfig(uri=str(video), loop=False, realtime=False)}
    )
    try:
        detector = camera_detector(config, camera)
        origin_s = time.time()  # the source times a file from its opening: 0 s is its start
        source = open_source(camera, realtime=False)
    except (DataFileError, ModelLoadError, CaptureError) as problem:
        return error(str(problem))
    sink = PrintSink(args.json, new_boot_id(), origin_s)
    pipeline = build_pipeline(config, camera, detector=detector, sink=sink)
    step = max(1, round(source.nominal_fps / camera.fps)) if args.every is None else args.every
    try:
        run = run_offline(source, pipeline, every=step, always_detect=args.detect_every_frame)
    finally:
        source.close()
    if run.frames_read == 0:  # OpenCV opens a text file named .mp4 and then reads nothing
        return error(f"{video}: not a readable video (no frame could be decoded)")
    clock = pipeline.clock
    print(
        f"replay: {clock.frames} frames analysed of {run.frames_read}, "
        f"detector ran on {clock.detector_runs}, {sink.count} events, {sink.alerts} alert steps, "
        f"{sink.states} state changes, {sink.counts} count reports",
        file=sys.stderr,
    )
    return EXIT_OK
