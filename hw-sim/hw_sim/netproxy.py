"""A TCP proxy that tests put between the agent and the broker to break the network on cue.

Modes (:meth:`NetProxy.set_mode`; it returns once the proxy thread has applied it):

``pass``
    Bytes go through unchanged.
``delay``
    Every chunk is held ``delay_ms`` before it is forwarded, both ways, order kept.
``blackhole``
    Connections stay open and every byte, both ways, is read and dropped: the client
    sees a half-open connection (its writes succeed, nothing ever comes back), exactly
    like a cut uplink behind a NAT. New connections are accepted and treated the same;
    the upstream is not even dialled. A connection that was blackholed is never revived
    (its byte stream has a hole in it): leaving ``blackhole`` resets it.
``reset``
    Every open connection is reset (TCP RST, both sides) and new ones are accepted and
    reset at once, like a firewall rejecting the path.

Bytes are counted each way (``bytes_to_upstream``, ``bytes_to_client``: what was
actually forwarded) plus ``bytes_dropped`` by the blackhole, for "bytes on the wire"
benchmarks.

One thread runs a ``select`` loop over every socket, so the proxy costs one thread
however many connections it carries. It listens on 127.0.0.1 only, dials only loopback
upstreams unless told otherwise, carries at most ``max_connections`` at once, and
:meth:`NetProxy.close` stops it and closes every socket.

>>> with NetProxy("127.0.0.1", 1883) as proxy:  # doctest: +SKIP
...     proxy.set_mode("blackhole")
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["MODES", "Mode", "NetProxy", "ProxyStats", "add_proxy_parser", "run_proxy_cli"]

Mode = Literal["pass", "delay", "blackhole", "reset"]
MODES: tuple[Mode, ...] = ("pass", "delay", "blackhole", "reset")

_CHUNK_BYTES = 65536
_MAX_BUFFERED_BYTES = 4 << 20  # per direction; above this we stop reading the source
_IDLE_POLL_S = 0.2  # select timeout when nothing is due; control changes wake us at once


@dataclass(frozen=True)
class ProxyStats:
    mode: str
    delay_ms: float
    connections_total: int  # accepted so far
    connections_open: int
    resets: int  # connections we reset (reset mode, leaving blackhole, over the cap)
    bytes_to_upstream: int
    bytes_to_client: int
    bytes_dropped: int  # read and thrown away by the blackhole


def _reset(sock: socket.socket | None) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0)."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


class _Side:
    """One end of a proxied connection and the bytes waiting to be written to it."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock
        self.delayed: deque[tuple[float, bytes]] = deque()  # (due monotonic time, data)
        self.out = bytearray()  # due, not yet written
        self.eof = False  # it closed its end: read no more, write no more

    def pending(self) -> int:
        return len(self.out) + sum(len(d) for _, d in self.delayed)

    def drop_pending(self) -> int:
        n = self.pending()
        self.out.clear()
        self.delayed.clear()
        return n


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket | None, dead: bool) -> None:
        self.client = _Side(client)
        self.upstream = _Side(upstream)
        self.dead = dead  # blackholed: drops everything until closed


