"""Clips on disk: the index (SQLite, one row per finished clip), retention and holds.

Retention applies three caps together (docs/recording.md): total bytes of clips, a
free-space watermark on the filesystem, and an age. The oldest clip not under a hold goes
first. A held clip is never deleted, by any cap: when only held clips are left and a cap is
still hit, :meth:`ClipStore.make_room` says why, and the recorder stops recording instead
(Frigate deletes the oldest recordings whatever they are; a clip kept as evidence must
not vanish because the card filled up).

A clip's file is written as ``{id}.mp4.part`` and renamed once closed and fsynced; the row
goes in after the rename, in one transaction. At open, what a crash left between the two
(a ``.part``, a file without a row, a row without a file) is cleaned up, so the index and
the directory agree. Thread-safe: the analysis threads hand closed clips to the store's
finisher (``edge_agent.recording.finisher``: its thread closes, hashes, fsyncs and indexes
them), the command thread lists, holds and reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.recording.finisher import (
    CLOSE_TIMEOUT_S,
    DEFAULT_MAX_PENDING,
    ClipFinisher,
    FinishJob,
)
from edge_agent.types import CLOCK_SET_AFTER_S

log = logging.getLogger(__name__)

UNINDEXED_DIR = "unindexed"  # clips found with no index row, kept for a person to judge
INDEX_NAME = "clips.sqlite"
REASON_HELD_FULL = "held clips fill the cap"
REASON_DISK_FULL = "disk full"


def filesystem_free_bytes(path: Path) -> int:
    try:
        return int(shutil.disk_usage(path).free)
    except OSError:
        return -1


@dataclass(frozen=True)
class RetentionCaps:
    max_total_bytes: int  # clips together
    min_free_bytes: int  # on the clips' filesystem
    max_age_s: float | None  # None: no age limit


@dataclass(frozen=True)
class Clip:
    """One finished clip, as the index holds it (times are wall-clock seconds)."""

    id: str
    camera: str
    start_s: float
    end_s: float
    size_bytes: int
    sha256: str
    frames: int
    held: bool = False
    events: tuple[str, ...] = ()  # event and alert ids it was recorded for

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "camera": self.camera,
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "bytes": self.size_bytes,
            "sha256": self.sha256,
            "frames": self.frames,
            "held": self.held,
            "events": list(self.events),
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    frames INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    events TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS clips_by_start ON clips (start_s);
"""


def _clip(row: tuple[object, ...]) -> Clip:
    cid, camera, start_s, end_s, size, sha, frames, held, events = row
    return Clip(
        str(cid),
        str(camera),
        float(start_s),  # type: ignore[arg-type]
        float(end_s),  # type: ignore[arg-type]
        int(size),  # type: ignore[call-overload]
        str(sha),
        int(frames),  # type: ignore[call-overload]
        bool(held),
        tuple(json.loads(str(events))),
    )


