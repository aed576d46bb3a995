"""What the clip commands do (``clips``, ``clip_hold``, ``clip_release``, ``clip_fetch``);
``edge_agent.remote`` validates them and turns the results into replies.

A clip leaves the device in chunks the operator asks for one at a time
(``{"id", "offset", "length"}``): each reply is the chunk's bytes, with the whole clip's
sha256 and the chunk's in MQTT 5 user properties. A link cut loses at most the chunk in
flight; the operator asks again from the offset it has, so a fetch resumes where it
stopped, and checks the whole file's sha256 at the end.

Chunks go as command replies (QoS 1, straight to the link), not through the outbox: the
outbox is the durable store of events on the SD card, and copying megabytes of video into it
would double the writes and evict events. Pacing is by request: one chunk per command, at
most ``chunk_max_bytes``, and a token bucket of ``rate_bytes_per_s`` for all fetches; a
request over the budget is refused with ``retry_after_s`` (the command thread never waits).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.recording.store import Clip, ClipStore

LIST_LIMIT = 200  # clips per ``clips`` reply: a reply stays a few tens of kB


class ClipError(Exception):
    """A clip command that cannot be done; the message is the reply's ``error``."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Chunk:
    clip: Clip
    offset: int
    data: bytes

    def properties(self) -> tuple[tuple[str, str], ...]:
        return (
            ("clip", self.clip.id),
            ("offset", str(self.offset)),
            ("length", str(len(self.data))),
            ("size", str(self.clip.size_bytes)),
            ("sha256", self.clip.sha256),
            ("chunk_sha256", hashlib.sha256(self.data).hexdigest()),
        )


class ClipCommands:
    """The clip store as the command centre sees it; thread-safe."""

    def __init__(
        self,
        store: ClipStore,
        *,
        rate_bytes_per_s: int,
        chunk_max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.rate_bytes_per_s = rate_bytes_per_s
        self.chunk_max_bytes = chunk_max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(chunk_max_bytes)
        self._tokens_at_s = clock()
        self.bytes_sent = 0

    def list(
        self, camera: str | None, since_s: float | None, until_s: float | None
    ) -> dict[str, object]:
        clips = self.store.clips(camera=camera, since_s=since_s, until_s=until_s)
        shown = clips[-LIST_LIMIT:]  # the newest, when there are more
        return {
            "ok": True,
            "clips": [c.as_json() for c in shown],
            "more": len(clips) - len(shown),  # older matches left out
            "stored": self.store.stats(),
        }

    def hold(self, clip_id: str, held: bool) -> dict[str, object]:
        clip = self.store.hold(clip_id, held)
        if clip is None:
            raise self._missing(clip_id)
        return {"ok": True, "clip": clip.as_json()}

    def fetch(self, clip_id: str, offset: int, length: int | None) -> Chunk:
        clip = self.store.get(clip_id)
        if clip is None:
            raise self._missing(clip_id)
        if offset > clip.size_bytes:
            raise ClipError(f"offset {offset} is past the clip's end ({clip.size_bytes} bytes)")
        wanted = min(length or self.chunk_max_bytes, self.chunk_max_bytes)
        wanted = min(wanted, clip.size_bytes - offset)
        self._take(wanted)
        data = self.store.read(clip_id, offset, wanted)
        with self._lock:
            self.bytes_sent += len(data)
        return Chunk(clip, offset, data)

    def _missing(self, clip_id: str) -> ClipError:
        """Why ``clip_id`` is not in the index: closed and still being made durable by the
        finisher (the event's ``end`` names its clip before that), or gone."""
        if any(job.clip_id == clip_id for job in self.store.finisher.pending_jobs()):
            return ClipError(
                f"clip {clip_id!r} is still being written to disk: ask again in a few seconds"
            )
        return ClipError(f"no clip {clip_id!r} (deleted by retention, or never recorded)")

    def _take(self, size: int) -> None:
        with self._lock:
            now_s = self._clock()
            self._tokens = min(
                float(self.chunk_max_bytes),
                self._tokens + (now_s - self._tokens_at_s) * self.rate_bytes_per_s,
            )
            self._tokens_at_s = now_s
            if self._tokens < size:
                wait_s = (size - self._tokens) / self.rate_bytes_per_s
                raise ClipError(
                    f"busy: clip fetches are paced at {self.rate_bytes_per_s} bytes/s; "
                    f"ask again in {wait_s:.1f} s",
                    retry_after_s=round(wait_s, 2),
                )
            self._tokens -= size
