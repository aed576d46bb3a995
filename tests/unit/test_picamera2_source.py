"""The Pi camera backend against a stand-in for picamera2 (the real one needs a Pi)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from edge_agent.capture.picamera2_source import Picamera2Source


class FakeRequest:
    def __init__(self, index: int) -> None:
        self.index = index
        self.released = False

    def make_array(self, stream: str) -> np.ndarray:
        if stream == "main":
            return np.full((72, 128, 3), self.index, np.uint8)
        return np.zeros((36 * 3 // 2, 64), np.uint8)  # YUV420 planar, 64x36

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    """Frames arrive when the test says so; ``wait`` times out otherwise."""

    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int) -> None:
        self.ready = 0
        self.jobs_started = 0
        self.requests: list[FakeRequest] = []
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def configure(self, config: dict[str, Any]) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def capture_request(self, wait: Any = None) -> str:
        assert wait is False, "the source must never block inside capture_request"
        self.jobs_started += 1
        return f"job-{self.jobs_started}"

    def wait(self, job: str, timeout: float | None = None) -> FakeRequest:
        if self.ready == 0:
            raise TimeoutError
        self.ready -= 1
        request = FakeRequest(len(self.requests))
        self.requests.append(request)
        return request


@pytest.fixture
def camera(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Picamera2Source, FakePicamera2]]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances.clear()
    source = Picamera2Source("cam1", camera_num=0, main_size=(128, 72), lores_size=(64, 36), fps=5)
    yield source, FakePicamera2.instances[0]
    source.close()


def test_frames_carry_both_streams_and_every_request_is_released(
    camera: tuple[Picamera2Source, FakePicamera2],
) -> None:
    source, fake = camera
    fake.ready = 2
    first, second = source.read(1.0), source.read(1.0)
    assert first is not None and second is not None
    assert first.image.shape == (72, 128, 3) and first.analysis is not None
    assert first.analysis.shape == (36, 64, 3)
    assert all(request.released for request in fake.requests)


def test_a_timeout_keeps_the_one_job_instead_of_queueing_more(
    camera: tuple[Picamera2Source, FakePicamera2],
) -> None:
    source, fake = camera
    for _ in range(5):
        assert source.read(0.01) is None
    assert fake.jobs_started == 1  # one pending job, not five abandoned ones
    assert not source.health().connected and "no frame" in str(source.health().last_error)
    fake.ready = 1
    assert source.read(1.0) is not None
    assert source.health().connected and fake.requests[0].released
