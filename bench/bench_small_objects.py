"""Small people: recall per person height, whole-frame vs region detection, per model.

Two real people (cut by eye from frames of intel_one-by-one-person-detection.mp4) are
scaled to a few heights and pasted at random places (fixed seed) into real 960x540 frames
without people: the empty room and parking lot (768x432 clips, scaled up) and two highway
frames. Each trial is detected three ways:

- *whole*: the whole frame resized to the model input (the agent before regions);
- *motion*: ``RegionDetector`` with nothing tracked (so with its full-frame pass) and a
  motion box around the person, drawn as the gate draws them (on its ~100-row grid,
  dilated): the first sighting;
- *track*: the regions planned for a track at the person's box, the full-frame pass not
  due: keeping someone once found.

Found: a "person" with score >= ``--score`` whose box overlaps the pasted one by IoU >= 0.3;
false/frame: other "person" boxes (the highway frames have cars, nobody on foot).
Invokes per frame are counted from the region module's figures (never above the budget).
Run with the models and media on the search path, e.g.
    EDGE_AGENT_MODEL_PATH=... EDGE_AGENT_MEDIA_PATH=... python bench/bench_small_objects.py
Counts, not times: load does not change them. Not part of the test run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import media_frames  # bench/, on the path when this runs as a script
import numpy as np
from media_frames import PERSON_CLIP

from edge_agent import datafiles
from edge_agent.detect.base import Detector
from edge_agent.detect.regions import (
    RegionDetector,
    RegionSettings,
    detect_regions,
    min_side_px,
    plan_regions,
)
from edge_agent.detect.tflite import create_detector
from edge_agent.types import Box, Detection, ImageBGR

FRAME_PX = (960, 540)
# (clip, frame) with nobody in view, chosen from contact sheets.
BACKGROUNDS = (
    (PERSON_CLIP, 0),  # the empty room
    ("intel_car-detection.mp4", 0),  # the empty parking lot, from above
    ("automl_traffic_frames.mp4", 0),  # highway with cars
    ("automl_traffic_frames.mp4", 19),
)
GATE_ROWS = 100  # MotionSettings.frame_height_px: the grid motion boxes are drawn on
GATE_DILATE_CELLS = 2  # motion._regions dilates the mask by a 5x5 kernel
MATCH_IOU = 0.3
MODES = ("whole", "motion", "track")


def _motion_box(truth: Box) -> Box:
    """The box the motion gate would draw around ``truth``: snapped outwards to its grid
    (cells of 1/GATE_ROWS of the height, square), grown by the dilation."""
    cell_y = 1.0 / GATE_ROWS
    cell_x = cell_y * FRAME_PX[1] / FRAME_PX[0]
    grow_x, grow_y = GATE_DILATE_CELLS * cell_x, GATE_DILATE_CELLS * cell_y
    return Box(
        np.floor(truth.x_min / cell_x) * cell_x - grow_x,
        np.floor(truth.y_min / cell_y) * cell_y - grow_y,
        np.ceil(truth.x_max / cell_x) * cell_x + grow_x,
        np.ceil(truth.y_max / cell_y) * cell_y + grow_y,
    ).clipped()


@dataclass(frozen=True)
class Trial:
    image: ImageBGR
    truth: Box


def _trials(
    people: Sequence[ImageBGR],
    backgrounds: Sequence[ImageBGR],
    height_px: int,
    n: int,
    seed: int,
) -> list[Trial]:
    """``n`` frames, each with one person ``height_px`` tall at a random place: the people
    alternate, the backgrounds change every second trial."""
    rng = np.random.default_rng(seed)
    trials = []
    for index in range(n):
        person = people[index % len(people)]
        width_px = max(1, round(person.shape[1] * height_px / person.shape[0]))
        small = cv2.resize(person, (width_px, height_px), interpolation=cv2.INTER_AREA)
        image = backgrounds[index // len(people) % len(backgrounds)].copy()
        x = int(rng.integers(0, FRAME_PX[0] - width_px))
        y = int(rng.integers(0, FRAME_PX[1] - height_px))
        image[y : y + height_px, x : x + width_px] = small
        truth = Box(
            x / FRAME_PX[0],
            y / FRAME_PX[1],
            (x + width_px) / FRAME_PX[0],
            (y + height_px) / FRAME_PX[1],
        )
        trials.append(Trial(image, truth))
    return trials


def _score(detections: Sequence[Detection], truth: Box, min_score: float) -> tuple[bool, int]:
    """(the person found, other person boxes)."""
    people = [d for d in detections if d.label == "person" and d.score >= min_score]
    found = [d for d in people if d.box.iou(truth) >= MATCH_IOU]
    return bool(found), len(people) - len(found)


def _run(
    mode: str,
    detector: Detector,
    input_px: tuple[int, int],
    settings: RegionSettings,
    trial: Trial,
    min_score: float,
) -> tuple[bool, int, int]:
    """(found, false person boxes, invokes) for one trial."""
    if mode == "whole":
        return (*_score(detector.detect(trial.image).detections, trial.truth, min_score), 1)
    if mode == "motion":
        out = RegionDetector(input_px, settings).detect(
            detector, trial.image, now_s=0.0, motion=(_motion_box(trial.truth),)
        )
    else:  # a track where the person is, the full-frame pass not due
        plan = plan_regions(FRAME_PX, input_px, tracks=(trial.truth,), settings=settings)
        out = detect_regions(detector, trial.image, plan, settings)
    return (*_score(out.result.detections, trial.truth, min_score), out.figures.invokes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs="*", default=[25, 40, 80])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--score", type=float, default=0.4, help="minimum score that counts")
    parser.add_argument("--models", nargs="*", default=None, help="default: every manifest model")
    parser.add_argument(
        "--min-region-px",
        type=int,
        nargs="*",
        default=[RegionSettings().min_region_px],
        help="smallest region sides to compare (0: the default, a third of the model input)",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    people = media_frames.people()
    backgrounds = [
        cv2.resize(media_frames.frame(c, i), FRAME_PX, cv2.INTER_LINEAR) for c, i in BACKGROUNDS
    ]
    trials = {h: _trials(people, backgrounds, h, args.trials, args.seed) for h in args.heights}
    budget = RegionSettings().max_invokes_per_frame
    print(
        f"{args.trials} trials per height, seed {args.seed}, {FRAME_PX[0]}x{FRAME_PX[1]} frames, "
        f"found = person score >= {args.score} IoU >= {MATCH_IOU}; budget {budget} invokes/frame"
    )
    header = "".join(f"{h:>5} px" for h in args.heights)
    columns = f"{'model':<18} {'mode':<7} {'region':>7} {header}"
    print(f"{columns}   false/frame  invokes/frame mean (max)")

    manifest = datafiles.load_manifest()
    names = args.models or [e.name for e in manifest.entries if e.kind == "model" and e.is_detector]
    for name in names:
        try:
            entry = manifest.model(name)
            datafiles.resolve_model_file(name, manifest=manifest)
        except datafiles.DataFileError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        detector = create_detector(name, score_threshold=args.score, num_threads=args.threads)
        input_px = (entry.input_width, entry.input_height)
        for mode in MODES:
            sizes = [0] if mode == "whole" else args.min_region_px
            for min_region_px in sizes:
                settings = replace(RegionSettings(), min_region_px=min_region_px)
                cells, false, invokes = [], [], []
                for height in args.heights:
                    results = [
                        _run(mode, detector, input_px, settings, t, args.score)
                        for t in trials[height]
                    ]
                    cells.append(100.0 * sum(f for f, _, _ in results) / len(results))
                    false.extend(n for _, n, _ in results)
                    invokes.extend(n for _, _, n in results)
                region = "-" if mode == "whole" else f"{min_side_px(input_px, settings):.0f}"
                row = "".join(f"{c:>6.0f} %" for c in cells)
                false_mean = sum(false) / len(false)
                mean = sum(invokes) / len(invokes)
                print(
                    f"{name:<18} {mode:<7} {region:>7} {row}   {false_mean:>11.2f}  "
                    f"{mean:.2f} ({max(invokes)})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
