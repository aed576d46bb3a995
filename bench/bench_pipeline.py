"""Pipeline benches: throughput against bare invoke, the motion gate's detector share, memory.

    python bench/bench_pipeline.py throughput [--models M ...] [--threads T ...] [--frames N]
    python bench/bench_pipeline.py gate [--model M] [--fps F ...] [--sweep]
    python bench/bench_pipeline.py memory [--models M ...]
    python bench/bench_pipeline.py cpu [--scenes static room traffic cars crowd] [--video-s S]
                                       [--threads T]
    python bench/bench_pipeline.py all

with the models and media on the search path (EDGE_AGENT_MODEL_PATH, EDGE_AGENT_MEDIA_PATH).
Every figure that is a time is printed next to its denominator measured in the same process
(the model's bare invoke rate), because only ratios carry over to a Raspberry Pi
(DESIGN.md §9). Each model runs in its own subprocess so that one model's allocations and
warm caches do not colour the other's. The pipeline is the running agent's, built by
``assemble.build_pipeline`` from a default config (detector threads: ``--threads``, the agent's
default is the machine's cores - 1) and one OpenCV thread.
Not part of the test run; see bench/README.md for the figures and docs/pipeline.md for
what they mean.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import agent_process
import cv2

from edge_agent import assemble, datafiles
from edge_agent.capture import FrameSource, LatestFrameMailbox, open_source
from edge_agent.capture.opencv_source import OpenCVSource
from edge_agent.config import AgentConfig
from edge_agent.detect.base import Detector, DetectorWrapper
from edge_agent.encode import Encoder, Topics
from edge_agent.motion import MotionSettings
from edge_agent.outbox import Outbox
from edge_agent.pipeline import (
    STAGES,
    CameraPipeline,
    FrameOutput,
    FrameSink,
    StageClock,
    run_offline,
)
from edge_agent.service.malloc import limit_malloc_arenas
from edge_agent.sinks import OutboxSink
from edge_agent.track import label_family
from edge_agent.types import DetectionResult, Frame, ImageBGR, Lifecycle

MODELS = ("ssd_mobilenet_v1", "yolox_nano")
THROUGHPUT_CLIP = "automl_traffic_frames.mp4"
ROOM_CLIP = "intel_one-by-one-person-detection.mp4"
SIM_SIZE = (960, 540)
RESULT_PREFIX = "RESULT "

# A gate with Frigate's defaults, as the comparison DESIGN.md §9 measured at ~96 %.
FRIGATE_LIKE = MotionSettings(
    background_alpha=0.01,
    exposure_compensation=False,
    noise_opening=False,
    pixel_threshold=30,
    min_frames=1,
    min_moving_px=0,
)
# This repository's gate before ghost rejection (exposure compensation, opening, 2 frames).
BACKGROUND_ONLY = replace(MotionSettings(), min_moving_px=0)


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
    """Run this script in a fresh interpreter; echo its output, collect its RESULT lines."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
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


# ---------------------------------------------------------------------------------------------
# 1. Throughput: detection on every frame, sequential and overlapped capture


@dataclass
class Block:
    """One timed stretch of one mode: work items done, wall and CPU seconds, stage seconds."""

    items: int
    wall_s: float
    cpu_s: float
    stage_s: dict[str, float] = field(default_factory=dict)


def timed(work: Callable[[], int], clock: StageClock | None = None) -> Block:
    before = dict(clock.seconds) if clock is not None else {}
    cpu_start, start = time.process_time(), time.perf_counter()
    items = work()
    block = Block(items, time.perf_counter() - start, time.process_time() - cpu_start)
    if clock is not None:
        block.stage_s = {stage: clock.seconds[stage] - s for stage, s in before.items()}
    return block


def bare_block(detector: Detector, invokes: int) -> Callable[[], int]:
    """The interpreter alone, input already set: the denominator of every ratio."""
    interpreter = getattr(detector, "_interpreter", None)
    if interpreter is None:
        raise SystemExit(f"{detector.model_name}: not a TFLite detector, no bare invoke")

    def work() -> int:
        for _ in range(invokes):
            interpreter.invoke()
        return invokes

    return work


