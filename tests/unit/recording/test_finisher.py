"""Clips are finished off the analysis thread: a slow disk (an fsync held on an event)
does not stop the recorder seeing frames and opening the next clip; a clip is indexed only
once durable, in the order clips closed; a failed finish (a full disk) is logged and shown
in the recorder's stats, and recording goes on; the queue is bounded; ``close`` finishes
what waits, or names what it could not."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

import pytest
from fakes.recording import event, frame

from edge_agent.recording.commands import ClipCommands, ClipError
from edge_agent.recording.encoder import probe
from edge_agent.recording.finisher import ClipFinisher, FinishJob, FinishResult
from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.store import Clip, ClipStore, RetentionCaps
from edge_agent.types import ClipRef, Lifecycle, ObjectEvent

WAIT_S = 30.0  # a bound on waits for another thread, not a speed figure


class Disk:
    """``os.fsync`` that can be held (a slow SD card) or fail, on the n-th file fsync."""

    def __init__(self, *, hold_first: bool = False, fail_first: OSError | None = None) -> None:
        self.hold_first = hold_first
        self.fail_first = fail_first
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def fsync(self, fd: int) -> None:
        self.calls += 1
        if self.calls == 1:
            if self.fail_first is not None:
                raise self.fail_first
            if self.hold_first:
                self.entered.set()
                assert self.release.wait(WAIT_S), "the test never released the fsync"
        os.fsync(fd)


SCRIPT = {
    30: [event("e1", Lifecycle.NEW, 30, 30)],
    60: [event("e1", Lifecycle.END, 30, 60)],  # its clip closes at 80 (post_roll_s 2)
    120: [event("e2", Lifecycle.NEW, 120, 120)],
    150: [event("e2", Lifecycle.END, 120, 150)],  # closes at 170
}


def recorder_on(tmp_path: Path, disk: Disk) -> CameraRecorder:
    store = ClipStore(tmp_path, RetentionCaps(1 << 30, 0, None), fsync=disk.fsync)
    settings = RecordingSettings(pre_roll_s=2.0, post_roll_s=2.0, keyframe_interval_s=1.0)
    return CameraRecorder("cam1", store, settings)


def run(recorder: CameraRecorder, frames: range) -> list[ObjectEvent]:
    ends = []
    for i in frames:
        events, _, _ = recorder.observe(frame(i), tuple(SCRIPT.get(i, ())), ())
        ends += [e for e in events if e.lifecycle is Lifecycle.END]
    return ends


def test_analysis_goes_on_while_a_clip_is_finished_and_it_is_indexed_once_durable(
    tmp_path: Path,
) -> None:
    disk = Disk(hold_first=True)
    recorder = recorder_on(tmp_path, disk)
    store = recorder.store
    try:
        ends = run(recorder, range(100))
        assert disk.entered.wait(WAIT_S)  # e1's clip is in its fsync, held there
        ends += run(recorder, range(100, 250))  # the analysis thread is not held
        first, second = (e.clip for e in ends)
        assert first is not None and second is not None and first.id and second.id
        assert first.id != second.id
        # Neither is indexed while the first is not durable; both wait, in order.
        assert store.clips() == []
        assert store.finisher.pending() == 2
        assert recorder.stats()["clips_written"] == 0
        assert store.part_path(first.id).exists() and not store.path(first.id).exists()
    finally:
        disk.release.set()
    assert store.wait_finished(WAIT_S)
    clips = store.clips()
    assert [c.id for c in clips] == [first.id, second.id]
    assert [c.events for c in clips] == [("e1",), ("e2",)]
    for clip in clips:
        assert probe(store.path(clip.id)).frames == clip.frames
    assert recorder.stats()["clips_written"] == 2
    assert recorder.stats()["finish_failed"] == 0
    store.close()


def test_a_clip_still_being_finished_is_said_so_not_called_gone(tmp_path: Path) -> None:
    """The ``end`` names its clip before the finisher has made it durable: a centre that
    fetches or holds it at once is told to ask again, not that it never existed."""
    disk = Disk(hold_first=True)
    recorder = recorder_on(tmp_path, disk)
    store = recorder.store
    commands = ClipCommands(store, rate_bytes_per_s=1 << 20, chunk_max_bytes=1 << 20)
    try:
        (end,) = run(recorder, range(100))
        assert disk.entered.wait(WAIT_S)  # its fsync is held: not indexed yet
        assert end.clip is not None and end.clip.id is not None
        clip_id = end.clip.id
        for ask in (lambda: commands.fetch(clip_id, 0, None), lambda: commands.hold(clip_id, True)):
            with pytest.raises(ClipError, match="still being written to disk: ask again"):
                ask()
        with pytest.raises(ClipError, match="deleted by retention, or never recorded"):
            commands.fetch("cam1-0-nothing", 0, None)
    finally:
        disk.release.set()
    assert store.wait_finished(WAIT_S)
    assert commands.fetch(clip_id, 0, None).offset == 0  # now it is there
    store.close()


def test_a_failed_finish_is_reported_and_recording_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    recorder = recorder_on(tmp_path, Disk(fail_first=full))
    store = recorder.store
    with caplog.at_level(logging.ERROR):
        ends = run(recorder, range(100))
        assert store.wait_finished(WAIT_S)
    (lost,) = (e.clip for e in ends)
    assert lost is not None and lost.id
    assert store.clips() == []
    assert list(tmp_path.glob(f"{lost.id}*")) == []  # its .part deleted, nothing half-written
    stats = recorder.stats()
    assert stats["finish_failed"] == 1
    assert lost.id in str(stats["last_finish_error"])
    assert os.strerror(errno.ENOSPC) in str(stats["last_finish_error"])
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert lost.id in record.getMessage() and os.strerror(errno.ENOSPC) in record.getMessage()
    # The next event is recorded as usual.
    ends = run(recorder, range(100, 250))
    assert store.wait_finished(WAIT_S)
    (clip,) = store.clips()
    assert ends[0].clip == ClipRef(clip.id)
    assert recorder.stats()["clips_written"] == 1
    store.close()


class Writer:
    """A clip writer with one frame, whose close does nothing."""

    first_ms = last_ms = 0
    packets = 1

    def close(self) -> None:
        pass


def job(clip_id: str, results: list[FinishResult] | None = None) -> FinishJob:
    done = results.append if results is not None else None
    return FinishJob(clip_id, "cam1", Writer(), 0.0, (), 100, done)


class Held:
    """A finish function held until released, recording what it finished."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.done: list[str] = []

    def __call__(self, job: FinishJob) -> Clip | None:
        self.started.set()
        assert self.release.wait(WAIT_S)
        self.done.append(job.clip_id)
        return None


