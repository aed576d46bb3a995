"""What the page's JSON and picture endpoints answer, from the running agent.

Nothing here is new bookkeeping: health is the ``status`` command's report with the
watchdog's facts (``Agent.service_health``) beside it; the picture is the camera's latest
analysed frame (``CameraWorker.latest``) with the tracks the pipeline last saw. The agent
is reached through ``WebTarget`` so this package never imports ``edge_agent.app``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_agent.config import AgentConfig
from edge_agent.privacy import protect
from edge_agent.security import redact_url
from edge_agent.service import ServiceHealth
from edge_agent.service.reload import ReloadOutcome
from edge_agent.web.draw import jpeg_view
from edge_agent.worker import CameraWorker

__all__ = ["FrameCache", "WebTarget", "cameras", "health", "public_config"]

SECRET_KEY = re.compile(r"password|secret|token", re.IGNORECASE)
MIN_WIDTH_PX, MAX_WIDTH_PX = 160, 1920
MAX_CACHED_VIEWS = 8  # (camera, drawn or not, width) kept: the page asks for one or two


class WebTarget(Protocol):
    """What the page needs of the running agent (``edge_agent.app.Agent``)."""

    config: AgentConfig
    config_path: Path | None
    workers: list[CameraWorker]

    def status_report(self) -> dict[str, object]: ...
    def service_health(self, now_s: float) -> ServiceHealth: ...
    def reload(self, path: Path | None = None) -> ReloadOutcome: ...


def health(target: WebTarget) -> dict[str, object]:
    """The ``status`` reply (cameras' fps and detector ms, outbox, disk, LED condition)
    and the watchdog's view (broker link, silent cameras, outbox writable)."""
    report = target.status_report()
    service = target.service_health(time.monotonic())
    return {
        **report,
        "broker_connected": service.uplink_connected,
        "outbox_depth": service.outbox_depth,
        "outbox_writable": service.outbox_writable,
        "silent_cameras": list(service.silent_cameras),
        "alive": service.alive,
    }


def _redacted(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: ("***" if item is not None else None)
            if SECRET_KEY.search(str(key)) and not str(key).endswith("_file")
            else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, str):
        return redact_url(value)  # a camera's rtsp://user:password@… keeps its password
    return value


def public_config(target: WebTarget) -> dict[str, object]:
    """The running config as JSON, secrets (the broker password) replaced by ``***``."""
    body = _redacted(target.config.model_dump(mode="json"))
    assert isinstance(body, dict)
    return body


def cameras(target: WebTarget) -> list[dict[str, object]]:
    """Each camera's id, fps, zones/rules and privacy masks as configured (the editor
    starts from these)."""
    return [
        {
            "id": w.config.id,
            "fps": w.config.fps,
            "zones": [z.model_dump(mode="json") for z in w.config.zones],
            "rules": [r.model_dump(mode="json") for r in w.config.rules],
            "masks": [[list(p) for p in mask] for mask in w.config.privacy.masks],
            "has_frame": w.latest is not None,
        }
        for w in target.workers
    ]


@dataclass(frozen=True)
class _Encoded:
    frame_index: int
    config_id: int  # id() of the camera config it was drawn with (a reload replaces it)
    jpeg: bytes


class FrameCache:
    """JPEGs of the latest frames, encoded once per frame and view however many viewers
    ask (each viewer asks about once a second). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, bool, int], _Encoded] = {}

    def latest_jpeg(
        self, target: WebTarget, camera_id: str, *, draw: bool, width_px: int
    ) -> bytes | None:
        """None before the camera's first frame; KeyError for a camera it does not have."""
        worker = next((w for w in target.workers if w.config.id == camera_id), None)
        if worker is None:
            raise KeyError(camera_id)
        frame, tracks = worker.latest, worker.pipeline.last_tracks
        if frame is None:
            return None
        width_px = min(MAX_WIDTH_PX, max(MIN_WIDTH_PX, width_px))
        key = (camera_id, draw, width_px)
        with self._lock:
            cached = self._cache.get(key)
        if (
            cached is not None
            and cached.frame_index == frame.index
            and cached.config_id == id(worker.config)
        ):
            return cached.jpeg
        # The page is a picture leaving the pipeline too: masked and face-blurred first.
        image = protect(worker.config, frame.image)
        camera = worker.config if draw else None
        jpeg = jpeg_view(image, camera, tracks if draw else (), width_px=width_px)
        with self._lock:
            self._cache.pop(key, None)
            self._cache[key] = _Encoded(frame.index, id(worker.config), jpeg)
            while len(self._cache) > MAX_CACHED_VIEWS:  # odd widths must not fill memory
                del self._cache[next(iter(self._cache))]
        return jpeg
