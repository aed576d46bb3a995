"""What the pipeline benches share (``bench_pipeline.py``): the models and clips, the machine's
load, child processes, and the agent's pipeline built as ``edge-agent run`` builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_agent import assemble
from edge_agent.capture import FrameSource
from edge_agent.config import AgentConfig
from edge_agent.detect.base import Detector, DetectorWrapper
from edge_agent.motion import MotionSettings
from edge_agent.pipeline import (
    CameraPipeline,
    FrameOutput,
    FrameSink,
)
from edge_agent.track import label_family
from edge_agent.types import DetectionResult, Frame, ImageBGR, Lifecycle

MODELS = ("ssd_mobilenet_v1", "yolox_nano")
THROUGHPUT_CLIP = "automl_traffic_frames.mp4"
ROOM_CLIP = "intel_one-by-one-person-detection.mp4"
SIM_SIZE = (960, 540)
RESULT_PREFIX = "RESULT "


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}"


def emit_result(payload: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(payload), flush=True)


def run_child(args: list[str]) -> list[dict[str, Any]]:
    """Run bench_pipeline.py in a fresh interpreter; echo its output, collect its RESULT lines."""
    command = [sys.executable, str(Path(__file__).resolve().with_name("bench_pipeline.py")), *args]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    results: list[dict[str, Any]] = []
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            results.append(json.loads(line[len(RESULT_PREFIX) :]))
        else:
            print(line)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"child {' '.join(args)} failed ({completed.returncode})")
    return results


# ---------------------------------------------------------------------------------------------
# Building the agent's pipeline


def agent_config(
    model: str,
    source: dict[str, Any],
    fps: float,
    outbox_dir: Path,
    threads: int = 2,
    motion: MotionSettings | None = None,
    regions: bool = True,
) -> AgentConfig:
    """The running agent's defaults, one camera, ``model`` on ``threads`` threads
    (``regions=False``: one whole-frame pass per detection run, as before regions)."""
    camera = {"id": "cam1", "fps": fps, "source": source, "regions": {"enabled": regions}}
    return AgentConfig.model_validate(
        {
            "site_id": "bench",
            "device_id": "bench",
            "cameras": [camera],
            "detector": {"model": model, "threads": threads},
            "motion": asdict(motion or MotionSettings()),
            "outbox": {"path": str(outbox_dir / "outbox.db")},
        }
    )


class RecordingSink:
    """Keeps which events are open, per label family, to score coverage."""

    def __init__(self) -> None:
        self.open: dict[str, str] = {}
        self.new_events: list[str] = []

    def emit(self, output: FrameOutput) -> None:
        for event in output.events:
            if event.kind != "object":
                continue
            if event.lifecycle is Lifecycle.NEW:
                self.open[event.event_id] = label_family(event.label)
                self.new_events.append(label_family(event.label))
            elif event.lifecycle is Lifecycle.END:
                self.open.pop(event.event_id, None)

    def open_families(self) -> set[str]:
        return set(self.open.values())


class ObservedDetector(DetectorWrapper):
    """Passes through to the real detector and keeps its last result."""

    def __init__(self, inner: Detector) -> None:
        super().__init__(inner)
        self.last: DetectionResult | None = None
        self.calls = 0

    def detect(self, image: ImageBGR) -> DetectionResult:
        self.calls += 1
        self.last = self._inner.detect(image)
        return self.last


def build(config: AgentConfig, detector: Detector, sink: FrameSink) -> CameraPipeline:
    return assemble.build_pipeline(config, config.cameras[0], detector=detector, sink=sink)


def read_frame(source: FrameSource) -> Frame:
    """The next frame; a looping file returns None once per rewind."""
    while True:
        frame = source.read(timeout_s=5.0)
        if frame is not None:
            return frame
