"""Finishing clips off the analysis threads.

A clip that closes still has its slow part ahead: the MP4 index (``moov``) written at the
muxer's close, the file read back for its sha256, fsynced, renamed and its directory
fsynced, then its row in the index. On an SD card that is seconds for a long clip, and the
analysis thread must not wait for it. So the recorder hands the closed clip
(:class:`FinishJob`) to a :class:`ClipFinisher`: one thread per clip store (the cameras
share a disk), first in first out, so a camera's clips are indexed in the order they
closed. A clip is in the index (``clips`` command, ``status``) only once its file is
complete and durable, as before.

The sha256 is taken by reading the closed file back on this thread: the MP4 muxer patches
the ``mdat`` size near the file's start at close, so a hash taken while muxing would be of
other bytes (the file was just written, so its pages are mostly still in memory).

Bounded: at most ``max_pending`` clips wait; one more makes the analysis thread wait for a
slot (logged), since dropping a clip is not an option. A clip waiting or being finished
counts against the byte cap (its file as it is on disk: ``ClipStore``) though it is not
indexed yet. ``close`` finishes what waits (up to ``timeout_s``; a clip still unfinished
then is logged by id and its ``.part`` is deleted at the next start). After ``close``, a
clip is finished on the caller's thread. A finish that fails (a full disk, an I/O error)
is logged with the clip and the error, its ``.part`` deleted, and reported to the recorder
(``status``: ``finish_failed``, ``last_finish_error``); recording goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge_agent.recording.store import Clip

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 8
CLOSE_TIMEOUT_S = 30.0  # within the service's stop timeout (45 s, deploy/systemd)


class ClosingFile(Protocol):
    """A clip's writer (``edge_agent.video.Mp4Writer``) as finishing needs it."""

    @property
    def first_ms(self) -> int | None: ...

    @property
    def last_ms(self) -> int | None: ...

    @property
    def packets(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FinishResult:
    clip_id: str
    camera: str
    clip: Clip | None  # None: nothing to index (no frame), or it failed
    error: str | None = None  # why it failed; the ``.part`` was deleted


@dataclass(frozen=True)
class FinishJob:
    """A closed clip to make durable and index."""

    clip_id: str
    camera: str
    writer: ClosingFile  # still open: its close writes the MP4 index
    wall_offset_s: float  # wall clock minus the writer's ms clock
    events: tuple[str, ...]
    bytes: int  # written so far: counted against the caps until indexed
    done: Callable[[FinishResult], None] | None = None  # on the finisher's thread


class ClipFinisher:
    """One thread that finishes clips in the order they are submitted; thread-safe."""

    def __init__(
        self,
        finish: Callable[[FinishJob], Clip | None],
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        name: str = "clip-finisher",
    ) -> None:
        self._finish = finish
        self.max_pending = max_pending
        self._name = name
        self._cond = threading.Condition()
        self._waiting: deque[FinishJob] = deque()
        self._running: FinishJob | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.finished = 0
        self.failed = 0

    def submit(self, job: FinishJob) -> None:
        """Queue ``job``; waits while ``max_pending`` clips wait already. After ``close``,
        finishes it here."""
        with self._cond:
            if not self._closed:
                if len(self._waiting) >= self.max_pending:
                    log.warning(
                        "clips: %d clips wait to be finished (a slow disk): camera %s waits",
                        len(self._waiting),
                        job.camera,
                    )
                    self._cond.wait_for(
                        lambda: len(self._waiting) < self.max_pending or self._closed
                    )
                if not self._closed:
                    self._waiting.append(job)
                    self._start_locked()
                    self._cond.notify_all()
                    return
        self._run(job)

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._waiting) or self._closed)
                if not self._waiting:
                    return  # closed, nothing left
                job = self._running = self._waiting.popleft()
                self._cond.notify_all()  # a slot is free
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, job: FinishJob) -> None:
        try:
            clip = self._finish(job)
        except Exception as error:
            self.failed += 1
            reason = f"{type(error).__name__}: {error}"
            log.error(
                "camera %s: clip %s could not be finished (%s): not indexed, its file deleted;"
                " recording goes on",
                job.camera,
                job.clip_id,
                reason,
            )
            result = FinishResult(job.clip_id, job.camera, None, reason)
        else:
            self.finished += 1
            result = FinishResult(job.clip_id, job.camera, clip)
        if job.done is not None:
            try:
                job.done(result)
            except Exception:
                log.exception("clips: reporting clip %s", job.clip_id)

    def pending(self) -> int:
        """Clips waiting or being finished."""
        with self._cond:
            return len(self._waiting) + (self._running is not None)

    def pending_jobs(self) -> list[FinishJob]:
        """The clips waiting or being finished (on disk, not indexed yet), oldest first."""
        with self._cond:
            running = [self._running] if self._running is not None else []
            return running + list(self._waiting)

    def pending_bytes(self) -> int:
        """Their bytes as written so far (the store counts their files: ``ClipStore``)."""
        return sum(job.bytes for job in self.pending_jobs())

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is waiting or being finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._waiting and self._running is None, timeout_s
            )

    def close(self, timeout_s: float | None = CLOSE_TIMEOUT_S) -> list[str]:
        """Finish what waits, then end the thread: the ids of the clips left unfinished
        after ``timeout_s`` (logged; their ``.part`` files go at the next start)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.wait_idle(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            left = [job.clip_id for job in self._waiting]
            if self._running is not None:
                left.insert(0, self._running.clip_id)
            self._waiting.clear()
        thread = self._thread
        if thread is not None and not left:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        if left:
            log.error(
                "clips: %d clip(s) not finished after %.0f s at stop (a stuck disk?): %s; "
                "their .part files are deleted at the next start",
                len(left),
                timeout_s or 0.0,
                ", ".join(left),
            )
        return left
