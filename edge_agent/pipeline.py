"""One camera's analysis: motion gate → detector → tracker → event engine → sink.

The pipeline never touches the network: it hands encoded messages to an
``EventSink`` (the durable outbox when running, stdout when replaying). It
decides per frame whether the detector runs:

- the motion gate says something moved, or
- live tracks exist and have not been refreshed for ``refresh_interval_s``
  (someone standing still has faded into the motion background but is still
  there; this is what lets the gate be strict about noise), or
- nothing has been detected for ``keepalive_interval_s`` (a cheap safety net).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.detect.base import Detector
from edge_agent.encode import Topics, encode_event, encode_thumbnail
from edge_agent.events import EngineOutput, EventEngine
from edge_agent.motion import MotionGate
from edge_agent.track import IouTracker, TrackUpdate
from edge_agent.types import DetectionResult, Frame, ObjectEvent, OutboundMessage


class EventSink(Protocol):
    """Where encoded messages go. ``emit`` must return quickly and only once they are safe."""

    def emit(self, messages: Sequence[OutboundMessage], events: Sequence[ObjectEvent]) -> None: ...


STAGES = ("decode", "motion", "preprocess", "invoke", "postprocess", "track", "events", "outbox")


@dataclass
class StageClock:
    """Seconds spent per stage and counts, for stats and bench/."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    detector_runs: int = 0
    motion_frames: int = 0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def per_frame_ms(self) -> dict[str, float]:
        frames = max(1, self.frames)
        return {stage: 1000.0 * s / frames for stage, s in self.seconds.items()}


@dataclass(frozen=True)
class GateSettings:
    refresh_interval_s: float = 1.0
    keepalive_interval_s: float = 10.0


class CameraPipeline:
    def __init__(
        self,
        *,
        camera_id: str,
        motion: MotionGate,
        detector: Detector,
        detector_lock: threading.Lock,
        tracker: IouTracker,
        engine: EventEngine,
        topics: Topics,
        boot_id: str,
        sink: EventSink,
        gate: GateSettings | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._motion = motion
        self._detector = detector
        self._detector_lock = detector_lock
        self._tracker = tracker
        self._engine = engine
        self._topics = topics
        self._boot_id = boot_id
        self._sink = sink
        self._gate = gate or GateSettings()
        self._last_detect_s: float | None = None
        self.clock = StageClock()
        self.last_motion_ratio = 0.0

    def _should_detect(self, now_s: float, has_motion: bool) -> bool:
        if has_motion or self._last_detect_s is None:
            return True
        since_s = now_s - self._last_detect_s
        if self._tracker.has_live_tracks and since_s >= self._gate.refresh_interval_s:
            return True
        return since_s >= self._gate.keepalive_interval_s

    def process(self, frame: Frame, *, always_detect: bool = False) -> EngineOutput:
        clock = self.clock
        clock.frames += 1
        started = time.perf_counter()
        motion = self._motion.update(frame.for_analysis)
        self.last_motion_ratio = motion.motion_ratio
        clock.add("motion", time.perf_counter() - started)
        if motion.has_motion:
            clock.motion_frames += 1

        now_s = frame.monotonic_s
        if always_detect or self._should_detect(now_s, motion.has_motion):
            with self._detector_lock:
                result: DetectionResult = self._detector.detect(frame.image)
            clock.detector_runs += 1
            clock.add("preprocess", result.preprocess_s)
            clock.add("invoke", result.invoke_s)
            clock.add("postprocess", result.postprocess_s)
            self._last_detect_s = now_s
            started = time.perf_counter()
            tracks = self._tracker.update(result.detections, now_s)
        else:
            started = time.perf_counter()
            tracks = self._tracker.tick(now_s)
        clock.add("track", time.perf_counter() - started)
        return self._publish(frame, tracks)

    def _publish(self, frame: Frame, tracks: TrackUpdate) -> EngineOutput:
        started = time.perf_counter()
        output = self._engine.update(frame, tracks)
        messages = self._encode(output)
        self.clock.add("events", time.perf_counter() - started)
        self._emit(messages, output.events)
        return output

    def finish(self) -> EngineOutput:
        """End every open event (end of file, clean stop)."""
        output = self._engine.finish(self._tracker.finish())
        self._emit(self._encode(output), output.events)
        return output

    def _encode(self, output: EngineOutput) -> list[OutboundMessage]:
        # Events before their thumbnails: `seq` order then reads new → thumbnail → update → end.
        messages = [encode_event(self._topics, e, self._boot_id) for e in output.events]
        messages.extend(encode_thumbnail(self._topics, t) for t in output.thumbnails)
        return messages

    def _emit(self, messages: list[OutboundMessage], events: Sequence[ObjectEvent]) -> None:
        if not messages:
            return
        started = time.perf_counter()
        self._sink.emit(messages, events)
        self.clock.add("outbox", time.perf_counter() - started)
