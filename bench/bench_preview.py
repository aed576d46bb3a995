"""Previews within a byte budget on the shared clips (issue 11: bytes per 10 s window never
above 1.1x the budget; fps and size reported).

Each clip in the data manifest (mp4/gif, found on the media search path) is replayed in
simulated time at its own frame rate, looped to at least ``--seconds``, through the agent's
preview controller (edge_agent/preview.py) and the agent's JPEG encoder (the one
``Agent.snapshot_jpeg`` uses). Two requests per clip: the command's default (1 fps, 480 px)
and the largest one (5 fps, 1280 px). Also a static scene: one frame of the person clip's
empty room, with sensor-like noise.

Per row: the largest JPEG bytes in any closed 10 s window over the budget (MQTT framing
excluded; the controller counts 100 bytes per frame for it), the mean over the run, frames
sent per second, mean width sent, the JPEG quality range, and the share of due frames
skipped as static.

    python bench/bench_preview.py [--budget-bps 64000] [--seconds 60]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent import datafiles
from edge_agent.events import jpeg_of_box
from edge_agent.preview import WINDOW_S, PreviewBudget, Rung, thumbnail
from edge_agent.types import Box, ImageBGR

STATIC_CLIP = "intel_one-by-one-person-detection.mp4"  # frame 0: the empty room
REQUESTS = ((1.0, 480), (5.0, 1280))  # (fps, width_px): the default and the largest


@dataclass(frozen=True)
class Row:
    scene: str
    fps_asked: float
    width_asked: int
    window_ratio: float  # max JPEG bytes in a 10 s window / budget's bytes per 10 s
    mean_ratio: float  # JPEG bytes per second over the run / budget's bytes per second
    fps_sent: float
    mean_width_px: float
    qualities: tuple[int, int]
    static_share: float


def clip_frames(path: str) -> Iterator[ImageBGR]:
    capture = cv2.VideoCapture(path)
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield np.asarray(image, np.uint8)
    finally:
        capture.release()


def clip_fps(path: str) -> float:
    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    capture.release()
    return float(fps)


def looped(path: str) -> Iterator[ImageBGR]:
    while True:
        yield from clip_frames(path)


def noisy_static(image: ImageBGR, seed: int = 1) -> Iterator[ImageBGR]:
    rng = np.random.default_rng(seed)
    while True:
        noise = rng.normal(0.0, 2.0, image.shape)
        yield np.asarray(np.clip(image + noise, 0, 255), np.uint8)


def replay(
    name: str,
    frames: Iterator[ImageBGR],
    frame_fps: float,
    *,
    fps: float,
    width_asked: int,
    budget_bps: int,
    seconds: float,
) -> Row:
    """Offer the latest frame whenever the controller is due, like the housekeeping thread."""
    frame_index, image = 0, next(frames)
    width_px = min(width_asked, image.shape[1])  # as the agent does: never wider than the picture
    budget = PreviewBudget(budget_bps=budget_bps, width_px=width_px, fps=fps)
    sent: list[tuple[float, int, Rung]] = []
    due = 0
    while budget.next_due_s < seconds:
        now_s = budget.next_due_s
        while (frame_index + 1) / frame_fps <= now_s:  # the camera's latest frame at now_s
            frame_index, image = frame_index + 1, next(frames)
        due += 1
        latest = image

        def encode(rung: Rung, latest: ImageBGR = latest) -> bytes:
            return jpeg_of_box(latest, Box(0.0, 0.0, 1.0, 1.0), rung.width_px, rung.jpeg_quality)

        result = budget.offer(now_s, thumbnail(latest), encode)
        if result is not None:
            sent.append((now_s, len(result.jpeg), result.rung))
    window_max = 0
    for start_s, _, _ in sent:  # a closed window's largest sum starts at a send
        in_window = sum(n for t, n, _ in sent if start_s <= t <= start_s + WINDOW_S)
        window_max = max(window_max, in_window)
    qualities = [r.jpeg_quality for _, _, r in sent]
    widths = [r.width_px for _, _, r in sent]
    return Row(
        name,
        fps,
        width_asked,
        window_max / (budget_bps * WINDOW_S / 8.0),
        sum(n for _, n, _ in sent) / seconds / (budget_bps / 8.0),
        len(sent) / seconds,
        float(np.mean(widths)) if widths else 0.0,
        (min(qualities), max(qualities)) if qualities else (0, 0),
        budget.frames_static / max(1, due),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-bps", type=int, default=64_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    manifest = datafiles.load_manifest()
    clips = [
        e.file for e in manifest.entries if e.kind == "media" and e.file.endswith((".mp4", ".gif"))
    ]
    rows = []
    for clip in clips:
        path = datafiles.locate(manifest.media(clip))
        if path is None:
            print(f"{clip}: not on the media search path, skipped")
            continue
        for fps, width_px in REQUESTS:
            rows.append(
                replay(
                    clip,
                    looped(str(path)),
                    clip_fps(str(path)),
                    fps=fps,
                    width_asked=width_px,
                    budget_bps=args.budget_bps,
                    seconds=args.seconds,
                )
            )
    static_path = datafiles.locate(manifest.media(STATIC_CLIP))
    if static_path is not None:
        empty_room = next(clip_frames(str(static_path)))
        for fps, width_px in REQUESTS:
            rows.append(
                replay(
                    "static: empty room + noise",
                    noisy_static(empty_room),
                    10.0,
                    fps=fps,
                    width_asked=width_px,
                    budget_bps=args.budget_bps,
                    seconds=args.seconds,
                )
            )
    print(f"budget {args.budget_bps} bit/s, {args.seconds:.0f} s simulated per row\n")
    print(
        "| scene | asked fps @ px | max 10 s window / budget | mean / budget | fps sent "
        "| mean width px | JPEG quality | static skips |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.scene} | {row.fps_asked:g} @ {row.width_asked} | {row.window_ratio:.2f} "
            f"| {row.mean_ratio:.2f} | {row.fps_sent:.2f} | {row.mean_width_px:.0f} "
            f"| {row.qualities[0]}–{row.qualities[1]} | {row.static_share:.0%} |"
        )


if __name__ == "__main__":
    main()
