"""Getting a release archive onto the device: in chunks over MQTT, or from a URL.

An archive is an uncompressed tar of the release's flat directory (``edge-provision
release pack``). Over MQTT it arrives as ``update_begin`` (its id, size and sha256), then
``update_chunk`` s (``offset`` and base64 ``data``, each with its own sha256) appended to
``staging/{id}.part``, then ``update_commit``: the mirror of ``clip_fetch``'s conventions.
A chunk must start where the received bytes end; any other offset is refused with the
offset the device has, so a sender that lost its place (a link cut, a restart of either
side) resumes from there. ``update_fetch`` downloads the same archive from an http(s) URL.

The archive's sha256 only guards the transfer; what makes a release trusted is its signed
metadata (edge_agent.update.release), checked after unpacking.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge_agent.security import redact_url
from edge_agent.update.release import FILE_NAME, file_sha256

__all__ = ["Staging", "TransferError", "unpack"]

ARCHIVE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
FETCH_TIMEOUT_S = 30.0  # per read: a byte now and then would keep it from expiring, so...
STALL_WINDOW_S = 30.0  # ... a download that brings less than STALL_MIN_BYTES in a window
STALL_MIN_BYTES = 16 * 1024  # is given up (it runs on the command thread: the rest wait)


class TransferError(Exception):
    """A transfer step that cannot be done; ``have`` is the offset the device holds."""

    def __init__(self, message: str, have: int | None = None) -> None:
        super().__init__(message)
        self.have = have


@dataclass(frozen=True)
class Expected:
    size: int
    sha256: str


class Staging:
    """Archives being received under ``folder``; at most ``max_bytes`` each."""

    def __init__(self, folder: Path, *, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def _paths(self, archive_id: str) -> tuple[Path, Path]:
        if not re.fullmatch(ARCHIVE_ID, archive_id):
            raise TransferError(f"bad archive id {archive_id[:64]!r}")
        return self.folder / f"{archive_id}.part", self.folder / f"{archive_id}.expect"

    def _expected(self, archive_id: str) -> Expected:
        _part, expect = self._paths(archive_id)
        try:
            record = json.loads(expect.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TransferError(f"no transfer {archive_id!r}: send update_begin first") from None
        except (OSError, ValueError) as error:  # unreadable, not UTF-8, not JSON
            raise self._damaged(expect, error) from None
        fields = record if isinstance(record, dict) else {}
        size, sha256 = fields.get("size"), fields.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(sha256, str):
            raise self._damaged(expect, "not a size and a sha256")
        return Expected(size, sha256)

    @staticmethod
    def _damaged(expect: Path, why: object) -> TransferError:
        """A power cut while the record was written, or a disk error: begin again."""
        return TransferError(
            f"the transfer's record {expect.name} is damaged ({why}): send update_begin again", 0
        )

    def begin(self, archive_id: str, size: int, sha256: str) -> int:
        """Start (or resume: the same size and sha256) a transfer; the bytes held."""
        if size > self.max_bytes:
            raise TransferError(f"the archive has {size} bytes; this device takes {self.max_bytes}")
        part, expect = self._paths(archive_id)
        try:
            same = self._expected(archive_id) == Expected(size, sha256)
        except TransferError:
            same = False
        if not same:
            part.unlink(missing_ok=True)
            expect.write_text(json.dumps({"size": size, "sha256": sha256}), encoding="utf-8")
        part.touch()
        return part.stat().st_size

    def chunk(self, archive_id: str, offset: int, data: bytes, sha256: str | None) -> int:
        """Append ``data`` at ``offset`` (which must be the bytes held); the bytes held."""
        expected = self._expected(archive_id)
        part, _expect = self._paths(archive_id)
        have = part.stat().st_size if part.exists() else 0
        if offset != have:
            raise TransferError(f"offset {offset}, but the device holds {have} bytes", have)
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise TransferError("the chunk does not match its sha256; send it again", have)
        if have + len(data) > expected.size:
            raise TransferError(f"past the archive's size ({expected.size} bytes)", have)
        with part.open("ab") as handle:
            handle.write(data)
        return have + len(data)

    def complete(self, archive_id: str) -> Path:
        """The whole archive, its size and sha256 checked (a bad one is deleted)."""
        expected = self._expected(archive_id)
        part, expect = self._paths(archive_id)
        have = part.stat().st_size if part.exists() else 0
        if have != expected.size:
            raise TransferError(f"the device holds {have} of {expected.size} bytes", have)
        if file_sha256(part) != expected.sha256:
            part.unlink()
            expect.unlink(missing_ok=True)
            raise TransferError("the archive does not match its sha256; send it again", 0)
        return part

    def discard(self, archive_id: str) -> None:
        for path in self._paths(archive_id):
            path.unlink(missing_ok=True)

    def fetch(self, archive_id: str, url: str, size: int, sha256: str) -> Path:
        """Download ``url`` (http or https) into the staging folder, checked."""
        if not url.startswith(("http://", "https://")):
            raise TransferError("only http:// and https:// URLs are fetched")
        self.begin(archive_id, size, sha256)
        part, _expect = self._paths(archive_id)
        part.unlink()
        shown = redact_url(url)  # a mirror's password stays out of replies and logs
        try:
            with (
                urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response,
                part.open("wb") as handle,
            ):
                copied = 0
                read = getattr(response, "read1", response.read)  # what one read brings
                window_s, window_bytes = time.monotonic(), 0
                while block := read(1 << 16):
                    copied += len(block)
                    if copied > size:
                        raise TransferError(f"{shown} sends more than {size} bytes")
                    handle.write(block)
                    window_bytes += len(block)
                    if time.monotonic() - window_s >= STALL_WINDOW_S:
                        if window_bytes < STALL_MIN_BYTES:
                            raise TransferError(
                                f"{shown} stalled: {window_bytes} bytes in the last "
                                f"{STALL_WINDOW_S:g} s (at least {STALL_MIN_BYTES} expected)"
                            )
                        window_s, window_bytes = time.monotonic(), 0
        except OSError as error:  # URLError, timeouts, refused connections
            raise TransferError(f"cannot fetch {shown}: {redact_url(str(error))}") from None
        return self.complete(archive_id)


def unpack(archive: Path, target: Path, *, max_bytes: int) -> None:
    """Unpack a release archive into the new folder ``target``: plain files with plain
    names only (no folders, links, devices, absolute or climbing paths), at most
    ``max_bytes`` in all. Anything else refuses the whole archive."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(mode=0o755, parents=True)
    total = 0
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if not member.isfile() or not re.fullmatch(FILE_NAME, name):
                    raise TransferError(f"archive member {member.name[:64]!r} is not a plain file")
                total += member.size
                if total > max_bytes:
                    raise TransferError(f"the archive unpacks to more than {max_bytes} bytes")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                with (target / name).open("xb") as handle:
                    shutil.copyfileobj(source, handle)
    except (tarfile.TarError, FileExistsError) as error:
        shutil.rmtree(target, ignore_errors=True)
        raise TransferError(f"the archive cannot be unpacked: {error}") from None
    except TransferError:
        shutil.rmtree(target, ignore_errors=True)
        raise


def pack(folder: Path, archive: Path) -> None:
    """The operator's side: ``folder``'s files, flat, into an uncompressed tar."""
    with tarfile.open(archive, "w") as tar:
        for path in sorted(folder.iterdir()):
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
