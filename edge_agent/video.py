"""Compressed video through PyAV: the only module that imports it (``av``, the optional
``recording`` extra), for both directions.

- **Recording**: ``H264Encoder`` encodes analysed frames with libx264 from PyAV's wheels
  (``ultrafast``, ``zerolatency``: no B-frames, keyframes forced by time, every
  ``keyframe_interval_s``, so the pre-roll's granularity does not depend on the camera's
  rate); ``Mp4Writer`` remuxes packets, whoever made them, into an MP4: a clip costs no
  encoding. ``probe`` reads a clip back as a player would.
- **Capture**: ``StreamReader`` opens an RTSP/HTTP stream or a file, demuxes its video
  packets and decodes them to BGR pictures; the PyAV capture backend
  (``edge_agent.capture.pyav_source``) hands the pictures to analysis and the packets, as
  they are, to the recorder.

One owner because the two sides share the facts PyAV's API keeps changing under (how a
stream is made from codec parameters, packet timestamps and flags, error types), and a
missing or broken PyAV then fails in one import with one message. Nothing PyAV returns
leaves this module: callers get bytes, ints and ``edge_agent.types`` values.
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

from edge_agent.security import redact_url
from edge_agent.types import ImageBGR, StreamFormat, VideoPacket

TIME_BASE = Fraction(1, 1000)  # the encoder's timestamps: ms of the camera's monotonic clock
CODEC = "libx264"
REMUXABLE = frozenset({"h264", "hevc"})  # codecs a camera's packets go into an MP4 as they are

FrameFilter = Callable[[ImageBGR], ImageBGR]
"""What a clip frame goes through before it is encoded (privacy masks, face blur)."""


def identity(image: ImageBGR) -> ImageBGR:
    return image


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

    def encode(self, image: ImageBGR, time_ms: int) -> list[VideoPacket]:
        """The packets for one frame at ``time_ms`` (milliseconds, increasing). A change
        of frame size starts a new stream (``format`` changes; the caller cuts there)."""
        image = self.frame_filter(image)
        height, width = image.shape[:2]
        if self.width_px is not None and width > self.width_px:
            height = max(2, round(height * self.width_px / width))
            width = self.width_px
        width, height = width - width % 2, height - height % 2  # yuv420p needs even sides
        if width < 2 or height < 2:  # libx264 only says "Invalid argument"
            raise ValueError(
                f"a {image.shape[1]}x{image.shape[0]} picture cannot be encoded: H.264 needs "
                "at least 2 pixels each way"
            )
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
                    self.format = StreamFormat("h264", width, height, extradata, TIME_BASE)
            packets.append(VideoPacket(pts, keyframe, data, pts, pts, self.format))
        return packets


def _mux_stream(output: av.container.OutputContainer, stream: StreamFormat) -> av.stream.Stream:
    """An output stream for packets already encoded. PyAV opens (as an encoder) every
    stream it did not copy from a template, so the template is a codec context of the
    same codec that is never opened; the source's own size and parameter sets go on it."""
    holder = av.open(io.BytesIO(), "w", format="mp4")
    try:
        template = holder.add_stream(stream.codec)
        out = output.add_stream_from_template(template)
    finally:
        holder.close()
    context = out.codec_context
    assert isinstance(context, av.video.codeccontext.VideoCodecContext)
    context.extradata = stream.extradata or None
    context.width, context.height = stream.width_px, stream.height_px
    out.time_base = stream.time_base
    return out


def write_mp4(path: Path, stream: StreamFormat, packets: Iterable[VideoPacket]) -> int:
    """Remux ``packets`` (starting with a keyframe) into an MP4 at ``path``; the number
    of packets written. No re-encoding: the bytes are the encoder's or the camera's."""
    with Mp4Writer(path, stream) as writer:
        for packet in packets:
            writer.add(packet)
        return writer.packets


