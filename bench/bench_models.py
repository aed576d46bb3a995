"""Which model should be the default? Each manifest model on the search path, measured on
the real clips with truth files (``hw_sim.footage``): events matched to the objects counted
by eye, misses, fragments, false events and wrong labels, with region detection on (as the
agent runs) and off (whole frame only), beside the model's bare invoke time.

    EDGE_AGENT_MODEL_PATH=... EDGE_AGENT_MEDIA_PATH=... python bench/bench_models.py
    python bench/bench_models.py --model ssd_mobilenet_v1 --regions on --camera-fps 30
    python bench/bench_models.py --config examples/overhead-car-park.yaml  # a view's settings

Counts do not depend on the machine's load; invoke times do (compare ratios). Replaying every
clip takes ~1-2 minutes per model and mode here. Not part of the test run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from hw_sim.footage.run import ClipRun, footage_config, replay_clip
from hw_sim.footage.truth import TRUTH_DIR, load_truth, truth_files

from edge_agent import datafiles
from edge_agent.assemble import build_detector
from edge_agent.config import load_config
from edge_agent.detect.tflite import TFLiteDetector

COLUMNS = ("expected", "matched", "misses", "fragments", "id_sw", "false", "wrong")


def _models() -> list[tuple[str, str]]:
    """(name, licence) of every manifest model whose file is on the search path."""
    found = []
    for entry in datafiles.load_manifest().entries:
        if entry.kind != "model" or not entry.is_detector:
            continue
        try:
            datafiles.resolve_model_file(entry.name)
        except datafiles.DataFileError:
            continue
        found.append((entry.name, entry.licence))
    return found


def _invoke_ms(model: str, iterations: int = 30) -> float:
    detector = TFLiteDetector(model, num_threads=2)
    detector.invoke()
    started = time.perf_counter()
    for _ in range(iterations):
        detector.invoke()
    return 1000.0 * (time.perf_counter() - started) / iterations


def _row(run: ClipRun) -> dict[str, int]:
    totals = dict.fromkeys(COLUMNS, 0)
    for label in run.score().rows:
        totals["expected"] += label.expected
        totals["matched"] += label.matched
        totals["misses"] += label.misses
        totals["fragments"] += label.fragments
        totals["id_sw"] += label.id_switches
        totals["false"] += label.false_events
        totals["wrong"] += label.wrong_labels
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="only this model (repeatable)")
    parser.add_argument("--regions", choices=("on", "off", "both"), default="both")
    parser.add_argument("--camera-fps", type=float, help="default: the camera's default fps")
    parser.add_argument(
        "--config", type=Path, help="a site config whose first camera's settings apply"
    )
    args = parser.parse_args(argv)
    site = None if args.config is None else load_config(args.config)
    truths = [load_truth(path) for path in truth_files(TRUTH_DIR)]
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.regions]
    print(
        "| model | licence | invoke ms (2 threads) | regions | clip | " + " | ".join(COLUMNS) + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(COLUMNS))
    for model, licence in _models():
        if args.model and model not in args.model:
            continue
        invoke_ms = _invoke_ms(model)
        detector = None
        for regions in modes:
            sums = dict.fromkeys(COLUMNS, 0)
            for truth in truths:
                try:
                    video = datafiles.resolve_media(truth.clip)
                except datafiles.DataFileError as exc:
                    print(f"<!-- {truth.clip}: skipped: {exc} -->")
                    continue
                if detector is None:
                    detector = build_detector(footage_config(video, model=model, site=site))
                run = replay_clip(
                    truth,
                    model=model,
                    camera_fps=args.camera_fps,
                    detector=detector,
                    regions=regions,
                    site=site,
                )
                row = _row(run)
                sums = {k: sums[k] + row[k] for k in COLUMNS}
                cells = " | ".join(str(row[k]) for k in COLUMNS)
                mode = "on" if regions else "off"
                print(
                    f"| {model} | {licence} | {invoke_ms:.1f} | {mode} | {truth.clip} | {cells} |"
                )
            cells = " | ".join(f"**{sums[k]}**" for k in COLUMNS)
            mode = "on" if regions else "off"
            print(f"| {model} | {licence} | {invoke_ms:.1f} | {mode} | **all clips** | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
