"""Face blur: faces found per frame against a count by eye, and what privacy costs per frame
(snapshots, previews, clips) and per thumbnail.

On ``intel_face-demographics-walking-and-pause.gif`` (41 frames, 480x270, three people facing
the camera; truth in tests/data/faces/): the BlazeFace full-range model on the whole frame
(two square windows, ``find_faces_whole``) and, for comparison, on one letterboxed picture;
then ``protect`` as the agent calls it: a whole frame (masks + faces), and a thumbnail (faces
looked for in the thumbnail's crop only) next to the thumbnail's own JPEG cost and the SSD
detector's invoke, measured in the same process (only ratios carry to a Pi).

    EDGE_AGENT_MODEL_PATH=... EDGE_AGENT_MEDIA_PATH=... python bench/bench_face_blur.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge_agent import datafiles
from edge_agent.detect.tflite import TFLiteDetector
from edge_agent.events import jpeg_of_box, thumbnail_context
from edge_agent.privacy import (
    PrivacyConfig,
    find_faces_whole,
    load_face_model,
    privacy_filter,
)
from edge_agent.privacy.filter import tiles, window_px
from edge_agent.types import Box, ImageBGR

CLIP = "intel_face-demographics-walking-and-pause.gif"
TRUTH = Path(__file__).parents[1] / "tests" / "data" / "faces" / f"{Path(CLIP).stem}.yaml"
MASK = [(0.0, 0.0), (0.25, 0.0), (0.25, 0.3), (0.0, 0.3)]  # a window's corner, say


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _frames() -> list[ImageBGR]:
    capture = cv2.VideoCapture(str(datafiles.resolve_media(CLIP)))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(np.asarray(image, np.uint8))
    capture.release()
    return frames


def _ms(call: Callable[[], object], repeat: int) -> float:
    """Median wall time of one call, in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _thumb(
    frame: ImageBGR, box: Box, context: Box, protect: Callable[[ImageBGR, Box], ImageBGR] | None
) -> bytes:
    """A thumbnail as the event engine makes it (320 px, quality 70)."""
    image = frame if protect is None else protect(frame, context)
    return jpeg_of_box(image, box, 320, 70)


def _row(name: str, values: list[float], ssd_ms: float) -> None:
    median = statistics.median(values)
    print(f"  {name:<26} {median:6.2f} ms  ({median / ssd_ms:.2f}x SSD)")


def _small_faces(frames: list[ImageBGR], expected: list[int]) -> None:
    """Smaller faces: each frame at a half and a third of its size pasted into a 960x540 and
    a 1280x720 grey frame (faces ~20 and ~13 px wide), found by one letterboxed pass and by
    the agent's search at face_min_px 20 and 12 (more windows)."""
    model = load_face_model("blazeface_full_range")
    for scale, (width, height) in ((0.5, (960, 540)), (1 / 3, (1280, 720))):
        canvases = []
        for frame in frames:
            canvas = np.full((height, width, 3), 128, np.uint8)
            small = cv2.resize(
                frame, (round(480 * scale), round(270 * scale)), interpolation=cv2.INTER_AREA
            )
            canvas[200 : 200 + small.shape[0], 360 : 360 + small.shape[1]] = small
            canvases.append(canvas)
        single = sum(len(model.detect(c)) for c in canvases)
        line = f"  faces at {scale:.2f}x in {width}x{height}: one pass {single}/{sum(expected)}"
        for face_min_px in (20, 12):
            found = sum(len(find_faces_whole(model, c, face_min_px)) for c in canvases)
            runs = 1 + len(tiles(width, height, window_px(face_min_px)))
            cost = statistics.median(
                _ms(lambda c=c, m=face_min_px: find_faces_whole(model, c, m), 1)
                for c in canvases[:10]
            )
            line += (
                f"; face_min_px {face_min_px}: {found}/{sum(expected)} "
                f"({runs} model runs, {cost:.1f} ms)"
            )
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per frame")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"load average before: {_loadavg()}")
    truth = yaml.safe_load(TRUTH.read_text())
    spans = truth["faces_per_frame"]
    frames = _frames()
    model = load_face_model("blazeface_full_range")
    expected = [
        sum(s["faces"] for s in spans if s["first_frame"] <= i <= s["last_frame"])
        for i in range(len(frames))
    ]
    windows = [len(find_faces_whole(model, f)) for f in frames]
    single = [len(model.detect(f)) for f in frames]
    print(f"{CLIP}: {len(frames)} frames, {sum(expected)} faces counted by eye")
    for name, found in (("two windows (agent)", windows), ("one letterboxed pass", single)):
        right = sum(1 for f, e in zip(found, expected, strict=True) if f == e)
        print(
            f"  {name:<22} faces found {sum(found)}/{sum(expected)}; frames with the right "
            f"count {right}/{len(frames)}; per frame {found}"
        )

    _small_faces(frames, expected)
    ssd = TFLiteDetector("ssd_mobilenet_v1", num_threads=1, score_threshold=0.5)
    persons = [[d.box for d in ssd.detect(f).detections if d.label == "person"] for f in frames]
    ssd_ms = statistics.median(_ms(ssd.invoke, args.repeat) for _ in frames[:10])
    masks = privacy_filter(PrivacyConfig(masks=[MASK]))
    faces = privacy_filter(PrivacyConfig(masks=[MASK], blur_faces=True))
    full = Box(0.0, 0.0, 1.0, 1.0)
    per_frame = {
        "model, one pass": [_ms(lambda f=f: model.detect(f), args.repeat) for f in frames],
        "protect, masks only": [_ms(lambda f=f: masks.protect(f), args.repeat) for f in frames],
        "protect, masks + faces": [_ms(lambda f=f: faces.protect(f), args.repeat) for f in frames],
        "snapshot JPEG 480 px, q80": [
            _ms(lambda f=f: jpeg_of_box(f, full, 480, 80), args.repeat) for f in frames
        ],
    }
    thumbs: dict[str, list[float]] = {"JPEG alone": [], "masks": [], "masks + faces": []}
    found_in_thumbs = 0
    for frame, boxes in zip(frames, persons, strict=True):
        for box in boxes:
            context = thumbnail_context(box)
            for name, protect in (
                ("JPEG alone", None),
                ("masks", masks.protect),
                ("masks + faces", faces.protect),
            ):
                thumbs[name].append(
                    _ms(
                        lambda f=frame, b=box, c=context, p=protect: _thumb(f, b, c, p), args.repeat
                    )
                )
            x0, y0, x1, y1 = context.to_pixels(frame.shape[1], frame.shape[0])
            found_in_thumbs += len(model.detect(frame[y0:y1, x0:x1]))
    print(f"SSD MobileNet v1 invoke (1 thread, the denominator): {ssd_ms:.2f} ms")
    print("per 480x270 frame (medians over the clip):")
    for name, values in per_frame.items():
        _row(name, values, ssd_ms)
    n = len(thumbs["JPEG alone"])
    print(
        f"per thumbnail ({n} person boxes found by SSD, thumbnail crops; faces found in the "
        f"crops {found_in_thumbs}, one per person expected):"
    )
    for name, values in thumbs.items():
        _row(name, values, ssd_ms)
    print(f"load average after: {_loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
