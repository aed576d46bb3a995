"""Which tracker ids passed from one object to another, against hw-sim's ground truth.

The tool that found the market's loitering false alarms (docs/notes.md): it replays a
scenario through the real pipeline, labels every tracked box with the truth object it
overlaps most (IoU > 0.3), and prints, for each loitering/crowd/intrusion alert, the
chain of truth objects its track followed, plus every match where the truth changed.

    python bench/trace_id_switches.py busy_market:2026 busy_market:2113
    python bench/trace_id_switches.py plaza_buskers --all-switches

A loitering alert whose track chain is shorter than its dwell was continued from an
earlier occupant by ``ZoneOccupancy``'s take-over, not by the tracker (the market's
last false alarm in the 3-hour soak, seed 2113).

Arguments are ``scenario[:seed]`` (default: the script's seed). It patches
``IouTracker.update`` and ``SimSource.read`` for the run: a diagnostic, not a benchmark.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hw_sim.eval.run as hw_eval
from hw_sim.eval import DEFAULT_HEIGHT, DEFAULT_WIDTH, _default_detector, run_scenario

import edge_agent.track as track_module
from edge_agent.types import Box

TRUTH_IOU = 0.3


@dataclass
class Match:
    track_id: int
    time_s: float
    before: str | None  # truth object of the track's box before the match
    after: str | None  # ... and of the detection it was matched to


def truth_of(box: Box, truth: list[Any]) -> str | None:
    best_iou, best_id = 0.0, None
    for obj in truth:
        iou = box.iou(Box(*obj.box))
        if iou > best_iou:
            best_iou, best_id = iou, obj.object_id
    return best_id if best_iou > TRUTH_IOU else None


def trace(name: str, seed: int | None, all_switches: bool) -> None:
    truth_now: list[Any] = []
    matches: list[Match] = []
    read: Callable[..., Any] = hw_eval.SimSource.read
    update: Callable[..., Any] = track_module.IouTracker.update

    def read_with_truth(self: Any, timeout_s: float = 1.0) -> Any:
        frame = read(self, timeout_s=timeout_s)
        if frame is not None:
            truth_now[:] = self.scenario.truth(frame.index)
        return frame

    def update_traced(self: Any, detections: Any, now_s: float) -> Any:
        before = {t.track_id: t.box for t in self._tracks}
        result = update(self, detections, now_s)
        for live in self._tracks:
            if live.track_id in before and live.last_seen_s == now_s:
                matches.append(
                    Match(
                        live.track_id,
                        now_s,
                        truth_of(before[live.track_id], truth_now),
                        truth_of(live.box, truth_now),
                    )
                )
        return result

    hw_eval.SimSource.read = read_with_truth  # type: ignore[method-assign]
    track_module.IouTracker.update = update_traced  # type: ignore[method-assign]
    try:
        detector = _default_detector(name, width=DEFAULT_WIDTH, height=DEFAULT_HEIGHT, model=None)
        run = run_scenario(name, detector, seed=seed)
    finally:
        hw_eval.SimSource.read = read  # type: ignore[method-assign]
        track_module.IouTracker.update = update  # type: ignore[method-assign]

    label = f"{name}:{run.seed}"
    switches = [m for m in matches if m.before and m.after and m.before != m.after]
    print(f"{label}: {len(matches)} matches, {len(switches)} with a change of truth object")
    for alert in run.alerts:
        if alert.lifecycle.value != "new":
            continue
        at_s = alert.frame_time_s - run.clock_start_s
        print(f"  alert {alert.kind} at {at_s:.1f} s, tracks {list(alert.track_ids)}")
        for track_id in alert.track_ids:
            chain: list[list[Any]] = []
            for m in matches:
                if m.track_id != track_id:
                    continue
                if chain and chain[-1][0] == m.after:
                    chain[-1][2] = m.time_s
                else:
                    chain.append([m.after, m.time_s, m.time_s])
            text = ", ".join(f"{who} {t0:.1f}-{t1:.1f} s" for who, t0, t1 in chain)
            print(f"    track {track_id}: {text}")
    if all_switches:
        for m in switches:
            print(f"  switch: track {m.track_id} at {m.time_s:.1f} s: {m.before} -> {m.after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO[:SEED]")
    parser.add_argument("--all-switches", action="store_true", help="list every switch")
    args = parser.parse_args(argv)
    for item in args.scenarios:
        name, _, seed = item.partition(":")
        trace(name, int(seed) if seed else None, args.all_switches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
