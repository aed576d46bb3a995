"""One camera's recorder: every analysed frame is encoded into the pre-roll; an event or
alert ``new`` opens a clip (or joins the one open), an ``end`` lets it run ``post_roll_s``
more, and it closes once nothing it records is still going on.

It runs in the camera's analysis thread, after the pipeline's stages and before the sink
(``CameraPipeline(recorder=...)``), so it sees the frame and what was found in it, and it
writes each ``end``'s clip (or why there is none) into the ``end`` itself. Encoding costs
the analysis thread a few ms per frame at 720p (libx264 ``ultrafast``); writing a clip is a
remux. Disk use is checked at every keyframe of an open clip, so the caps are overshot by
at most one keyframe interval of video (one "segment").
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import TypeVar

from edge_agent.analytics import Alert, SceneState
from edge_agent.recording.encoder import (
    FrameFilter,
    H264Encoder,
    Mp4Writer,
    StreamFormat,
    identity,
)
from edge_agent.recording.ring import Packet, PreRoll
from edge_agent.recording.store import ClipStore
from edge_agent.types import ClipRef, Frame, Lifecycle, ObjectEvent

log = logging.getLogger(__name__)

STATE_ANALYZER = "recording"  # state/{camera}/recording: "recording" or "stopped"
REASON_WRITE_FAILED = "write failed"
REASON_NOT_RECORDED = "not recorded"  # began before this recorder (a reload)


@dataclass(frozen=True)
class RecordingSettings:
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    keyframe_interval_s: float = 1.0
    max_clip_s: float = 600.0  # a longer event goes on in a new clip
    width_px: int | None = None  # None: the camera's width
    crf: int = 28  # libx264 quality: higher is smaller


@dataclass
class _OpenClip:
    id: str
    writer: Mp4Writer
    stream: StreamFormat  # the encoder's stream it was opened on
    wall_offset_s: float  # wall clock minus monotonic, for the index
    events: set[str]
    until_ms: int  # closes once no trigger is live and this has passed
    bytes: int = 0
    recorded: set[str] = field(default_factory=set)  # every id it was recorded for


L = TypeVar("L", ObjectEvent, Alert)


class CameraRecorder:
    """Pre-roll, triggers and the open clip of one camera (its analysis thread only)."""

    def __init__(
        self,
        camera_id: str,
        store: ClipStore,
        settings: RecordingSettings | None = None,
        *,
        frame_filter: FrameFilter = identity,
    ) -> None:
        self.camera_id = camera_id
        self.store = store
        self.settings = settings or RecordingSettings()
        self.encoder = H264Encoder(
            keyframe_interval_s=self.settings.keyframe_interval_s,
            crf=self.settings.crf,
            width_px=self.settings.width_px,
            frame_filter=frame_filter,
        )
        self.ring = PreRoll(self.settings.pre_roll_s)
        self._ring_stream: StreamFormat | None = None  # what the ring's packets belong to
        self._clip: _OpenClip | None = None
        self._live: dict[str, ClipRef] = {}  # open event/alert id -> its clip or reason
        self.stopped_reason: str | None = None  # set while recording is refused
        self.clips_written = 0
        self.bytes_written = 0

    # -- per frame ---------------------------------------------------------------

    def observe(
        self,
        frame: Frame,
        events: tuple[ObjectEvent, ...],
        alerts: tuple[Alert, ...],
    ) -> tuple[tuple[ObjectEvent, ...], tuple[Alert, ...], tuple[SceneState, ...]]:
        """Encode ``frame``, start or extend clips for what began or ended on it; the
        events and alerts with each ``end``'s clip filled in, and a recording state when
        recording stopped or resumed."""
        stopped_before = self.stopped_reason
        now_ms = round(1000 * frame.monotonic_s)
        offset_s = frame.captured_at_s - frame.monotonic_s
        try:
            packets = self.encoder.encode(frame.image, now_ms)
        except Exception:
            log.exception("camera %s: encoding failed", self.camera_id)
            packets = []
        for packet in packets:
            self._add(packet)
        events = tuple(self._trigger(e, frame, offset_s) for e in events)
        alerts = tuple(self._trigger(a, frame, offset_s) for a in alerts)
        clip = self._clip
        if clip is not None and not clip.events and now_ms >= clip.until_ms:
            self._close()
        states: tuple[SceneState, ...] = ()
        if self.stopped_reason != stopped_before:
            states = (self._state(frame),)
        return events, alerts, states

    def _add(self, packet: Packet) -> None:
        clip = self._clip
        split: _OpenClip | None = None
        if clip is not None and packet.keyframe:
            first_ms = clip.writer.first_ms if clip.writer.first_ms is not None else packet.pts_ms
            if (
                packet.pts_ms - first_ms >= round(1000 * self.settings.max_clip_s)
                or clip.stream is not self.encoder.format  # the camera's size changed
            ):
                split = clip  # it goes on in a new clip, from this keyframe
                self._close()
            elif self._refused(clip.bytes):
                self._close()  # truncated here: the caps allow no more
        if packet.keyframe and self.encoder.format is not self._ring_stream:
            self.ring.clear()  # packets of another stream cannot share a file
            self._ring_stream = self.encoder.format
        self.ring.add(packet)
        if split is not None:
            self._open(set(split.events), split.wall_offset_s, split.until_ms, packet.pts_ms)
            return  # the new clip took this packet from the ring
        clip = self._clip
        if clip is not None:
            try:
                clip.writer.add(packet)
                clip.bytes += len(packet.data)
            except Exception:
                log.exception("camera %s: writing clip %s failed", self.camera_id, clip.id)
                self._discard(REASON_WRITE_FAILED)

    def _refused(self, open_bytes: int = 0) -> bool:
        reason = self.store.make_room(open_bytes)
        if reason != self.stopped_reason:
            if reason is None:
                log.warning("camera %s: recording resumed", self.camera_id)
            else:
                log.error(
                    "camera %s: recording stopped: %s (held clips are never deleted; "
                    "release some with clip_release)",
                    self.camera_id,
                    reason,
                )
            self.stopped_reason = reason
        return reason is not None

    def _trigger(self, item: L, frame: Frame, offset_s: float) -> L:
        item_id = item.event_id if isinstance(item, ObjectEvent) else item.alert_id
        if item.lifecycle is Lifecycle.NEW:
            self._live[item_id] = self._join(item_id, item.start_s - offset_s, offset_s)
            return item
        if item.lifecycle is not Lifecycle.END:
            return item
        ref = self._live.pop(item_id, ClipRef(None, REASON_NOT_RECORDED))
        clip = self._clip
        if clip is not None and item_id in clip.events:
            clip.events.discard(item_id)
            end_mono_s = (item.end_s or item.frame_time_s) - offset_s
            clip.until_ms = max(
                clip.until_ms, round(1000 * (end_mono_s + self.settings.post_roll_s))
            )
        return replace(item, clip=ref)

    def _join(self, item_id: str, start_mono_s: float, offset_s: float) -> ClipRef:
        clip = self._clip
        if clip is not None:
            clip.events.add(item_id)
            clip.recorded.add(item_id)
            return ClipRef(clip.id)
        if self._refused():
            return ClipRef(None, self.stopped_reason)
        start_ms = round(1000 * (start_mono_s - self.settings.pre_roll_s))
        opened = self._open({item_id}, offset_s, 0, start_ms)
        return ClipRef(opened.id) if opened else ClipRef(None, REASON_WRITE_FAILED)

    def _open(
        self, events: set[str], offset_s: float, until_ms: int, start_ms: int
    ) -> _OpenClip | None:
        """A new clip for ``events`` from the kept keyframe at or before ``start_ms``."""
        stream = self.encoder.format
        if stream is None:
            return None
        clip_id = f"{self.camera_id}-{round(1000 * (start_ms / 1000 + offset_s))}-" + (
            secrets.token_hex(2)
        )
        try:
            writer = Mp4Writer(self.store.part_path(clip_id), stream)
            clip = _OpenClip(
                clip_id, writer, stream, offset_s, events, until_ms, recorded=set(events)
            )
            self._clip = clip
            for packet in self.ring.since(start_ms):
                writer.add(packet)
                clip.bytes += len(packet.data)
        except Exception:
            log.exception("camera %s: cannot open clip %s", self.camera_id, clip_id)
            self._discard(REASON_WRITE_FAILED)
            return None
        log.info("camera %s: clip %s started", self.camera_id, clip_id)
        return clip

    def _close(self) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        try:
            clip.writer.close()
            first, last = clip.writer.first_ms, clip.writer.last_ms
            if first is None or last is None:
                self.store.part_path(clip.id).unlink(missing_ok=True)
                return
            added = self.store.add(
                clip_id=clip.id,
                camera=self.camera_id,
                start_s=first / 1000 + clip.wall_offset_s,
                end_s=last / 1000 + clip.wall_offset_s,
                frames=clip.writer.packets,
                events=tuple(sorted(clip.recorded)),
            )
        except Exception:
            log.exception("camera %s: closing clip %s failed", self.camera_id, clip.id)
            self.store.part_path(clip.id).unlink(missing_ok=True)
            return
        self.clips_written += 1
        self.bytes_written += added.size_bytes
        log.info("camera %s: clip %s: %d bytes", self.camera_id, clip.id, added.size_bytes)

    def _discard(self, reason: str) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        try:
            clip.writer.close()
        except Exception:
            log.debug("closing a failed clip", exc_info=True)
        self.store.part_path(clip.id).unlink(missing_ok=True)
        for item, ref in self._live.items():
            if ref.id == clip.id:
                self._live[item] = ClipRef(None, reason)

    def _state(self, frame: Frame) -> SceneState:
        return SceneState(
            camera_id=self.camera_id,
            analyzer=STATE_ANALYZER,
            state="stopped" if self.stopped_reason else "recording",
            since_s=frame.captured_at_s,
            frame_time_s=frame.captured_at_s,
            detail={"reason": self.stopped_reason} if self.stopped_reason else {},
        )

    def finish(
        self, events: tuple[ObjectEvent, ...], alerts: tuple[Alert, ...]
    ) -> tuple[tuple[ObjectEvent, ...], tuple[Alert, ...]]:
        """A clean stop or end of file: the last ``end``s name their clip, which closes now
        (there is no post-roll to wait for)."""
        events = tuple(self._end_only(e) for e in events)
        alerts = tuple(self._end_only(a) for a in alerts)
        self._close()
        self.ring.clear()
        return events, alerts

    def _end_only(self, item: L) -> L:
        if item.lifecycle is not Lifecycle.END:
            return item
        item_id = item.event_id if isinstance(item, ObjectEvent) else item.alert_id
        return replace(item, clip=self._live.pop(item_id, ClipRef(None, REASON_NOT_RECORDED)))

    def stats(self) -> dict[str, object]:
        return {
            "recording": self._clip is not None,
            "stopped_reason": self.stopped_reason,
            "clips_written": self.clips_written,
            "bytes_written": self.bytes_written,
            "pre_roll_bytes": self.ring.bytes,
        }
