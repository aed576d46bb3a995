"""Commands off paho's network thread: a bounded queue and one ``mqtt-commands`` thread.

paho runs ``on_message`` on its network thread, which also reads PUBACKs and sends
keepalives; a command may be slow (``snapshot`` JPEG-encodes a frame), so the publisher
only queues it there and this thread runs it and sends the reply. When the queue is full
the command is refused at once (``{"ok":false,"error":"busy: ..."}``) rather than
queued without bound or run on the network thread.

Where the reply goes is decided here too (:func:`reply_route`): a response topic the
device may not or cannot publish to is never used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.encode import Topics
from edge_agent.remote import (
    MAX_ECHO_CHARS,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_BYTES,
    Reply,
    nests_deeper_than,
    shown,
)

__all__ = [
    "RESPONSE_TOPIC_KEY",
    "CommandCallback",
    "CommandQueue",
    "InboundCommand",
    "reply_route",
    "response_topic_in_payload",
]

_log = logging.getLogger("edge_agent.mqtt")

CommandCallback = Callable[[str, bytes, bool], Reply | None]
"""(command name, payload, retained) → the reply, or None for no reply (runs on the
``mqtt-commands`` thread)."""

THREAD_NAME = "mqtt-commands"


@dataclass(frozen=True)
class InboundCommand:
    """A command as received, with where its reply goes."""

    name: str
    payload: bytes
    retained: bool
    reply_topic: str
    correlation: bytes | None = None


def reply_route(topics: Topics, name: str, requested: object) -> tuple[str, str | None]:
    """Where the reply to command ``name`` goes, and why the requested MQTT 5 response
    topic was refused (None: it was fine, or there was none).

    A response topic under ``{root}/reply/`` is used as is; any other is replaced by
    ``{root}/reply/{name}`` (the broker's ACL allows no other). One under ``reply/`` that
    holds a wildcard (``+``, ``#``) or a NUL cannot be published to at all: the command is
    refused, with the reason on the default topic, rather than run and answered nowhere.
    """
    default = topics.reply(name)
    if not isinstance(requested, str) or not topics.is_reply(requested):
        return default, None
    if any(char in requested for char in "+#\0"):
        return default, (
            f"response topic {shown(requested, 4 * MAX_ECHO_CHARS)!r} is not a valid topic to "
            "publish to (it holds a wildcard + or # or a NUL); the command was not run"
        )
    return requested, None


RESPONSE_TOPIC_KEY = "response_topic"
"""MQTT 3.1.1 has no Response Topic property: the request's JSON object may carry it."""


def response_topic_in_payload(payload: bytes) -> tuple[bytes, object]:
    """MQTT 3.1.1: the payload without its ``response_topic`` key, and that key's value
    (None when absent). A payload that is not a small JSON object is returned as it is:
    the command handler refuses it with its own reason."""
    if len(payload) > MAX_PAYLOAD_BYTES or b'"' + RESPONSE_TOPIC_KEY.encode() not in payload:
        return payload, None
    try:
        text = payload.decode(json.detect_encoding(payload))
        if nests_deeper_than(text, MAX_JSON_DEPTH):
            return payload, None
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return payload, None
    if not isinstance(body, dict) or RESPONSE_TOPIC_KEY not in body:
        return payload, None
    requested = body.pop(RESPONSE_TOPIC_KEY)
    return json.dumps(body, separators=(",", ":")).encode(), requested


class CommandQueue:
    """Runs queued commands one at a time, in arrival order, on its own thread."""

    def __init__(
        self,
        callback: CommandCallback,
        send_reply: Callable[[InboundCommand, Reply], None],
        *,
        capacity: int = 8,
    ) -> None:
        if capacity < 1:
            raise ValueError("the command queue needs room for at least one command")
        self.capacity = capacity
        self._callback = callback
        self._send_reply = send_reply
        self._queue: queue.Queue[InboundCommand | None] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    @property
    def thread_name(self) -> str:
        return self._thread.name

    def start(self) -> None:
        self._thread.start()

    def submit(self, command: InboundCommand) -> bool:
        """Queue ``command``; False when the queue is full (or stopping). Never blocks."""
        if self._stopping.is_set():
            return False
        try:
            self._queue.put_nowait(command)
        except queue.Full:
            return False
        return True

    def stop(self, timeout_s: float) -> bool:
        """Finish the command in hand, drop the rest; False if the thread is still busy
        after ``timeout_s`` (the caller reports it)."""
        if not self._thread.is_alive():
            return True
        self._stopping.set()
        # Wake an idle thread; a busy one checks _stopping after its command.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=max(0.0, timeout_s))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            command = self._queue.get()
            if command is None or self._stopping.is_set():
                return
            try:
                reply = self._callback(command.name, command.payload, command.retained)
            except Exception:  # a handler bug must not end the command thread
                _log.exception("command %r failed", shown(command.name))
                reply = Reply.error("internal error")
            if reply is not None:
                self._send_reply(command, reply)
