"""One camera's analysis: motion gate → detector → tracker → event engine → sink.

The pipeline never touches the network and never encodes: it hands each frame's
``FrameOutput`` to a ``FrameSink`` (edge_agent/sinks.py: the durable outbox when
running, stdout when replaying). It decides per frame whether the detector runs:

- the motion gate says something moved, or
- this frame moved where a live track (tentative too) is expected: no need to wait for
  the gate's ``min_frames`` when it is known what moves (at 5 fps a fast car crosses its
  length in the frame the gate waits), or
- live tracks exist and have not been refreshed for ``refresh_interval_s``
  (someone standing still has faded into the motion background but is still
  there; this is what lets the gate be strict about noise), or
- nothing has been detected for ``keepalive_interval_s`` (a cheap safety net);

except that on a busy scene the tracker may carry every object through up to
``max_skipped_frames`` frames in a row without the detector, when all of them are
confirmed and were seen by the last pass, all motion lies inside their expected boxes
(nothing new is coming in) and no full-frame pass is due (docs/pipeline.md §6, "Frames
the tracker carries").

Where it looks when it runs is the camera's ``FrameDetector``'s business: crops around
the gate's motion boxes and the live tracks, a full-frame pass on a cadence
(docs/pipeline.md §6). The gate therefore runs on every frame it is enabled for, even
when the detector runs anyway, because its boxes say where to look.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from edge_agent.analytics import (
    Alert,
    CountReport,
    ObjectRule,
    RuleContext,
    RuleOutput,
    SceneAnalyzer,
    SceneState,
    merge,
)
from edge_agent.analyzers import ReferenceHolder, SignalWatcher
from edge_agent.capture.base import EndOfStream, FrameSource
from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import untracked_motion
from edge_agent.events import EngineOutput, EventEngine
from edge_agent.motion import MotionGate
from edge_agent.service.logs import worth_saying
from edge_agent.track import TIME_SLACK_S, IouTracker
from edge_agent.types import Box, Frame, ObjectEvent, Thumbnail, Track

if TYPE_CHECKING:
    from edge_agent.config import DetectorConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
NO_STATES: tuple[SceneState, ...] = ()
# The tracker carries objects through a skipped frame only while the last detection pass is
# at most this old (the next one then at most a frame later: 0.6 s at 5 fps): a prediction
# from speed drifts with time, and at 3.3 fps a 0.9 s gap split a walker in the room clip.
CARRY_MAX_S = 0.4


@dataclass(frozen=True)
class FrameOutput:
    """Everything one analysed frame produced, before encoding."""

    events: tuple[ObjectEvent, ...] = ()
    thumbnails: tuple[Thumbnail, ...] = ()
    alerts: tuple[Alert, ...] = ()
    states: tuple[SceneState, ...] = ()
    counts: tuple[CountReport, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.events or self.thumbnails or self.alerts or self.states or self.counts)


class FrameRecorder(Protocol):
    """Records the camera (edge_agent.recording.CameraRecorder): sees every analysed frame
    and what began or ended on it, and fills in each ``end``'s clip."""

    def observe(
        self, frame: Frame, events: tuple[ObjectEvent, ...], alerts: tuple[Alert, ...]
    ) -> tuple[tuple[ObjectEvent, ...], tuple[Alert, ...], tuple[SceneState, ...]]: ...

    def finish(
        self, events: tuple[ObjectEvent, ...], alerts: tuple[Alert, ...]
    ) -> tuple[tuple[ObjectEvent, ...], tuple[Alert, ...]]: ...

    def stats(self) -> dict[str, object]: ...


class FrameSink(Protocol):
    """Where a frame's output goes (only non-empty outputs are emitted). ``emit`` must
    return quickly, and only once the output is safe (the outbox sink: stored durably)."""

    def emit(self, output: FrameOutput) -> None: ...


STAGES = (
    "decode",
    "motion",
    "preprocess",
    "invoke",
    "postprocess",
    "track",
    "events",
    "rules",
    "analyzers",
    "record",
    "outbox",
)


