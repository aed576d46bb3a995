"""Find, verify and fetch the models and sample media listed in the data manifest.

Model weights and videos are never committed: the manifest (``edge_agent/data/manifest.yaml``,
shipped in the wheel) records what each file must be (sha256, size, upstream URL, licence) and
this module finds it on a search path, proves it is the right file, and can download it into a
per-user cache or a directory of the admin's choosing. Every file is checked by sha256 before
use, so a truncated download or a wrong file is caught before an interpreter sees it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import os
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_agent.yaml_text import load_yaml

MANIFEST_ENV = "EDGE_AGENT_MANIFEST"
MODEL_PATH_ENV = "EDGE_AGENT_MODEL_PATH"
MEDIA_PATH_ENV = "EDGE_AGENT_MEDIA_PATH"
CACHE_DIR_ENV = "EDGE_AGENT_CACHE_DIR"

Kind = Literal["model", "media"]
_PATH_ENV: dict[str, str] = {"model": MODEL_PATH_ENV, "media": MEDIA_PATH_ENV}
_CACHE_SUBDIR: dict[str, str] = {"model": "models", "media": "media"}
_CHUNK_BYTES = 1 << 20
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/var/lib/edge-agent"), Path("/usr/share/edge-agent"))
"""Searched after the user cache, as ``<dir>/models`` and ``<dir>/media``: where an admin (or
``models fetch --dir``) puts files that a service user, with no cache of its own, must find."""


class DataFileError(Exception):
    """A model or media file (or the manifest) is missing, wrong or unreadable."""


class DataFileNotFound(DataFileError):
    """No copy of a manifest entry was found on the search path."""


class ChecksumMismatch(DataFileError):
    """A file exists but is not the one the manifest describes."""


class DownloadFailed(DataFileError):
    """The upstream could not be reached or read (no network, DNS, HTTP error, timeout)."""


class _EntryBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    file: str = Field(min_length=1, pattern=r"^[^/\\]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(gt=0)
    source_url: str = Field(pattern=r"^(https?|file)://")
    licence: str = Field(min_length=1)
    downloadable: bool = True
    """False when source_url names the upstream but does not serve these exact bytes."""
    notes: str = ""


class ModelEntry(_EntryBase):
    kind: Literal["model"]
    format: Literal["ssd_postprocess", "yolox", "ultralytics", "blazeface"]
    """The output layout (edge_agent.detect.layouts; docs/models.md); ``blazeface``: a face
    model for edge_agent.privacy, never the detector."""
    input_width: int = Field(gt=0)
    input_height: int = Field(gt=0)
    input_dtype: Literal["uint8", "int8", "float32"]
    labels: Literal["coco90", "coco80", "face"]
    """Fallback label list; a labelmap embedded in the model file takes precedence."""

    @property
    def is_detector(self) -> bool:
        """An object detector the agent can run (the face model serves privacy only)."""
        return self.format != "blazeface"


class MediaEntry(_EntryBase):
    kind: Literal["media"]


DataEntry = Annotated[ModelEntry | MediaEntry, Field(discriminator="kind")]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    entries: tuple[DataEntry, ...]

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        for attr in ("name", "file"):
            seen: set[str] = set()
            for entry in self.entries:
                value = getattr(entry, attr)
                if value in seen:
                    raise ValueError(f"duplicate {attr} {value!r} in manifest")
                seen.add(value)
        return self

    def find(self, name_or_file: str) -> ModelEntry | MediaEntry:
        """The entry with that name (or, failing that, that file name)."""
        for entry in self.entries:
            if entry.name == name_or_file:
                return entry
        for entry in self.entries:
            if entry.file == name_or_file:
                return entry
        known = ", ".join(e.name for e in self.entries)
        raise DataFileNotFound(f"{name_or_file!r} is not in the data manifest (known: {known})")

    def model(self, name: str) -> ModelEntry:
        entry = self.find(name)
        if not isinstance(entry, ModelEntry):
            raise DataFileError(f"{name!r} is a {entry.kind} entry, not a model")
        return entry

    def media(self, file_name: str) -> MediaEntry:
        entry = self.find(file_name)
        if not isinstance(entry, MediaEntry):
            raise DataFileError(f"{file_name!r} is a {entry.kind} entry, not media")
        return entry


def is_model_path(model: str) -> bool:
    """A path (``/opt/models/pile.tflite``, ``./pile.tflite``) rather than a manifest name."""
    return "/" in model or model.endswith(".tflite")


def manifest_path() -> Path:
    """$EDGE_AGENT_MANIFEST, else the manifest shipped inside this package."""
    override = os.environ.get(MANIFEST_ENV)
    if override:
        return Path(override)
    shipped = importlib.resources.files("edge_agent") / "data" / "manifest.yaml"
    if not isinstance(shipped, Path):  # a zipped install: pip never makes one
        raise DataFileError(
            f"the shipped data manifest is not a plain file ({shipped}); "
            f"set {MANIFEST_ENV} to the manifest file"
        )
    return shipped


def load_manifest(path: Path | None = None) -> Manifest:
    """Parse and validate the manifest (cached per path and modification time)."""
    path = manifest_path() if path is None else path
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataFileError(
            f"data manifest {path} cannot be read: {exc.strerror or exc}; "
            f"set {MANIFEST_ENV} to the manifest file"
        ) from exc
    return _load_manifest_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_manifest_cached(path: str, _mtime_ns: int, _size: int) -> Manifest:
    try:
        raw = load_yaml(Path(path).read_text(encoding="utf-8"))  # a key twice: refused
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise DataFileError(f"data manifest {path} cannot be parsed: {exc}") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise DataFileError(f"data manifest {path} is invalid:\n{exc}") from exc


def cache_dir() -> Path:
    """Per-user cache root: $EDGE_AGENT_CACHE_DIR, else $XDG_CACHE_HOME/edge_agent."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "edge_agent"


