"""A few frames from a live source, for the technician's commands (``detect``,
``snapshot``, ``selftest``): a camera of the config, or a source named on the command line.

Source names: ``rtsp://…``/``http://…`` (a stream), ``/dev/video0`` or ``0`` (a USB
camera), ``picamera2`` or ``picamera2:1`` (the Pi camera, by number), ``sim:SCENE``
(a simulator scene), anything else a video file read as a stream (paced at its own fps).
"""

from __future__ import annotations

from edge_agent.capture.base import EndOfStream, FrameSource
from edge_agent.config import (
    CameraConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
    PyAVSourceConfig,
    SimSourceConfig,
    SourceConfig,
)
from edge_agent.types import Frame

__all__ = [
    "camera_fix",
    "camera_from_uri",
    "first_frame_timeout_s",
    "grab_frames",
    "source_from_uri",
]

DEFAULT_FIRST_FRAME_TIMEOUT_S = 10.0


def source_from_uri(text: str) -> SourceConfig:
    """The source config a name on the command line means (the module docstring)."""
    if text == "picamera2" or text.startswith("picamera2:"):
        number = text.partition(":")[2] or "0"
        if not number.isdigit():
            raise ValueError(f"{text}: the Pi camera's number must be 0, 1, ..., not {number!r}")
        return Picamera2SourceConfig(camera_num=int(number))
    if text.startswith("sim:"):
        scene = text[len("sim:") :]
        if not scene:
            raise ValueError("sim: needs a scene name, e.g. sim:street (hw-sim list)")
        return SimSourceConfig(scenario=scene)
    return OpenCVSourceConfig(uri=text)


def camera_from_uri(text: str, *, fps: float = 5.0) -> CameraConfig:
    """A camera ``live`` over the source ``text`` names, without zones or rules."""
    return CameraConfig(id="live", source=source_from_uri(text), fps=fps)


def first_frame_timeout_s(camera: CameraConfig) -> float:
    """How long the first frame may take: a stream's own read timeout, else 10 s."""
    source = camera.source
    if isinstance(source, OpenCVSourceConfig | PyAVSourceConfig):
        return source.read_timeout_s
    return DEFAULT_FIRST_FRAME_TIMEOUT_S


def grab_frames(source: FrameSource, count: int, timeout_s: float) -> list[Frame]:
    """Up to ``count`` frames, fewer when the source ends or sends nothing for
    ``timeout_s`` (then its ``health().last_error`` says why)."""
    frames: list[Frame] = []
    while len(frames) < count:
        try:
            frame = source.read(timeout_s)
        except EndOfStream:
            break
        if frame is None:
            break
        frames.append(frame)
    return frames


def camera_fix(camera: CameraConfig) -> str:
    """What to look at when ``camera`` gives no frame, by the kind of its source (the
    self-test's FAIL line, and ``detect``'s and ``snapshot``'s errors)."""
    kind = camera.source.kind
    if kind == "picamera2":
        return (
            "check the ribbon cable and `rpicam-hello --list-cameras`; "
            "is python3-picamera2 installed?"
        )
    if kind == "sim":
        return "the simulator scene could not play: see why above (hw-sim, its footage)"
    uri = getattr(camera.source, "uri", "")
    if uri.startswith("/dev/video") or uri.isdigit():
        return f"is the USB camera plugged in and {uri} readable by this user (group video)?"
    if "://" in uri:
        return "check the camera's power, network (ping it), the URL, user and password"
    return f"check that {uri} is a readable video file"
