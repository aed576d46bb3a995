"""Stored references: the clear scene each analyzer judges against, kept on disk.

A reference learnt at start-up shows whatever is there at start-up: water already on the
road, a pile already on the pavement, a camera already knocked askew would all be "normal"
for as long as the agent runs. So a person (the technician at install, or an operator by
command) *sets* the reference of a camera while the scene is clear, and it is kept, one file
per analyzer, ``{directory}/{camera}/{analyzer}.npz``, and loaded at the next start, so a
condition present at start is judged against the clear scene.

Once a reference was set, every reference the analyzer takes after it (learnt again after
the tamper analyzer accepted a new view, or because the resolution changed) is written
too; until one was set nothing is written and the analyzer learns at start as it always
did (``learn_at_start``). What the analyzers adapt to slow change stays in memory, within
bounds around the reference that was set (no drift into a flooded reference).

The file is a numpy ``.npz`` (read with ``allow_pickle=False``: no code in it) holding
the analyzer's arrays and a JSON ``meta`` entry: format name and version, camera,
analyzer, kind, the analysis picture's size and the region geometry it was taken with, so
that a reference of another resolution or another region is refused, with a warning, and
learnt afresh instead of being misapplied. Writes are atomic (temporary file, fsync,
rename, fsync of the directory) and private (mode 0640 less the umask).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edge_agent.analytics import SceneState
from edge_agent.analyzers.common import FloatImage
from edge_agent.files import write_atomic
from edge_agent.types import Frame

log = logging.getLogger(__name__)

FORMAT = "edge-agent/analyzer-reference"
FORMAT_VERSION = 1
FILE_MODE = 0o600  # owner-only, like the outbox: a picture of the site (docs/service.md)
DIR_MODE = 0o700
UNKNOWN = "unknown"
"""The level of a region analyzer that cannot judge (no reference, or the view moved)."""

ReferenceMode = Literal["learn", "frame"]
"""``learn``: a median over the analyzer's ``learn_s`` from now (people and cars passing
do not end up in it); ``frame``: the next analysed frame as it is (the scene is known clear)."""


class ReferenceFileError(Exception):
    """A stored reference that cannot be used or written: the message says which and why."""


@dataclass(frozen=True)
class StoredReference:
    """One analyzer's reference as kept on disk."""

    kind: str  # flood, garbage, tamper
    frame_size_px: tuple[int, int]  # width, height of the analysis picture it came from
    geometry: str  # what the arrays' shapes depend on (region, work width)
    arrays: Mapping[str, FloatImage]
    saved_at_s: float  # wall clock