def sequential_block(
    pipeline: CameraPipeline, source: FrameSource, frames: int
) -> Callable[[], int]:
    """Decode and analyse in one thread, one frame after the other."""

    def work() -> int:
        clock = pipeline.clock
        for _ in range(frames):
            started = time.perf_counter()
            frame = read_frame(source)
            clock.add("decode", time.perf_counter() - started)
            pipeline.process(frame, always_detect=True)
        return frames

    return work


class Capture:
    """The agent's capture thread for a file (``worker.capture_loop``): decodes into the
    agent's mailbox, waiting for the reader (``wait_for_reader``, as for a file), for the
    whole run. One thread throughout, as the agent's ``capture-{cam}``: every block starts
    with the next frame already decoded. (A thread per block made each block's first frame
    wait on the decoder, and with 20-frame blocks on the 20-frame clip that frame was always
    the loop's rewind and keyframe: ~8 ms a block, 0.4 ms a frame the agent never waits.)"""

    def __init__(self, source: FrameSource) -> None:
        self.mailbox = LatestFrameMailbox()
        self.decode_s = 0.0  # spent decoding so far (this thread)
        self._source = source
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                frame = read_frame(self._source)
                self.decode_s += time.perf_counter() - started
                self.mailbox.put(frame, wait_for_reader=True)
        finally:
            self.mailbox.close()

    def stop(self) -> None:
        self._stop.set()
        self.mailbox.close()
        self._thread.join()


def overlapped_block(pipeline: CameraPipeline, capture: Capture, frames: int) -> Callable[[], int]:
    """Analysis in this thread of the frames the capture thread decodes into the mailbox."""

    def work() -> int:
        decoded_s = capture.decode_s
        for _ in range(frames):
            frame = capture.mailbox.get(timeout_s=5.0)
            if frame is None:
                raise SystemExit("the capture thread gave no frame within 5 s")
            pipeline.process(frame, always_detect=True)
        dropped = capture.mailbox.dropped
        if dropped:
            raise SystemExit(f"the mailbox dropped {dropped} frames: not a fair run")
        pipeline.clock.add("decode", capture.decode_s - decoded_s)  # in the capture thread
        return frames

    return work


def machine_busy_s() -> float:
    """CPU seconds used by every process on the machine so far (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One round of blocks, and how much of the machine other processes used meanwhile."""

    blocks: dict[str, Block]
    foreign_share: float  # of all cores' time, 0..1


def measure_round(
    order: Sequence[str], work: dict[str, Callable[[], int]], clocks: dict[str, StageClock]
) -> Round:
    busy_start, own_start, start = machine_busy_s(), time.process_time(), time.perf_counter()
    blocks = {mode: timed(work[mode], clocks.get(mode)) for mode in order}
    wall_s = time.perf_counter() - start
    foreign_s = (machine_busy_s() - busy_start) - (time.process_time() - own_start)
    return Round(blocks, max(0.0, foreign_s) / (wall_s * (os.cpu_count() or 1)))


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


CLEAN_ROUND_FOREIGN_SHARE = 0.05


