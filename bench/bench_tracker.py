"""The tracker's cost per update against the number of objects in view (issue 14).

A synthetic scene, the same for every run: ``N`` objects (people, cars, trucks) move across
a unit picture at walking or driving speeds (each moves well under half its own size per
pass, as at 5 fps on a street), the detector's boxes jitter by 3 % of their size, 10 % of the
objects are missed in any pass, and whoever leaves the picture is replaced by a newcomer at
an edge, so ``N`` stay in view. Passes are 0.2 s apart (5 fps). The figure is the wall time
and the CPU time (of this process: what other work on a shared machine does not inflate as
much) of ``IouTracker.update`` per pass, each the median of ``--rounds`` rounds of
``--updates`` passes (after a warm-up in which the tracks are confirmed).

    python bench/bench_tracker.py                    # 10/50/100/200 objects, this tree
    python bench/bench_tracker.py --against main     # ... and edge_agent/track.py at a git ref

``--against REF`` loads ``edge_agent/track.py`` as it is at REF (``git show``) beside the
current one, runs both on the same detections and says whether they made the same tracks
(ids seen, ended and live per pass), with high-score confirmation off in the current one so
that the comparison is like for like. Only ratios carry over to another machine: the load
average is printed before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from edge_agent import track as current
from edge_agent.types import Box, Detection

REPO = Path(__file__).resolve().parent.parent
PASS_S = 0.2  # 5 fps
JITTER = 0.03  # of the box's size
MISS_RATE = 0.1
# label, width, height (normalised), speed in box widths per second
KINDS = (("person", 0.03, 0.09, 1.2), ("car", 0.08, 0.05, 2.0), ("truck", 0.1, 0.07, 1.5))


@dataclass
class _Object:
    label: str
    x: float
    y: float
    width: float
    height: float
    vx: float
    vy: float


def _newcomer(rng: random.Random, anywhere: bool) -> _Object:
    label, width, height, speed = rng.choice(KINDS)
    scale = rng.uniform(0.7, 1.4)
    width, height = width * scale, height * scale
    direction = rng.choice((-1.0, 1.0))
    vx = direction * speed * width * rng.uniform(0.5, 1.0)
    vy = rng.uniform(-0.2, 0.2) * speed * height
    y = rng.uniform(0.0, 1.0 - height)
    if anywhere:
        x = rng.uniform(0.0, 1.0 - width)
    else:  # at the edge it walks in from, half in view
        x = -width / 2 if direction > 0 else 1.0 - width / 2
    return _Object(label, x, y, width, height, vx, vy)


def scene(objects: int, passes: int, seed: int) -> list[tuple[Detection, ...]]:
    """The detections of ``passes`` passes over ``objects`` moving objects."""
    rng = random.Random(seed)
    live = [_newcomer(rng, anywhere=True) for _ in range(objects)]
    out: list[tuple[Detection, ...]] = []
    for _ in range(passes):
        detections = []
        for obj in live:
            if rng.random() < MISS_RATE:
                continue
            jx, jy = JITTER * obj.width, JITTER * obj.height
            box = Box(
                obj.x + rng.gauss(0, jx),
                obj.y + rng.gauss(0, jy),
                obj.x + obj.width + rng.gauss(0, jx),
                obj.y + obj.height + rng.gauss(0, jy),
            ).clipped()
            if box.area > 0.0:
                detections.append(Detection(obj.label, 0, rng.uniform(0.4, 0.95), box))
        rng.shuffle(detections)
        out.append(tuple(detections))
        for i, obj in enumerate(live):
            obj.x += obj.vx * PASS_S
            obj.y += obj.vy * PASS_S
            if obj.x + obj.width < 0.0 or obj.x > 1.0 or obj.y + obj.height < 0 or obj.y > 1.0:
                live[i] = _newcomer(rng, anywhere=False)
    return out


def load_at(ref: str) -> ModuleType:
    """``edge_agent/track.py`` as it is at git ``ref``, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{ref}:edge_agent/track.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"track_at_{ref}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:edge_agent/track.py", "exec"), module.__dict__)
    return module


def _settings(module: ModuleType) -> Any:
    fields = module.TrackerSettings.__dataclass_fields__
    if "confirm_score" in fields:  # like for like: no high-score confirmation
        return module.TrackerSettings(confirm_score=None)
    return module.TrackerSettings()


def run(
    module: ModuleType, passes: list[tuple[Detection, ...]], warmup: int
) -> tuple[float, float, list[Any]]:
    """Wall and CPU ms per update after ``warmup`` passes, and what every pass reported."""
    tracker = module.IouTracker(_settings(module))
    trace = []
    wall_s = cpu_s = 0.0
    for i, detections in enumerate(passes):
        wall, cpu = time.perf_counter(), time.process_time()
        result = tracker.update(detections, i * PASS_S)
        if i >= warmup:
            wall_s += time.perf_counter() - wall
            cpu_s += time.process_time() - cpu
        trace.append(
            (
                tuple(sorted(t.track_id for t in result.seen)),
                tuple(sorted(t.track_id for t in result.ended)),
                result.live,
            )
        )
    timed = len(passes) - warmup
    return 1000.0 * wall_s / timed, 1000.0 * cpu_s / timed, trace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--updates", type=int, default=100, help="timed passes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--against", metavar="REF", help="also time edge_agent/track.py at REF")
    args = parser.parse_args()
    implementations: list[tuple[str, ModuleType]] = [("this tree", current)]
    if args.against:
        implementations.insert(0, (args.against, load_at(args.against)))
    warmup = 5
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    header = "objects  detections/pass  " + "  ".join(
        f"{name + ' wall / CPU ms':>24}" for name, _ in implementations
    )
    print(header + ("  same tracks" if args.against else ""))
    for objects in args.objects:
        passes = scene(objects, warmup + args.updates, args.seed + objects)
        mean_detections = statistics.mean(len(p) for p in passes)
        walls: dict[str, list[float]] = {name: [] for name, _ in implementations}
        cpus: dict[str, list[float]] = {name: [] for name, _ in implementations}
        traces = {}
        for _ in range(args.rounds):
            for name, module in implementations:
                wall_ms, cpu_ms, traces[name] = run(module, passes, warmup)
                walls[name].append(wall_ms)
                cpus[name].append(cpu_ms)
        row = f"{objects:>7}  {mean_detections:>15.1f}  " + "  ".join(
            f"{statistics.median(walls[name]):>14.2f} / {statistics.median(cpus[name]):>7.2f}"
            for name, _ in implementations
        )
        if args.against:
            row += f"  {'yes' if len({tuple(t) for t in traces.values()}) == 1 else 'NO'}"
        print(row)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
