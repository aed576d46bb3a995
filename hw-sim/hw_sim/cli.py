"""``hw-sim``: list scenarios, render them to a clip with ground truth, take snapshots,
run the network fault proxy, score the agent on the scenarios (``eval``), load a broker
with simulated devices (``fleet``).

Exit codes: 0 ok, 2 bad usage or missing media (the message names the variable to set).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2

from hw_sim.eval import add_eval_parser, run_eval_cli
from hw_sim.fleet.cli import add_fleet_parser, run_fleet_cli
from hw_sim.media import MEDIA_ENV_VAR, MediaNotFound
from hw_sim.netproxy import add_proxy_parser, run_proxy_cli
from hw_sim.scenes import Scenario, describe_scenario, load_scenario, scenario_names

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hw-sim", description="Simulated camera scenes with ground truth for edge_agent."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the scenarios")

    def scene_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--scenario", required=True, choices=scenario_names())
        command.add_argument("--width", type=int, default=960)
        command.add_argument("--height", type=int, default=540)
        command.add_argument("--fps", type=float, default=10.0)

    render = commands.add_parser("render", help="write a clip (mp4v) and its truth (JSON lines)")
    scene_options(render)
    render.add_argument("--out", type=Path, required=True, help="video file to write (.mp4)")
    render.add_argument("--truth", type=Path, required=True, help="truth file to write (.jsonl)")
    render.add_argument(
        "--seconds", type=float, default=None, help="length (default: one loop of the scenario)"
    )
    snapshot = commands.add_parser("snapshot", help="write one frame as an image")
    scene_options(snapshot)
    snapshot.add_argument("--frame", type=int, default=0)
    snapshot.add_argument("--out", type=Path, required=True, help="image file (.png, .jpg)")
    serve = commands.add_parser(
        "serve", help="serve a scenario as an MJPEG-over-HTTP camera (an IP camera stand-in)"
    )
    scene_options(serve)
    serve.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: free)")
    serve.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    add_proxy_parser(commands)
    add_eval_parser(commands)
    add_fleet_parser(commands)
    return parser


def _serve(scenario: Scenario, port: int | None, max_seconds: float) -> int:
    import threading

    from hw_sim.mjpeg import MjpegServer

    server = MjpegServer(scenario.render, fps=scenario.fps, port=port)
    try:
        server.start()
    except OSError as error:
        return _fail(f"cannot listen on 127.0.0.1:{server.port}: {error}")
    print(f"serving {scenario.name} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait(max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _fail(message: str) -> int:
    print(f"hw-sim: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _truth_line(scenario: Scenario, index: int) -> str:
    objects = [
        {
            "id": obj.object_id,
            "label": obj.label,
            "box": [round(v, 5) for v in obj.box],
            "visible": obj.visible_fraction,
        }
        for obj in scenario.truth(index)
    ]
    return json.dumps({"frame": index, "t_s": round(index / scenario.fps, 4), "objects": objects})


def _render(scenario: Scenario, out: Path, truth: Path, seconds: float | None) -> int:
    n_frames = scenario.n_frames if seconds is None else round(seconds * scenario.fps)
    if n_frames < 1:
        return _fail(f"--seconds {seconds} gives no frames at {scenario.fps} fps")
    size = (scenario.width, scenario.height)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), scenario.fps, size)
    if not writer.isOpened():
        return _fail(f"cannot write video {out} (is the directory there and writable?)")
    try:
        with truth.open("w", encoding="utf-8") as truth_file:
            for index in range(n_frames):
                writer.write(scenario.render(index))
                truth_file.write(_truth_line(scenario, index) + "\n")
    finally:
        writer.release()
    print(f"wrote {n_frames} frames to {out} and their truth to {truth}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "proxy":
        return run_proxy_cli(args)
    if args.command == "eval":
        return run_eval_cli(args)
    if args.command == "fleet":
        return run_fleet_cli(args)
    if args.command == "list":
        for name in scenario_names():
            print(f"{name:<18} {describe_scenario(name)}")
        return 0
    try:
        scenario = load_scenario(args.scenario, width=args.width, height=args.height, fps=args.fps)
    except MediaNotFound as error:
        hint = "" if MEDIA_ENV_VAR in str(error) else f" (set {MEDIA_ENV_VAR})"
        return _fail(f"{error}{hint}")
    except ValueError as error:
        return _fail(str(error))
    if args.command == "serve":
        return _serve(scenario, args.port, args.max_seconds)
    if args.command == "render":
        try:
            return _render(scenario, args.out, args.truth, args.seconds)
        except OSError as error:
            return _fail(str(error))
    if args.frame < 0:
        return _fail(f"--frame must not be negative, not {args.frame}")
    if not cv2.imwrite(str(args.out), scenario.render(args.frame)):
        return _fail(f"cannot write image {args.out} (unknown extension or unwritable directory)")
    print(f"wrote frame {args.frame} of {args.scenario} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
