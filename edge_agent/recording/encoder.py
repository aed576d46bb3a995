"""H.264 encoding and MP4 remuxing: the only module that imports PyAV (``av``).

Frames are encoded once, as they arrive, by libx264 from PyAV's wheels (``ultrafast``,
``zerolatency``: no B-frames, so a packet's pts is its dts and a clip can start at any
keyframe). A clip is then a *remux* of packets already encoded: writing it costs no CPU
beyond the copy. Keyframes are forced by time (every ``keyframe_interval_s``), not by
frame count, so the pre-roll's granularity does not depend on the camera's rate.

On a Pi 4 with picamera2 the camera's own H.264 encoder (``picamera2.encoders.H264Encoder``)
would spare the CPU; not done here (only capture backends import picamera2).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from edge_agent.recording.ring import Packet
from edge_agent.types import ImageBGR

TIME_BASE = Fraction(1, 1000)  # packet times in milliseconds of the camera's monotonic clock
CODEC = "libx264"

FrameFilter = Callable[[ImageBGR], ImageBGR]
"""What a clip frame goes through before it is encoded (privacy masks, face blur)."""


def identity(image: ImageBGR) -> ImageBGR:
    return image


@dataclass(frozen=True)
class StreamFormat:
    """What a clip's MP4 header needs: the encoder's parameter sets (Annex B) and one
    keyframe, from which PyAV builds the stream template."""

    width_px: int
    height_px: int
    extradata: bytes
    first_keyframe: bytes


class H264Encoder:
    """BGR frames → H.264 packets, one encoder per camera (its analysis thread only)."""

    def __init__(
        self,
        *,
        keyframe_interval_s: float = 1.0,
        crf: int = 28,
        width_px: int | None = None,
        frame_filter: FrameFilter = identity,
    ) -> None:
        self.keyframe_interval_s = keyframe_interval_s
        self.crf = crf
        self.width_px = width_px  # None: the camera's own width
        self.frame_filter = frame_filter
        self._context: av.video.codeccontext.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._last_key_ms: int | None = None
        self._last_pts_ms: int | None = None
        self.format: StreamFormat | None = None

    def _open(self, width_px: int, height_px: int) -> av.video.codeccontext.VideoCodecContext:
        context = av.CodecContext.create(CODEC, "w")
        assert isinstance(context, av.video.codeccontext.VideoCodecContext)
        context.width, context.height, context.pix_fmt = width_px, height_px, "yuv420p"
        context.time_base = TIME_BASE
        context.gop_size = 10_000  # keyframes are forced by time, below
        context.flags |= av.codec.context.Flags.global_header
        context.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(self.crf)}
        context.open()
        self._size = (width_px, height_px)
        self._last_key_ms = None
        self.format = None
        return context

    def encode(self, image: ImageBGR, time_ms: int) -> list[Packet]:
        """The packets for one frame at ``time_ms`` (milliseconds, increasing). A change
        of frame size starts a new stream (``format`` changes; the caller cuts there)."""
        image = self.frame_filter(image)
        height, width = image.shape[:2]
        if self.width_px is not None and width > self.width_px:
            height = max(2, round(height * self.width_px / width))
            width = self.width_px
        width, height = width - width % 2, height - height % 2  # yuv420p needs even sides
        if self._context is None or self._size != (width, height):
            self._context = self._open(width, height)
        if self._last_pts_ms is not None and time_ms <= self._last_pts_ms:
            time_ms = self._last_pts_ms + 1  # the muxer refuses a repeated timestamp
        self._last_pts_ms = time_ms
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame = frame.reformat(width=width, height=height, format="yuv420p")
        frame.pts = time_ms
        if self._last_key_ms is None or time_ms - self._last_key_ms >= round(
            1000 * self.keyframe_interval_s
        ):
            frame.pict_type = PictureType.I
        packets = []
        for encoded in self._context.encode(frame):
            data = bytes(encoded)
            keyframe = bool(encoded.is_keyframe)
            pts = int(encoded.pts) if encoded.pts is not None else time_ms
            if keyframe:
                self._last_key_ms = pts
                if self.format is None:
                    extradata = bytes(self._context.extradata or b"")
                    self.format = StreamFormat(width, height, extradata, data)
            packets.append(Packet(pts_ms=pts, keyframe=keyframe, data=data))
        return packets


def write_mp4(path: Path, stream: StreamFormat, packets: Iterable[Packet]) -> int:
    """Remux ``packets`` (starting with a keyframe) into an MP4 at ``path``; the number
    of packets written. No re-encoding: the bytes are the encoder's."""
    with Mp4Writer(path, stream) as writer:
        for packet in packets:
            writer.add(packet)
        return writer.packets


class Mp4Writer:
    """One clip being written: packets go to disk as they come (a long event does not
    grow in memory); the MP4 index (``moov``) is written at :meth:`close`."""

    def __init__(self, path: Path, stream: StreamFormat) -> None:
        self.path = path
        self._template = av.open(
            io.BytesIO(stream.extradata + stream.first_keyframe), format="h264"
        )
        self._output = av.open(str(path), "w", format="mp4")
        self._stream = self._output.add_stream_from_template(self._template.streams.video[0])
        self._stream.time_base = TIME_BASE
        self._base_ms: int | None = None
        self.packets = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def add(self, packet: Packet) -> None:
        if self._base_ms is None:
            if not packet.keyframe:
                return  # a clip starts at a keyframe
            self._base_ms = self.first_ms = packet.pts_ms
        out = av.Packet(packet.data)
        out.pts = out.dts = packet.pts_ms - self._base_ms
        out.time_base = TIME_BASE
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._output.mux(out)
        self.packets += 1
        self.last_ms = packet.pts_ms

    def close(self) -> None:
        try:
            self._output.close()
        finally:
            self._template.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ClipFacts:
    """What a player sees in a clip: for tests, the bench and the index's checks."""

    duration_s: float
    frames: int
    width_px: int
    height_px: int


def probe(path: Path) -> ClipFacts:
    """Decode ``path`` and count its frames (as a standard player would read it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration is not None and stream.time_base is not None
            else 0.0
        )
        return ClipFacts(duration, frames, stream.codec_context.width, stream.codec_context.height)
