"""Recording an IP camera: CPU per second of video, remux against re-encode.

    python bench/bench_remux.py [--clips intel_car-detection.mp4 ...] [--encode-fps 5]

Each shared H.264 clip is read by the PyAV capture backend (``kind: pyav``, replay
clock) with one event open from the first frame to the last, so every second is recorded,
three ways:

- ``decode``: the source alone (demux and decode to BGR) — what analysis needs anyway;
  beside it OpenCV's decode of the same file (``kind: opencv``, the backend without
  packets), so the whole cost of each way to record an IP camera can be added up;
- ``remux``: the recorder taking the camera's own packets (pre-roll ring, MP4 mux, the
  index) — the path for ``kind: pyav``;
- ``encode``: the recorder encoding every analysed frame with libx264 (``ultrafast``, CRF
  28) — the path for every other source, at the stream's rate and at ``--encode-fps``
  (the camera's ``fps``: the analysis thread sees only those frames).

CPU is ``time.process_time()`` (every thread of the process) around the recorder's calls
only, so the figures are the recorder's own cost; the source's is given apart. Figures
from a shared machine are an upper bound.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_recording import WALL0
from bench_recording import event as soak_event

from edge_agent import datafiles
from edge_agent.capture import EndOfStream
from edge_agent.capture.pyav_source import PyAVSource
from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.store import ClipStore, RetentionCaps
from edge_agent.types import Frame, Lifecycle, ObjectEvent

CLIPS = ("intel_car-detection.mp4", "intel_one-by-one-person-detection.mp4")


@dataclass(frozen=True)
class Run:
    video_s: float
    frames: int
    source_cpu_s: float
    recorder_cpu_s: float
    clip_bytes: int


def event(lifecycle: Lifecycle, start: Frame, at: Frame) -> ObjectEvent:
    """The soak's event (bench_recording.py), on these frames' clock."""
    return soak_event("e1", lifecycle, start.captured_at_s - WALL0, at.captured_at_s - WALL0)


def run(path: Path, mode: str, encode_fps: float | None = None) -> Run:
    """One pass over ``path``: ``decode``, ``remux`` or ``encode``."""
    source = PyAVSource("cam1", str(path), realtime=False)
    with tempfile.TemporaryDirectory() as directory:
        store = ClipStore(Path(directory), RetentionCaps(1 << 40, 0, None))
        recorder = CameraRecorder(
            "cam1",
            store,
            RecordingSettings(pre_roll_s=5.0, post_roll_s=0.0, max_clip_s=3600.0),
            packets=source.packet_feed(1 << 26) if mode == "remux" else None,
        )
        frames, source_cpu, recorder_cpu = 0, 0.0, 0.0
        first: Frame | None = None
        last: Frame | None = None
        next_s = 0.0
        while True:
            started = time.process_time()
            try:
                frame = source.read(5.0)
            except EndOfStream:
                break
            source_cpu += time.process_time() - started
            if frame is None:
                continue
            frames += 1
            if mode == "decode":
                continue
            if encode_fps is not None:  # the capture thread's decimation to the camera fps
                if frame.monotonic_s < next_s - 1e-6:
                    continue
                next_s = frame.monotonic_s + 1.0 / encode_fps
            events = () if first is not None else (event(Lifecycle.NEW, frame, frame),)
            first = first or frame
            last = frame
            started = time.process_time()
            recorder.observe(frame, events, ())
            recorder_cpu += time.process_time() - started
        if first is not None and last is not None:
            started = time.process_time()
            recorder.finish((event(Lifecycle.END, first, last),), ())
            store.wait_finished()  # process_time counts the finisher's thread too
            recorder_cpu += time.process_time() - started
        clip_bytes = sum(c.size_bytes for c in store.clips())
    source.close()
    video_s = frames / source.nominal_fps
    return Run(video_s, frames, source_cpu, recorder_cpu, clip_bytes)


def opencv_decode_cpu_s(path: Path) -> float:
    """CPU for OpenCV to decode every frame of ``path`` to BGR (``kind: opencv``)."""
    import cv2

    started = time.process_time()
    capture = cv2.VideoCapture(str(path))
    while capture.read()[0]:
        pass
    capture.release()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS))
    parser.add_argument("--encode-fps", type=float, default=5.0)
    args = parser.parse_args()
    print(
        "| clip | size, fps | video s | decode ms/s PyAV / OpenCV | remux ms/s "
        f"| encode ms/s (all) | encode ms/s ({args.encode_fps:g} fps) "
        "| clip kB/s remux / encode (all) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.clips:
        path = datafiles.resolve_media(name)
        decode = run(path, "decode")
        remux = run(path, "remux")
        encode = run(path, "encode")
        decimated = run(path, "encode", args.encode_fps)
        probe = PyAVSource("probe", str(path), realtime=False)
        first = probe.read(5.0)
        probe.close()
        size = f"{first.image.shape[1]}x{first.image.shape[0]}" if first else "?"
        fps = decode.frames / decode.video_s

        def per_s(cpu_s: float, video_s: float = decode.video_s) -> str:
            return f"{1000 * cpu_s / video_s:.1f}"

        print(
            f"| {name} | {size}, {fps:g} | {decode.video_s:.1f} "
            f"| {per_s(decode.source_cpu_s)} / {per_s(opencv_decode_cpu_s(path))} "
            f"| {per_s(remux.recorder_cpu_s)} | {per_s(encode.recorder_cpu_s)} "
            f"| {per_s(decimated.recorder_cpu_s)} "
            f"| {remux.clip_bytes / 1024 / remux.video_s:.0f} / "
            f"{encode.clip_bytes / 1024 / encode.video_s:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
