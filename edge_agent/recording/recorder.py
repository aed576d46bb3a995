"""One camera's recorder: an event or alert ``new`` opens a clip (or joins the one open),
an ``end`` lets it run ``post_roll_s`` more, and it closes once nothing it records is
still going on.

Where the packets come from: a camera whose capture backend hands over its own stream
(``packets``: an IP camera through the PyAV backend) is **remuxed** — its packets go into
the pre-roll and the clip as they came, at the stream's own rate and size, with no
encoding. Any other camera (the Pi camera, the simulator, OpenCV) has every analysed frame
**encoded** here (libx264 ``ultrafast``, a few ms per frame at 720p), through
``frame_filter`` (privacy) first.

It runs in the camera's analysis thread, after the pipeline's stages and before the sink
(``CameraPipeline(recorder=...)``), so it sees the frame and what was found in it, and it
writes each ``end``'s clip (or why there is none) into the ``end`` itself. A clip that
closes is finished (MP4 index, sha256, fsync, index row) on the store's finisher thread:
the analysis goes on meanwhile. Disk use is
checked at every keyframe of an open clip, so the caps are overshot by at most one
keyframe interval of video (one "segment"). Packets of another stream (a camera that
reconnected, a size change) never share a file: the clip ends there and goes on in a new
one from the new stream's first keyframe.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from edge_agent.analytics import Alert, SceneState
from edge_agent.recording.finisher import FinishJob, FinishResult
from edge_agent.recording.ring import PreRoll
from edge_agent.recording.store import ClipStore
from edge_agent.service.logs import worth_saying
from edge_agent.types import ClipRef, Frame, Lifecycle, ObjectEvent, StreamFormat, VideoPacket
from edge_agent.video import FrameFilter, H264Encoder, Mp4Writer, identity

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
    width_px: int | None = None  # None: the camera's width (encoded cameras only)
    crf: int = 28  # libx264 quality: higher is smaller (encoded cameras only)
    pre_roll_max_bytes: int | None = None  # None: bounded by pre_roll_s alone


class PacketFeed(Protocol):
    """A camera's own compressed packets, handed over by its capture backend
    (``edge_agent.capture.PacketFeed``): taken on this thread at every analysed frame."""

    @property
    def remuxing(self) -> bool:
        """The stream's packets can go into a clip as they are (else frames are encoded)."""
        ...

    def drain(self) -> list[VideoPacket]: ...