@dataclass
class StageClock:
    """Seconds spent per stage and counts, for stats and bench/."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    detector_runs: int = 0  # frames on which the detector ran (one or more invokes)
    invokes: int = 0  # detector invokes: full-frame passes, regions and regrowths
    full_frame_passes: int = 0
    max_invokes_per_frame: int = 0
    motion_frames: int = 0
    skipped_frames: int = 0  # the gate was open, the tracker carried every object instead

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def per_frame_ms(self) -> dict[str, float]:
        frames = max(1, self.frames)
        return {stage: 1000.0 * s / frames for stage, s in self.seconds.items()}


@dataclass(frozen=True)
class GateSettings:
    refresh_interval_s: float = 1.0
    keepalive_interval_s: float = 10.0
    # At most this many analysed frames in a row on which the tracker carries every object
    # without the detector (0: never); the camera's ``max_skipped_frames``.
    max_skipped_frames: int = 0

    @classmethod
    def from_config(cls, config: DetectorConfig, max_skipped_frames: int = 0) -> GateSettings:
        return cls(
            refresh_interval_s=config.refresh_interval_s,
            keepalive_interval_s=config.keepalive_interval_s,
            max_skipped_frames=max_skipped_frames,
        )


class CameraPipeline:
    """One camera's stages. Not thread-safe: only that camera's analysis thread calls it
    (the model shared between cameras sits in its ``FrameDetector`` as a ``LockedDetector``)."""

    def __init__(
        self,
        *,
        camera_id: str,
        motion: MotionGate,
        detector: FrameDetector,
        tracker: IouTracker,
        engine: EventEngine,
        sink: FrameSink,
        gate: GateSettings | None = None,
        rules: Sequence[ObjectRule] = (),
        analyzers: Sequence[SceneAnalyzer] = (),
        recorder: FrameRecorder | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._motion = motion
        self._detector = detector
        self._tracker = tracker
        self._engine = engine
        self._sink = sink
        self._gate = gate or GateSettings()
        self._rules = tuple(rules)
        self._analyzers = tuple(analyzers)
        self.recorder = recorder
        self._last_detect_s: float | None = None
        self._skipped_in_row = 0
        self.clock = StageClock()
        self.last_motion_ratio = 0.0
        self.last_tracks: tuple[Track, ...] = ()  # confirmed tracks at the last frame
        self.stage_errors: dict[str, int] = {}  # rule/analyzer name -> failures

    @property
    def analyzers(self) -> tuple[SceneAnalyzer, ...]:
        """This camera's scene analyzers (a command asks them for a new reference)."""
        return self._analyzers

    def reference_errors(self) -> dict[str, int]:
        """``{analyzer} reference`` -> its reference errors, for the analyzers with any:
        beside ``stage_errors`` in stats, so a full disk that keeps a reference from being
        kept is seen from the centre, not only in the device's log."""
        return {
            f"{a.name} reference": a.reference_errors
            for a in self._analyzers
            if isinstance(a, ReferenceHolder) and a.reference_errors
        }

    @property
    def open_events(self) -> int:
        """Object events open now (an update waits for none: docs/updates.md)."""
        return self._engine.open_events

    def _should_detect(self, now_s: float, has_motion: bool) -> bool:
        if has_motion or self._last_detect_s is None:
            return True
        since_s = now_s - self._last_detect_s
        if self._tracker.has_live_tracks and since_s >= self._gate.refresh_interval_s:
            return True
        return since_s >= self._gate.keepalive_interval_s

    def _carried(self, now_s: float, motion: Sequence[Box]) -> bool:
        """Whether the tracker carries every object through this frame instead of the
        detector: within the camera's ``max_skipped_frames`` in a row and ``CARRY_MAX_S`` of
        the last pass, no full-frame pass due, every track one the tracker can carry
        (``IouTracker.carried_boxes``) and all motion inside their boxes where their speed
        takes them (motion outside is something coming in)."""
        if self._skipped_in_row >= self._gate.max_skipped_frames:
            return False
        last_s = self._last_detect_s
        if last_s is None or now_s - last_s > CARRY_MAX_S + TIME_SLACK_S:
            return False
        if self._detector.full_frame_due(now_s):
            return False
        boxes = self._tracker.carried_boxes(now_s)
        padding = self._detector.region_settings.track_padding
        return boxes is not None and not untracked_motion(motion, boxes, padding)

    def process(self, frame: Frame, *, always_detect: bool = False) -> FrameOutput:
        clock = self.clock
        clock.frames += 1
        now_s = frame.monotonic_s
        motion_boxes: tuple[Box, ...] = ()
        has_motion = False
        if self._motion.settings.enabled:
            started = time.perf_counter()
            motion = self._motion.update(frame.for_analysis, now_s)
            self.last_motion_ratio = motion.motion_ratio
            clock.add("motion", time.perf_counter() - started)
            has_motion, motion_boxes = motion.has_motion, motion.regions
            if has_motion:
                clock.motion_frames += 1
        # Without a gate, or asked to, the detector runs anyway.
        detection_ran = (
            always_detect
            or not self._motion.settings.enabled
            or self._should_detect(now_s, has_motion)
        )
        expected = self._tracker.expected_tracks(now_s) if detection_ran or motion_boxes else ()
        # ... and where a live track moves (tentative too), before the gate's ``min_frames``.
        detection_ran = detection_ran or _moves_at(motion_boxes, expected)
        carried = (
            detection_ran
            and has_motion
            and not always_detect
            and self._carried(now_s, motion_boxes)
        )
        if carried:
            detection_ran = False
            self._skipped_in_row += 1
            clock.skipped_frames += 1
        if detection_ran:
            self._skipped_in_row = 0
            found = self._detector.detect(
                frame.image, now_s=now_s, motion=motion_boxes, tracks=expected
            )
            result = found.result
            clock.detector_runs += 1
            clock.invokes += found.figures.invokes
            clock.full_frame_passes += found.figures.full_frame
            clock.max_invokes_per_frame = max(clock.max_invokes_per_frame, found.figures.invokes)
            clock.add("preprocess", result.preprocess_s)
            clock.add("invoke", result.invoke_s)
            clock.add("postprocess", result.postprocess_s)
            self._last_detect_s = now_s
            started = time.perf_counter()
            tracks = self._tracker.update(result.detections, now_s, found.looked_at)
        else:
            started = time.perf_counter()
            tracks = self._tracker.tick(now_s, carried=carried)
        clock.add("track", time.perf_counter() - started)
        self.last_tracks = self._tracker.live_tracks()  # replaced whole: the page draws them

        started = time.perf_counter()
        engine_output = self._engine.update(frame, tracks)
        clock.add("events", time.perf_counter() - started)
        rule_output = self._run_rules(frame, detection_ran, finishing=False)
        started = time.perf_counter()
        states = tuple(
            state
            for analyzer in self._analyzers
            for state in self._guarded(
                analyzer.name, partial(analyzer.update, frame, now_s), NO_STATES
            )
        )
        clock.add("analyzers", time.perf_counter() - started)
        output = _combine(engine_output, rule_output, states)
        if self.recorder is not None:
            started = time.perf_counter()
            events, alerts, recording = self._guarded(  # a recorder bug costs the clip only
                "recording",
                partial(self.recorder.observe, frame, output.events, output.alerts),
                (output.events, output.alerts, NO_STATES),
            )
            output = replace(output, events=events, alerts=alerts, states=output.states + recording)
            clock.add("record", time.perf_counter() - started)
        self._emit(output)
        return output

    def idle(self, now_s: float, wall_s: float) -> FrameOutput:
        """No frame arrived for a while (live cameras only): analyzers that watch the signal
        may report it lost."""
        states = tuple(
            state
            for analyzer in self._analyzers
            if isinstance(analyzer, SignalWatcher)
            for state in analyzer.no_frames(now_s, wall_s)
        )
        output = FrameOutput(states=states)
        self._emit(output)
        return output

    def _run_rules(self, frame: Frame, detection_ran: bool, *, finishing: bool) -> RuleOutput:
        if not self._rules:
            return RuleOutput()
        started = time.perf_counter()
        context = RuleContext(
            camera_id=self.camera_id,
            frame=frame,
            now_s=frame.monotonic_s,
            wall_s=frame.captured_at_s,
            tracks=self._tracker.live_tracks(),
            detection_ran=detection_ran,
        )
        outputs = [
            self._guarded(
                rule.name, partial(rule.finish if finishing else rule.update, context), RuleOutput()
            )
            for rule in self._rules
        ]
        self.clock.add("rules", time.perf_counter() - started)
        return merge(outputs)

    def _guarded(self, name: str, call: Callable[[], T], fallback: T) -> T:
        """One rule's or analyzer's bug costs its own output, not the frame's events."""
        try:
            return call()
        except Exception:
            count = self.stage_errors[name] = self.stage_errors.get(name, 0) + 1
            if worth_saying(count):
                log.exception("camera %s: %s failed (%d times)", self.camera_id, name, count)
            return fallback

    def finish(self, last_frame: Frame | None = None) -> FrameOutput:
        """End every open event and alert, flush counts (end of file, clean stop)."""
        rule_output = (
            self._run_rules(last_frame, False, finishing=True)
            if last_frame is not None
            else RuleOutput()
        )
        engine_output = self._engine.finish(self._tracker.finish())
        output = _combine(engine_output, rule_output, ())
        if self.recorder is not None:
            events, alerts = self.recorder.finish(output.events, output.alerts)
            output = replace(output, events=events, alerts=alerts)
        self._emit(output)
        return output

    def _emit(self, output: FrameOutput) -> None:
        if not output:
            return
        started = time.perf_counter()
        self._sink.emit(output)
        self.clock.add("outbox", time.perf_counter() - started)


