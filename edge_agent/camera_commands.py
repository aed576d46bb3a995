"""The command-centre commands that act on one camera: snapshot, preview, references.

A mixin of ``edge_agent.app.Agent`` (kept apart so the agent's file holds its threads and
lifecycle): it reads ``workers`` and takes ``_preview_lock`` as the thread table in
``edge_agent.app`` says — the ``mqtt-commands`` thread switches a preview on or off, the
``housekeeping`` thread sends its frames.
"""

from __future__ import annotations

import logging
import threading
import time

from edge_agent.analyzers import ReferenceFileError, request_references
from edge_agent.analyzers.reference import ReferenceMode
from edge_agent.encode import Topics
from edge_agent.events import jpeg_of_box
from edge_agent.mqtt import Publisher
from edge_agent.privacy import protect
from edge_agent.types import Box
from edge_agent.worker import CameraWorker

__all__ = ["PREVIEW_EXPIRY_S", "CameraCommands"]

log = logging.getLogger("edge_agent.app")

PREVIEW_EXPIRY_S = 10  # a preview frame older than this is of no use to anyone


class CameraCommands:
    workers: list[CameraWorker]
    _preview_lock: threading.Lock
    publisher: Publisher
    topics: Topics

    def camera_ids(self) -> tuple[str, ...]:
        return tuple(w.config.id for w in self.workers)

    def _worker(self, camera_id: str) -> CameraWorker:
        return next(w for w in self.workers if w.config.id == camera_id)

    def snapshot_jpeg(self, camera_id: str, width_px: int, jpeg_quality: int = 80) -> bytes | None:
        """The one place a whole frame becomes a JPEG (snapshot replies, previews): masked
        and face-blurred first."""
        worker = self._worker(camera_id)
        frame = worker.latest
        if frame is None:
            return None
        image = protect(worker.config, frame.image)
        return jpeg_of_box(image, Box(0.0, 0.0, 1.0, 1.0), width_px, jpeg_quality)

    def set_preview(
        self,
        camera_id: str,
        *,
        on: bool,
        seconds: float,
        fps: float,
        width_px: int,
        budget_bps: int | None = None,
    ) -> int:
        worker = self._worker(camera_id)
        limits = worker.config.preview
        budget = limits.budget_bps if budget_bps is None else min(budget_bps, limits.budget_bps)
        if not on:
            with self._preview_lock:
                worker.preview = None
            return budget
        preview = worker.new_preview(
            time.monotonic(), seconds=seconds, fps=fps, width_px=width_px, budget_bps=budget
        )
        with self._preview_lock:
            worker.preview = preview
        log.info("camera %s: preview on for %.0f s, %d bit/s", camera_id, seconds, budget)
        return budget

    def set_references(
        self, camera_id: str, *, mode: ReferenceMode, analyzers: list[str] | None
    ) -> list[str]:
        """Ask a camera's analyzers (all, or those named) for a new reference of the clear
        scene; the names asked. Only queues the request: the analysis thread takes it at
        its next frame. ``ValueError`` with the reason when it cannot be done."""
        pipeline = self._worker(camera_id).pipeline
        try:
            return request_references(pipeline.analyzers, mode, analyzers)
        except KeyError as error:
            known = ", ".join(a.name for a in pipeline.analyzers) or "none"
            raise ValueError(
                f"camera {camera_id!r} has no analyzer {error.args[0]}; it has: {known}"
            ) from None
        except ReferenceFileError as error:
            raise ValueError(f"cannot keep a reference: {error}") from None

    def _send_preview(self, worker: CameraWorker, now_s: float) -> None:
        preview = worker.preview
        if preview is None or now_s < preview.next_due_s:
            return
        if now_s >= preview.until_s:
            with self._preview_lock:
                if worker.preview is preview:  # not replaced by a new command meanwhile
                    worker.preview = None
            log.info("camera %s: preview ended", worker.config.id)
            return
        camera_id = worker.config.id
        sent = worker.preview_frame(  # within the camera's byte budget (edge_agent/preview.py)
            preview, now_s, lambda r: self.snapshot_jpeg(camera_id, r.width_px, r.jpeg_quality)
        )
        if sent is not None:
            self.publisher.publish_volatile(
                self.topics.preview(camera_id),
                sent,
                content_type="image/jpeg",
                expiry_s=PREVIEW_EXPIRY_S,
            )