def search_dirs(kind: Kind) -> list[Path]:
    """Directories searched for a kind of file, in order: env var entries, the user cache,
    then the system directories (SYSTEM_DATA_DIRS)."""
    raw = os.environ.get(_PATH_ENV[kind], "")
    dirs = [Path(part).expanduser() for part in raw.split(os.pathsep) if part]
    dirs.append(cache_dir() / _CACHE_SUBDIR[kind])
    dirs.extend(root / _CACHE_SUBDIR[kind] for root in SYSTEM_DATA_DIRS)
    return dirs


def locate(entry: ModelEntry | MediaEntry) -> Path | None:
    """The first copy of ``entry.file`` on the search path, unverified; None when absent."""
    for directory in search_dirs(entry.kind):
        candidate = directory / entry.file
        if candidate.is_file():
            return candidate
    return None


# (resolved path, size, mtime_ns) -> sha256 hex digest: hashing 4 MB costs ~10 ms, and the
# app resolves the same model at every (re)start of a detector.
_digest_cache: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, cached in-process per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        cached = _digest_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _digest_lock:
        _digest_cache[key] = hexdigest
    return hexdigest


def _fix_hint(entry: ModelEntry | MediaEntry) -> str:
    env = _PATH_ENV[entry.kind]
    if entry.downloadable:
        return (
            f"run `edge-agent models fetch {entry.name}` (downloads {entry.source_url}) "
            f"or set {env} to a directory holding the right {entry.file}"
        )
    return (
        f"it cannot be downloaded automatically (see the notes in {manifest_path()}); "
        f"set {env} to a directory holding the right {entry.file}"
    )


