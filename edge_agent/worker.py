"""What one camera's threads share: its source, mailbox and pipeline, the latest frame, its
preview, its failures and where its stats interval began; and the two threads' loops
(``capture_loop``, ``analysis_loop``), each stopped by the event it is given, so a reload
can stop one generation of cameras and start the next.

``edge_agent/app.py``'s docstring says which thread writes which field; each field has one
writer, and a value read across threads is replaced whole (frozen dataclasses), never
changed in place.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

from edge_agent.capture import EndOfStream, FrameSource, LatestFrameMailbox, decimate_at_source
from edge_agent.capture.pixels import UnusablePixels, as_bgr8
from edge_agent.config import CameraConfig
from edge_agent.pipeline import CameraPipeline, StageClock
from edge_agent.preview import EncodeAt, PreviewBudget, thumbnail
from edge_agent.service.logs import worth_saying
from edge_agent.stats import CameraStats
from edge_agent.types import Frame

log = logging.getLogger("edge_agent.app")  # the agent's threads log as the agent

CAPTURE_TIMEOUT_S = 1.0
CAPTURE_RETRY_S = 5.0  # after a capture backend raised


@dataclass
class Preview:
    until_s: float  # monotonic
    budget: PreviewBudget  # its rate, size and quality; called by housekeeping only

    @property
    def next_due_s(self) -> float:
        return self.budget.next_due_s


_failure_order = itertools.count(1)  # which failure came last, across threads


@dataclass(frozen=True)
class Failures:
    """One thread's failures on one camera; the thread replaces the whole value."""

    count: int = 0
    last_error: str | None = None
    order: int = 0  # 0: none yet

    def add(self, error: str) -> Failures:
        return Failures(self.count + 1, error, next(_failure_order))


@dataclass(frozen=True)
class StatsMark:
    """Where the current stats interval began: the pipeline's counters then, and when."""

    frames: int = 0
    detector_runs: int = 0
    invokes: int = 0
    full_frame_passes: int = 0
    invoke_s: float = 0.0
    skipped_frames: int = 0
    at_mono_s: float | None = None  # None: the agent's start

    @classmethod
    def of(cls, clock: StageClock, now_s: float) -> StatsMark:
        return cls(
            clock.frames,
            clock.detector_runs,
            clock.invokes,
            clock.full_frame_passes,
            clock.seconds["invoke"],
            clock.skipped_frames,
            now_s,
        )


