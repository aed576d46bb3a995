"""The camera recorder with the real encoder on small synthetic frames: a quiet scene
writes nothing, an event yields a playable clip from pre_roll_s before it to post_roll_s
after it, every ``end`` names its clip or why there is none."""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from api_contract import validator
from fakes.recording import FPS, WALL0, event, frame

from edge_agent.encode import event_body, state_body
from edge_agent.recording.encoder import probe
from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.store import REASON_HELD_FULL, ClipStore, RetentionCaps
from edge_agent.types import ClipRef, Frame, Lifecycle, ObjectEvent

WAIT_S = 30.0  # for the finisher's thread: a bound on a wait, not a speed figure


def run(
    recorder: CameraRecorder, frames: int, script: dict[int, list[ObjectEvent]]
) -> list[ObjectEvent]:
    ends = []
    for i in range(frames):
        events, _, _ = recorder.observe(frame(i), tuple(script.get(i, ())), ())
        ends += [e for e in events if e.lifecycle is Lifecycle.END]
    assert recorder.store.wait_finished(WAIT_S)  # closed clips are indexed off this thread
    return ends


def make(tmp_path: Path, max_total_bytes: int = 10**9, **settings: float) -> CameraRecorder:
    store = ClipStore(tmp_path, RetentionCaps(max_total_bytes, 0, None))
    values = {"pre_roll_s": 3.0, "post_roll_s": 2.0, "keyframe_interval_s": 1.0, **settings}
    return CameraRecorder("cam1", store, RecordingSettings(**values))  # type: ignore[arg-type]


def test_a_quiet_scene_writes_nothing(tmp_path: Path) -> None:
    recorder = make(tmp_path)
    run(recorder, 600, {})
    assert list(tmp_path.glob("*.mp4*")) == []
    assert recorder.store.clips() == []
    assert recorder.ring.gops <= 5  # the pre-roll, not the minute


def test_an_event_yields_a_clip_from_pre_roll_before_to_post_roll_after(tmp_path: Path) -> None:
    recorder = make(tmp_path)
    new_at, end_at = 100, 150  # 10 s and 15 s in
    ends = run(
        recorder,
        250,
        {
            new_at: [event("e1", Lifecycle.NEW, new_at, new_at)],
            end_at: [event("e1", Lifecycle.END, new_at, end_at)],
        },
    )
    (clip,) = recorder.store.clips()
    assert ends[0].clip == ClipRef(clip.id)
    assert clip.events == ("e1",)
    event_start_s = WALL0 + new_at / FPS
    lead_s = event_start_s - clip.start_s
    assert 3.0 <= lead_s <= 3.0 + 1.0 + 1e-6  # pre_roll_s, plus at most one keyframe interval
    assert clip.end_s == pytest.approx(WALL0 + end_at / FPS + 2.0, abs=0.11)  # post_roll_s
    facts = probe(recorder.store.path(clip.id))
    expected_frames = round((clip.end_s - clip.start_s) * FPS) + 1
    assert facts.frames == clip.frames == expected_frames
    assert facts.duration_s == pytest.approx(clip.end_s - clip.start_s, abs=0.15)
    assert (facts.width_px, facts.height_px) == (64, 48)


def test_an_object_that_stays_extends_the_clip_and_overlapping_events_share_it(
    tmp_path: Path,
) -> None:
    recorder = make(tmp_path)
    ends = run(
        recorder,
        400,
        {
            50: [event("a", Lifecycle.NEW, 50, 50)],
            80: [event("b", Lifecycle.NEW, 80, 80)],
            90: [event("a", Lifecycle.END, 50, 90)],
            300: [event("b", Lifecycle.END, 80, 300)],
        },
    )
    (clip,) = recorder.store.clips()
    assert [e.clip for e in ends] == [ClipRef(clip.id), ClipRef(clip.id)]
    assert clip.events == ("a", "b")
    assert clip.end_s == pytest.approx(WALL0 + 30.0 + 2.0, abs=0.11)


def test_when_held_clips_fill_the_cap_the_end_says_why_and_a_state_says_stopped(
    tmp_path: Path,
) -> None:
    recorder = make(tmp_path, max_total_bytes=50)
    store = recorder.store
    store.part_path("evidence").write_bytes(b"\0" * 100)
    store.add(clip_id="evidence", camera="cam1", start_s=1.0, end_s=2.0, frames=1, events=())
    store.hold("evidence", True)
    states = []
    ends = []
    for i in range(120):
        script = {30: [event("e", Lifecycle.NEW, 30, 30)], 60: [event("e", Lifecycle.END, 30, 60)]}
        events, _, new_states = recorder.observe(frame(i), tuple(script.get(i, ())), ())
        states += new_states
        ends += [e for e in events if e.lifecycle is Lifecycle.END]
    assert ends[0].clip == ClipRef(None, REASON_HELD_FULL)
    assert [(s.analyzer, s.state, dict(s.detail)) for s in states] == [
        ("recording", "stopped", {"reason": REASON_HELD_FULL})
    ]
    assert recorder.stats()["stopped_reason"] == REASON_HELD_FULL
    validator("state").validate({**state_body(states[0], "0badf00d"), "seq": 1})
    validator("event").validate({**event_body(ends[0], "0badf00d"), "seq": 2})
    assert [p.name for p in tmp_path.glob("*.mp4*")] == ["evidence.mp4"]  # kept, nothing new


