"""From a person's first sighting to their ``new`` event: how long the agent makes you wait.

Issue 14's acceptance: first-sighting-to-event p50 ≤ 100 ms for a person at score ≥ 0.7.
The person clips with by-eye truth (room, walking, store aisle; ``hw_sim.footage``) are
replayed through the agent's pipeline with the defaults a user gets (SSD, 5 fps, the motion
gate, regions), once per decimation phase (the room at 5 fps from 10 fps: frames 0, 2, 4...
and 1, 3, 5..., so each visit is met at two moments). For every person event:

    latency = (the frame that published ``new`` - the frame of the first sighting), in the
              clip's time (the wait for a confirming detection)
            + the wall time the pipeline took over the publishing frame (decode excluded:
              detection, tracking, events, up to the sink)

The pipeline's wall time grows with other work on the machine; its CPU time (threads summed,
so above the wall time on an idle machine when the model runs on two threads) much less.
The sink is in the process: delivery to a subscriber adds what the outbox and broker add
(p50 4.3 ms on this machine, issue 14). "First score" is the score of the person's first
sighting (the box the tracker started the track with). Run with the tracker's
``confirm_score`` off (every track waits for a second sighting, the behaviour before it)
and at the default, in one process:

    python bench/bench_first_event.py                      # off and the default 0.7
    python bench/bench_first_event.py --confirm-score 0.6  # ... and another threshold
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from hw_sim.footage import load_truth, truth_files
from hw_sim.footage.run import footage_config

from edge_agent import datafiles
from edge_agent.assemble import build_detector, build_pipeline
from edge_agent.capture import open_source
from edge_agent.config import AgentConfig
from edge_agent.detect.base import Detector
from edge_agent.pipeline import FrameOutput, frames_of
from edge_agent.types import Box, Frame, Lifecycle, ObjectEvent

PERSON_CLIPS = (
    "intel_one-by-one-person-detection.mp4",
    "intel_face-demographics-walking-and-pause.gif",
    "intel_store-aisle-detection.gif",
)


@dataclass(frozen=True)
class Sighting:
    """A track's first sighting: when (wall time of its frame), where, at what score."""

    wall_s: float
    box: Box
    score: float


@dataclass(frozen=True)
class Latency:
    clip: str
    wait_s: float  # clip time from first sighting to the publishing frame
    process_s: float  # wall time of the pipeline over the publishing frame
    process_cpu_s: float  # ... and the CPU time of this process (threads summed) meanwhile
    first_score: float

    @property
    def total_ms(self) -> float:
        return 1000.0 * (self.wait_s + self.process_s)


class TimingSink:
    """Keeps every ``new`` person event with the wall time it reached the sink."""

    def __init__(self) -> None:
        self.news: list[tuple[ObjectEvent, float, float]] = []

    def emit(self, output: FrameOutput) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.news.extend(
            (event, now, cpu)
            for event in output.events
            if event.lifecycle is Lifecycle.NEW and event.label == "person"
        )


def with_confirm_score(config: AgentConfig, score: float | None) -> AgentConfig:
    tracker = config.tracker.model_copy(update={"confirm_score": score})
    return config.model_copy(update={"tracker": tracker})


def replay(
    clip: str, confirm_score: float | None, phase: int, detector: Detector | None
) -> tuple[list[Latency], Detector, int]:
    """One replay of ``clip`` starting at frame ``phase``: its person events' latencies."""
    video = datafiles.resolve_media(clip)
    config = with_confirm_score(footage_config(video), confirm_score)
    camera = config.cameras[0]
    detector = detector or build_detector(config)
    sink = TimingSink()
    pipeline = build_pipeline(config, camera, detector=detector, sink=sink)
    tracker: Any = pipeline._tracker  # a bench may look inside: the first sightings
    firsts: list[Sighting] = []
    wall_of: dict[float, float] = {}
    update = tracker.update

    def recording_update(detections: Any, now_s: float, looked_at: Any = None) -> Any:
        result = update(detections, now_s, looked_at)
        firsts.extend(
            Sighting(wall_of[now_s], t.box, t.score)
            for t in tracker.expected_tracks(now_s)
            if t.first_seen_s == now_s and t.label == "person"
        )
        return result

    tracker.update = recording_update
    source = open_source(camera, realtime=False)
    step = max(1, round(source.nominal_fps / camera.fps))
    # frame wall time -> perf_counter and process_time when processing began
    started: dict[float, tuple[float, float]] = {}
    last: Frame | None = None
    try:
        for read, frame in enumerate(frames_of(source)):
            if read < phase or (read - phase) % step:
                continue
            wall_of[frame.monotonic_s] = frame.captured_at_s
            started[frame.captured_at_s] = time.perf_counter(), time.process_time()
            pipeline.process(frame)
            last = frame
        pipeline.finish(last)
    finally:
        source.close()
    latencies = []
    for event, reached, reached_cpu in sink.news:
        began, began_cpu = started[event.frame_time_s]
        candidates = [s for s in firsts if abs(s.wall_s - event.start_s) < 1e-3]
        first = max(candidates, key=lambda s: s.box.iou(event.box), default=None)
        latencies.append(
            Latency(
                clip=clip,
                wait_s=event.frame_time_s - event.start_s,
                process_s=reached - began,
                process_cpu_s=reached_cpu - began_cpu,
                first_score=first.score if first is not None else float("nan"),
            )
        )
    return latencies, detector, step


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(name: str, latencies: list[Latency]) -> str:
    if not latencies:
        return f"  {name:<28} no events"
    totals = [lat.total_ms for lat in latencies]
    waits = [1000.0 * lat.wait_s for lat in latencies]
    process = [1000.0 * lat.process_s for lat in latencies]
    cpu = [1000.0 * lat.process_cpu_s for lat in latencies]
    return (
        f"  {name:<28} {len(totals):>3} events  p50 {percentile(totals, 0.5):6.1f} ms  "
        f"p90 {percentile(totals, 0.9):6.1f}  max {max(totals):6.1f}  (of which the wait "
        f"p50 {statistics.median(waits):5.1f}, the pipeline p50 {statistics.median(process):5.1f}; "
        f"its CPU p50 {statistics.median(cpu):5.1f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--confirm-score",
        type=float,
        action="append",
        help="tracker.confirm_score to run (repeatable; default: off and 0.7)",
    )
    parser.add_argument("--high", type=float, default=0.7, help="'high score' for the summary")
    args = parser.parse_args()
    settings: list[float | None] = [None, 0.7] if not args.confirm_score else args.confirm_score
    truths = {t.clip: t for t in (load_truth(p) for p in truth_files())}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    detector: Detector | None = None
    for confirm_score in settings:
        name = "off" if confirm_score is None else f"{confirm_score:g}"
        print(f"tracker.confirm_score {name}:")
        everything: list[Latency] = []
        for clip in PERSON_CLIPS:
            if clip not in truths:
                continue
            phase, step, latencies = 0, 1, []
            while phase < step:
                found, detector, step = replay(clip, confirm_score, phase, detector)
                latencies += found
                phase += 1
            everything += latencies
            print(summary(f"{clip[:24]} ({step} phases)", latencies))
        print(summary("all, any first score", everything))
        high = [lat for lat in everything if lat.first_score >= args.high]
        print(summary(f"all, first score >= {args.high:g}", high))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
