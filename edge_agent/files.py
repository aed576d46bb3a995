"""Files written whole or not at all: a power cut on a Pi leaves the old file or the new."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["fsync_path", "write_atomic"]


def write_atomic(
    path: Path,
    data: bytes,
    mode: int,
    *,
    dir_mode: int = 0o777,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write ``data`` to ``path`` with ``mode`` (created so, never wider) and ``owner``
    (uid, gid) when given, via a temp file in the same directory and ``os.replace``. The
    temp file is made exclusively under a random name (``mkstemp``): a planted file or
    symlink in a folder another user can write is never followed, even as root. Missing
    folders are made with ``dir_mode`` (the umask applies)."""
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # the rename itself survives a power cut


def fsync_path(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries (the renames in it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
