"""Capture backends. ``open_source`` picks one from the camera's config."""

from __future__ import annotations

from typing import TypedDict

from edge_agent.capture.base import (
    CaptureError,
    EndOfStream,
    FrameSource,
    LatestFrameMailbox,
    PacketFeed,
    PacketSource,
)
from edge_agent.config import (
    CameraConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
    PyAVSourceConfig,
    SimSourceConfig,
)

__all__ = [
    "CaptureError",
    "EndOfStream",
    "FrameSource",
    "LatestFrameMailbox",
    "PacketFeed",
    "PacketSource",
    "decimate_at_source",
    "open_source",
]


def open_source(camera: CameraConfig, *, realtime: bool | None = None) -> FrameSource:
    """Open the camera's backend; ``realtime=False`` reads files and scenes as fast as possible."""
    source = camera.source
    if isinstance(source, SimSourceConfig):
        from edge_agent.capture.sim_source import SimSource

        return SimSource(
            camera.id,
            scenario=source.scenario,
            width=source.width,
            height=source.height,
            fps=camera.fps,
            loop=source.loop if realtime is not False else False,
            realtime=source.realtime if realtime is None else realtime,
        )
    if isinstance(source, OpenCVSourceConfig):
        from edge_agent.capture.opencv_source import OpenCVSource

        return OpenCVSource(camera.id, source.uri, **_stream_options(source, realtime))
    if isinstance(source, PyAVSourceConfig):
        from edge_agent.capture.pyav_source import PyAVSource

        return PyAVSource(
            camera.id,
            source.uri,
            rtsp_transport=source.rtsp_transport,
            **_stream_options(source, realtime),
        )
    if isinstance(source, Picamera2SourceConfig):
        from edge_agent.capture.picamera2_source import Picamera2Source

        return Picamera2Source(
            camera.id,
            camera_num=source.camera_num,
            main_size=source.main_size,
            lores_size=source.lores_size,
            fps=camera.fps,
        )
    raise CaptureError(f"camera {camera.id}: unknown source kind")


class _StreamOptions(TypedDict):
    loop: bool
    realtime: bool
    reconnect_min_delay_s: float
    reconnect_max_delay_s: float
    stream_timeout_s: float


def _stream_options(
    source: OpenCVSourceConfig | PyAVSourceConfig, realtime: bool | None
) -> _StreamOptions:
    """What both stream backends take alike: looping, pacing and reconnecting."""
    return {
        "loop": source.loop if realtime is not False else False,
        "realtime": source.realtime if realtime is None else realtime,
        "reconnect_min_delay_s": source.reconnect_min_delay_s,
        "reconnect_max_delay_s": source.reconnect_max_delay_s,
        "stream_timeout_s": source.read_timeout_s,
    }


def decimate_at_source(source: FrameSource, min_interval_s: float) -> None:
    """The caller keeps no frame closer than 0.9 x ``min_interval_s`` to the last it kept (the
    capture thread's rule): a backend that can then skips converting the others (OpenCV
    grabs them only); the others are left as they are."""
    from edge_agent.capture.opencv_source import OpenCVSource

    if isinstance(source, OpenCVSource):
        source.skip_closer_than(min_interval_s)