@dataclass
class _OpenClip:
    id: str
    writer: Mp4Writer | None  # None until the clip's first keyframe comes
    stream: StreamFormat | None  # the stream its file holds (set with the writer)
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
        packets: PacketFeed | None = None,
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
        self.packets = packets  # the camera's own stream, remuxed; None: encode frames
        self.ring = PreRoll(self.settings.pre_roll_s, self.settings.pre_roll_max_bytes)
        self._ring_stream: StreamFormat | None = None  # what the ring's packets belong to
        self._clip: _OpenClip | None = None
        self._live: dict[str, ClipRef] = {}  # open event/alert id -> its clip or reason
        self.stopped_reason: str | None = None  # set while recording is refused
        self.clips_written = 0  # indexed (finished): these three change on the finisher's thread
        self.bytes_written = 0
        self.finish_failed = 0
        self.last_finish_error: str | None = None
        self.encode_failed = 0  # frames the encoder refused (a stream gone odd): not in clips
        self.last_encode_error: str | None = None
        self._encode_failing = 0  # refused in a row: what the log rule counts

    # -- per frame ---------------------------------------------------------------

    def observe(
        self,
        frame: Frame,
        events: tuple[ObjectEvent, ...],
        alerts: tuple[Alert, ...],
    ) -> tuple[tuple[ObjectEvent, ...], tuple[Alert, ...], tuple[SceneState, ...]]:
        """Take the camera's packets (or encode ``frame``), start or extend clips for what
        began or ended on it; the events and alerts with each ``end``'s clip filled in,
        and a recording state when recording stopped or resumed."""
        stopped_before = self.stopped_reason
        now_ms = round(1000 * frame.monotonic_s)
        offset_s = frame.captured_at_s - frame.monotonic_s
        packets = self.packets.drain() if self.packets is not None else []
        if self.packets is None or not self.packets.remuxing:
            try:
                packets += self.encoder.encode(frame.image, now_ms)
                self._encode_failing = 0
            except Exception as error:  # this frame is missing from the clip; said, counted
                self._encode_failed(error)
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

    def _add(self, packet: VideoPacket) -> None:
        clip = self._clip
        split: _OpenClip | None = None
        if clip is not None and clip.stream is not None and packet.stream is not clip.stream:
            split = clip  # a reconnect or a new size: the clip ends, a new one follows
            self._close()
        elif clip is not None and clip.writer is not None and packet.keyframe:
            first_ms = clip.writer.first_ms if clip.writer.first_ms is not None else packet.pts_ms
            if packet.pts_ms - first_ms >= round(1000 * self.settings.max_clip_s):
                split = clip  # it goes on in a new clip, from this keyframe
                self._close()
            elif self._refused(clip.bytes):
                self._close()  # truncated here: the caps allow no more
        if packet.stream is not self._ring_stream:
            self.ring.clear()  # packets of another stream cannot share a file
            self._ring_stream = packet.stream
        self.ring.add(packet)
        if split is not None:
            # From this packet if it is a keyframe, else from the new stream's first one.
            self._open(set(split.events), split.wall_offset_s, split.until_ms, packet.pts_ms)
            return  # the new clip took what it could of this packet from the ring
        clip = self._clip
        if clip is not None:
            self._write(clip, packet)

    def _write(self, clip: _OpenClip, packet: VideoPacket) -> None:
        """``packet`` into ``clip``; its file is made at its first keyframe."""
        try:
            if clip.writer is None:
                if not packet.keyframe or packet.stream is None:
                    return  # a clip starts at a keyframe
                clip.writer = Mp4Writer(self.store.part_path(clip.id), packet.stream)
                clip.stream = packet.stream
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
        """A new clip for ``events`` from the kept keyframe at or before ``start_ms``, or
        from the next keyframe when none is kept yet (a camera that just reconnected)."""
        clip_id = f"{self.camera_id}-{round(1000 * (start_ms / 1000 + offset_s))}-" + (
            secrets.token_hex(2)
        )
        clip = _OpenClip(clip_id, None, None, offset_s, events, until_ms, recorded=set(events))
        self._clip = clip
        for packet in self.ring.since(start_ms):
            self._write(clip, packet)
            if self._clip is not clip:
                return None  # writing failed (logged; its triggers say so)
        log.info("camera %s: clip %s started", self.camera_id, clip_id)
        return clip

    def _close(self) -> None:
        """The open clip ends: its file is finished (closed, hashed, fsynced, indexed) on
        the store's finisher thread, not here (edge_agent/recording/finisher.py)."""
        clip, self._clip = self._clip, None
        if clip is None:
            return
        if clip.writer is None:
            log.warning(
                "camera %s: clip %s ended before its first keyframe", self.camera_id, clip.id
            )
            return
        self.store.finisher.submit(
            FinishJob(
                clip_id=clip.id,
                camera=self.camera_id,
                writer=clip.writer,
                wall_offset_s=clip.wall_offset_s,
                events=tuple(sorted(clip.recorded)),
                bytes=clip.bytes,
                done=self._finished,
            )
        )

    def _finished(self, result: FinishResult) -> None:
        """On the finisher's thread (the only one to change these counters)."""
        if result.error is not None:
            self.finish_failed += 1
            self.last_finish_error = f"clip {result.clip_id}: {result.error}"
        elif result.clip is not None:
            self.clips_written += 1
            self.bytes_written += result.clip.size_bytes
            log.info(
                "camera %s: clip %s: %d bytes",
                self.camera_id,
                result.clip_id,
                result.clip.size_bytes,
            )

    def _discard(self, reason: str) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        try:
            if clip.writer is not None:
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
        for packet in self.packets.drain() if self.packets is not None else ():
            self._add(packet)  # the stream's last packets, demuxed after the last frame
        self._close()
        self.ring.clear()
        return events, alerts

    def _end_only(self, item: L) -> L:
        if item.lifecycle is not Lifecycle.END:
            return item
        item_id = item.event_id if isinstance(item, ObjectEvent) else item.alert_id
        return replace(item, clip=self._live.pop(item_id, ClipRef(None, REASON_NOT_RECORDED)))

    def _encode_failed(self, error: Exception) -> None:
        self.encode_failed += 1
        self.last_encode_error = f"{type(error).__name__}: {error}"
        self._encode_failing += 1
        count, in_a_row = self.encode_failed, self._encode_failing
        if worth_saying(in_a_row):
            log.error(
                "camera %s: a frame could not be encoded for recording (%d so far): %s",
                self.camera_id,
                count,
                self.last_encode_error,
                exc_info=not isinstance(error, ValueError),  # a bug gets its traceback
            )

    def stats(self) -> dict[str, object]:
        return {
            "recording": self._clip is not None,
            "mode": "remux" if self.packets is not None and self.packets.remuxing else "encode",
            "stopped_reason": self.stopped_reason,
            "clips_written": self.clips_written,
            "bytes_written": self.bytes_written,
            "finish_failed": self.finish_failed,  # clips lost to a write error at the end
            "last_finish_error": self.last_finish_error,
            "encode_failed": self.encode_failed,
            "last_encode_error": self.last_encode_error,
            "pre_roll_bytes": self.ring.bytes,
        }