class ReferenceStore:
    """A directory of stored references, one sub-directory per camera."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, camera_id: str, analyzer: str) -> Path:
        return self.directory / camera_id / f"{analyzer}.npz"

    def load(self, camera_id: str, analyzer: str) -> StoredReference | None:
        """The stored reference, or None when there is none; ``ReferenceFileError`` when
        there is one that cannot be read or belongs to something else."""
        path = self.path(camera_id, analyzer)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ReferenceFileError(f"{path}: cannot read: {error}") from error
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                arrays = {
                    key[2:]: np.asarray(npz[key], np.float32)
                    for key in npz.files
                    if key.startswith("a_")
                }
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
            raise ReferenceFileError(f"{path}: not a readable reference file: {error}") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ReferenceFileError(f"{path}: not an {FORMAT} file")
        if meta.get("version") != FORMAT_VERSION:
            raise ReferenceFileError(
                f"{path}: format version {meta.get('version')!r}, this agent reads {FORMAT_VERSION}"
            )
        if meta.get("camera") != camera_id or meta.get("analyzer") != analyzer:
            raise ReferenceFileError(
                f"{path}: belongs to camera {meta.get('camera')!r} analyzer "
                f"{meta.get('analyzer')!r}, not {camera_id!r} {analyzer!r}"
            )
        try:
            size = (int(meta["width_px"]), int(meta["height_px"]))
            return StoredReference(
                kind=str(meta["kind"]),
                frame_size_px=size,
                geometry=str(meta["geometry"]),
                arrays=arrays,
                saved_at_s=float(meta["saved_at"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ReferenceFileError(f"{path}: incomplete metadata: {error}") from error

    def save(self, camera_id: str, analyzer: str, reference: StoredReference) -> Path:
        """Write atomically: a reader (or a crash) sees the old file or the new, whole."""
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "camera": camera_id,
            "analyzer": analyzer,
            "kind": reference.kind,
            "width_px": reference.frame_size_px[0],
            "height_px": reference.frame_size_px[1],
            "geometry": reference.geometry,
            "saved_at": round(reference.saved_at_s, 3),
        }
        buffer = io.BytesIO()
        arrays = {
            f"a_{key}": np.asarray(value, np.float32) for key, value in reference.arrays.items()
        }
        np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
        path = self.path(camera_id, analyzer)
        write_atomic(path, buffer.getvalue(), FILE_MODE, dir_mode=DIR_MODE)
        return path

    def check_writable(self, camera_id: str) -> None:
        """Raise ``ReferenceFileError`` now, where a command can say so, rather than later."""
        directory = self.directory / camera_id
        try:
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as error:
            raise ReferenceFileError(f"{directory}: cannot create: {error}") from error
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ReferenceFileError(f"{directory}: not writable by this user")


class ReferenceSlot:
    """One analyzer's stored reference and the requests to set a new one.

    ``request`` may be called from any thread (an MQTT command); the analyzer takes the
    request on its own thread at its next analysed frame, so nothing is shared mid-frame.
    Without a store (``store=None``) everything works in memory and nothing is written.
    """

    def __init__(
        self,
        *,
        store: ReferenceStore | None,
        camera_id: str,
        analyzer: str,
        kind: str,
        geometry: str,
        learn_at_start: bool = True,
    ) -> None:
        self._store = store
        self._camera_id = camera_id
        self._analyzer = analyzer
        self._kind = kind
        self.geometry = geometry
        self._learn_at_start = learn_at_start
        self._lock = threading.Lock()
        self._request: ReferenceMode | None = None
        self._stored: StoredReference | None = None
        self._stored_checked = store is None
        self._learning_requested = False
        self.keeping = False  # a person set this analyzer's reference: keep what follows
        self._unknown_published = False
        self.saves = 0
        self.errors = 0
        if store is not None:
            try:
                self._stored = store.load(camera_id, analyzer)
            except ReferenceFileError as error:
                self.errors += 1
                log.warning("%s; %s", error, self._fallback())

    def _fallback(self) -> str:
        return (
            "learning the reference afresh" if self._learn_at_start else "waiting for one to be set"
        )

    # -- requests (any thread)

    def request(self, mode: ReferenceMode = "learn") -> None:
        """Ask for a new reference; ``ReferenceFileError`` if it could not be kept."""
        if self._store is not None:
            self._store.check_writable(self._camera_id)
        with self._lock:
            self._request = mode

    @property
    def pending(self) -> bool:
        """A request not taken yet, or a requested reference still being learnt."""
        with self._lock:
            return self._request is not None or self._learning_requested

    def take_request(self) -> ReferenceMode | None:
        with self._lock:
            mode, self._request = self._request, None
        if mode == "learn":
            self._learning_requested = True
        return mode

    # -- the analyzer's side (its own thread)

    @property
    def may_learn(self) -> bool:
        """Whether the analyzer may learn a reference now (at start, or when asked to)."""
        return self._learn_at_start or self._learning_requested or self.keeping

    def stored_for(self, frame_size_px: tuple[int, int]) -> Mapping[str, FloatImage] | None:
        """The stored arrays, at the first frame only, if they fit this picture and region."""
        if self._stored_checked:
            return None
        self._stored_checked = True
        stored, self._stored = self._stored, None
        if stored is None:
            return None
        path = self._store.path(self._camera_id, self._analyzer) if self._store else "?"
        problem = None
        if stored.kind != self._kind:
            problem = f"is a {stored.kind} reference, this analyzer is {self._kind}"
        elif stored.frame_size_px != frame_size_px:
            (w, h), (now_w, now_h) = stored.frame_size_px, frame_size_px
            problem = f"was taken at {w}x{h}, the camera now delivers {now_w}x{now_h}"
        elif stored.geometry != self.geometry:
            problem = "was taken with another region or work width"
        if problem is not None:
            self.errors += 1
            log.warning("%s %s; %s", path, problem, self._fallback())
            return None
        log.info("%s: using the stored reference of %s", path, _when(stored.saved_at_s))
        self.keeping = True
        return stored.arrays

    def taken(
        self,
        arrays: Mapping[str, FloatImage],
        frame_size_px: tuple[int, int],
        now_s: float,
        *,
        explicit: bool,
    ) -> None:
        """A new reference was installed: keep it if a person set it (``explicit``, or a
        requested learning ended) or set one before."""
        if explicit or self._learning_requested:
            self.keeping = True
        self._learning_requested = False
        if self.keeping:
            self._save(arrays, frame_size_px)

    def _save(self, arrays: Mapping[str, FloatImage], frame_size_px: tuple[int, int]) -> None:
        if self._store is None:
            return
        reference = StoredReference(self._kind, frame_size_px, self.geometry, arrays, time.time())
        try:
            path = self._store.save(self._camera_id, self._analyzer, reference)
        except OSError as error:
            self.errors += 1
            log.error(
                "cannot keep the %s reference of %s: %s", self._analyzer, self._camera_id, error
            )
            return
        self.saves += 1
        log.info("kept the %s reference of %s in %s", self._analyzer, self._camera_id, path)

    def unknown_once(self, frame: Frame, analyzer: str) -> tuple[SceneState, ...]:
        """``unknown`` (reason ``no_reference``), once, while there is nothing to judge by."""
        if self._unknown_published:
            return ()
        self._unknown_published = True
        return (unknown_state(frame, analyzer, "no_reference"),)

    def judged(self) -> None:
        """A reference is there again: a later loss of it is news again."""
        self._unknown_published = False


def memory_slot(camera_id: str, name: str, kind: str, geometry: str) -> ReferenceSlot:
    """A slot that keeps its reference in memory only (an analyzer built without a store)."""
    return ReferenceSlot(
        store=None, camera_id=camera_id, analyzer=name, kind=kind, geometry=geometry
    )


class SlotHolder:
    """Mixin: the reference requests of an analyzer that keeps its reference in ``slot``
    (small mixins, as gpiozero composes its devices)."""

    slot: ReferenceSlot

    def request_reference(self, mode: ReferenceMode = "learn") -> None:
        """Take a new reference of the clear scene from the next frame(s); any thread."""
        self.slot.request(mode)

    @property
    def reference_pending(self) -> bool:
        return self.slot.pending

    @property
    def reference_errors(self) -> int:
        return self.slot.errors


def unknown_state(frame: Frame, analyzer: str, reason: str) -> SceneState:
    """The level of a region analyzer that cannot judge, and why (``detail.reason``)."""
    return SceneState(
        camera_id=frame.camera_id,
        analyzer=analyzer,
        state=UNKNOWN,
        since_s=frame.captured_at_s,
        frame_time_s=frame.captured_at_s,
        score=None,
        detail={"reason": reason},
    )


def region_geometry(points: list[tuple[float, float]], work_width_px: int, extra: str = "") -> str:
    """A short text that changes when the shapes of an analyzer's arrays would."""
    rounded = [[round(x, 4), round(y, 4)] for x, y in points]
    return json.dumps({"region": rounded, "work_width_px": work_width_px, "extra": extra})


def _when(wall_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall_s))
