"""The page's HTTP server class: the standard library's ``ThreadingHTTPServer`` with a cap
on connections at once, in all and per client address, and a deadline for reading a whole
request (edge_agent/web/server.py)."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from edge_agent.web.server import WebServer

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "DeadlineReader",
    "LimitedServer",
    "LimitedV6Server",
]

MAX_CONNECTIONS = 16  # request threads at once (a phone and a laptop need a handful)
MAX_CONNECTIONS_PER_ADDRESS = 8  # a browser opens at most 6 to one host


class LimitedServer(ThreadingHTTPServer):
    """One thread per connection, at most ``MAX_CONNECTIONS`` at once and
    ``MAX_CONNECTIONS_PER_ADDRESS`` from one client address: a flood of connections from
    the site network is turned away, not given the agent's memory, and one host holding
    idle connections open cannot lock the technician out."""

    daemon_threads = True
    page: WebServer  # set by WebServer
    _slots = threading.BoundedSemaphore(1)  # replaced per server in server_activate
    _per_address: dict[str, int]
    _per_address_lock: threading.Lock

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._per_address = {}
        self._per_address_lock = threading.Lock()
        super().server_activate()

    def _take(self, address: str) -> bool:
        with self._per_address_lock:
            held = self._per_address.get(address, 0)
            if held >= MAX_CONNECTIONS_PER_ADDRESS:
                return False
            self._per_address[address] = held + 1
        if self._slots.acquire(blocking=False):
            return True
        self._give_back(address, slot=False)
        return False

    def _give_back(self, address: str, *, slot: bool = True) -> None:
        if slot:
            self._slots.release()
        with self._per_address_lock:
            held = self._per_address.get(address, 1) - 1
            if held > 0:
                self._per_address[address] = held
            else:
                self._per_address.pop(address, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        address = str(client_address[0])
        if not self._take(address):
            self.shutdown_request(request)  # busy: the browser retries
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_back(address)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give_back(str(client_address[0]))


class LimitedV6Server(LimitedServer):
    address_family = socket.AF_INET6


class DeadlineReader(io.RawIOBase):
    """A connection's reads with a deadline for the whole request, not only per read: a
    socket timeout alone is reset by every byte, so a client dripping one byte every few
    seconds (slowloris) held its request thread for ever. Between ``start`` and ``finish``
    each read waits at most until the deadline, then raises ``TimeoutError`` (which the
    standard library's handler answers by closing the connection)."""

    def __init__(self, connection: socket.socket, idle_timeout_s: float) -> None:
        self._connection = connection
        self._raw = connection.makefile("rb", buffering=0)
        self._idle_timeout_s = idle_timeout_s
        self._deadline_mono_s: float | None = None

    def readable(self) -> bool:
        return True

    def start(self, deadline_s: float) -> None:
        """A request begins (its wait for the first line included)."""
        self._deadline_mono_s = time.monotonic() + deadline_s

    def finish(self) -> None:
        """The request is read: the answer is written with the idle timeout."""
        self._deadline_mono_s = None
        self._connection.settimeout(self._idle_timeout_s)

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        if self._deadline_mono_s is not None:
            left_s = self._deadline_mono_s - time.monotonic()
            if left_s <= 0:
                raise TimeoutError("the request was not complete within its deadline")
            self._connection.settimeout(min(left_s, self._idle_timeout_s))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()