class NetProxy:
    """Listens on ``listen_host:port`` (``port`` is chosen free when 0) and forwards to
    ``upstream_host:upstream_port`` according to the current mode."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        mode: Mode = "pass",
        delay_ms: float = 0.0,
        max_connections: int = 64,
        connect_timeout_s: float = 5.0,
        allow_non_loopback: bool = False,
    ) -> None:
        _check_mode(mode, delay_ms)
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not allow_non_loopback:
            for host in (listen_host, upstream_host):
                _require_loopback(host)
        self.upstream = (upstream_host, upstream_port)
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._listener = socket.create_server((listen_host, listen_port))
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

        self._lock = threading.Condition()
        self._mode: Mode = mode
        self._delay_s = delay_ms / 1000.0
        self._requested = 0  # generation of the last set_mode()
        self._applied = 0  # generation the loop has applied
        self._stopping = False
        self._stats = {
            "connections_total": 0,
            "resets": 0,
            "bytes_to_upstream": 0,
            "bytes_to_client": 0,
            "bytes_dropped": 0,
        }
        self._conns: list[_Conn] = []  # owned by the loop thread
        self._open_count = 0
        self._thread = threading.Thread(target=self._run, name="netproxy", daemon=True)
        self._thread.start()

    # -- control (any thread) -----------------------------------------------------

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._mode

    def set_mode(
        self, mode: Mode, *, delay_ms: float | None = None, timeout_s: float = 5.0
    ) -> None:
        """Switch mode; returns once the proxy applied it (no byte crosses in the old mode
        after this returns)."""
        _check_mode(mode, delay_ms or 0.0)
        with self._lock:
            if self._stopping:
                raise RuntimeError("the proxy is closed")
            self._mode = mode
            if delay_ms is not None:
                self._delay_s = delay_ms / 1000.0
            self._requested += 1
            generation = self._requested
        self._wake()
        with self._lock:
            if not self._lock.wait_for(lambda: self._applied >= generation, timeout_s):
                raise TimeoutError(f"proxy did not apply mode {mode!r} within {timeout_s} s")

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(
                mode=self._mode,
                delay_ms=self._delay_s * 1000.0,
                connections_open=self._open_count,
                **self._stats,
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and close every socket (open connections get a FIN)."""
        with self._lock:
            self._stopping = True
        self._wake()
        self._thread.join(timeout_s)

    def __enter__(self) -> NetProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NetProxy({self.host}:{self.port} -> {self.upstream[0]}:{self.upstream[1]})"

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    # -- the loop (proxy thread only) ---------------------------------------------

    def _run(self) -> None:
        applied_mode: Mode = "pass"
        try:
            while True:
                with self._lock:
                    stopping = self._stopping
                    mode, delay_s, generation = self._mode, self._delay_s, self._requested
                if stopping:
                    return
                if generation != self._applied:
                    self._apply(applied_mode, mode)
                    applied_mode = mode
                    with self._lock:
                        self._applied = generation
                        self._lock.notify_all()
                self._step(mode, delay_s)
        finally:
            for conn in self._conns:
                _close(conn.client.sock)
                _close(conn.upstream.sock)
            self._conns.clear()
            _close(self._listener)
            _close(self._wake_r)
            _close(self._wake_w)
            with self._lock:
                self._open_count = 0
                self._applied = self._requested
                self._lock.notify_all()

    def _apply(self, old: Mode, new: Mode) -> None:
        if new == "blackhole":
            for conn in self._conns:
                if not conn.dead:
                    conn.dead = True
                    dropped = conn.client.drop_pending() + conn.upstream.drop_pending()
                    self._count("bytes_dropped", dropped)
        elif new == "reset":
            for conn in list(self._conns):
                self._drop(conn, rst=True)
        elif old == "blackhole":
            for conn in list(self._conns):
                if conn.dead:
                    self._drop(conn, rst=True)

    def _drop(self, conn: _Conn, *, rst: bool) -> None:
        closer = _reset if rst else _close
        closer(conn.client.sock)
        closer(conn.upstream.sock)
        if conn in self._conns:
            self._conns.remove(conn)
        if rst:
            self._count("resets")
        with self._lock:
            self._open_count = len(self._conns)

    def _step(self, mode: Mode, delay_s: float) -> None:
        now = time.monotonic()
        next_due = now + _IDLE_POLL_S
        readers: list[socket.socket] = [self._listener, self._wake_r]
        writers: list[socket.socket] = []
        for conn in self._conns:
            for src, dst in ((conn.client, conn.upstream), (conn.upstream, conn.client)):
                while dst.delayed and dst.delayed[0][0] <= now:
                    dst.out += dst.delayed.popleft()[1]
                if dst.delayed:
                    next_due = min(next_due, dst.delayed[0][0])
                if src.sock is not None and not src.eof and dst.pending() < _MAX_BUFFERED_BYTES:
                    readers.append(src.sock)
                if dst.sock is not None and dst.out:
                    writers.append(dst.sock)
        timeout = max(0.0, next_due - now)
        readable, writable, _ = select.select(readers, writers, [], timeout)
        for sock in readable:
            if sock is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif sock is self._listener:
                self._accept_all(mode)
        for conn in list(self._conns):
            self._service(conn, readable, writable, mode, delay_s)

    def _accept_all(self, mode: Mode) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._count("connections_total")
            if mode == "reset" or len(self._conns) >= self._max_connections:
                _reset(client)
                self._count("resets")
                continue
            upstream: socket.socket | None = None
            if mode != "blackhole":
                try:
                    upstream = socket.create_connection(self.upstream, self._connect_timeout_s)
                except OSError:
                    _reset(client)
                    self._count("resets")
                    continue
                upstream.setblocking(False)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(_Conn(client, upstream, dead=mode == "blackhole"))
            with self._lock:
                self._open_count = len(self._conns)

    def _service(
        self,
        conn: _Conn,
        readable: list[socket.socket],
        writable: list[socket.socket],
        mode: Mode,
        delay_s: float,
    ) -> None:
        for src, dst, counter in (
            (conn.client, conn.upstream, "bytes_to_upstream"),
            (conn.upstream, conn.client, "bytes_to_client"),
        ):
            if dst.sock is not None and dst.sock in writable and dst.out:
                try:
                    sent = dst.sock.send(dst.out)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._drop(conn, rst=True)  # propagate the failure as a reset
                    return
                del dst.out[:sent]
                self._count(counter, sent)
            if src.sock is None or src.sock not in readable:
                continue
            try:
                data = src.sock.recv(_CHUNK_BYTES)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                self._drop(conn, rst=True)
                return
            if not data:
                src.eof = True
                src.drop_pending()  # nobody left to read what was bound for it
                if conn.dead:
                    if src is conn.client:
                        self._drop(conn, rst=False)  # the client gave up: forget it
                        return
                    # The upstream gave up: the client must not learn it (half-open).
                    _close(src.sock)
                    src.sock = None
                continue
            if conn.dead:
                self._count("bytes_dropped", len(data))
                continue
            dst.delayed.append((time.monotonic() + delay_s, data))
            if delay_s == 0:
                dst.out += dst.delayed.popleft()[1]
        # A side closed and everything bound for the other side has been written: done.
        if not conn.dead and (conn.client.eof or conn.upstream.eof):
            other = conn.upstream if conn.client.eof else conn.client
            if not other.pending():
                self._drop(conn, rst=False)


