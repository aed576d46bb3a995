"""hw_sim.netproxy against a small echo server: every mode, the byte counters, the CLI."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import wait_until
from hw_sim.netproxy import NetProxy

TIMEOUT_S = 10.0


class EchoServer:
    """Echoes every byte back; counts connections and bytes so tests see what arrived."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self.accepted = 0
        self.received = 0
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            worker = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _echo(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                with self._lock:
                    self.received += len(data)
                conn.sendall(data)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.accepted, self.received

    def close(self) -> None:
        self._server.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[NetProxy]:
    with NetProxy("127.0.0.1", echo.port) as p:
        yield p


def connect(proxy: NetProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {len(data)} of {n} bytes"
        data += chunk
    return data


def assert_echoed(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` and get it back (through the proxy to the echo server)."""
    sock.sendall(data)
    assert recv_exactly(sock, len(data)) == data


def assert_nothing_arrives(sock: socket.socket) -> None:
    """Half-open: no data, no FIN, no RST (leaves ``sock`` non-blocking)."""
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(1)


def test_pass_forwards_both_ways_and_counts_exact_bytes(proxy: NetProxy, echo: EchoServer) -> None:
    payload = bytes(range(256)) * 1000  # 256 kB: more than one chunk
    with connect(proxy) as sock:
        assert_echoed(sock, payload)
        wait_until(lambda: proxy.stats().bytes_to_client == len(payload), TIMEOUT_S, "client bytes")
    stats = proxy.stats()
    assert (stats.bytes_to_upstream, stats.bytes_to_client) == (len(payload), len(payload))
    assert stats.bytes_dropped == 0
    assert stats.connections_total == 1
    wait_until(lambda: proxy.stats().connections_open == 0, TIMEOUT_S, "connection closed")


def test_delay_holds_each_chunk_both_ways_and_keeps_order(proxy: NetProxy) -> None:
    delay_ms = 150.0
    proxy.set_mode("delay", delay_ms=delay_ms)
    with connect(proxy) as sock:
        started = time.monotonic()
        for i in range(5):
            sock.sendall(f"<{i}>".encode())
        received = recv_exactly(sock, 15)
        elapsed_s = time.monotonic() - started
    assert received == b"<0><1><2><3><4>"
    # A lower bound the proxy guarantees by construction (held once each way).
    assert elapsed_s >= 2 * delay_ms / 1000.0
    assert proxy.stats().mode == "delay"


def test_blackhole_keeps_connections_open_and_drops_every_byte(
    proxy: NetProxy, echo: EchoServer
) -> None:
    with connect(proxy) as sock:
        assert_echoed(sock, b"hello")
        proxy.set_mode("blackhole")
        accepted_before, received_before = echo.counts()
        sock.sendall(b"x" * 1000)
        wait_until(lambda: proxy.stats().bytes_dropped == 1000, TIMEOUT_S, "bytes dropped")
        # Half-open: no data, no FIN, no RST for the client.
        assert_nothing_arrives(sock)
        # A new connection is accepted too, and the upstream is never dialled.
        with connect(proxy) as late:
            late.sendall(b"y" * 10)
            wait_until(lambda: proxy.stats().bytes_dropped == 1010, TIMEOUT_S, "late bytes")
            assert echo.counts() == (accepted_before, received_before)
            # Healing resets what was blackholed (its stream has a hole), for both.
            proxy.set_mode("pass")
            for dead in (sock, late):
                dead.setblocking(True)
                with pytest.raises(ConnectionResetError):
                    dead.recv(1)
    with connect(proxy) as fresh:
        assert_echoed(fresh, b"again")
    assert proxy.stats().resets == 2


def test_blackhole_hides_an_upstream_close_from_the_client(
    proxy: NetProxy, echo: EchoServer
) -> None:
    with connect(proxy) as sock:
        assert_echoed(sock, b"ping")
        proxy.set_mode("blackhole")
        echo.close()  # the broker gives up on the silent client
        sock.sendall(b"z" * 7)
        wait_until(lambda: proxy.stats().bytes_dropped == 7, TIMEOUT_S, "bytes dropped")
        assert_nothing_arrives(sock)
        assert proxy.stats().connections_open == 1


def test_reset_resets_open_connections_and_new_ones(proxy: NetProxy, echo: EchoServer) -> None:
    with connect(proxy) as sock:
        assert_echoed(sock, b"hi")
        proxy.set_mode("reset")
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    # A new connection is reset as soon as it is accepted: the client sees the RST at
    # connect() or at its first read, depending on who runs first.
    with pytest.raises(ConnectionResetError), connect(proxy) as late:
        late.recv(1)
    assert echo.counts()[0] == 1
    proxy.set_mode("pass")
    with connect(proxy) as sock:
        assert_echoed(sock, b"ok")
    assert proxy.stats().resets == 2


def test_close_stops_the_thread_and_the_listener(echo: EchoServer) -> None:
    proxy = NetProxy("127.0.0.1", echo.port)
    sock = connect(proxy)
    proxy.close()
    assert not proxy._thread.is_alive()
    assert sock.recv(1) == b""  # open connections get a FIN
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT_S)
    with pytest.raises(RuntimeError, match="closed"):
        proxy.set_mode("pass")


def test_refuses_a_non_loopback_upstream_and_bad_modes(echo: EchoServer) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        NetProxy("192.0.2.1", 1883)
    with pytest.raises(ValueError, match="mode must be one of"):
        NetProxy("127.0.0.1", echo.port, mode="drop")  # type: ignore[arg-type]
    with NetProxy("127.0.0.1", echo.port) as proxy, pytest.raises(ValueError, match="negative"):
        proxy.set_mode("delay", delay_ms=-1)


def test_cli_drives_the_proxy_from_stdin(echo: EchoServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hw_sim.cli", "proxy", "--upstream", f"127.0.0.1:{echo.port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        banner = proc.stdout.readline()
        assert banner.startswith("listening on 127.0.0.1:"), banner
        port = int(banner.split()[2].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
            assert_echoed(sock, b"abc")
            proc.stdin.write("blackhole\n")
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())
            assert answer["mode"] == "blackhole"
            assert answer["bytes_to_upstream"] == 3 and answer["connections_open"] == 1
            proc.stdin.write("nonsense\n")
            proc.stdin.flush()
            assert "unknown command" in json.loads(proc.stdout.readline())["error"]
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            final = json.loads(proc.stdout.readline())
            assert final["mode"] == "blackhole"
        assert proc.wait(timeout=TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