def _moves_at(motion: Sequence[Box], tracks: Sequence[Track]) -> bool:
    """Whether this frame's motion touches a live track where it is expected."""
    return any(m.intersection(t.box) > 0.0 for m in motion for t in tracks)


def _combine(
    engine_output: EngineOutput, rule_output: RuleOutput, states: tuple[SceneState, ...]
) -> FrameOutput:
    return FrameOutput(
        events=engine_output.events,
        thumbnails=engine_output.thumbnails,
        alerts=rule_output.alerts,
        states=rule_output.states + states,
        counts=rule_output.counts,
    )


def frames_of(source: FrameSource, *, read_timeout_s: float = 5.0) -> Iterator[Frame]:
    """A finite source's frames, until ``EndOfStream`` (a read that timed out is skipped)."""
    while True:
        try:
            frame = source.read(read_timeout_s)
        except EndOfStream:
            return
        if frame is not None:
            yield frame


@dataclass(frozen=True)
class OfflineRun:
    """What ``run_offline`` went through."""

    frames_read: int  # every frame the source gave, analysed or not
    last_frame: Frame | None  # the last frame analysed


def run_offline(
    source: FrameSource,
    pipeline: CameraPipeline,
    *,
    every: int = 1,
    min_interval_s: float | None = None,
    always_detect: bool = False,
    on_frame: Callable[[Frame], None] | None = None,
    on_output: Callable[[Frame, FrameOutput], None] | None = None,
    read_timeout_s: float = 5.0,
) -> OfflineRun:
    """A finite source through the pipeline as fast as it decodes, then ``finish``.

    Offline the video's own time runs as fast as we can decode, so every selected frame
    is analysed: what makes replay and eval faithful to what the live agent would see.
    ``every`` keeps every Nth frame read; ``min_interval_s`` drops frames closer than that
    in stream time, as the capture thread decimates a fast camera. ``on_frame`` sees a
    frame before the pipeline does, ``on_output`` what it made of it. The caller closes
    the source.
    """
    read = 0
    last: Frame | None = None
    for frame in frames_of(source, read_timeout_s=read_timeout_s):
        read += 1
        if (read - 1) % every:
            continue
        if (
            min_interval_s is not None
            and last is not None
            and frame.monotonic_s - last.monotonic_s < 0.9 * min_interval_s
        ):
            continue
        if on_frame is not None:
            on_frame(frame)
        output = pipeline.process(frame, always_detect=always_detect)
        if on_output is not None:
            on_output(frame, output)
        last = frame
    pipeline.finish(last)
    return OfflineRun(frames_read=read, last_frame=last)