def throughput_child(model: str, frames: int, block: int, threads: int) -> None:
    """Rounds of [bare invoke, sequential, overlapped] blocks, rotated, so that every mode
    sees the same background load; each round yields a ratio. Rounds during which other
    processes used more than 5 % of the machine are left out of the median when enough
    clean rounds remain (the count is printed)."""
    cv2.setNumThreads(1)  # as the agent does (DESIGN.md §9)
    limit_malloc_arenas()  # as `edge-agent run` does (unless MALLOC_ARENA_MAX is set)
    clip = datafiles.resolve_media(THROUGHPUT_CLIP)
    modes = ("bare", "sequential", "overlapped")
    rounds_done: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        source_config = {"kind": "opencv", "uri": str(clip), "loop": True, "realtime": False}
        # One whole-frame pass per frame: frames/s against invokes/s means one invoke each
        # (region detection's extra invokes per frame are the cpu bench's business), and no
        # gate, as a camera that detects on every frame is configured (`motion.enabled:
        # false`): without regions its boxes would go nowhere.
        config = agent_config(
            model,
            source_config,
            30.0,
            Path(tmp),
            threads,
            motion=MotionSettings(enabled=False),
            regions=False,
        )
        detector = assemble.build_detector(config)
        outbox = Outbox(
            config.outbox.path, max_bytes=config.outbox.max_bytes, max_rows=config.outbox.max_rows
        )
        sink = OutboxSink(outbox, Encoder(Topics(config.topic_root), "bench"), lambda: None)

        def new_source() -> OpenCVSource:
            return OpenCVSource("cam1", str(clip), loop=True, realtime=False)

        load_before = loadavg()
        timed(sequential_block(build(config, detector, sink), new_source(), 20))  # warm up
        pipelines = {m: build(config, detector, sink) for m in modes[1:]}
        capture = Capture(new_source())
        work = {
            "bare": bare_block(detector, block),
            "sequential": sequential_block(pipelines["sequential"], new_source(), block),
            "overlapped": overlapped_block(pipelines["overlapped"], capture, block),
        }
        rounds = max(1, frames // block)
        for round_index in range(rounds):
            shift = round_index % len(modes)
            clocks = {mode: pipeline.clock for mode, pipeline in pipelines.items()}
            rounds_done.append(measure_round(modes[shift:] + modes[:shift], work, clocks))
        capture.stop()
        outbox_depth = outbox.depth()
        outbox.close()
    load_after = loadavg()

    clean = [r for r in rounds_done if r.foreign_share <= CLEAN_ROUND_FOREIGN_SHARE]
    used = clean if len(clean) >= 3 else rounds_done
    blocks = {m: [r.blocks[m] for r in used] for m in modes}
    foreign = median([r.foreign_share for r in rounds_done])

    def rate(b: Block) -> float:
        return b.items / b.wall_s

    def total(mode: str) -> Block:
        bs = blocks[mode]
        return Block(sum(b.items for b in bs), sum(b.wall_s for b in bs), sum(b.cpu_s for b in bs))

    bare = total("bare")
    bare_rate, bare_cpu_ms = rate(bare), 1000 * bare.cpu_s / bare.items
    bare_rates = [rate(b) for b in blocks["bare"]]
    print(
        f"\n== {model}: {rounds} rounds of {block} frames of {THROUGHPUT_CLIP} (20 frames, "
        f"looped), one whole-frame detection per frame, detector threads={threads}, cv2 threads=1"
    )
    print(
        f"other processes used a median {100 * foreign:.0f} % of the machine per round; "
        f"{len(clean)}/{rounds} rounds under {100 * CLEAN_ROUND_FOREIGN_SHARE:.0f} %, "
        + ("figures from those" if used is clean else "too few: figures from all rounds")
    )
    print(
        f"bare invoke: {bare_rate:.1f}/s ({1000 / bare_rate:.2f} ms, CPU {bare_cpu_ms:.2f} ms); "
        f"per round {min(bare_rates):.1f}..{max(bare_rates):.1f}/s"
    )
    results = []
    for mode in modes[1:]:
        figures = total(mode)
        ratios = [rate(b) / rate(a) for a, b in zip(blocks["bare"], blocks[mode], strict=True)]
        stage_ms = {
            stage: 1000.0 * sum(b.stage_s.get(stage, 0.0) for b in blocks[mode]) / figures.items
            for stage in STAGES
        }
        cpu_ms = 1000 * figures.cpu_s / figures.items
        results.append(
            {
                "mode": mode,
                "fps": rate(figures),
                "ratio": median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "cpu_ms": cpu_ms,
                "cpu_ratio": bare_cpu_ms / cpu_ms,
                "stage_ms": stage_ms,
            }
        )
        where = " (decode in the capture thread)" if mode == "overlapped" else ""
        stages = "  ".join(f"{s} {v:.2f}" for s, v in stage_ms.items() if v > 0)
        print(
            f"{mode:<10} {rate(figures):6.1f} frames/s; ratio to bare invoke: median "
            f"{median(ratios):.2f} (rounds {min(ratios):.2f}..{max(ratios):.2f}); "
            f"CPU {cpu_ms:.2f} ms/frame (bare invoke / frame CPU {bare_cpu_ms / cpu_ms:.2f})"
        )
        print(f"           ms/frame: {stages}{where}")
    print(f"outbox rows written: {outbox_depth}; loadavg before {load_before}, after {load_after}")
    emit_result(
        {
            "bench": "throughput",
            "model": model,
            "threads": threads,
            "frames": rounds * block,
            "rounds": rounds,
            "clean_rounds": len(clean),
            "used_clean": used is clean,
            "foreign_share": foreign,
            "bare_rate": bare_rate,
            "bare_cpu_ms": bare_cpu_ms,
            "modes": results,
            "load": [load_before, load_after],
        }
    )


def throughput(
    models: Sequence[str], frames: int, block: int, threads: Sequence[int]
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for n_threads in threads:
        for model in models:
            results += run_child(
                ["throughput-one", "--model", model, "--frames", str(frames),
                 "--block", str(block), "--threads", str(n_threads)]
            )  # fmt: skip
    shown = [
        s for s in STAGES if any(m["stage_ms"].get(s, 0) > 0 for r in results for m in r["modes"])
    ]
    print(
        "\n| model | threads | bare invoke/s | mode | frames/s | ratio (median, range) | "
        "CPU ms/frame | CPU ratio | " + " | ".join(f"{s} ms" for s in shown) + " |"
    )
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(shown))
    for r in results:
        for m in r["modes"]:
            cells = " | ".join(f"{m['stage_ms'].get(s, 0.0):.2f}" for s in shown)
            low, high = m["ratio_range"]
            print(
                f"| {r['model']} | {r['threads']} | {r['bare_rate']:.1f} | {m['mode']} | "
                f"{m['fps']:.1f} | {m['ratio']:.2f} ({low:.2f}-{high:.2f}) | "
                f"{m['cpu_ms']:.2f} | {m['cpu_ratio']:.2f} | {cells} |"
            )
    return results


# ---------------------------------------------------------------------------------------------
# 2. The gate: share of frames that reach the detector, and what it costs in coverage


@dataclass(frozen=True)
class Clip:
    name: str
    source: dict[str, Any]
    fps: float


@dataclass
class GateRun:
    gate: str
    frames: int = 0
    detector_runs: int = 0
    invokes: int = 0
    motion_frames: int = 0
    in_view: list[set[str]] = field(default_factory=list)  # families detected per frame (ref)
    open_at: list[set[str]] = field(default_factory=list)  # families with an open event
    motion_at: list[bool] = field(default_factory=list)  # the gate was open
    new_events: int = 0
    cpu_s: float = 0.0  # decoding (or rendering) and analysing, all threads

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000.0 * self.cpu_s / max(1, self.frames)

    @property
    def detector_share(self) -> float:
        return self.detector_runs / max(1, self.frames)

    @property
    def motion_share(self) -> float:
        return self.motion_frames / max(1, self.frames)

    @property
    def invokes_per_frame(self) -> float:
        return self.invokes / max(1, self.frames)


def run_gate(
    clip: Clip,
    detector: Detector,
    gate_name: str,
    motion: MotionSettings | None,
    reference: list[set[str]] | None,
    tmp_dir: Path,
) -> GateRun:
    """One pass over the clip. Without ``reference`` the detector runs on the whole of every
    frame and the pass *is* the reference: which label families it sees per frame."""
    config = agent_config(
        detector.model_name,
        clip.source,
        clip.fps,
        tmp_dir,
        motion=motion,
        regions=reference is not None,
    )
    observed = ObservedDetector(detector)
    sink = RecordingSink()
    pipeline = build(config, observed, sink)
    source = open_source(config.cameras[0], realtime=False)
    run = GateRun(gate_name)
    before = (0, 0)  # the detector's calls and the gate's motion frames before a frame

    def on_frame(frame: Frame) -> None:
        nonlocal before
        before = (observed.calls, pipeline.clock.motion_frames)

    def on_output(frame: Frame, output: FrameOutput) -> None:
        calls, motion_frames = before
        run.motion_at.append(pipeline.clock.motion_frames > motion_frames)
        if reference is None:
            seen = observed.last.detections if observed.calls > calls and observed.last else ()
            run.in_view.append({label_family(d.label) for d in seen})
        run.open_at.append(sink.open_families())

    cpu_start = time.process_time()
    try:
        # Decimated to the clip's fps the way the agent's capture thread does.
        run_offline(
            source,
            pipeline,
            min_interval_s=1.0 / clip.fps,
            always_detect=reference is None,
            on_frame=on_frame,
            on_output=on_output,
        )
    finally:
        source.close()
    run.cpu_s = time.process_time() - cpu_start
    clock = pipeline.clock
    run.frames, run.detector_runs, run.invokes, run.motion_frames = (
        clock.frames,
        clock.detector_runs,
        clock.invokes,
        clock.motion_frames,
    )
    run.new_events = len(sink.new_events)
    return run


def visits(in_view: list[set[str]], family: str, fps: float, gap_s: float) -> list[range]:
    """Stretches of frames where ``family`` is in view; gaps shorter than ``gap_s`` join."""
    stretches: list[range] = []
    start: int | None = None
    last_seen = -1
    for index, families in enumerate(in_view):
        if family not in families:
            continue
        if start is None:
            start = index
        elif (index - last_seen) / fps > gap_s:
            stretches.append(range(start, last_seen + 1))
            start = index
        last_seen = index
    if start is not None:
        stretches.append(range(start, last_seen + 1))
    return stretches


def coverage(in_view: list[set[str]], open_at: list[set[str]]) -> float:
    """Share of (frame, family in view) pairs with an open event of that family."""
    pairs = sum(len(v) for v in in_view)
    hits = sum(len(v & o) for v, o in zip(in_view, open_at, strict=True))
    return hits / pairs if pairs else float("nan")


def quiet_frames(in_view: list[set[str]], fps: float, margin_s: float = 2.0) -> list[int]:
    """Frames with nothing in view within ``margin_s`` either side: truly empty scene."""
    margin = round(margin_s * fps)
    busy = [bool(v) for v in in_view]
    return [i for i in range(len(in_view)) if not any(busy[max(0, i - margin) : i + margin + 1])]


def visits_with_event(stretches: dict[str, list[range]], open_at: list[set[str]]) -> int:
    """Visits during which an event of their family was open at some frame."""
    return sum(
        1
        for family, ranges in stretches.items()
        for stretch in ranges
        if any(family in open_at[i] for i in stretch)
    )


COMPARISON_GATES: tuple[tuple[str, MotionSettings], ...] = (
    ("agent default", MotionSettings()),
    ("background only", BACKGROUND_ONLY),
    ("Frigate-like", FRIGATE_LIKE),
)


def sweep_gates() -> tuple[tuple[str, MotionSettings], ...]:
    """The default gate with one setting changed at a time, to show how sensitive it is."""
    default = MotionSettings()
    changes: list[tuple[str, Any]] = [
        ("min_moving_px", 4),
        ("min_moving_px", 16),
        ("moving_window_frames", 1),
        ("moving_window_frames", 3),
        ("moving_window_frames", 8),
        ("pixel_threshold", 20),
        ("pixel_threshold", 40),
        ("background_alpha", 0.01),
        ("background_alpha", 0.1),
        ("min_frames", 1),
        ("min_frames", 3),
    ]
    variants = [(f"{name}={value}", replace(default, **{name: value})) for name, value in changes]
    return (("agent default", default), *variants)


def gate_clip(
    clip: Clip,
    detector: Detector,
    tmp_dir: Path,
    gates: Sequence[tuple[str, MotionSettings]] = COMPARISON_GATES,
) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = loadavg()
    reference = run_gate(clip, detector, "every frame", None, None, tmp_dir)
    ref_view = reference.in_view
    frames = len(ref_view)
    families = sorted({f for view in ref_view for f in view})
    gap_s = 3.0  # the tracker's max_missed_s: a shorter gap is the same visit
    stretches = {f: visits(ref_view, f, clip.fps, gap_s) for f in families}
    n_visits = sum(len(v) for v in stretches.values())
    quiet = quiet_frames(ref_view, clip.fps)
    runs = [reference]
    runs += [run_gate(clip, detector, name, s, ref_view, tmp_dir) for name, s in gates]
    person_share = sum(1 for v in ref_view if "person" in v) / max(1, frames)
    any_share = sum(1 for v in ref_view if v) / max(1, frames)
    print(
        f"\n== gate on {clip.name} at {clip.fps:g} fps: {frames} frames, "
        f"{detector.model_name}, score >= 0.5"
    )
    print(
        f"in view (detector on every frame): person {100 * person_share:.1f} % of frames, "
        f"any object of interest {100 * any_share:.1f} %; visits {n_visits} "
        f"({', '.join(f'{f} {len(v)}' for f, v in stretches.items()) or 'none'}); "
        f"{len(quiet)} frames of empty scene (nothing in view within 2 s)"
    )
    rows: list[dict[str, Any]] = []
    for run in runs:
        run_coverage = coverage(ref_view, run.open_at)
        row: dict[str, Any] = {
            "gate": run.gate,
            "detector_share": run.detector_share,
            "invokes_per_frame": run.invokes_per_frame,
            "motion_share": run.motion_share,
            "new_events": run.new_events,
            "coverage": run_coverage,
            "visits_with_event": visits_with_event(stretches, run.open_at),
            "cpu_ms": run.cpu_ms_per_frame,
            "quiet_frames": len(quiet),
            "quiet_motion": sum(run.motion_at[i] for i in quiet) / len(quiet) if quiet else None,
        }
        rows.append(row)
        quiet_motion = "-" if not quiet else f"{100 * row['quiet_motion']:.0f} %"
        print(
            f"  {run.gate:<16} detector {100 * run.detector_share:5.1f} %  "
            f"invokes {run.invokes_per_frame:4.2f}/frame  "
            f"motion {100 * run.motion_share:5.1f} % (empty scene: {quiet_motion})  "
            f"new events {run.new_events:3d}  "
            f"in-view frames with an open event {100 * run_coverage:5.1f} %  "
            f"visits with an event {row['visits_with_event']}/{n_visits}  "
            f"CPU {run.cpu_ms_per_frame:.1f} ms/frame"
        )
    elapsed_s = time.perf_counter() - started
    print(f"  ({elapsed_s:.0f} s; loadavg before {load_before}, after {loadavg()})")
    return {
        "bench": "gate",
        "clip": clip.name,
        "fps": clip.fps,
        "frames": frames,
        "person_share": person_share,
        "any_share": any_share,
        "visits": n_visits,
        "rows": rows,
        "load": [load_before, loadavg()],
    }


def gate_child(model: str, fps_values: Sequence[float], sweep: bool) -> None:
    cv2.setNumThreads(1)
    room = str(datafiles.resolve_media(ROOM_CLIP))
    room_clips = [
        Clip(ROOM_CLIP, {"kind": "opencv", "uri": room, "loop": False, "realtime": False}, fps)
        for fps in fps_values
    ]
    if sweep:
        with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
            config = agent_config(model, room_clips[0].source, 5.0, Path(tmp))
            detector = assemble.build_detector(config)
            for clip in room_clips:
                emit_result(gate_clip(clip, detector, Path(tmp), sweep_gates()))
        return
    width, height = SIM_SIZE
    clips = [
        Clip(
            f"hw-sim {name} {width}x{height}",
            {
                "kind": "sim",
                "scenario": name,
                "width": width,
                "height": height,
                "loop": False,
                "realtime": False,
            },
            5.0,
        )
        for name in ("empty_street", "street")
    ]
    clips += room_clips
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        config = agent_config(model, clips[0].source, 5.0, Path(tmp))
        detector = assemble.build_detector(config)
        for clip in clips:
            emit_result(gate_clip(clip, detector, Path(tmp)))


def gate(model: str, fps_values: Sequence[float], sweep: bool = False) -> list[dict[str, Any]]:
    args = ["gate-one", "--model", model, "--fps", *[str(f) for f in fps_values]]
    args += ["--sweep"] if sweep else []
    results = run_child(args)
    print(
        "\n| clip | fps | frames | person in view | gate | detector | invokes/frame | motion | "
        "motion on empty scene | new events | in-view frames with an open event | "
        "visits with an event | CPU ms/frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for row in r["rows"]:
            cover = "-" if r["visits"] == 0 else f"{100 * row['coverage']:.1f} %"
            quiet = (
                "-"
                if row["quiet_motion"] is None
                else f"{100 * row['quiet_motion']:.0f} % of {row['quiet_frames']}"
            )
            print(
                f"| {r['clip']} | {r['fps']:g} | {r['frames']} | {100 * r['person_share']:.1f} % | "
                f"{row['gate']} | {100 * row['detector_share']:.1f} % | "
                f"{row['invokes_per_frame']:.2f} | "
                f"{100 * row['motion_share']:.1f} % | {quiet} | {row['new_events']} | {cover} | "
                f"{row['visits_with_event']}/{r['visits']} | {row['cpu_ms']:.1f} |"
            )
    return results


# ---------------------------------------------------------------------------------------------
# 3. Resident memory


# Run with ``python -c`` so that the baseline is a bare interpreter, not this module's imports.
MEMORY_CHILD = """
import json, sys
from pathlib import Path

def status():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024.0
    return out

case = sys.argv[1]
figures = {"bench": "memory", "case": case, "python": status()}
import cv2, numpy as np
import paho.mqtt.client
from edge_agent.detect.runtime import _interpreter_class
_interpreter_class()  # the TFLite runtime's import, paid at start
figures["libraries"] = status()
from edge_agent import app  # pydantic, yaml, sqlite3 and the agent's own modules
from edge_agent.detect.tflite import create_detector
figures["stack"] = status()
if case != "stack":
    cv2.setNumThreads(1)
    detector = create_detector(case, num_threads=2)
    figures["loaded"] = status()
    image = np.zeros((540, 960, 3), np.uint8)
    for _ in range(3):
        detector.detect(image)
    figures["after_detect"] = status()
print(RESULT_PREFIX + json.dumps(figures))
"""


def memory(models: Sequence[str], running_s: float = 15.0) -> list[dict[str, Any]]:
    """The stack's parts one process per row, then the running agent's own high-water mark
    (``edge-agent run`` on the traffic clip), the figure ``ps`` and systemd show."""
    results: list[dict[str, Any]] = []
    for case in ("stack", *models):
        code = f"RESULT_PREFIX = {RESULT_PREFIX!r}\n" + MEMORY_CHILD
        completed = subprocess.run(
            [sys.executable, "-c", code, case], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            raise SystemExit(f"memory child {case} failed")
        for line in completed.stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                results.append(json.loads(line[len(RESULT_PREFIX) :]))
    print("\n| process (one per row) | VmRSS MB | VmHWM MB |")
    print("|---|---|---|")
    first = results[0]
    print(f"| bare python | {first['python']['VmRSS']:.1f} | {first['python']['VmHWM']:.1f} |")
    for key, what in (
        ("libraries", "+ numpy, cv2, LiteRT, paho"),
        ("stack", "+ edge_agent.app (pydantic, yaml, sqlite3, ...)"),
    ):
        print(f"| {what} | {first[key]['VmRSS']:.1f} | {first[key]['VmHWM']:.1f} |")
    for r in results[1:]:
        for key, what in (("loaded", "loaded"), ("after_detect", "after 3 detections")):
            print(f"| + {r['case']} {what} | {r[key]['VmRSS']:.1f} | {r[key]['VmHWM']:.1f} |")
    media = datafiles.resolve_media(THROUGHPUT_CLIP).parent
    running = agent_process.running_memory(media, models, running_s)
    for row in running:
        print(
            f"| `edge-agent run`, {row['model']}, {THROUGHPUT_CLIP} at 5 fps, after "
            f"{running_s:.0f} s | {row['rss_mb']:.1f} | {row['hwm_mb']:.1f} |"
        )
        results.append({"bench": "memory", "case": f"running {row['model']}", **row})
    for row in running:
        print(
            f"\n`edge-agent run`, {row['model']}: VmRSS = RssAnon {row['anon_mb']:.1f} MB "
            f"(its own) + RssFile {row['file_mb']:.1f} MB (libraries' and files' pages)"
        )
    return results


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_tp = sub.add_parser("throughput", help="frames/s with detection on every frame")
    p_tp.add_argument("--models", nargs="*", default=list(MODELS))
    p_tp.add_argument("--frames", type=int, default=400)
    p_tp.add_argument("--block", type=int, default=20, help="frames per timed block")
    p_tp.add_argument(
        "--threads",
        nargs="*",
        type=int,
        default=[2, 1],
        help="detector threads (the agent's default: cores - 1)",
    )
    p_tp1 = sub.add_parser("throughput-one")
    p_tp1.add_argument("--model", required=True)
    p_tp1.add_argument("--frames", type=int, default=400)
    p_tp1.add_argument("--block", type=int, default=20)
    p_tp1.add_argument("--threads", type=int, default=2)
    p_gate = sub.add_parser("gate", help="share of frames the motion gate sends to the detector")
    p_gate.add_argument("--model", default=MODELS[0])
    p_gate.add_argument("--fps", nargs="*", type=float, default=[10.0, 5.0])
    p_gate.add_argument(
        "--sweep", action="store_true", help="the room clip only, one default changed at a time"
    )
    p_gate1 = sub.add_parser("gate-one")
    p_gate1.add_argument("--model", default=MODELS[0])
    p_gate1.add_argument("--fps", nargs="*", type=float, default=[10.0, 5.0])
    p_gate1.add_argument("--sweep", action="store_true")
    p_mem = sub.add_parser("memory", help="VmRSS/VmHWM: the stack, and with each model")
    p_mem.add_argument("--models", nargs="*", default=list(MODELS))
    p_cpu = sub.add_parser("cpu", help="the agent's process against a naive loop, CPU per scene")
    p_cpu.add_argument("--scenes", nargs="*", default=None, help="static room traffic cars crowd")
    p_cpu.add_argument("--video-s", type=float, default=30.0, help="video measured, per run")
    p_cpu.add_argument("--repeats", type=int, default=3)
    p_cpu.add_argument("--model", default=MODELS[0])
    p_cpu.add_argument(
        "--threads", type=int, default=None, help="detector threads (default: the agent's)"
    )
    sub.add_parser("all", help="memory, throughput and gate with their defaults")
    args = parser.parse_args()

    commands: dict[str, Callable[[], object]] = {
        "throughput": lambda: throughput(args.models, args.frames, args.block, args.threads),
        "throughput-one": lambda: throughput_child(
            args.model, args.frames, args.block, args.threads
        ),
        "gate": lambda: gate(args.model, args.fps, args.sweep),
        "gate-one": lambda: gate_child(args.model, args.fps, args.sweep),
        "memory": lambda: memory(args.models),
        "cpu": lambda: agent_process.cpu_bench(
            datafiles.resolve_media(THROUGHPUT_CLIP).parent,
            args.scenes,
            args.video_s,
            args.repeats,
            args.model,
            args.threads,
        ),
        "all": lambda: (
            memory(MODELS),
            throughput(MODELS, 400, 20, [2, 1]),
            gate(MODELS[0], [10.0, 5.0]),
        ),
    }
    if not args.command.endswith("-one"):
        print(f"machine: {machine()}; loadavg {loadavg()}; {time.strftime('%Y-%m-%d %H:%M')}")
        if float(loadavg().split()[0]) > 0.5:
            print(
                "note: other work is running (loadavg above); wall-time figures and their ratios "
                "are unreliable, CPU ms and the gate's counts are not affected much"
            )
    commands[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
