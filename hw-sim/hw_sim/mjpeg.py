"""An IP camera stand-in: a simulator scene served as an MJPEG stream over HTTP.

Many city cameras offer ``multipart/x-mixed-replace`` MJPEG over HTTP; OpenCV
(FFmpeg) reads it like RTSP. ``MjpegServer`` lets tests and demos point the
agent's OpenCV source at ``http://127.0.0.1:PORT/stream.mjpg``, and cut the
stream (``stop``) and bring it back on the same port (``start``) to check that
the agent reconnects.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from edge_agent.types import ImageBGR

BOUNDARY = "edgeagentframe"


class _Handler(BaseHTTPRequestHandler):
    server: _StreamServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/stream.mjpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        owner = self.server.owner
        index = 0
        next_due_s = time.monotonic()
        while not owner.stopping.is_set():
            ok, jpeg = cv2.imencode(".jpg", owner.frame_at(index), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                return
            data = jpeg.tobytes()
            try:
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                )
                self.wfile.write(data)
                self.wfile.write(b"\r\n")
                self.wfile.flush()
            except OSError:
                return  # the client went away
            owner.frames_served += 1
            index += 1
            next_due_s += 1.0 / owner.fps
            if owner.stopping.wait(max(0.0, next_due_s - time.monotonic())):
                return


class _StreamServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: MjpegServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class MjpegServer:
    """Serves ``frame_at(index)`` at ``fps`` to every client; stop and restart on one port."""

    def __init__(
        self, frame_at: Callable[[int], ImageBGR], *, fps: float = 10.0, port: int | None = None
    ) -> None:
        self.frame_at = frame_at
        self.fps = fps
        self.port = port or _free_port()
        self.frames_served = 0
        self.stopping = threading.Event()
        self._server: _StreamServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        self.stopping.clear()
        self._server = _StreamServer(("127.0.0.1", self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Cut every client and stop listening (a camera losing power)."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def __enter__(self) -> MjpegServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
