"""Replay the real clips through the full agent pipeline and score them against their truth.

Each clip with a truth file is found through the data manifest (``EDGE_AGENT_MEDIA_PATH``,
checked by sha256) and replayed offline exactly as ``edge-agent replay`` would with a
config that sets nothing but the model: the camera's default fps decides which frames are
analysed (every ``round(file fps / camera fps)``-th), and the motion gate, detector
threshold, tracker and event settings are the defaults a new user gets. With ``--config``
a site's config applies instead, its first camera's settings (fps, detection filters,
regions) to the clip, as ``edge-agent replay --config`` does: how a view that needs a
per-camera setting (an overhead car park) is measured. The object events it emits are
turned into frames of the clip and scored (``hw_sim.footage.score``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import datafiles
from edge_agent.assemble import build_detector, build_pipeline
from edge_agent.capture import open_source
from edge_agent.config import AgentConfig, OpenCVSourceConfig, load_config, parse_config
from edge_agent.detect.base import Detector
from edge_agent.pipeline import run_offline
from edge_agent.sinks import CollectingSink
from edge_agent.types import Frame, Lifecycle, ObjectEvent
from hw_sim.footage.score import DEFAULT_SLACK_S, ClipScore, ObservedEvent, format_clip, score_clip
from hw_sim.footage.truth import TRUTH_DIR, ClipTruth, load_truth, truth_files


@dataclass(frozen=True)
class ClipRun:
    truth: ClipTruth
    model: str
    step: int  # every step-th frame analysed
    frames_read: int
    events: tuple[ObservedEvent, ...]

    def score(self, slack_s: float = DEFAULT_SLACK_S) -> ClipScore:
        return score_clip(self.truth, self.events, slack_s=slack_s)


def footage_config(
    video: Path,
    *,
    model: str | None = None,
    camera_fps: float | None = None,
    regions: bool = True,
    site: AgentConfig | None = None,
) -> AgentConfig:
    """The config a user replays a clip with: a file source, everything else default
    (``regions=False``: one whole-frame pass per detection run, for comparison), or
    ``site``'s with its first camera reading the clip."""
    if site is not None:
        return _site_config(site, video, model=model, camera_fps=camera_fps, regions=regions)
    camera: dict[str, Any] = {
        "id": "cam",
        "source": {"kind": "opencv", "uri": str(video), "loop": False, "realtime": False},
        "regions": {"enabled": regions},
    }
    if camera_fps is not None:
        camera["fps"] = camera_fps
    data: dict[str, Any] = {"site_id": "footage", "device_id": "hw-sim", "cameras": [camera]}
    if model is not None:
        data["detector"] = {"model": model}
    return parse_config(data, f"footage {video.name}")


def _site_config(
    site: AgentConfig, video: Path, *, model: str | None, camera_fps: float | None, regions: bool
) -> AgentConfig:
    base = site.cameras[0]
    update: dict[str, Any] = {
        "source": OpenCVSourceConfig(uri=str(video), loop=False, realtime=False)
    }
    if camera_fps is not None:
        update["fps"] = camera_fps
    if not regions:
        update["regions"] = base.regions.model_copy(update={"enabled": False})
    changes: dict[str, Any] = {"cameras": [base.model_copy(update=update)]}
    if model is not None:
        changes["detector"] = site.detector.model_copy(update={"model": model})
    return site.model_copy(update=changes)


def observed_events(
    events: Sequence[ObjectEvent], *, t0_s: float, fps: float
) -> list[ObservedEvent]:
    """One ObservedEvent per event id, in frames of the clip (``t0_s``: frame 0's wall time)."""

    def frame_of(wall_s: float) -> int:
        return round((wall_s - t0_s) * fps)

    firsts: dict[str, ObjectEvent] = {}
    lasts: dict[str, ObjectEvent] = {}
    for event in events:
        if event.lifecycle is Lifecycle.NEW:
            firsts[event.event_id] = event
        lasts[event.event_id] = event
    observed = []
    for event_id, new in firsts.items():
        last = lasts[event_id]
        end_s = last.end_s if last.end_s is not None else last.frame_time_s
        observed.append(
            ObservedEvent(
                event_id=event_id,
                label=last.label,
                first_frame=frame_of(new.start_s),
                last_frame=frame_of(end_s),
                published_frame=frame_of(new.frame_time_s),
            )
        )
    return observed