class Mp4Writer:
    """One clip being written: packets go to disk as they come (a long event does not
    grow in memory); the MP4 index (``moov``) is written at :meth:`close`. Timestamps are
    the stream's own, rebased to start at 0 on the first keyframe."""

    def __init__(self, path: Path, stream: StreamFormat) -> None:
        self.path = path
        self.format = stream
        self._output = av.open(str(path), "w", format="mp4")
        try:
            self._stream = _mux_stream(self._output, stream)
        except Exception:
            self._output.close()
            raise
        self._base: int | None = None
        self._last_dts: int | None = None
        self.packets = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def add(self, packet: VideoPacket) -> None:
        if self._base is None:
            if not packet.keyframe:
                return  # a clip starts at a keyframe
            self.first_ms = self.last_ms = packet.pts_ms
        dts = packet.dts if packet.dts is not None else packet.pts
        dts = dts if dts is not None else packet.pts_ms
        pts = packet.pts if packet.pts is not None else dts
        if self._base is None:
            self._base = dts
        dts, pts = dts - self._base, pts - self._base
        if self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1  # the muxer refuses a timestamp that does not grow
        pts = max(pts, dts)
        out = av.Packet(packet.data)
        out.pts, out.dts = pts, dts
        out.time_base = self.format.time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._output.mux(out)
        self._last_dts = dts
        self.packets += 1
        self.last_ms = max(self.last_ms or packet.pts_ms, packet.pts_ms)

    def close(self) -> None:
        self._output.close()

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


# -- reading a stream -------------------------------------------------------------------


class StreamError(Exception):
    """A stream that cannot be opened or stopped delivering (refused, timed out, ended
    badly): the capture backend reconnects."""


@dataclass(frozen=True)
class Picture:
    """A decoded frame: BGR, and its presentation time in the stream's ``time_base``."""

    image: ImageBGR
    pts: int | None


@dataclass(frozen=True)
class Demuxed:
    """One packet of the video stream as it came (``data`` empty: the end-of-stream
    flush) and the pictures the decoder gave back for it (none, one, or more)."""

    data: bytes
    pts: int | None
    dts: int | None
    keyframe: bool
    pictures: tuple[Picture, ...]


class StreamReader:
    """One connection to a stream or file (one thread): its first video stream,
    demuxed packet by packet and decoded. ``timeout_s`` bounds opening and every read,
    so a dead camera never blocks the capture thread for longer."""

    def __init__(self, uri: str, *, timeout_s: float, rtsp_transport: str = "tcp") -> None:
        options = {"rtsp_transport": rtsp_transport} if uri.lower().startswith("rtsp") else {}
        try:
            self._container = av.open(uri, options=options, timeout=(timeout_s, timeout_s))
        except (av.FFmpegError, OSError) as error:
            raise StreamError(redact_url(str(error))) from None  # FFmpeg quotes the URL
        if not self._container.streams.video:
            self._container.close()
            raise StreamError("no video stream")
        stream = self._container.streams.video[0]
        context = stream.codec_context
        self._stream = stream
        self.format = StreamFormat(
            context.name,
            int(context.width or 0),
            int(context.height or 0),
            bytes(context.extradata or b""),
            Fraction(stream.time_base or Fraction(1, 90_000)),
        )
        # The camera's packets can go into an MP4 as they are (else the recorder encodes).
        self.remuxable = context.name in REMUXABLE and self.format.width_px > 0
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) < 240 else 25.0
        self._packets = self._container.demux(stream)

    def read(self) -> Demuxed | None:
        """The next packet and what it decoded to; None once a file (or a stream the
        server closed) has ended and the decoder is flushed."""
        try:
            packet = next(self._packets)
        except StopIteration:
            return None
        except (av.FFmpegError, OSError) as error:
            raise StreamError(redact_url(str(error))) from None  # FFmpeg quotes the URL
        try:
            pictures = tuple(
                Picture(np.asarray(frame.to_ndarray(format="bgr24"), np.uint8), frame.pts)
                for frame in packet.decode()
                if isinstance(frame, av.VideoFrame)
            )
        except (av.FFmpegError, ValueError):
            pictures = ()  # a damaged packet (a stream joined mid-GOP): the next keyframe heals
        return Demuxed(
            bytes(packet) if packet.size else b"",
            packet.pts,
            packet.dts,
            bool(packet.is_keyframe),
            pictures,
        )

    def close(self) -> None:
        self._container.close()
