"""Commands from the command centre: ``{root}/cmd/{name}`` → a reply.

Every command payload is validated (pydantic, unknown keys refused) before
anything happens; a bad one gets an error reply and changes nothing. Retained
command messages are ignored: a command must never fire again because a device
reconnected. The transport (subscribing, MQTT 5 response topic and correlation
data) is ``edge_agent.mqtt``'s; this module only decides what a command means.

Commands:

- ``ping`` → ``{"ok": true, "ts": …}``: is the device there and listening?
- ``status`` → version, boot, cameras' health, outbox depth.
- ``snapshot`` ``{"camera": "cam1", "width_px": 640}`` → a JPEG of the latest frame.
- ``preview`` ``{"camera": "cam1", "on": true, "seconds": 60, "fps": 1}`` → low-rate
  JPEGs on ``preview/{camera}`` (QoS 0, short message expiry) until it times out, within
  the camera's byte budget (``budget_bps`` may ask for less; edge_agent/preview.py).
- ``reference`` ``{"camera": "cam1", "mode": "learn"}`` → the camera's analyzers take a
  new reference of the clear scene, kept on disk (docs/analyzers.md, Stored references).
- ``clips`` ``{"camera": "cam1", "since": t0, "until": t1}`` (all optional) → the clips on
  the device (docs/recording.md); ``clip_hold`` / ``clip_release`` ``{"id": …}`` → the
  clip is never deleted / may be again; ``clip_fetch`` ``{"id": …, "offset": 0,
  "length": 65536}`` → that chunk of the MP4, its sha256 and the whole clip's in user
  properties (``edge_agent.recording.commands``).
- ``update_begin`` / ``update_chunk`` / ``update_commit`` / ``update_fetch`` → a signed
  release received in chunks (or fetched from a URL), verified, installed beside the
  running one and switched, kept or rolled back by a health check (docs/updates.md).
- ``reload`` ``{}`` → the device reads its config file again, checks it and applies it
  (``{"ok": true, "config": …, "changed": […]}``), or keeps the running one and says why
  (docs/service.md, Reload). The file is the device's own: a command cannot name another.
- ``announce`` ``{}`` → the device publishes its birth (the retained ``online`` status) and
  its stats again now (Sparkplug's rebirth), so a fleet view started after it sees it at
  once: ``{"ok": true, "boot": …, "announced": ["status", "stats"]}``.

Hostile input is refused before it costs anything: a payload over ``MAX_PAYLOAD_BYTES`` or
nested deeper than ``MAX_JSON_DEPTH`` is not parsed, and whatever a reply or a log line
echoes of the request (a command name, a key) is cut to ``MAX_ECHO_CHARS``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import ConfigDict, Field, ValidationError

from edge_agent.config import problems_of
from edge_agent.config_base import Identifier, StrictModel
from edge_agent.recording.commands import ClipCommands, ClipError
from edge_agent.strict_json import (
    MAX_ECHO_CHARS,
    AmbiguousJSON,
    finite,
    loads_strict,
    nests_deeper_than,
    shown,
)
from edge_agent.update.errors import UpdateError

log = logging.getLogger(__name__)

MAX_PREVIEW_S = 600.0
MAX_PREVIEW_FPS = 5.0
MAX_PAYLOAD_BYTES = 65_536
"""A real command is under 200 bytes; a bigger payload is not even parsed."""
MAX_JSON_DEPTH = 32
"""A real command nests two levels; deeper would only exhaust the parser's stack."""
MAX_ERROR_CHARS = 1024
"""An error reply's text is never longer, whatever it quotes."""


