"""Crowd counts against truth, beyond SSD's 10 boxes: per crowd size, per counting method.

The plaza crowd of hw-sim (``hw_sim.scenarios_crowd``: people in staggered rows that overlap
partly, the far rows small, milling slowly) with 10, 20, 30 and 50 people, 640x360 at 5 fps,
through the agent's real pipeline with a ``crowd`` rule on the plaza. Methods:

- ``ssd-whole``: SSD MobileNet v1 on the whole frame only (the agent before regions);
- ``ssd-regions``: SSD with region detection (the agent's default on any camera);
- ``yolox-whole`` / ``yolox-regions``: YOLOX-Nano (``assemble.CROWD_MODEL``), the model a
  camera with a crowd rule now looks through;
- ``foreground``: a density estimate, not detection: the motion gate's changed pixels over
  the silhouette area of the mean person in the truth (a calibration no device has, so the
  best such an estimate could do) — what is left of a crowd that stands in the background
  model.

Count: the crowd rule's ``persons`` (an alert on every change), median over the second half
of the run (tracks settle in the first seconds); truth: people with their feet in the zone.
CPU ms/frame: process CPU time inside ``CameraPipeline.process`` only (not the simulator's
rendering), so the threads of the model are included. Run with the models and media on the
search path:
    python bench/bench_crowd.py [--sizes 10 20 30 50] [--seconds 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from hw_sim.eval import eval_config
from hw_sim.scenarios_crowd import crowd_size_truth, plaza_crowd_script
from hw_sim.scenes import load_scenario, register, script

from edge_agent.assemble import build_detector, build_pipeline
from edge_agent.capture.sim_source import SimSource
from edge_agent.config import AgentConfig, parse_config
from edge_agent.motion import MotionGate, MotionSettings
from edge_agent.pipeline import FrameOutput, run_offline
from edge_agent.sinks import CollectingSink
from edge_agent.types import Frame, Lifecycle

WIDTH, HEIGHT, FPS = 640, 360, 5.0
METHODS: dict[str, tuple[str, bool]] = {
    "ssd-whole": ("ssd_mobilenet_v1", False),
    "ssd-regions": ("ssd_mobilenet_v1", True),
    "yolox-whole": ("yolox_nano", False),
    "yolox-regions": ("yolox_nano", True),
}
SILHOUETTE_FILL = 0.5  # share of a person's box their silhouette covers (the sprites: ~0.45-0.55)


@dataclass(frozen=True)
class Row:
    people: int
    method: str
    truth: float
    count: float
    cpu_ms_per_frame: float | None


def crowd_config(name: str, model: str, regions: bool) -> AgentConfig:
    data: dict[str, Any] = eval_config(
        name, script(name), width=WIDTH, height=HEIGHT, model=model
    ).model_dump(mode="json")
    camera = data["cameras"][0]
    camera["regions"] = {"enabled": regions}
    camera["rules"] = [
        {**rule, "min_persons": 2, "min_duration_s": 0.0, "update_min_interval_s": 0.0}
        for rule in camera["rules"]
    ]
    return parse_config(data, name)


def run_method(name: str, model: str, regions: bool, seconds: float) -> tuple[float, float, float]:
    """(median count, median truth, CPU ms per frame) over the second half of the run; the
    detector is the method's model whatever the camera's rules (``build_detector``)."""
    config = crowd_config(name, model, regions)
    camera = config.cameras[0]
    pipeline = build_pipeline(
        config, camera, detector=build_detector(config), sink=CollectingSink()
    )
    source = SimSource(
        camera.id, scenario=name, width=WIDTH, height=HEIGHT, fps=FPS, loop=False, realtime=False
    )
    actors = script(name).actors
    frames = round(seconds * FPS)
    persons = 0
    counts: list[tuple[float, int, int]] = []  # (t_s, counted, truth)
    cpu_s = 0.0
    started = 0.0

    class Enough(Exception):
        pass

    def on_frame(frame: Frame) -> None:
        nonlocal started
        started = time.process_time()

    def on_output(frame: Frame, output: FrameOutput) -> None:
        nonlocal persons, cpu_s
        cpu_s += time.process_time() - started
        for alert in output.alerts:
            persons = 0 if alert.lifecycle is Lifecycle.END else int(alert.detail["persons"])
        counts.append((frame.monotonic_s, persons, crowd_size_truth(actors, frame.monotonic_s)))
        if len(counts) >= frames:
            raise Enough

    try:
        run_offline(source, pipeline, on_frame=on_frame, on_output=on_output, read_timeout_s=1.0)
    except Enough:
        pass
    finally:
        source.close()
    late = counts[len(counts) // 2 :]
    return (
        statistics.median(c for _, c, _ in late),
        statistics.median(t for _, _, t in late),
        1000.0 * cpu_s / max(1, len(counts)),
    )


def foreground_estimate(name: str, seconds: float) -> tuple[float, float, float]:
    """The gate's changed share over the mean person's silhouette share (see the docstring)."""
    scenario = load_scenario(name, width=WIDTH, height=HEIGHT, fps=FPS)
    gate = MotionGate(MotionSettings())
    frames = round(seconds * FPS)
    estimates: list[tuple[float, int]] = []
    cpu_s = 0.0
    for index in range(frames):
        image = scenario.render(index)
        t_s = scenario.time_s(index)
        started = time.process_time()
        ratio = gate.update(image, t_s).motion_ratio
        cpu_s += time.process_time() - started
        truth = scenario.truth(index)
        areas = [(o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) for o in truth]
        person_share = SILHOUETTE_FILL * statistics.mean(areas) if areas else 1.0
        estimates.append((ratio / person_share, len(truth)))
    late = estimates[len(estimates) // 2 :]
    return (
        statistics.median(e for e, _ in late),
        statistics.median(t for _, t in late),
        1000.0 * cpu_s / frames,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 30, 50])
    parser.add_argument("--seconds", type=float, default=12.0, help="simulated seconds per run")
    parser.add_argument("--methods", nargs="+", default=[*METHODS, "foreground"])
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f} (2 cores shared: CPU times, not wall)")
    rows: list[Row] = []
    for people in args.sizes:
        name = f"plaza_crowd_{people}"
        register(plaza_crowd_script(people, name=name))
        for method in args.methods:
            if method == "foreground":
                count, truth, cpu_ms = foreground_estimate(name, args.seconds)
            else:
                model, regions = METHODS[method]
                count, truth, cpu_ms = run_method(name, model, regions, args.seconds)
            rows.append(Row(people, method, truth, count, cpu_ms))
            error = 100.0 * (count - truth) / truth if truth else 0.0
            print(
                f"{people:3d} people  {method:14s} truth {truth:4.0f}  counted {count:5.1f} "
                f"({error:+5.0f} %)  {cpu_ms:6.1f} ms CPU/frame",
                flush=True,
            )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
