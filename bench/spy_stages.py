"""Where the running agent's time goes, per stage, from a py-spy profile (a diagnostic).

    python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy   # not in the agent's venv
    /tmp/pyspy/bin/py-spy record -r 100 -d 30 -f raw --threads -o agent.txt -- \\
        python -m edge_agent.cli run --config traffic.yaml
    python bench/spy_stages.py agent.txt --seconds 30 --fps 5

py-spy samples every Python thread's stack; a sample whose innermost frame waits (a
condition, an event, a sleep, paho's reconnect wait) is idle and left out. Each remaining
sample is given to the first stage (innermost first) whose pattern its stack matches, and
printed as ms of thread time per analysed frame. The detector's own worker threads are
native (XNNPACK), invisible to py-spy: *invoke* is the calling thread's share only (with
2 threads, about half the invoke's CPU). bench/README.md, "Where the time goes", has a run.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

IDLE = ("Condition.wait", "Event.wait", "_reconnect_wait", "sleep (", "select (", "Queue.get")
ROOT = Path(__file__).resolve().parent.parent


def line_of(relative: str, text: str) -> str:
    """``file.py:N`` of the line holding ``text``: py-spy names a native call (cv2) by the
    Python line that makes it, so the line tells a resize from a colour conversion."""
    path = ROOT / relative
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return f"{path.name}:{number})"
    return f"{path.name}:?"


# (stage, pattern in a frame); the innermost matching frame decides.
STAGES: tuple[tuple[str, str], ...] = (
    ("decode", line_of("edge_agent/capture/opencv_source.py", "self._capture.grab()")),
    ("decode", line_of("edge_agent/capture/opencv_source.py", "self._capture.read()")),
    (
        "colour conversion (source, YUV to BGR)",
        line_of("edge_agent/capture/opencv_source.py", "self._capture.retrieve()"),
    ),
    ("resize (detector input)", line_of("edge_agent/detect/layouts.py", "resized = cv2.resize")),
    ("colour conversion (detector input)", line_of("edge_agent/detect/layouts.py", "rgb = cv2")),
    ("detector invoke", "Interpreter.invoke"),
    ("detector invoke", "Interpreter.set_tensor"),
    ("detector pre/post (other)", "TFLiteDetector.detect"),
    ("regions (plan, map back)", "detect/regions/"),
    ("gate (motion)", "MotionGate.update"),
    ("tracker", "track.py"),
    ("events", "events.py"),
    ("rules", "edge_agent/rules/"),
    ("analyzers", "edge_agent/analyzers/"),
    ("encode (JSON, JPEG)", "encode.py"),
    ("encode (JSON, JPEG)", "jpeg_of_box"),
    ("outbox (SQLite)", "edge_agent/outbox/"),
    ("decode (read, sim render)", "OpenCVSource.read"),
    ("decode (read, sim render)", "SimSource.read"),
    ("mailbox hand-off", "LatestFrameMailbox"),
    ("MQTT (drain, paho)", "edge_agent/mqtt/"),
    ("MQTT (drain, paho)", "paho/"),
    ("pipeline (other)", "CameraPipeline.process"),
    ("housekeeping", "_housekeeping_loop"),
    ("start-up (imports, model load)", "<module>"),
    ("start-up (imports, model load)", "importlib"),
)


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost last in py-spy's raw output
        for stage, pattern in STAGES:
            if pattern in frame:
                return stage
    return "other"


def summarise(path: Path) -> tuple[Counter[str], Counter[str], int]:
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in IDLE):
            idle += int(count)
            continue
        stages[stage_of(frames)] += int(count)
        threads[frames[0].split(": ", 1)[-1] if ": " in frames[0] else frames[0]] += int(count)
    return stages, threads, idle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--seconds", type=float, required=True, help="the recording's length")
    parser.add_argument("--fps", type=float, default=5.0, help="the camera's analysis rate")
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy's samples per second")
    args = parser.parse_args()
    stages, threads, idle = summarise(args.profile)
    frames = args.seconds * args.fps
    per_frame = 1000.0 / args.rate / frames
    total = sum(stages.values())
    print(f"{total} busy samples, {idle} idle; ms of thread time per analysed frame:")
    print("\n| stage | ms/frame | share of busy samples |\n|---|---|---|")
    for stage, count in stages.most_common():
        print(f"| {stage} | {count * per_frame:.2f} | {100 * count / total:.1f} % |")
    print("\n| thread | ms/frame |\n|---|---|")
    for thread, count in threads.most_common():
        print(f"| {thread} | {count * per_frame:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