class CommandModel(StrictModel):
    """A command's payload: unknown keys refused, and types as the AsyncAPI schema says
    them, not guessed: ``true`` is not 1, ``"60"`` is not 60, ``0`` is not ``false``, and
    NaN or Infinity (which Python's JSON parser reads) is no number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SnapshotCommand(CommandModel):
    camera: Identifier
    width_px: int = Field(640, ge=64, le=1920)


class PreviewCommand(CommandModel):
    camera: Identifier
    on: bool = True
    seconds: float = Field(60.0, gt=0, le=MAX_PREVIEW_S)
    fps: float = Field(1.0, gt=0, le=MAX_PREVIEW_FPS)
    width_px: int = Field(480, ge=64, le=1280)
    # bits/s; at most the camera's configured budget (a higher ask gets the configured one)
    budget_bps: int | None = Field(None, ge=8_000)


class ReferenceCommand(CommandModel):
    camera: Identifier
    mode: Literal["learn", "frame"] = "learn"  # learn: a median over learn_s; frame: the next
    analyzers: list[Identifier] | None = None  # None: every analyzer that holds a reference


class EmptyCommand(CommandModel):
    pass


CLIP_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class ClipsCommand(CommandModel):
    camera: Identifier | None = None
    since: float | None = None  # wall clock, seconds since the epoch
    until: float | None = None


class ClipIdCommand(CommandModel):
    id: str = Field(pattern=CLIP_ID)


ARCHIVE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SHA256 = r"^[0-9a-f]{64}$"


class UpdateBeginCommand(CommandModel):
    id: str = Field(pattern=ARCHIVE_ID)
    size: int = Field(ge=1)
    sha256: str = Field(pattern=SHA256)


class UpdateChunkCommand(CommandModel):
    id: str = Field(pattern=ARCHIVE_ID)
    offset: int = Field(ge=0)
    data: str  # base64: a command payload is JSON (at most 64 kB: 45 kB of data a chunk)
    sha256: str | None = Field(None, pattern=SHA256)  # of the chunk's bytes


class UpdateCommitCommand(CommandModel):
    id: str = Field(pattern=ARCHIVE_ID)
    kind: Literal["model", "config", "agent"] | None = None  # refuse any other kind


class UpdateFetchCommand(CommandModel):
    id: str = Field(pattern=ARCHIVE_ID)
    url: str = Field(pattern=r"^https?://", max_length=2048)
    size: int = Field(ge=1)
    sha256: str = Field(pattern=SHA256)


class UpdateCommands(Protocol):
    """``edge_agent.update.manager.Updater`` as the commands see it; a refusal raises
    :class:`UpdateError`."""

    def begin(self, archive_id: str, size: int, sha256: str) -> dict[str, object]: ...

    def chunk(
        self, archive_id: str, offset: int, data: str, sha256: str | None
    ) -> dict[str, object]: ...

    def commit(self, archive_id: str, *, kind: str | None = None) -> dict[str, object]: ...

    def fetch(self, archive_id: str, url: str, size: int, sha256: str) -> dict[str, object]: ...


class ClipFetchCommand(CommandModel):
    id: str = Field(pattern=CLIP_ID)
    offset: int = Field(0, ge=0)
    length: int | None = Field(None, ge=1)  # None: the device's chunk size


COMMAND_MODELS: Mapping[str, type[CommandModel]] = {
    "ping": EmptyCommand,
    "status": EmptyCommand,
    "snapshot": SnapshotCommand,
    "preview": PreviewCommand,
    "reference": ReferenceCommand,
    "reload": EmptyCommand,
    "announce": EmptyCommand,
    "clips": ClipsCommand,
    "clip_hold": ClipIdCommand,
    "clip_release": ClipIdCommand,
    "clip_fetch": ClipFetchCommand,
    "update_begin": UpdateBeginCommand,
    "update_chunk": UpdateChunkCommand,
    "update_commit": UpdateCommitCommand,
    "update_fetch": UpdateFetchCommand,
}
"""Each command's payload model: the whole request is checked against it before anything
is done."""


@dataclass(frozen=True)
class Reply:
    """What goes back on the response topic; ``ok`` False: the command was refused."""

    payload: bytes
    content_type: str = "application/json"
    ok: bool = True
    user_properties: tuple[tuple[str, str], ...] = ()  # MQTT 5 only (a clip chunk's sha256)

    @staticmethod
    def json(body: Mapping[str, object]) -> Reply:
        """``body`` as strict JSON: a NaN or an infinity somewhere in a report (JSON has
        neither; Python would write ``NaN``) goes out as null."""
        try:
            text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        except ValueError:
            text = json.dumps(finite(body), separators=(",", ":"), allow_nan=False)
        return Reply(text.encode(), ok=body.get("ok") is not False)

    @staticmethod
    def error(message: str) -> Reply:
        """A refusal; its text is capped at ``MAX_ERROR_CHARS`` (callers cut what they
        quote with :func:`shown`; this is the backstop)."""
        return Reply.json({"ok": False, "error": shown(message, MAX_ERROR_CHARS)})


class CommandTarget(Protocol):
    """What the running agent offers to commands."""

    def status_report(self) -> Mapping[str, object]: ...

    def snapshot_jpeg(self, camera_id: str, width_px: int) -> bytes | None:
        """The latest frame as JPEG, or None when the camera has produced none yet."""
        ...

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
        """Switch the preview on or off; the budget in effect (bits/s): the one asked for,
        at most the camera's configured one."""
        ...

    def set_references(
        self, camera_id: str, *, mode: Literal["learn", "frame"], analyzers: list[str] | None
    ) -> list[str]:
        """Ask for new references (queued, not awaited); the analyzers asked.
        ``ValueError``: an unknown analyzer, or a reference directory that cannot be written."""
        ...

    def camera_ids(self) -> tuple[str, ...]: ...

    def reload_config(self) -> Mapping[str, object]:
        """Re-read, check and apply the config file: ``{"ok": True, ...}`` when applied,
        ``{"ok": False, "error": why}`` when refused (the running config is kept)."""
        ...

    def announce(self) -> Mapping[str, object]:
        """Publish the birth and the stats again now: ``{"ok": True, "announced": [...]}``."""
        ...