class Said(logging.Handler):
    """Sets ``said`` once a record containing ``text`` is logged (from any thread)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.said = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.said.set()


def test_the_queue_is_bounded_a_full_one_makes_the_camera_wait() -> None:
    held = Held()
    finisher = ClipFinisher(held, max_pending=1)
    finisher.submit(job("a"))
    assert held.started.wait(WAIT_S)  # "a" is being finished
    finisher.submit(job("b"))  # waits: the one slot
    assert finisher.pending_bytes() == 200  # counted against the caps until indexed
    handler = Said("wait to be finished")
    logger = logging.getLogger("edge_agent.recording.finisher")
    logger.addHandler(handler)
    try:
        third = threading.Thread(target=finisher.submit, args=(job("c"),))
        third.start()
        assert handler.said.wait(WAIT_S)  # the submitter says it waits ...
        assert third.is_alive() and finisher.pending() == 2  # ... and "c" is not queued
    finally:
        logger.removeHandler(handler)
        held.release.set()
    third.join(WAIT_S)
    assert finisher.wait_idle(WAIT_S)
    assert held.done == ["a", "b", "c"]
    assert finisher.close() == []


def test_close_finishes_what_waits_or_names_what_it_could_not() -> None:
    held = Held()
    finisher = ClipFinisher(held)
    finisher.submit(job("a"))
    finisher.submit(job("b"))
    closing = threading.Thread(target=finisher.close)
    closing.start()
    held.release.set()
    closing.join(WAIT_S)
    assert not closing.is_alive() and held.done == ["a", "b"]
    # After close, a clip is finished on the caller's thread, not lost.
    results: list[FinishResult] = []
    finisher.submit(job("late", results))
    assert held.done == ["a", "b", "late"] and [r.clip_id for r in results] == ["late"]

    stuck = Held()
    finisher = ClipFinisher(stuck)
    finisher.submit(job("x"))
    finisher.submit(job("y"))
    assert stuck.started.wait(WAIT_S)
    assert finisher.close(timeout_s=0.0) == ["x", "y"]  # logged; their .part go at next start
    stuck.release.set()
