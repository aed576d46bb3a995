"""Recording soak: 24 simulated hours at ten times a busy site's event rate, fake clock.

    python bench/bench_recording.py [--hours 24] [--fps 2] [--events-per-hour 300]
        [--cap-mb 12] [--dir DIR]

A synthetic camera (small frames, so a day runs in minutes) through the real recorder:
PyAV's libx264 encoder, the MP4 remux, the SQLite clip index and retention, on a real
directory. Time is the frames' own clock (no sleeps). The scene is static for the first
and last two hours (nothing triggers: bytes written must be zero) and busy in between:
events arrive as a Poisson process at ``--events-per-hour`` (a busy junction sees ~30
objects of interest an hour; the default is ten times that), each lasting 3-60 s. Every
20th clip is put under a hold; most holds are released two hours later (an operator fetched
them), every 100th stays; in the last busy hours every clip is held for good, so held clips
fill the cap and recording must stop (and say so) rather than delete them. The
filesystem's free space is faked (``capacity - used``).

Checked and printed:
- disk use (every file in the directory, .part included, measured every 10 simulated s)
  never above the byte cap by more than one segment (the largest GOP seen);
- no held clip is deleted;
- bytes written per hour in the static hours: zero;
- every ``end`` names a clip or a reason.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.store import ClipStore, RetentionCaps
from edge_agent.types import Box, Frame, Lifecycle, ObjectEvent

WALL0 = 1_764_000_000.0
STATIC_HOURS = 2.0
HOLD_ALL_HOURS = 2.0


def dir_bytes(directory: Path) -> int:
    while True:
        try:
            return sum(p.stat().st_size for p in directory.glob("*.mp4*"))
        except FileNotFoundError:
            continue  # a .part renamed by the store's finisher thread meanwhile: again


def event(event_id: str, lifecycle: Lifecycle, start_s: float, now_s: float) -> ObjectEvent:
    return ObjectEvent(
        event_id=event_id,
        lifecycle=lifecycle,
        camera_id="cam1",
        kind="object",
        label="car",
        score=0.8,
        top_score=0.8,
        box=Box(0.2, 0.2, 0.4, 0.5),
        zones=(),
        start_s=WALL0 + start_s,
        end_s=WALL0 + now_s if lifecycle is Lifecycle.END else None,
        frame_time_s=WALL0 + now_s,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--events-per-hour", type=float, default=300.0)
    parser.add_argument("--cap-mb", type=float, default=12.0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-recording-"))
    cap_bytes = round(args.cap_mb * 1024 * 1024)
    capacity_bytes = cap_bytes * 3  # the fake filesystem
    min_free_bytes = cap_bytes // 2
    now = {"wall": WALL0}
    store = ClipStore(
        directory,
        RetentionCaps(cap_bytes, min_free_bytes, max_age_s=12 * 3600),
        clock=lambda: now["wall"],
        free_bytes=lambda d: capacity_bytes - dir_bytes(d),
    )
    settings = RecordingSettings(
        pre_roll_s=5.0, post_roll_s=5.0, keyframe_interval_s=1.0, max_clip_s=120.0
    )
    recorder = CameraRecorder("cam1", store, settings)

    height = args.width * 9 // 16
    background = np.random.default_rng(args.seed).integers(0, 255, (height, args.width, 3))
    background = background.astype(np.uint8)
    frames = round(args.hours * 3600 * args.fps)
    busy_from_s, busy_to_s = STATIC_HOURS * 3600, (args.hours - STATIC_HOURS) * 3600
    next_event_s = busy_from_s + rng.expovariate(args.events_per_hour / 3600)
    open_events: dict[str, float] = {}  # id -> end time (s)
    starts: dict[str, float] = {}
    ends = Counter[str]()
    held: set[str] = set()
    release_at: dict[str, float] = {}
    seen_clips: set[str] = set()
    max_over_cap = -math.inf
    max_disk = 0
    max_gop = 0
    gop = 0
    static_bytes: dict[int, int] = {}
    states = []
    started = time.perf_counter()
    encode_s = 0.0
    for index in range(frames):
        t_s = index / args.fps
        now["wall"] = WALL0 + t_s
        image = background
        script: list[ObjectEvent] = []
        if busy_from_s <= t_s < busy_to_s:
            while next_event_s <= t_s:
                event_id = f"e{len(starts)}"
                starts[event_id] = t_s
                open_events[event_id] = t_s + rng.uniform(3, 60)
                script.append(event(event_id, Lifecycle.NEW, t_s, t_s))
                next_event_s += rng.expovariate(args.events_per_hour / 3600)
        for event_id, end_s in list(open_events.items()):
            if end_s <= t_s:
                del open_events[event_id]
                script.append(event(event_id, Lifecycle.END, starts[event_id], t_s))
        if open_events:
            image = background.copy()
            x = int(t_s * 20) % (args.width - 20)
            image[10:40, x : x + 20] = 255 - image[10:40, x : x + 20]
        frame = Frame("cam1", index, WALL0 + t_s, t_s, image)
        before_written = recorder.bytes_written + (recorder._clip.bytes if recorder._clip else 0)
        tick = time.perf_counter()
        out_events, _, out_states = recorder.observe(frame, tuple(script), ())
        encode_s += time.perf_counter() - tick
        states += [(t_s, s.state, dict(s.detail)) for s in out_states]
        for e in out_events:
            if e.lifecycle is Lifecycle.END:
                assert e.clip is not None
                ends["clip" if e.clip.id else f"reason: {e.clip.reason}"] += 1
        after_written = recorder.bytes_written + (recorder._clip.bytes if recorder._clip else 0)
        if not busy_from_s <= t_s < busy_to_s + 2 * settings.post_roll_s + 60:
            hour = int(t_s // 3600)
            static_bytes[hour] = static_bytes.get(hour, 0) + max(0, after_written - before_written)
        last = recorder.ring._gops[-1] if recorder.ring.gops else []
        gop = sum(len(p.data) for p in last)
        max_gop = max(max_gop, gop)
        if index % round(10 * args.fps) == 0:
            for clip in store.clips():
                if clip.id not in seen_clips:
                    seen_clips.add(clip.id)
                    if t_s >= busy_to_s - HOLD_ALL_HOURS * 3600:
                        store.hold(clip.id, True)  # an incident: every clip is evidence
                        held.add(clip.id)
                    elif len(seen_clips) % 20 == 0:
                        store.hold(clip.id, True)
                        held.add(clip.id)
                        if len(seen_clips) % 100 != 0:
                            release_at[clip.id] = t_s + 2 * 3600
            for clip_id, when in list(release_at.items()):
                if when <= t_s:
                    store.hold(clip_id, False)
                    held.discard(clip_id)
                    del release_at[clip_id]
            missing = [c for c in held if not store.path(c).exists()]
            if missing:
                print(f"FAIL: held clips deleted: {missing}")
                return 1
            disk = dir_bytes(directory)
            max_disk = max(max_disk, disk)
            max_over_cap = max(max_over_cap, disk - cap_bytes)
    recorder.finish((), ())
    store.wait_finished()
    wall_s = time.perf_counter() - started
    clips = store.clips()
    busy_hours = (busy_to_s - busy_from_s) / 3600
    print(f"simulated {args.hours:.0f} h at {args.fps:g} fps, {args.width}x{height} px: "
          f"{frames} frames in {wall_s:.0f} s wall ({1000 * encode_s / frames:.2f} ms/frame "
          "recorder incl. encode)")  # fmt: skip
    print(f"events: {len(starts)} in {busy_hours:.0f} busy h "
          f"({len(starts) / max(busy_hours, 1e-9):.0f}/h)")  # fmt: skip
    print(f"ends: {dict(ends)}")
    print(f"clips written: {recorder.clips_written} ({recorder.bytes_written / 1e6:.1f} MB), "
          f"deleted by retention: {store.deleted}, left: {len(clips)}, "
          f"held now: {sum(c.held for c in clips)}")  # fmt: skip
    print(f"byte cap {cap_bytes / 1e6:.2f} MB; max disk use {max_disk / 1e6:.2f} MB; "
          f"max over the cap {max(0, max_over_cap) / 1e3:.1f} kB; largest GOP (one segment) "
          f"{max_gop / 1e3:.1f} kB")  # fmt: skip
    print(f"static hours: bytes written per hour {sorted(set(static_bytes.values()))}")
    shown = [(f"{t / 3600:.2f} h", state, detail) for t, state, detail in states[:4]]
    print(f"recording states ({len(states)}): {shown}{' ...' if len(states) > 4 else ''}")
    failures = []
    if max_over_cap > max_gop:
        failures.append("disk use above the cap by more than one segment")
    if any(static_bytes.values()):
        failures.append("bytes written on a static scene")
    if not any(state == "stopped" for _, state, _ in states):
        failures.append("held clips filled the cap and recording did not say it stopped")
    if sum(ends.values()) != len(starts):
        failures.append(f"{len(starts)} events, {sum(ends.values())} ends")
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("PASS: cap + one segment held, no held clip deleted, static hours wrote 0 bytes, "
              "every end named a clip or a reason")  # fmt: skip
    store.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
