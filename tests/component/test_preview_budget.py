"""The agent's preview path (``Agent.set_preview`` → ``Agent._send_preview`` → the real
JPEG encoder) on hw-sim scenes, driven by a fake clock as the housekeeping thread would
drive it: the budget holds over every 10 s window of the frames published, the floor of
320 px is kept, a static scene costs a small part of the budget, stats count the bytes,
and the preview ends by itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from api_contract import TOPICS
from hw_sim.scenes import Scenario, load_scenario, required_media
from realdata import require_media

import edge_agent.app as app_module
from edge_agent.app import Agent
from edge_agent.config import CameraConfig
from edge_agent.preview import WINDOW_S
from edge_agent.types import Frame
from edge_agent.worker import CameraWorker

START_S = 1000.0


class Clock:
    def __init__(self) -> None:
        self.now_s = START_S

    def monotonic(self) -> float:
        return self.now_s


class Published:
    """``publish_volatile`` of the real publisher, recorded with the fake time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.frames: list[tuple[float, bytes]] = []

    def publish_volatile(self, topic: str, payload: bytes, **_options: object) -> bool:
        assert topic == TOPICS.preview("cam1")
        self.frames.append((self.clock.now_s, payload))
        return True


class AgentStandIn:
    """The agent's preview methods, without threads, cameras or a model."""

    set_preview = Agent.set_preview
    snapshot_jpeg = Agent.snapshot_jpeg
    _send_preview = Agent._send_preview
    _worker = Agent._worker

    def __init__(self, clock: Clock, budget_bps: int) -> None:
        self.topics = TOPICS
        self.publisher = Published(clock)
        self._preview_lock = threading.Lock()
        config = CameraConfig.model_validate(
            {"id": "cam1", "source": {"kind": "sim"}, "preview": {"budget_bps": budget_bps}}
        )
        # the real worker's preview methods; no source, mailbox or pipeline
        self.workers = [CameraWorker(config, None, None, None)]  # type: ignore[arg-type]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(app_module, "time", fake)  # set_preview reads time.monotonic()
    yield fake


def scene(name: str) -> Scenario:
    for media in required_media(name):
        require_media(media)
    return load_scenario(name, width=960, height=540, fps=10.0)


def run_preview(
    clock: Clock, scenario: Scenario, *, budget_bps: int, seconds: float, fps: float, width: int
) -> AgentStandIn:
    agent = AgentStandIn(clock, budget_bps)
    worker = agent.workers[0]
    worker.latest = Frame("cam1", 0, 0.0, START_S, scenario.render(0))
    assert agent.set_preview("cam1", on=True, seconds=seconds, fps=fps, width_px=width) == (
        budget_bps
    )
    while worker.preview is not None:  # as the housekeeping loop: wake when a frame is due
        clock.now_s = max(clock.now_s, worker.preview.next_due_s)
        index = int((clock.now_s - START_S) * scenario.fps)
        worker.latest = Frame("cam1", index, 0.0, clock.now_s, scenario.render(index))
        agent._send_preview(worker, clock.now_s)
    return agent


def max_window_bytes(frames: list[tuple[float, bytes]]) -> int:
    return max(
        sum(len(p) for t, p in frames if start <= t <= start + WINDOW_S) for start, _ in frames
    )


def test_a_busy_street_stays_within_the_budget_at_320_px_or_more(clock: Clock) -> None:
    agent = run_preview(clock, scene("street"), budget_bps=64_000, seconds=60, fps=5, width=960)
    frames = agent.publisher.frames
    assert max_window_bytes(frames) <= 1.1 * 64_000 * WINDOW_S / 8
    widths = [
        cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR).shape[1] for _, p in frames
    ]
    assert min(widths) >= 320
    assert len(frames) >= 50  # about 1 frame/s or more over the minute
    assert agent.workers[0].preview_bytes == sum(len(p) for _, p in frames)
    assert clock.now_s >= START_S + 60  # it ended by itself, at its time


def test_a_static_scene_uses_a_small_part_of_the_budget(clock: Clock) -> None:
    agent = run_preview(
        clock, scene("empty_street"), budget_bps=64_000, seconds=120, fps=5, width=960
    )
    frames = agent.publisher.frames
    assert sum(len(p) for _, p in frames) <= 0.3 * 64_000 / 8 * 120
    assert len(frames) >= 120 / 6  # still refreshed: the viewer sees the picture is live


def test_a_command_never_gets_more_than_the_configured_budget(clock: Clock) -> None:
    agent = AgentStandIn(clock, 32_000)
    for asked, effective in ((1_000_000, 32_000), (16_000, 16_000), (None, 32_000)):
        budget = agent.set_preview(
            "cam1", on=True, seconds=10.0, fps=1.0, width_px=480, budget_bps=asked
        )
        assert budget == effective
    agent.set_preview("cam1", on=True, seconds=10.0, fps=1.0, width_px=480, budget_bps=16_000)
    preview = agent.workers[0].preview
    assert preview is not None and preview.budget.budget_bps == 16_000
