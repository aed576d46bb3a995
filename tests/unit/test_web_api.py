"""The page's picture endpoint's cache and drawing (edge_agent/web/api.py, draw.py)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge_agent.config import CameraConfig
from edge_agent.types import Box, Track
from edge_agent.web.api import MAX_CACHED_VIEWS, FrameCache


def stub_agent(index: int) -> SimpleNamespace:
    camera = CameraConfig.model_validate(
        {
            "id": "cam1",
            "source": {"kind": "sim"},
            "zones": [{"name": "gate", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]}],
        }
    )
    frame = SimpleNamespace(index=index, image=np.full((270, 480, 3), 90, np.uint8))
    track = Track(7, "person", 0.8, Box(0.4, 0.4, 0.6, 0.9), 0.0, 1.0, 3)
    worker = SimpleNamespace(
        config=camera, latest=frame, pipeline=SimpleNamespace(last_tracks=(track,))
    )
    return SimpleNamespace(workers=[worker])


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_one_encode_per_frame_and_view_however_many_ask() -> None:
    cache, agent = FrameCache(), stub_agent(1)
    first = cache.latest_jpeg(agent, "cam1", draw=True, width_px=320)
    assert first is not None
    assert cache.latest_jpeg(agent, "cam1", draw=True, width_px=320) is first
    agent.workers[0].latest.index = 2  # the next frame
    assert cache.latest_jpeg(agent, "cam1", draw=True, width_px=320) is not first


def test_drawn_and_plain_pictures_differ_and_are_never_enlarged() -> None:
    cache, agent = FrameCache(), stub_agent(1)
    plain = decode(cache.latest_jpeg(agent, "cam1", draw=False, width_px=1920) or b"")
    drawn = decode(cache.latest_jpeg(agent, "cam1", draw=True, width_px=1920) or b"")
    assert plain.shape == drawn.shape == (270, 480, 3)
    assert np.abs(plain.astype(int) - drawn.astype(int)).max() > 100  # amber and green lines
    small = decode(cache.latest_jpeg(agent, "cam1", draw=False, width_px=240) or b"")
    assert small.shape == (135, 240, 3)


def test_the_cache_stays_small_and_unknown_cameras_are_refused() -> None:
    cache, agent = FrameCache(), stub_agent(1)
    for width in range(200, 200 + 3 * MAX_CACHED_VIEWS):
        cache.latest_jpeg(agent, "cam1", draw=False, width_px=width)
    assert len(cache._cache) == MAX_CACHED_VIEWS
    with pytest.raises(KeyError):
        cache.latest_jpeg(agent, "nope", draw=False, width_px=320)
    agent.workers[0].latest = None
    assert cache.latest_jpeg(agent, "cam1", draw=False, width_px=320) is None
