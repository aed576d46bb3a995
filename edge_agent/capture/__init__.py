"""Capture backends. ``open_source`` picks one from the camera's config."""

from __future__ import annotations

from edge_agent.capture.base import (
    CaptureError,
    EndOfStream,
    FrameSource,
    LatestFrameMailbox,
)
from edge_agent.config import (
    CameraConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
    SimSourceConfig,
)

__all__ = ["CaptureError", "EndOfStream", "FrameSource", "LatestFrameMailbox", "open_source"]


def open_source(
    camera: CameraConfig, *, realtime: bool | None = None, decimate: bool = False
) -> FrameSource:
    """Open the camera's backend; ``realtime=False`` reads files and scenes as fast as possible.
    ``decimate``: the caller keeps frames at the camera's ``fps`` only (the capture thread),
    so a backend that can may skip converting the others."""
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

        return OpenCVSource(
            camera.id,
            source.uri,
            loop=source.loop if realtime is not False else False,
            realtime=source.realtime if realtime is None else realtime,
            reconnect_min_delay_s=source.reconnect_min_delay_s,
            reconnect_max_delay_s=source.reconnect_max_delay_s,
            stream_timeout_s=source.read_timeout_s,
            min_interval_s=1.0 / camera.fps if decimate else None,
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
