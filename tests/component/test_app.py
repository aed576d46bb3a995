"""The agent's threads (edge_agent/app.py) with fake detector and camera: who stops, and
what each thread's failures add up to."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from fakes.detect import StaticDetector
from fakes.lifecycle import event_step
from fakes.outbox import make_faulty, open_outbox
from helpers import wait_until

from edge_agent import app
from edge_agent.broker import LocalBroker
from edge_agent.capture import LatestFrameMailbox
from edge_agent.config import CameraConfig, parse_config
from edge_agent.recording.store import ClipStore
from edge_agent.types import Frame, Lifecycle, SourceHealth
from edge_agent.worker import CameraWorker


class StuckSource:
    """A capture backend whose ``read`` hangs, ignoring its timeout, until released."""

    camera_id = "cam1"
    nominal_fps = 5.0
    live = True

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.release = threading.Event()
        self.closed = False

    def read(self, timeout_s: float) -> Frame | None:
        self.reading.set()
        self.release.wait()
        return None

    def health(self) -> SourceHealth:
        return SourceHealth(connected=True, frames_read=0, reconnects=0)

    def close(self) -> None:
        self.closed = True


def agent_on(
    source: StuckSource,
    tmp_path: Path,
    broker: LocalBroker,
    monkeypatch: pytest.MonkeyPatch,
    **sections: object,
) -> app.Agent:
    """An agent with one camera reading ``source`` and a detector that finds nothing;
    ``sections``: more of the config (``recording={...}``)."""
    monkeypatch.setattr(app, "build_detector", lambda config: StaticDetector())
    monkeypatch.setattr(app, "open_source", lambda camera: source)
    config = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [{"id": "cam1", "source": {"kind": "sim", "scenario": "empty_street"}}],
            "mqtt": {"host": "127.0.0.1", "port": broker.port},
            "outbox": {"path": str(tmp_path / "outbox.db")},
            **sections,
        }
    )
    return app.Agent(config)


def test_stop_reports_the_threads_that_did_not_stop(
    tmp_path: Path,
    broker: LocalBroker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = StuckSource()
    agent = agent_on(source, tmp_path, broker, monkeypatch)
    agent.start()
    try:
        wait_until(source.reading.is_set, 10.0, "the capture thread reading")
        with caplog.at_level(logging.ERROR, logger="edge_agent.app"):
            not_stopped = agent.stop(flush_timeout_s=1.0, join_timeout_s=0.2)
        assert not_stopped == agent.not_stopped
        # The stuck capture, always; on a loaded machine another thread may miss 0.2 s too.
        assert "capture-cam1" in not_stopped, not_stopped
        assert "still running" in caplog.text and "capture-cam1" in caplog.text
    finally:
        source.release.set()
    stuck = [t for t in threading.enumerate() if t.name == "capture-cam1"]
    for thread in stuck:
        thread.join(10.0)
    assert not any(t.is_alive() for t in stuck)


def test_a_clean_stop_reports_no_thread(
    tmp_path: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = StuckSource()
    source.release.set()  # reads return at once
    agent = agent_on(source, tmp_path, broker, monkeypatch)
    agent.start()
    wait_until(source.reading.is_set, 10.0, "the capture thread reading")
    assert agent.stop(flush_timeout_s=1.0) == agent.not_stopped == ()
    assert source.closed


def test_each_thread_counts_its_own_failures_and_the_latest_error_is_reported() -> None:
    camera = CameraConfig.model_validate({"id": "cam1", "source": {"kind": "sim"}})
    pipeline = None  # not used by the failure counts
    worker = CameraWorker(camera, StuckSource(), LatestFrameMailbox(), pipeline)  # type: ignore[arg-type]
    assert (worker.failed_frames, worker.last_error) == (0, None)
    worker.capture_failures = worker.capture_failures.add("capture failed: a")
    worker.analysis_failures = worker.analysis_failures.add("analysis failed: b")
    assert (worker.failed_frames, worker.last_error) == (2, "analysis failed: b")
    worker.capture_failures = worker.capture_failures.add("capture failed: c")
    assert (worker.failed_frames, worker.last_error) == (3, "capture failed: c")


def test_an_end_a_full_disk_refused_is_stored_later_and_a_clean_stop_leaves_nothing_open(
    tmp_path: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = StuckSource()
    source.release.set()
    agent = agent_on(source, tmp_path, broker, monkeypatch)
    agent.start()
    try:
        agent.sink.emit(event_step("e1", Lifecycle.NEW))
        faulty = make_faulty(agent.outbox)
        faulty.failing = True  # the disk fills up
        agent.sink.emit(event_step("e1", Lifecycle.END))
        assert agent.sink.held == 1
        faulty.failing = False  # and has room again; no frame brings a new emit
        wait_until(lambda: agent.sink.held == 0, 10.0, "housekeeping storing the held end")
        assert agent.outbox.open_lifecycles() == []
    finally:
        agent.stop(flush_timeout_s=1.0)
    # The next start finds nothing open, so it sends no false end_reason "restart".
    reopened = open_outbox(tmp_path / "outbox.db")
    assert reopened.open_lifecycles() == []
    reopened.close()


def test_a_clips_index_it_cannot_open_costs_the_recording_not_the_events(
    tmp_path: Path, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clips directory on a read-only or full disk: the agent runs, without recording,
    and its status says why (it used to refuse to start: no events either)."""

    def refuse(self: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(ClipStore, "_open_index", refuse)
    source = StuckSource()
    source.release.set()
    agent = agent_on(
        source, tmp_path, broker, monkeypatch, recording={"path": str(tmp_path / "clips")}
    )
    agent.start()
    try:
        assert agent.clips is None
        status = agent.status_report()
        assert status["recording"] is None
        assert "readonly database" in str(status["recording_unavailable"])
        agent.sink.emit(event_step("e1", Lifecycle.NEW))  # events go on: stored, open
        assert len(agent.outbox.open_lifecycles()) == 1
    finally:
        agent.stop(flush_timeout_s=1.0)


class FailingRenewer:
    """A renewal whose every step raises (it did, on a full disk, before it said so)."""

    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> bool:
        self.ticks += 1
        raise OSError(28, "No space left on device")


def test_a_housekeeping_step_that_keeps_failing_stops_neither_the_stats_nor_the_previews(
    tmp_path: Path,
    broker: LocalBroker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The housekeeping pass ran its steps in one try: a renewer raising every second
    kept the stats (which would have shown the full disk) from ever going out."""
    agent = agent_on(StuckSource(), tmp_path, broker, monkeypatch)
    renewer = FailingRenewer()
    agent.renewer = renewer  # type: ignore[assignment]
    stats: list[int] = []
    previews: list[str] = []
    monkeypatch.setattr(agent, "publish_stats", lambda: stats.append(1))
    monkeypatch.setattr(agent, "_send_preview", lambda worker, now_s: previews.append(now_s))
    try:
        with caplog.at_level(logging.ERROR, logger="edge_agent.app"):
            for second in range(12):
                agent._housekeeping_pass(float(second), stats_due=True)
    finally:
        agent.stop(flush_timeout_s=1.0)
    assert renewer.ticks == 12 and len(stats) == 12 and len(previews) == 12
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged == [
        "housekeeping: certificate renewal failed (1 times)",
        "housekeeping: certificate renewal failed (10 times)",
    ]
