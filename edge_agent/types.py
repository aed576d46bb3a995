"""Data that crosses the seams between pipeline stages.

Everything here is a frozen dataclass so a stage can hand it on without fearing
that the next stage mutates it. Boxes are always normalised to 0..1 of the frame
so that stages working at different resolutions (lores analysis stream, full
frame for thumbnails) agree on where a thing is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

import numpy as np
import numpy.typing as npt

ImageBGR = npt.NDArray[np.uint8]
"""An OpenCV-style image: height x width x 3, uint8, BGR channel order."""

CLOCK_SET_AFTER_S = 1_577_836_800.0
"""2020-01-01 UTC. A wall clock before this was never set: a Pi has no battery clock and
boots at 1970 (or a stale fake-hwclock save) until NTP answers. What it stamps then has no
age, and what expires by it cannot be judged (outbox TTLs, clip ages, release expiry)."""

REFERENCE_INTERVAL_S = 0.15
"""The frame interval the frame-counted settings (the gate's windows, the tracker's
``min_hits``, zones' ``inertia_frames``) were tuned at: 5 fps, and every 2nd or 3rd
frame of a 12.5-16.7 fps file (0.16-0.18 s). At higher rates each frame counted also
needs this much time, so ``fps`` changes CPU, not what is reported."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in normalised frame coordinates (0..1, origin top-left)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def width(self) -> float:
        return max(0.0, self.x_max - self.x_min)

    @property
    def height(self) -> float:
        return max(0.0, self.y_max - self.y_min)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x_min + self.x_max) / 2.0, (self.y_min + self.y_max) / 2.0)

    @property
    def bottom_centre(self) -> tuple[float, float]:
        """Where the object touches the ground: the point zones are tested against."""
        return ((self.x_min + self.x_max) / 2.0, self.y_max)

    def intersection(self, other: Box) -> float:
        """The area the two boxes share."""
        ix = max(0.0, min(self.x_max, other.x_max) - max(self.x_min, other.x_min))
        iy = max(0.0, min(self.y_max, other.y_max) - max(self.y_min, other.y_min))
        return ix * iy

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0.0 else 0.0

    def clipped(self) -> Box:
        return Box(
            min(max(self.x_min, 0.0), 1.0),
            min(max(self.y_min, 0.0), 1.0),
            min(max(self.x_max, 0.0), 1.0),
            min(max(self.y_max, 0.0), 1.0),
        )

    def to_pixels(self, width_px: int, height_px: int) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max) in whole pixels of a width x height image."""
        return (
            round(self.x_min * width_px),
            round(self.y_min * height_px),
            round(self.x_max * width_px),
            round(self.y_max * height_px),
        )

    def as_list(self, ndigits: int = 4) -> list[float]:
        return [round(v, ndigits) for v in (self.x_min, self.y_min, self.x_max, self.y_max)]


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture.

    ``image`` is the full-resolution picture (thumbnails, previews); ``analysis``
    is the small picture motion and detection work on (picamera2's ``lores``
    stream, or a resize of ``image`` done once by the capture backend).
    """

    camera_id: str
    index: int
    captured_at_s: float  # wall clock, seconds since the epoch
    monotonic_s: float  # time.monotonic() at capture, for durations
    image: ImageBGR
    analysis: ImageBGR | None = None

    @property
    def for_analysis(self) -> ImageBGR:
        return self.image if self.analysis is None else self.analysis


@dataclass(frozen=True)
class SourceHealth:
    """What a capture backend says about itself; published in status and stats."""

    connected: bool
    frames_read: int
    reconnects: int
    ended: bool = False
    last_error: str | None = None


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: Box


@dataclass(frozen=True)
class DetectionResult:
    """Detections of one frame plus where the time went (for stats and bench/)."""

    detections: tuple[Detection, ...]
    preprocess_s: float = 0.0
    invoke_s: float = 0.0
    postprocess_s: float = 0.0


@dataclass(frozen=True)
class MotionResult:
    """The motion gate's verdict on one frame."""

    has_motion: bool  # enough moving area for ``min_frames`` frames in a row: the gate is open
    motion_ratio: float  # share of the analysis frame's pixels that changed
    regions: tuple[Box, ...] = ()  # where it moved, whenever this frame ``moved``
    # This frame alone has enough moving area (``has_motion`` before the ``min_frames``
    # hysteresis): motion at a live track's place is that track, not a glitch.
    moved: bool = False


@dataclass(frozen=True)
class Track:
    """A detection followed over time with a stable id."""

    track_id: int
    label: str
    score: float
    box: Box
    first_seen_s: float
    last_seen_s: float
    hits: int
    missed: int = 0


class Lifecycle(str, Enum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


class MessageClass(str, Enum):
    """Outbox classes, by eviction priority (docs/delivery.md): alerts are kept longest."""

    ALERT = "alert"
    EVENT = "event"
    STATE = "state"
    THUMBNAIL = "thumbnail"
    STATUS = "status"


@dataclass(frozen=True)
class ClipRef:
    """An ``end``'s clip: its id, or why there is none (docs/recording.md)."""

    id: str | None
    reason: str | None = None  # set when id is None: "recording off", "disk full", ...


@dataclass(frozen=True)
class ObjectEvent:
    """An event lifecycle step about one tracked object, before encoding."""

    event_id: str
    lifecycle: Lifecycle
    camera_id: str
    kind: str  # "object" for tracked objects; rules add their own kinds later
    label: str
    score: float
    top_score: float
    box: Box
    zones: tuple[str, ...]
    start_s: float
    end_s: float | None
    frame_time_s: float
    has_thumbnail: bool = False
    clip: ClipRef | None = None  # on an ``end`` only, from the recorder; None: not recording


@dataclass(frozen=True)
class Thumbnail:
    event_id: str
    camera_id: str
    jpeg: bytes
    score: float


@dataclass(frozen=True)
class OutboundMessage:
    """A message to publish, before the outbox gives it a sequence number.

    Exactly one of ``json_body`` and ``binary_body`` is set. For JSON bodies the
    outbox inserts ``seq`` (and the publisher ``historical``) into the object, so
    the encoder never has to know about delivery.
    """

    topic: str
    message_class: MessageClass
    qos: int = 1
    retain: bool = False
    json_body: dict[str, object] | None = None
    binary_body: bytes | None = None
    content_type: str = "application/json"
    user_properties: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, eq=False)
class StreamFormat:
    """What a clip's header needs to hold a stream's packets as they are: the codec, the
    picture size, the codec's parameter sets (``extradata``: Annex B or avcC, as the
    source gives them) and the unit of the packets' timestamps.

    One object per encoder stream or per connection to a camera, compared by identity:
    packets of two objects never share a file (a reconnect or a size change starts a
    new clip)."""

    codec: str  # FFmpeg's name: "h264", "hevc"
    width_px: int
    height_px: int
    extradata: bytes
    time_base: Fraction


@dataclass(frozen=True)
class VideoPacket:
    """One compressed frame, from the recorder's encoder or a camera's own stream.

    ``pts_ms`` places it on the camera's clock (``Frame.monotonic_s``, in ms), which the
    pre-roll and the triggers use; ``pts``/``dts`` are the stream's own timestamps (in
    ``stream.time_base``), which a clip keeps, rebased. None: ``pts_ms`` (ms)."""

    pts_ms: int
    keyframe: bool
    data: bytes
    pts: int | None = None
    dts: int | None = None
    stream: StreamFormat | None = None