def verify_file(entry: ModelEntry | MediaEntry, path: Path) -> None:
    """Raise ChecksumMismatch unless ``path`` is exactly the file the manifest describes."""
    try:
        size_bytes = path.stat().st_size
    except OSError as exc:
        raise DataFileNotFound(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if size_bytes != entry.bytes:
        raise ChecksumMismatch(
            f"{path} is not {entry.name}: {size_bytes} bytes, expected {entry.bytes} "
            f"(truncated or a different file); {_fix_hint(entry)}"
        )
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ChecksumMismatch(
            f"{path} is not {entry.name}: sha256 {actual}, expected {entry.sha256}; "
            f"{_fix_hint(entry)}"
        )


def _not_found(entry: ModelEntry | MediaEntry) -> DataFileNotFound:
    env = _PATH_ENV[entry.kind]
    searched = ", ".join(str(d) for d in search_dirs(entry.kind))
    env_state = f"{env}={os.environ[env]!r}" if os.environ.get(env) else f"{env} is not set"
    return DataFileNotFound(
        f"{entry.kind} {entry.name!r} ({entry.file}) not found; searched: {searched} "
        f"({env_state}). To fix: {_fix_hint(entry)}"
    )


def resolve_entry(entry: ModelEntry | MediaEntry) -> Path:
    """The first copy of ``entry`` on the search path, verified; DataFileNotFound if none."""
    path = locate(entry)
    if path is None:
        raise _not_found(entry)
    verify_file(entry, path)
    return path


def resolve_model_file(name: str, *, manifest: Manifest | None = None) -> Path:
    """Path of the verified model file for a manifest model name (or its file name)."""
    manifest = load_manifest() if manifest is None else manifest
    return resolve_entry(manifest.model(name))


def resolve_media(
    file_name: str, *, allow_fetch: bool = False, manifest: Manifest | None = None
) -> Path:
    """Path of a verified media file; downloads it into the cache only if allow_fetch."""
    manifest = load_manifest() if manifest is None else manifest
    entry = manifest.media(file_name)
    if allow_fetch and locate(entry) is None:
        return fetch(entry)
    return resolve_entry(entry)


def fetch(
    entry: ModelEntry | MediaEntry, *, dest_dir: Path | None = None, timeout_s: float = 60.0
) -> Path:
    """Download ``entry`` from its source_url into dest_dir (default: the cache), verified.

    The download goes to a temporary file in the destination directory and is renamed into
    place only after its size and sha256 match, so a reader never sees a partial file.
    """
    if not entry.downloadable:
        raise DataFileError(
            f"{entry.name} cannot be fetched: {entry.source_url} does not serve the exact file "
            f"the manifest pins. {entry.notes}".strip()
        )
    dest_dir = cache_dir() / _CACHE_SUBDIR[entry.kind] if dest_dir is None else dest_dir
    final_path = dest_dir / entry.file
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".part", dir=dest_dir)
    except OSError as exc:
        raise DataFileError(f"cannot write into {dest_dir}: {exc.strerror or exc}") from exc
    tmp_path = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size_bytes = 0
        with os.fdopen(fd, "wb") as out, _open_url(entry, timeout_s) as response:
            # Public data, so readable by a service user when root fetched it (--dir).
            os.fchmod(out.fileno(), 0o644)
            while chunk := _read_chunk(entry, response):
                size_bytes += len(chunk)
                if size_bytes > entry.bytes:
                    raise ChecksumMismatch(
                        f"download of {entry.name} from {entry.source_url} is larger than the "
                        f"expected {entry.bytes} bytes: not the file the manifest pins"
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if size_bytes != entry.bytes or actual != entry.sha256:
            raise ChecksumMismatch(
                f"download of {entry.name} from {entry.source_url} does not match the manifest: "
                f"{size_bytes} bytes sha256 {actual}, expected {entry.bytes} bytes sha256 "
                f"{entry.sha256}"
            )
        os.replace(tmp_path, final_path)
        stat = final_path.stat()
        with _digest_lock:
            _digest_cache[(str(final_path.resolve()), stat.st_size, stat.st_mtime_ns)] = actual
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise DataFileError(f"cannot write {entry.file} into {dest_dir}: {exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    return final_path


def _download_failed(entry: ModelEntry | MediaEntry, exc: OSError) -> DownloadFailed:
    """One line a technician on a site without internet can act on: what, from where, why
    (the resolver's or server's words, not a traceback), and how to do without the download."""
    reason = getattr(exc, "reason", exc)  # URLError wraps the socket error
    why = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    system_dir = SYSTEM_DATA_DIRS[0] / _CACHE_SUBDIR[entry.kind]
    return DownloadFailed(
        f"cannot download {entry.kind} {entry.name} from {entry.source_url}: {why}. "
        f"Without internet, copy {entry.file} from a machine that has it into {system_dir} "
        f"or set {_PATH_ENV[entry.kind]} to a directory holding it"
    )


@contextlib.contextmanager
def _open_url(entry: ModelEntry | MediaEntry, timeout_s: float) -> Iterator[BinaryIO]:
    try:
        response: BinaryIO = urllib.request.urlopen(entry.source_url, timeout=timeout_s)
    except OSError as exc:  # URLError, HTTPError, TimeoutError are all OSErrors
        raise _download_failed(entry, exc) from exc
    try:
        yield response
    finally:
        response.close()


def _read_chunk(entry: ModelEntry | MediaEntry, response: BinaryIO) -> bytes:
    try:
        return response.read(_CHUNK_BYTES)
    except OSError as exc:  # the connection dropped or timed out mid-download
        raise _download_failed(entry, exc) from exc