def _is_corrupt(error: sqlite3.DatabaseError) -> bool:
    """SQLite says the index's contents are unusable (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in (11, 26)
    return any(word in str(error).lower() for word in ("malformed", "not a database"))


class ClipStore:
    """The clips directory and its index."""

    def __init__(
        self,
        directory: Path,
        caps: RetentionCaps,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        free_bytes: Callable[[Path], int] = filesystem_free_bytes,
        fsync: Callable[[int], None] = os.fsync,
        max_pending_finishes: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.directory = directory
        self.caps = caps
        self._clock = clock
        self._monotonic = monotonic
        # This run's clips, by monotonic time of indexing (oldest first): their age is
        # judged by it, not by their wall-clock stamps, which a step of the clock (NTP
        # setting a Pi's clock after boot) would make years old or young.
        self._added_mono: dict[str, float] = {}
        self._free_bytes = free_bytes
        self._fsync = fsync  # the disk's seam: tests make it slow or fail
        self.finisher = ClipFinisher(self.finish_clip, max_pending=max_pending_finishes)
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open_index()
        except sqlite3.DatabaseError as error:  # a corrupt index must not stop the agent
            if not _is_corrupt(error):
                # Permissions, a read-only or full disk say nothing about the index: moving
                # it aside would leave every clip unindexed and drop their holds.
                raise OSError(
                    f"clips index {directory / INDEX_NAME} cannot be opened: {error}. Check "
                    f"that it and {directory} are readable and writable by the agent's user "
                    f"(uid {os.geteuid()}) and that the disk is writable and not full; the "
                    "clips and their index are kept as they are."
                ) from error
            aside = directory / f"{INDEX_NAME}.corrupt-{int(self._clock())}"
            log.error("clips: index %s unreadable (%s); moved to %s", INDEX_NAME, error, aside)
            (directory / INDEX_NAME).replace(aside)
            self._db = self._open_index()
        self.deleted = 0  # clips deleted by retention, this run
        self._reconcile()

    def _open_index(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            str(self.directory / INDEX_NAME), check_same_thread=False, isolation_level=None
        )
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _reconcile(self) -> None:
        """Make the directory and the index agree after a crash."""
        for part in self.directory.glob("*.part"):
            part.unlink(missing_ok=True)
        known = {row[0] for row in self._db.execute("SELECT id FROM clips")}
        unindexed = self.directory / UNINDEXED_DIR
        for file in self.directory.glob("*.mp4"):
            if file.stem not in known:  # evidence is never deleted on a guess: set aside
                unindexed.mkdir(mode=0o700, exist_ok=True)
                file.replace(unindexed / file.name)
                log.warning(
                    "clips: %s has no index row (a crash while adding it, or a lost index);"
                    " moved to %s/, outside retention: look at it and delete it by hand",
                    file.name,
                    unindexed,
                )
        for clip_id in known:
            if not self.path(clip_id).exists():
                log.warning("clips: %s is indexed but its file is gone; row dropped", clip_id)
                self._db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))

    def path(self, clip_id: str) -> Path:
        return self.directory / f"{clip_id}.mp4"

    def part_path(self, clip_id: str) -> Path:
        return self.directory / f"{clip_id}.mp4.part"

    def add(
        self,
        *,
        clip_id: str,
        camera: str,
        start_s: float,
        end_s: float,
        frames: int,
        events: tuple[str, ...],
    ) -> Clip:
        """Index the closed ``part_path(clip_id)`` as a finished clip (fsync, rename, row)."""
        part, final = self.part_path(clip_id), self.path(clip_id)
        digest = hashlib.sha256()
        with part.open("rb") as file:
            for block in iter(lambda: file.read(1 << 16), b""):
                digest.update(block)
            self._fsync(file.fileno())
        size = part.stat().st_size
        os.replace(part, final)
        self._fsync_dir()
        sha = digest.hexdigest()
        clip = Clip(clip_id, camera, start_s, end_s, size, sha, frames, False, events)
        with self._lock:
            self._db.execute(
                "INSERT INTO clips VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (clip_id, camera, start_s, end_s, size, clip.sha256, frames, json.dumps(events)),
            )
            self._added_mono[clip_id] = self._monotonic()
        return clip

    def finish_clip(self, job: FinishJob) -> Clip | None:
        """Close ``job``'s file and index it (the finisher's thread): None when it holds no
        frame. On any error its ``.part`` is deleted and the error raised."""
        part = self.part_path(job.clip_id)
        try:
            job.writer.close()
            first, last = job.writer.first_ms, job.writer.last_ms
            if first is None or last is None:
                part.unlink(missing_ok=True)
                return None
            return self.add(
                clip_id=job.clip_id,
                camera=job.camera,
                start_s=first / 1000 + job.wall_offset_s,
                end_s=last / 1000 + job.wall_offset_s,
                frames=job.writer.packets,
                events=job.events,
            )
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def _pending_bytes(self) -> int:
        """The clips closed but not indexed yet, as they are on disk (with the MP4 index
        once their writer closed), at least the bytes written into them."""
        total = 0
        for job in self.finisher.pending_jobs():
            size = job.bytes
            for path in (self.part_path(job.clip_id), self.path(job.clip_id)):
                try:
                    size = max(size, path.stat().st_size)
                    break
                except OSError:
                    continue
            total += size
        return total

    def wait_finished(self, timeout_s: float | None = None) -> bool:
        """Wait until every closed clip is in the index; False on timeout."""
        return self.finisher.wait_idle(timeout_s)

    def get(self, clip_id: str) -> Clip | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()
        return _clip(row) if row else None

    def clips(
        self,
        *,
        camera: str | None = None,
        since_s: float | None = None,
        until_s: float | None = None,
        limit: int | None = None,
    ) -> list[Clip]:
        """Clips, oldest first, that overlap ``since_s``..``until_s`` (wall clock)."""
        query, args = "SELECT * FROM clips WHERE 1", list[object]()
        if camera is not None:
            query += " AND camera = ?"
            args.append(camera)
        if since_s is not None:
            query += " AND end_s >= ?"
            args.append(since_s)
        if until_s is not None:
            query += " AND start_s <= ?"
            args.append(until_s)
        query += " ORDER BY start_s"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self._lock:
            return [_clip(row) for row in self._db.execute(query, args)]

    def hold(self, clip_id: str, held: bool) -> Clip | None:
        """Put a clip under a hold (never deleted) or release it; None: no such clip."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE clips SET held = ? WHERE id = ?", (int(held), clip_id)
            )
        if cursor.rowcount == 0:
            return None
        log.info("clip %s %s", clip_id, "held" if held else "released")
        return self.get(clip_id)

    def read(self, clip_id: str, offset: int, length: int) -> bytes:
        with self.path(clip_id).open("rb") as file:
            file.seek(offset)
            return file.read(length)

    def total_bytes(self) -> int:
        with self._lock:
            (total,) = self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM clips").fetchone()
        return int(total)

    def make_room(self, open_bytes: int = 0) -> str | None:
        """Apply retention, counting ``open_bytes`` of clips being written (and those
        closed but not indexed yet, as the finisher counts them): delete clips
        past their age, then the oldest unheld ones while a cap is hit. None when within
        the caps; else why recording must stop (only held clips are left)."""
        caps = self.caps
        open_bytes += self._pending_bytes()  # the finisher's lock first: never inside ours
        with self._lock:
            if caps.max_age_s is not None:
                for clip_id in self._past_max_age_locked(caps.max_age_s):
                    self._delete_locked(clip_id)
            while True:
                reason = self._over_cap_locked(open_bytes)
                if reason is None:
                    return None
                oldest = self._oldest_unheld_locked()
                if oldest is None:
                    return reason
                self._delete_locked(oldest)

    def _oldest_unheld_locked(self) -> str | None:
        """The clip the caps delete next: an earlier run's first (by stamp: all older than
        this run's), then this run's by when each started on the monotonic clock (their
        stamps may straddle a step of the wall clock: 1970 before NTP, 2026 after)."""
        rows = self._db.execute(
            "SELECT id, start_s, end_s FROM clips WHERE held = 0 ORDER BY start_s"
        )
        mine: list[tuple[float, int, str]] = []  # (started, stamp order, id)
        for clip_id, start_s, end_s in rows:
            added_mono = self._added_mono.get(clip_id)
            if added_mono is None:
                return str(clip_id)
            started = added_mono - (float(end_s) - float(start_s))
            mine.append((started, len(mine), str(clip_id)))
        return min(mine)[2] if mine else None

    def _past_max_age_locked(self, max_age_s: float) -> list[str]:
        """Unheld clips older than ``max_age_s``: this run's by the monotonic clock, an
        earlier run's by their stamps (never those stamped by an unset clock, before 2020:
        their age is unknown; the caps still bound them)."""
        cutoff = self._clock() - max_age_s
        earlier = [
            str(clip_id)
            for (clip_id,) in self._db.execute(
                "SELECT id FROM clips WHERE held = 0 AND end_s < ? AND end_s >= ?",
                (cutoff, CLOCK_SET_AFTER_S),
            )
            if clip_id not in self._added_mono
        ]
        now_mono = self._monotonic()
        mine: list[str] = []
        for clip_id, added_mono in self._added_mono.items():
            if now_mono - added_mono <= max_age_s:
                break
            mine.append(clip_id)
        held = (
            {
                str(clip_id)
                for (clip_id,) in self._db.execute("SELECT id FROM clips WHERE held = 1").fetchall()
            }
            if mine
            else set()
        )
        return earlier + [clip_id for clip_id in mine if clip_id not in held]

    def _over_cap_locked(self, open_bytes: int) -> str | None:
        (total,) = self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM clips").fetchone()
        if int(total) + open_bytes > self.caps.max_total_bytes:
            return REASON_HELD_FULL
        free = self._free_bytes(self.directory)
        if 0 <= free < self.caps.min_free_bytes:
            return REASON_DISK_FULL
        return None

    def _delete_locked(self, clip_id: str) -> None:
        self.path(clip_id).unlink(missing_ok=True)
        self._db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))
        self._added_mono.pop(clip_id, None)
        self.deleted += 1
        log.info("clips: %s deleted by retention", clip_id)

    def stats(self) -> dict[str, object]:
        with self._lock:
            count, total, held = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0), COALESCE(SUM(held), 0) FROM clips"
            ).fetchone()
        return {"clips": int(count), "bytes": int(total), "held": int(held)}

    def close(self, finish_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Finish the clips closed so far (``ClipFinisher.close``), then close the index."""
        self.finisher.close(finish_timeout_s)
        with self._lock:
            self._db.close()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)