def _check_mode(mode: str, delay_ms: float) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if delay_ms < 0:
        raise ValueError(f"delay_ms must not be negative, not {delay_ms}")


def _require_loopback(host: str) -> None:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as error:
        raise ValueError(f"cannot resolve {host!r}: {error}") from None
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise ValueError(
                f"{host!r} is not a loopback address; pass allow_non_loopback=True"
                " (CLI: --allow-non-loopback) to proxy a real network path"
            )


# -- command line: ``hw-sim proxy`` ---------------------------------------------------


def add_proxy_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    proxy = commands.add_parser(
        "proxy",
        help="TCP fault proxy (pass, delay, blackhole, reset), driven from stdin",
        description=(
            "Forward 127.0.0.1:PORT to --upstream. Commands on stdin, one per line: "
            "pass | delay MS | blackhole | reset | stats | quit. Each is answered with one "
            "JSON line of statistics."
        ),
    )
    proxy.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    proxy.add_argument("--listen-port", type=int, default=0, help="0: any free port")
    proxy.add_argument("--mode", choices=MODES, default="pass")
    proxy.add_argument("--delay-ms", type=float, default=0.0)
    proxy.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop by itself after this long"
    )
    proxy.add_argument("--allow-non-loopback", action="store_true")


def run_proxy_cli(args: argparse.Namespace) -> int:
    host, _, port_text = str(args.upstream).rpartition(":")
    if not host or not port_text.isdigit():
        print(
            f"hw-sim: error: --upstream must be HOST:PORT, not {args.upstream!r}", file=sys.stderr
        )
        return 2
    try:
        proxy = NetProxy(
            host,
            int(port_text),
            listen_port=args.listen_port,
            mode=args.mode,
            delay_ms=args.delay_ms,
            allow_non_loopback=args.allow_non_loopback,
        )
    except (OSError, ValueError) as error:
        print(f"hw-sim: error: {error}", file=sys.stderr)
        return 2
    done = threading.Event()

    def report() -> None:
        print(json.dumps(asdict(proxy.stats())), flush=True)

    def read_commands() -> None:
        # End of stdin (e.g. started with </dev/null) is not "quit": the proxy keeps
        # running until --max-seconds, Ctrl-C or SIGTERM.
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            try:
                if words[0] == "quit":
                    done.set()
                    return
                if words[0] == "delay":
                    proxy.set_mode("delay", delay_ms=float(words[1]) if len(words) > 1 else None)
                elif words[0] in MODES:
                    proxy.set_mode(words[0])
                elif words[0] != "stats":
                    raise ValueError(f"unknown command {words[0]!r}")
            except (ValueError, IndexError, TimeoutError) as error:
                print(json.dumps({"error": str(error)}), flush=True)
                continue
            report()

    print(
        f"listening on {proxy.host}:{proxy.port} -> {host}:{port_text} mode {args.mode}",
        flush=True,
    )
    threading.Thread(target=read_commands, name="proxy-stdin", daemon=True).start()
    try:
        done.wait(args.max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.close()
    report()
    return 0
