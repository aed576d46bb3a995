"""``bench_pipeline.py gate``: the share of frames the motion gate sends to the detector, and
what it costs in missed people, against a gate with Frigate's defaults (bench/README.md)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
from pipeline_common import (
    ROOM_CLIP,
    SIM_SIZE,
    ObservedDetector,
    RecordingSink,
    agent_config,
    build,
    emit_result,
    loadavg,
    run_child,
)

from edge_agent import assemble, datafiles
from edge_agent.capture import open_source
from edge_agent.detect.base import Detector
from edge_agent.motion import MotionSettings
from edge_agent.pipeline import (
    FrameOutput,
    run_offline,
)
from edge_agent.track import label_family
from edge_agent.types import Frame

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