def test_a_long_event_goes_on_in_a_new_clip(tmp_path: Path) -> None:
    recorder = make(tmp_path, max_clip_s=10.0)
    run(
        recorder,
        400,
        {50: [event("a", Lifecycle.NEW, 50, 50)], 300: [event("a", Lifecycle.END, 50, 300)]},
    )
    clips = recorder.store.clips()
    assert len(clips) >= 3
    for before, after in itertools.pairwise(clips):
        assert after.start_s == pytest.approx(before.end_s + 1 / FPS, abs=0.01)  # no gap
    assert all(probe(recorder.store.path(c.id)).frames == c.frames for c in clips)


def test_finish_closes_the_open_clip_and_names_it(tmp_path: Path) -> None:
    recorder = make(tmp_path)
    run(recorder, 80, {50: [event("a", Lifecycle.NEW, 50, 50)]})
    events, _ = recorder.finish((event("a", Lifecycle.END, 50, 79),), ())
    assert recorder.store.wait_finished(WAIT_S)
    (clip,) = recorder.store.clips()
    assert events[0].clip == ClipRef(clip.id)


def test_a_camera_that_changes_size_mid_event_goes_on_in_a_new_playable_clip(
    tmp_path: Path,
) -> None:
    recorder = make(tmp_path)
    script = {50: [event("a", Lifecycle.NEW, 50, 50)], 150: [event("a", Lifecycle.END, 50, 150)]}
    for i in range(200):
        shot = frame(i)
        if i >= 100:  # the camera came back at another resolution
            big = np.zeros((96, 128, 3), np.uint8)
            big[:, (i * 3) % 128] = 255
            shot = Frame("cam1", i, shot.captured_at_s, shot.monotonic_s, big)
        recorder.observe(shot, tuple(script.get(i, ())), ())
    assert recorder.store.wait_finished(WAIT_S)
    clips = recorder.store.clips()
    assert len(clips) == 2
    sizes = [probe(recorder.store.path(c.id)) for c in clips]
    assert [(f.width_px, f.height_px) for f in sizes] == [(64, 48), (128, 96)]
    assert [f.frames for f in sizes] == [c.frames for c in clips]


def test_frames_the_encoder_cannot_take_are_counted_and_said_rarely_and_recording_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1-pixel-high picture (a stream gone odd) made libx264 fail with "Invalid
    argument" and the recorder log a traceback on every frame, five times a second."""
    recorder = make(tmp_path)
    with caplog.at_level(logging.ERROR, "edge_agent.recording"):
        for i in range(20):
            odd = frame(i)
            recorder.observe(replace(odd, image=odd.image[:1]), (), ())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" (")[1][:9] for r in errors] == ["1 so far)", "10 so far"]
    assert "64x1 picture cannot be encoded" in errors[0].getMessage()
    stats = recorder.stats()
    assert stats["encode_failed"] == 20
    assert "H.264 needs at least 2 pixels" in str(stats["last_encode_error"])
    script = {30: [event("e1", Lifecycle.NEW, 30, 30)], 50: [event("e1", Lifecycle.END, 30, 50)]}
    ends = []
    for i in range(20, 120):  # the stream is right again
        events, _, _ = recorder.observe(frame(i), tuple(script.get(i, ())), ())
        ends += [e for e in events if e.lifecycle is Lifecycle.END]
    assert recorder.store.wait_finished(WAIT_S)
    (clip,) = recorder.store.clips()
    assert ends[0].clip == ClipRef(clip.id)


def test_a_new_run_of_encode_failures_is_said_at_its_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """12 refused frames an hour ago must not keep the next run's first one quiet."""
    recorder = make(tmp_path)
    with caplog.at_level(logging.ERROR, "edge_agent.recording"):
        for i in range(14):
            odd = frame(i)
            recorder.observe(odd if i == 12 else replace(odd, image=odd.image[:1]), (), ())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m.split(" (")[1].split(")")[0] for m in errors] == [
        "1 so far",
        "10 so far",
        "13 so far",
    ]
    assert recorder.stats()["encode_failed"] == 13