@dataclass
class CameraWorker:
    """One camera's threads and what they share; the module docstring says who writes
    which field."""

    config: CameraConfig
    source: FrameSource
    mailbox: LatestFrameMailbox
    pipeline: CameraPipeline
    capture_failures: Failures = field(default_factory=Failures)
    analysis_failures: Failures = field(default_factory=Failures)
    latest: Frame | None = None  # for snapshots and previews
    preview: Preview | None = None
    preview_bytes: int = 0  # JPEG bytes of previews sent since start (housekeeping writes)
    stats_mark: StatsMark = field(default_factory=StatsMark)
    last_frame_mono_s: float | None = None  # when the analysis thread last got a frame

    def new_preview(
        self, now_s: float, *, seconds: float, fps: float, width_px: int, budget_bps: int
    ) -> Preview:
        """A preview from now, within ``budget_bps`` and the camera's floors; never wider
        than the picture, so the ladder's widths are real."""
        frame, limits = self.latest, self.config.preview
        budget = PreviewBudget(
            budget_bps=budget_bps,
            width_px=width_px if frame is None else min(width_px, frame.image.shape[1]),
            fps=fps,
            min_width_px=limits.min_width_px,
            min_fps=limits.min_fps,
            start_s=now_s,
        )
        return Preview(now_s + seconds, budget)

    def preview_frame(self, preview: Preview, now_s: float, encode: EncodeAt) -> bytes | None:
        """The preview's JPEG due now within its budget, or None (housekeeping only)."""
        frame = self.latest
        if frame is None:
            preview.budget.wait(now_s)  # no frame yet: ask again one interval later
            return None
        sent = preview.budget.offer(now_s, thumbnail(frame.image), encode)
        if sent is None:
            return None
        self.preview_bytes += len(sent.jpeg)
        return sent.jpeg

    @property
    def failed_frames(self) -> int:
        return self.capture_failures.count + self.analysis_failures.count

    @property
    def last_error(self) -> str | None:
        capture, analysis = self.capture_failures, self.analysis_failures
        latest = capture if capture.order > analysis.order else analysis
        return latest.last_error

    def interval_stats(
        self, now_s: float, started_mono_s: float, *, new_interval: bool
    ) -> CameraStats:
        """This camera's figures since the last mark (``new_interval``: and set a new one)."""
        clock = self.pipeline.clock
        mark, now_mark = self.stats_mark, StatsMark.of(clock, now_s)
        d_invokes = now_mark.invokes - mark.invokes
        d_invoke_s = now_mark.invoke_s - mark.invoke_s
        elapsed_s = max(1e-6, now_s - (mark.at_mono_s or started_mono_s))
        if new_interval:
            self.stats_mark = now_mark
        return CameraStats(
            fps=(now_mark.frames - mark.frames) / elapsed_s,
            detector_runs=now_mark.detector_runs - mark.detector_runs,
            invokes=d_invokes,
            full_frame_passes=now_mark.full_frame_passes - mark.full_frame_passes,
            skipped_frames=now_mark.skipped_frames - mark.skipped_frames,
            inference_ms=1000.0 * d_invoke_s / d_invokes if d_invokes else None,
            motion_ratio=self.pipeline.last_motion_ratio,
            source=self.source.health(),
            failed_frames=self.failed_frames,
            preview_bytes=self.preview_bytes,
            last_error=self.last_error,
            stage_errors={**self.pipeline.stage_errors, **self.pipeline.reference_errors()},
        )

    def capture_loop(self, stop: threading.Event) -> None:
        """The ``capture-{cam}`` thread: source → mailbox, decimated to the camera's fps."""
        min_interval_s = 1.0 / self.config.fps
        decimate_at_source(self.source, min_interval_s)  # what this loop drops: not converted
        last_put_s: float | None = None
        conversions_said: set[str] = set()
        failing = 0  # failures in a row
        try:
            while not stop.is_set():
                try:
                    frame = self.source.read(CAPTURE_TIMEOUT_S)
                except EndOfStream:
                    log.info("camera %s: end of stream", self.config.id)
                    return
                except Exception as error:  # a backend bug: say so, back off, keep trying
                    self.capture_failures = self.capture_failures.add(f"capture failed: {error}")
                    failing += 1
                    if worth_saying(failing):
                        log.exception(
                            "camera %s: capture failed (%d times); retrying every %.0f s",
                            self.config.id,
                            self.capture_failures.count,
                            CAPTURE_RETRY_S,
                        )
                    stop.wait(CAPTURE_RETRY_S)
                    continue
                if frame is None:
                    continue
                # Decimate a faster source to the configured analysis rate.
                if last_put_s is not None and frame.monotonic_s - last_put_s < 0.9 * min_interval_s:
                    continue
                last_put_s = frame.monotonic_s
                try:
                    frame, converted = as_bgr8(frame)
                except UnusablePixels as error:
                    self.capture_failures = self.capture_failures.add(f"unusable frame: {error}")
                    failing += 1
                    if worth_saying(failing):
                        log.error(
                            "camera %s: frame dropped (%d so far): %s",
                            self.config.id,
                            self.capture_failures.count,
                            error,
                        )
                    continue
                if converted is not None and converted not in conversions_said:
                    conversions_said.add(converted)
                    log.warning(
                        "camera %s delivers %s pictures; converted to 8-bit BGR",
                        self.config.id,
                        converted,
                    )
                failing = 0
                self.mailbox.put(frame, wait_for_reader=not self.source.live)
        finally:
            self.mailbox.close()

    def analysis_loop(self, stop: threading.Event) -> None:
        """The ``analysis-{cam}`` thread: mailbox → pipeline; at the end, open events end."""
        last_frame: Frame | None = None
        failing = 0  # failures in a row
        while True:
            frame = self.mailbox.get(timeout_s=0.5)
            if frame is None:
                if self.mailbox.closed or stop.is_set():
                    break
                if self.source.live:  # a live camera that sends nothing: tamper's no_signal
                    self.pipeline.idle(time.monotonic(), time.time())
                continue
            last_frame = self.latest = frame
            self.last_frame_mono_s = time.monotonic()
            try:
                self.pipeline.process(frame)
                failing = 0
            except Exception as error:  # one bad frame must not stop the camera
                self.analysis_failures = self.analysis_failures.add(f"analysis failed: {error}")
                failing += 1
                if worth_saying(failing):
                    log.exception(
                        "camera %s: analysis failed on frame %d (%d failures so far)",
                        self.config.id,
                        frame.index,
                        self.analysis_failures.count,
                    )
        try:
            self.pipeline.finish(last_frame)
        except Exception:
            log.exception("camera %s: could not close open events", self.config.id)