def replay_clip(
    truth: ClipTruth,
    *,
    model: str | None = None,
    camera_fps: float | None = None,
    detector: Detector | None = None,
    regions: bool = True,
    site: AgentConfig | None = None,
) -> ClipRun:
    """Replay one clip through ``build_pipeline``; its events in frames of the clip.
    ``site``: a site's config whose first camera's settings apply (default: none set)."""
    video = datafiles.resolve_media(truth.clip)
    config = footage_config(video, model=model, camera_fps=camera_fps, regions=regions, site=site)
    camera = config.cameras[0]
    sink = CollectingSink()
    pipeline = build_pipeline(
        config,
        camera,
        detector=build_detector(config) if detector is None else detector,
        sink=sink,
    )
    source = open_source(camera, realtime=False)
    step = max(1, round(source.nominal_fps / camera.fps))
    firsts: list[Frame] = []  # frame 0, kept alone: it fixes the clip's time origin

    def keep_first(frame: Frame) -> None:
        if not firsts:
            firsts.append(frame)

    try:
        frames_read = run_offline(source, pipeline, every=step, on_frame=keep_first).frames_read
    finally:
        source.close()
    first = firsts[0] if firsts else None
    if first is None:
        raise RuntimeError(f"{truth.clip} gave no frames")
    t0_s = first.captured_at_s - first.monotonic_s
    return ClipRun(
        truth=truth,
        model=config.detector.model,
        step=step,
        frames_read=frames_read,
        events=tuple(observed_events(sink.events, t0_s=t0_s, fps=truth.fps)),
    )


def _title(run: ClipRun) -> str:
    truth = run.truth
    return (
        f"{truth.clip}: {truth.frames} frames at {truth.fps:g} fps, model {run.model}, "
        f"every {run.step} frame(s) analysed"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hw_sim.footage",
        description="Replay the real clips with truth files through the agent and score them.",
    )
    parser.add_argument("--model", help="manifest model name (default: the config default)")
    parser.add_argument("--camera-fps", type=float, help="camera fps (default: the config default)")
    parser.add_argument("--clip", action="append", help="only this clip (repeatable)")
    parser.add_argument(
        "--regions",
        choices=("on", "off"),
        default="on",
        help="region detection (default on, as the agent runs); off: whole frame only",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="a site config whose first camera's settings apply to every clip "
        "(default: none, the settings a new user gets)",
    )
    parser.add_argument("--slack-s", type=float, default=DEFAULT_SLACK_S)
    parser.add_argument("--truth-dir", type=Path, default=TRUTH_DIR)
    args = parser.parse_args(argv)
    truths = [load_truth(path) for path in truth_files(args.truth_dir)]
    if args.clip:
        truths = [t for t in truths if t.clip in args.clip]
    if not truths:
        print("no truth files match", file=sys.stderr)
        return 2
    site = None if args.config is None else load_config(args.config)
    detector: Detector | None = None
    for truth in truths:
        try:
            if detector is None:
                video = datafiles.resolve_media(truth.clip)
                detector = build_detector(footage_config(video, model=args.model, site=site))
            run = replay_clip(
                truth,
                model=args.model,
                camera_fps=args.camera_fps,
                detector=detector,
                regions=args.regions == "on",
                site=site,
            )
        except datafiles.DataFileError as exc:
            print(f"{truth.clip}: skipped: {exc}", file=sys.stderr)
            continue
        print(format_clip(run.score(args.slack_s), _title(run)))
        print()
    return 0
