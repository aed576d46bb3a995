"""Low-contrast walkers: does the motion gate find them, and does one walker stay one event?

A real person (cut from the room clip, bench/media_frames.py), pasted by its silhouette and
blended toward the background's colour until the mean grey difference from the background
it covers is ``--contrast`` levels (a light coat on a sandy street), walks across real
backgrounds without people at a walking pace (1.4 m/s for a 1.75 m person: 0.8 heights per
second), ``--heights`` px tall. Each frame is blurred a little (codec smoothing) and gets
Gaussian sensor noise of ``--noise`` grey levels; 120 frames at 5 fps, the walker entering
at frame 10 from the left. Printed per gate setting and background:

- frames with the walker in view, and how many of them opened the gate;
- detector runs: the real pipeline (``assemble.build_pipeline``, regions on, the default
  model) decides, with the gate, the 1 s refresh of live tracks and the 10 s keep-alive;
- person events (one walker must be one event) and events of other labels;
- the empty scene: the same background and noise, nobody, 120 frames: frames the gate
  opened. A setting that opens the gate on noise is rejected.

``--gate-only`` skips the detector (gate counts only, seconds instead of minutes).
Run with the models and media on the search path, e.g.
    EDGE_AGENT_MODEL_PATH=... EDGE_AGENT_MEDIA_PATH=... python bench/bench_gate_contrast.py
Counts, not times: load does not change them. Not part of the test run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import media_frames  # bench/, on the path when this runs as a script
import numpy as np
from media_frames import PERSON_CLIP
from pipeline_common import MODELS, RecordingSink, agent_config, build

from edge_agent import assemble
from edge_agent.detect.base import Detector
from edge_agent.motion import MotionGate, MotionSettings
from edge_agent.types import Frame, ImageBGR

FRAME_PX = (960, 540)
FPS = 5.0
FRAMES = 120
ENTER_FRAME = 10
HEIGHTS_PER_S = 0.8  # 1.4 m/s walking, 1.75 m tall
# (name, clip, frame): real pictures with nobody in view, chosen from contact sheets.
BACKGROUNDS = (
    ("parking lot", "intel_car-detection.mp4", 0),
    ("highway", "automl_traffic_frames.mp4", 0),
    ("room", PERSON_CLIP, 10),
)


def candidates() -> tuple[tuple[str, MotionSettings], ...]:
    """The default, no gate at all, and (threshold, area) pairs around them."""
    default = MotionSettings()
    pairs = [(30, 0.002), (25, 0.002), (20, 0.002), (15, 0.002), (12, 0.002)]
    pairs += [(30, 0.001), (25, 0.001), (20, 0.001), (15, 0.001), (12, 0.001), (10, 0.001)]
    return (
        ("every frame", replace(default, enabled=False)),  # no gate: the detector always runs
        ("default", default),
        *(
            (
                f"{threshold}, area {area:g}",
                replace(default, pixel_threshold=threshold, min_area_ratio=area),
            )
            for threshold, area in pairs
        ),
    )


@dataclass(frozen=True)
class Walker:
    image: ImageBGR  # the person, scaled
    mask: np.ndarray  # bool, inside the silhouette
    speed_px: float  # per frame
    y: int  # top row


def _walker(person: ImageBGR, mask: np.ndarray, height_px: int) -> Walker:
    width_px = max(1, round(person.shape[1] * height_px / person.shape[0]))
    small = cv2.resize(person, (width_px, height_px), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (width_px, height_px), interpolation=cv2.INTER_AREA) > 127
    feet_y = round(0.85 * FRAME_PX[1])
    return Walker(small, small_mask, HEIGHTS_PER_S * height_px / FPS, feet_y - height_px)


def _blend(person: ImageBGR, under: ImageBGR, mask: np.ndarray, contrast: float) -> ImageBGR:
    """``person`` blended toward the mean colour of ``under`` until the mean grey difference
    inside ``mask`` is ``contrast`` (or as close as the person allows)."""
    colour = under[mask].mean(axis=0)
    grey_under = cv2.cvtColor(under, cv2.COLOR_BGR2GRAY).astype(np.float32)[mask]
    person_f = person.astype(np.float32)

    def mixed(keep: float) -> np.ndarray:
        return colour + keep * (person_f - colour)

    def difference(keep: float) -> float:
        grey = cv2.cvtColor(np.clip(mixed(keep), 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        return float(np.abs(grey[mask].astype(np.float32) - grey_under).mean())

    low, high = 0.0, 1.0
    for _ in range(14):  # bisection on how much of the person is kept
        middle = (low + high) / 2
        if difference(middle) < contrast:
            low = middle
        else:
            high = middle
    return np.asarray(np.clip(mixed(low), 0, 255), np.uint8)


def _frames(
    background: ImageBGR, walker: Walker | None, contrast: float, noise: float, seed: int
) -> Iterator[tuple[ImageBGR, bool]]:
    """(picture, the walker in view) for each of FRAMES frames."""
    pool = _noise_pool(noise, seed)
    for index in range(FRAMES):
        image = background.copy()
        in_view = False
        if walker is not None and index >= ENTER_FRAME:
            height, width = walker.mask.shape
            x = round(-width + (index - ENTER_FRAME) * walker.speed_px)
            x0, x1 = max(0, x), min(FRAME_PX[0], x + width)
            if x1 - x0 >= width // 3:  # a third of the person in the picture counts
                in_view = True
            if x1 > x0:
                cols = slice(x0 - x, x1 - x)
                rows = slice(walker.y, walker.y + height)
                under = image[rows, x0:x1]
                mask = walker.mask[:, cols]
                if mask.any():
                    blended = _blend(walker.image[:, cols], under, mask, contrast)
                    under[mask] = blended[mask]
        image = cv2.GaussianBlur(image, (3, 3), 0.8)
        noisy = cv2.add(image.astype(np.int16), pool[index % len(pool)], dtype=cv2.CV_16S)
        yield np.asarray(np.clip(noisy, 0, 255), np.uint8), in_view


_POOL: dict[tuple[float, int], list[np.ndarray]] = {}


def _noise_pool(noise: float, seed: int, size: int = 31) -> list[np.ndarray]:
    """``size`` frames of rounded Gaussian noise, drawn once and cycled (a prime count, so
    the ghost check's window never sees the same pair twice in a row)."""
    key = (noise, seed)
    if key not in _POOL:
        rng = np.random.default_rng(seed)
        shape = (FRAME_PX[1], FRAME_PX[0], 3)
        _POOL[key] = [np.rint(rng.normal(0.0, noise, shape)).astype(np.int16) for _ in range(size)]
    return _POOL[key]


@dataclass
class Outcome:
    in_view: int = 0
    gate_in_view: int = 0  # frames with the walker in view that opened the gate
    gate: int = 0
    detector_runs: int = 0
    person_events: int = 0
    other_events: int = 0


def _gate_only(frames: Iterator[tuple[ImageBGR, bool]], settings: MotionSettings) -> Outcome:
    gate = MotionGate(settings)
    outcome = Outcome()
    for image, in_view in frames:
        opened = gate.update(image).has_motion
        outcome.in_view += in_view
        outcome.gate += opened
        outcome.gate_in_view += opened and in_view
    return outcome


def _pipeline(
    frames: Iterator[tuple[ImageBGR, bool]],
    settings: MotionSettings,
    detector: Detector,
    tmp_dir: Path,
) -> Outcome:
    source = {"kind": "sim", "scenario": "empty_street", "loop": False, "realtime": False}
    config = agent_config(detector.model_name, source, FPS, tmp_dir, motion=settings)
    sink = RecordingSink()
    pipeline = build(config, detector, sink)
    outcome = Outcome()
    frame: Frame | None = None
    for index, (image, in_view) in enumerate(frames):
        frame = Frame("cam1", index, 1e9 + index / FPS, index / FPS, image)
        before = pipeline.clock.motion_frames
        pipeline.process(frame)
        opened = pipeline.clock.motion_frames > before
        outcome.in_view += in_view
        outcome.gate += opened
        outcome.gate_in_view += opened and in_view
    pipeline.finish(frame)
    outcome.detector_runs = pipeline.clock.detector_runs
    outcome.person_events = sum(1 for f in sink.new_events if f == "person")
    outcome.other_events = len(sink.new_events) - outcome.person_events
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs="*", default=[80, 160])
    parser.add_argument("--contrast", type=float, default=20.0, help="mean grey difference")
    parser.add_argument("--noise", type=float, default=3.5, help="sensor noise sigma, grey")
    parser.add_argument("--person", type=int, default=1, help="which of media_frames.PEOPLE")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--model", default=MODELS[0])
    parser.add_argument("--gate-only", action="store_true", help="no detector: gate counts")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to run")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    person = media_frames.people()[args.person]
    mask = media_frames.person_masks()[args.person]
    backgrounds = [
        (name, cv2.resize(media_frames.frame(clip, index), FRAME_PX, cv2.INTER_LINEAR))
        for name, clip, index in BACKGROUNDS
    ]
    gates = [
        (name, settings)
        for name, settings in candidates()
        if (args.only is None or name in args.only) and (settings.enabled or not args.gate_only)
    ]
    print(
        f"{FRAMES} frames at {FPS:g} fps, {FRAME_PX[0]}x{FRAME_PX[1]}, walker contrast "
        f"{args.contrast:g} grey levels, noise sigma {args.noise:g}, seed {args.seed}; "
        f"{'gate only' if args.gate_only else args.model + ', regions on'}"
    )
    print(
        "per background: gate-open frames of in-view frames (walker), "
        + ("" if args.gate_only else "detector runs, person events (+ other), ")
        + "gate-open frames with nobody (empty)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-contrast-") as tmp:
        detector: Detector | None = None
        if not args.gate_only:
            source = {"kind": "sim", "scenario": "empty_street"}
            detector = assemble.build_detector(agent_config(args.model, source, FPS, Path(tmp)))
        cells: dict[str, list[str]] = {name: [] for name, _ in gates}
        for height in args.heights:
            walker = _walker(person, mask, height)
            for bg_name, background in backgrounds:
                frames = list(_frames(background, walker, args.contrast, args.noise, args.seed))
                for name, settings in gates:
                    if detector is None:
                        out = _gate_only(iter(frames), settings)
                        cells[name].append(f"{bg_name} {height}px {out.gate_in_view}/{out.in_view}")
                    else:
                        out = _pipeline(iter(frames), settings, detector, Path(tmp))
                        cells[name].append(
                            f"{bg_name} {height}px {out.gate_in_view}/{out.in_view} "
                            f"det {out.detector_runs} ev {out.person_events}"
                            + (f"+{out.other_events}" if out.other_events else "")
                        )
        empty: dict[str, list[str]] = {name: [] for name, _ in gates}
        for bg_name, background in backgrounds:
            frames = list(_frames(background, None, 0.0, args.noise, args.seed))
            for name, settings in gates:
                empty[name].append(f"{bg_name} {_gate_only(iter(frames), settings).gate}")
        for name, _ in gates:
            print(f"{name:<20} " + "; ".join(cells[name]))
            print(f"{'':<20} empty: " + ", ".join(empty[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