COMMANDS: tuple[str, ...] = tuple(COMMAND_MODELS)


def _problems(error: ValidationError) -> list[str]:
    """``problems_of``, with any key of the request it names cut to ``MAX_ECHO_CHARS``."""
    problems = []
    for problem, item in zip(problems_of(error), error.errors(), strict=False):
        for part in item["loc"]:
            if isinstance(part, str) and len(part) > MAX_ECHO_CHARS:
                problem = problem.replace(part, shown(part))
        problems.append(problem)
    return problems


class CommandHandler:
    def __init__(
        self,
        target: CommandTarget,
        clock: Callable[[], float] = time.time,
        *,
        clips: ClipCommands | None = None,
        updates: UpdateCommands | None = None,
    ) -> None:
        """``clips``: the clip commands' store (None: this device does not record);
        ``updates``: the updater (None: no ``updates:`` in the config)."""
        self._target = target
        self._clock = clock
        self._clips = clips
        self._updates = updates
        self.handled = 0
        self.refused = 0

    def handle(self, name: str, payload: bytes, *, retained: bool = False) -> Reply | None:
        """The reply to command ``name``; None for a retained message (ignored, logged)."""
        if retained:
            log.warning(
                "ignoring retained command %r: commands must never be retained", shown(name)
            )
            self.refused += 1
            return None
        reply = self._dispatch(name, payload)
        if not reply.ok:
            self.refused += 1
            log.warning(
                "command %r refused: %s", shown(name), reply.payload.decode(errors="replace")
            )
        else:
            self.handled += 1
        return reply

    def _dispatch(self, name: str, payload: bytes) -> Reply:
        if name not in COMMANDS:
            return Reply.error(f"unknown command {shown(name)!r}; known: {', '.join(COMMANDS)}")
        if len(payload) > MAX_PAYLOAD_BYTES:
            return Reply.error(
                f"bad request: payload of {len(payload)} bytes (at most {MAX_PAYLOAD_BYTES})"
            )
        try:
            text = payload.decode(json.detect_encoding(payload))  # as json.loads(bytes)
            if nests_deeper_than(text, MAX_JSON_DEPTH):
                return Reply.error(f"bad request: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            data = loads_strict(text) if text.strip() else {}
        except AmbiguousJSON as error:
            return Reply.error(f"bad request: {error}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return Reply.error(f"payload is not JSON: {error}")
        except RecursionError:  # the depth check should have caught it; never a traceback
            return Reply.error(f"bad request: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if not isinstance(data, dict):
            return Reply.error("payload must be a JSON object")
        try:
            command = COMMAND_MODELS[name].model_validate(data)
        except ValidationError as error:
            return Reply.error("; ".join(_problems(error)))
        try:
            return self._run(name, command)
        except OSError as error:  # a full disk, an unreadable file: said, not "internal error"
            log.error("command %r failed: %s", name, error)
            return Reply.error(f"{name} failed on the device: {error.strerror or error}")

    def _run(self, name: str, command: CommandModel) -> Reply:
        if name == "ping":
            return Reply.json({"ok": True, "ts": round(self._clock(), 3)})
        if name == "status":
            return Reply.json({"ok": True, **self._target.status_report()})
        if name == "reload":
            outcome = self._target.reload_config()
            if outcome.get("ok") is False:  # every reason of a bad file: cut like any error
                return Reply.error(str(outcome.get("error")))
            return Reply.json(outcome)
        if name == "announce":
            return Reply.json(self._target.announce())
        if isinstance(command, SnapshotCommand):
            return self._snapshot(command)
        if isinstance(command, PreviewCommand):
            return self._preview(command)
        if isinstance(command, ReferenceCommand):
            return self._reference(command)
        if name.startswith("clip"):
            return self._clip_command(name, command)
        return self._update_command(name, command)

    def _known_camera(self, camera_id: str) -> str | None:
        cameras = self._target.camera_ids()
        if camera_id in cameras:
            return None
        return f"unknown camera {camera_id!r}; this device has: {', '.join(cameras)}"

    def _snapshot(self, command: SnapshotCommand) -> Reply:
        problem = self._known_camera(command.camera)
        if problem:
            return Reply.error(problem)
        jpeg = self._target.snapshot_jpeg(command.camera, command.width_px)
        if jpeg is None:
            return Reply.error(f"camera {command.camera!r} has not delivered a frame yet")
        return Reply(jpeg, "image/jpeg")

    def _preview(self, command: PreviewCommand) -> Reply:
        problem = self._known_camera(command.camera)
        if problem:
            return Reply.error(problem)
        budget_bps = self._target.set_preview(
            command.camera,
            on=command.on,
            seconds=command.seconds,
            fps=command.fps,
            width_px=command.width_px,
            budget_bps=command.budget_bps,
        )
        state: Literal["on", "off"] = "on" if command.on else "off"
        return Reply.json(
            {
                "ok": True,
                "camera": command.camera,
                "preview": state,
                "until": round(self._clock() + command.seconds, 3) if command.on else None,
                "budget_bps": budget_bps,
            }
        )

    def _reference(self, command: ReferenceCommand) -> Reply:
        problem = self._known_camera(command.camera)
        if problem:
            return Reply.error(problem)
        if command.analyzers == []:  # not "none of them": absent or null means all
            return Reply.error(
                "analyzers: the list is empty, so no analyzer was asked: name the analyzers "
                "to ask, or leave the key out (or null) for every analyzer of the camera"
            )
        try:
            asked = self._target.set_references(
                command.camera, mode=command.mode, analyzers=command.analyzers
            )
        except ValueError as error:
            return Reply.error(str(error))
        if not asked:
            return Reply.error(f"camera {command.camera!r} has no analyzer that holds a reference")
        log.info("camera %s: %s a new reference for %s", command.camera, command.mode, asked)
        return Reply.json(
            {"ok": True, "camera": command.camera, "mode": command.mode, "analyzers": asked}
        )

    def _clip_command(self, name: str, command: CommandModel) -> Reply:
        clips = self._clips
        if clips is None:
            return Reply.error("this device does not record (no `recording:` in its config)")
        try:
            if isinstance(command, ClipsCommand):
                return Reply.json(clips.list(command.camera, command.since, command.until))
            if isinstance(command, ClipFetchCommand):
                chunk = clips.fetch(command.id, command.offset, command.length)
                return Reply(chunk.data, "video/mp4", user_properties=chunk.properties())
            assert isinstance(command, ClipIdCommand)
            return Reply.json(clips.hold(command.id, name == "clip_hold"))
        except ClipError as error:
            if error.retry_after_s is None:
                return Reply.error(str(error))
            busy = {"ok": False, "error": str(error), "retry_after_s": error.retry_after_s}
            return Reply.json(busy)

    def _update_command(self, name: str, command: CommandModel) -> Reply:
        updates = self._updates
        if updates is None:
            return Reply.error("this device takes no updates (no `updates:` in its config)")
        try:
            if isinstance(command, UpdateBeginCommand):
                return Reply.json(updates.begin(command.id, command.size, command.sha256))
            if isinstance(command, UpdateChunkCommand):
                return Reply.json(
                    updates.chunk(command.id, command.offset, command.data, command.sha256)
                )
            if isinstance(command, UpdateCommitCommand):
                return Reply.json(updates.commit(command.id, kind=command.kind))
            assert isinstance(command, UpdateFetchCommand)
            return Reply.json(updates.fetch(command.id, command.url, command.size, command.sha256))
        except UpdateError as error:
            body: dict[str, object] = {"ok": False, "error": shown(str(error), MAX_ERROR_CHARS)}
            if error.have is not None:
                body["have"] = error.have  # resume from here
            return Reply.json(body)
