"""``bench_pipeline.py throughput``: the pipeline with detection on every frame, sequential
and with capture overlapped, against the model's bare invoke rate (bench/README.md)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from pipeline_common import (
    THROUGHPUT_CLIP,
    agent_config,
    build,
    emit_result,
    loadavg,
    read_frame,
    run_child,
)

from edge_agent import assemble, datafiles
from edge_agent.capture import FrameSource, LatestFrameMailbox
from edge_agent.capture.opencv_source import OpenCVSource
from edge_agent.detect.base import Detector
from edge_agent.encode import Encoder, Topics
from edge_agent.motion import MotionSettings
from edge_agent.outbox import Outbox
from edge_agent.pipeline import (
    STAGES,
    CameraPipeline,
    StageClock,
)
from edge_agent.service.malloc import limit_malloc_arenas
from edge_agent.sinks import OutboxSink

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
