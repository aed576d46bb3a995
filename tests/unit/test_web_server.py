"""The page's HTTP checks on a real socket, with a stub agent (edge_agent/web/server.py):
what a script may do with Basic auth, what a DNS-rebinding page, a guesser and a post
without its CSRF token get; secrets never leave in /api/config; the self-test runner."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from edge_agent.config import AgentConfig, parse_config
from edge_agent.pipeline import FrameOutput
from edge_agent.selftest import CheckResult
from edge_agent.service import ServiceHealth
from edge_agent.service.reload import ReloadOutcome
from edge_agent.types import Box, Lifecycle, ObjectEvent, Thumbnail
from edge_agent.web.auth import write_password_file
from edge_agent.web.config import WebConfig
from edge_agent.web.feed import RecentOutputs
from edge_agent.web.selftest import SelftestRunner
from edge_agent.web.server import WebServer
from edge_agent.worker import CameraWorker

PASSWORD = "a-good-password"


class StubAgent:
    def __init__(self, config_path: Path) -> None:
        self.config: AgentConfig = parse_config(
            {
                "site_id": "s1",
                "device_id": "d1",
                "cameras": [
                    {"id": "cam1", "source": {"kind": "sim"}},
                    {
                        "id": "gate",
                        "source": {
                            "kind": "opencv",
                            "uri": "rtsp://admin:cam-secret@10.0.0.9/h264",
                        },
                    },
                ],
                "mqtt": {"username": "dev", "password": "broker-secret"},
            }
        )
        self.config_path: Path | None = config_path
        self.workers: list[CameraWorker] = []

    def status_report(self) -> dict[str, object]:
        return {"condition": "ok", "status_led": "none", "cameras": {}}

    def service_health(self, now_s: float) -> ServiceHealth:
        return ServiceHealth(False, ("cam1",), (), 10, 3, True, True)

    def reload(self, path: Path | None = None) -> ReloadOutcome:
        return ReloadOutcome(True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    write_password_file(tmp_path / "web-password", PASSWORD)
    recent = RecentOutputs()
    page = WebServer(
        StubAgent(tmp_path / "config.yaml"),
        WebConfig(enabled=True, listen="127.0.0.1:0", login_failures_per_minute=2),
        password_file=tmp_path / "web-password",
        recent=recent,
    )
    page.start()
    try:
        yield page
    finally:
        page.close()


def request(
    server: WebServer, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"x:{password}".encode()).decode()


def test_scripts_read_health_with_basic_auth(server: WebServer) -> None:
    status, headers, body = request(server, "GET", "/api/health", Authorization=basic(PASSWORD))
    assert status == 200 and headers["Content-Type"] == "application/json"
    health = json.loads(body)
    assert health["condition"] == "ok" and health["outbox_depth"] == 3
    assert health["broker_connected"] is True and health["alive"] is True
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert request(server, "GET", "/api/health")[0] == 401


def test_the_config_is_shown_without_its_secrets(server: WebServer) -> None:
    _, _, body = request(server, "GET", "/api/config", Authorization=basic(PASSWORD))
    config = json.loads(body)
    assert config["mqtt"]["password"] == "***" and config["mqtt"]["username"] == "dev"
    assert b"broker-secret" not in body
    assert b"cam-secret" not in body  # a camera URL's password too
    assert config["cameras"][1]["source"]["uri"] == "rtsp://admin:***@10.0.0.9/h264"


def test_a_host_name_it_does_not_know_is_refused(server: WebServer) -> None:
    auth = basic(PASSWORD)
    status, _, _ = request(server, "GET", "/api/health", Host="evil.example", Authorization=auth)
    assert status == 421
    assert request(server, "GET", "/api/health", Host="[bad", Authorization=auth)[0] == 421


def test_guessing_is_limited(server: WebServer) -> None:
    origin = {"Origin": server.url, "Content_Type": "application/x-www-form-urlencoded"}
    for _ in range(2):
        assert request(server, "POST", "/login", b"password=wrong-one", **origin)[0] == 401
    status, _, body = request(server, "POST", "/login", f"password={PASSWORD}".encode(), **origin)
    assert status == 429 and b"Too many tries" in body  # even the right one, for a minute
    assert request(server, "GET", "/api/health", Authorization=basic(PASSWORD))[0] == 429


def test_a_post_needs_the_origin_and_the_session_csrf_token(server: WebServer) -> None:
    form = {"Origin": server.url, "Content_Type": "application/x-www-form-urlencoded"}
    status, headers, _ = request(server, "POST", "/login", f"password={PASSWORD}".encode(), **form)
    assert status == 303
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    session = cookie.split(";")[0]
    _, _, page = request(server, "GET", "/", Cookie=session)
    csrf = page.split(b'name="csrf-token" content="')[1].split(b'"')[0].decode()
    json_post = {"Cookie": session, "Content_Type": "application/json"}
    assert (
        request(server, "POST", "/api/config/rollback", b"{}", **json_post)[0] == 403
    )  # no Origin
    refused = request(server, "POST", "/api/config/rollback", b"{}", Origin=server.url, **json_post)
    assert refused[0] == 403 and b"CSRF" in refused[2]
    forged = request(
        server,
        "POST",
        "/api/config/rollback",
        b"{}",
        Origin="http://127.0.0.1:1",
        X_CSRF_Token=csrf,
        **json_post,
    )
    assert forged[0] == 403 and b"cross-site" in forged[2]
    # Origin and token right: it reaches the editor (no .prev yet: nothing to roll back to).
    allowed = request(
        server,
        "POST",
        "/api/config/rollback",
        b"{}",
        Origin=server.url,
        X_CSRF_Token=csrf,
        **json_post,
    )
    assert allowed[0] == 404 and b"no previous config" in allowed[2]


def test_the_event_list_and_thumbnails(server: WebServer) -> None:
    event = ObjectEvent(
        "e1",
        Lifecycle.NEW,
        "cam1",
        "object",
        "person",
        0.9,
        0.9,
        Box(0, 0, 1, 1),
        ("gate",),
        1.0,
        None,
        2.0,
    )
    server.recent.emit(
        FrameOutput(events=(event,), thumbnails=(Thumbnail("e1", "cam1", b"JPEG", 0.9),))
    )
    auth = basic(PASSWORD)
    _, _, body = request(server, "GET", "/api/events", Authorization=auth)
    (item,) = json.loads(body)
    assert item["id"] == "e1" and item["zone"] == "gate" and item["thumbnail"] is True
    assert request(server, "GET", "/api/events/e1/thumbnail.jpg", Authorization=auth)[2] == b"JPEG"
    assert request(server, "GET", "/api/cameras/nope/latest.jpg", Authorization=auth)[0] == 404


def test_the_self_test_runs_once_at_a_time_and_keeps_its_lines(tmp_path: Path) -> None:
    release = threading.Event()

    def fake_run(path: Path, *, report: Callable[[CheckResult], None]) -> list[CheckResult]:
        first = CheckResult("config", "PASS", f"{path.name} is valid")
        report(first)
        release.wait(10.0)
        second = CheckResult("clock", "FAIL", "not synchronised", fix="check NTP")
        report(second)
        return [first, second]

    runner = SelftestRunner(tmp_path / "config.yaml", fake_run)
    assert runner.state()["started"] is None
    assert runner.start() is True
    wait_until(lambda: len(runner.state()["results"]) == 1, 10.0, "the first line")
    assert runner.state()["running"] is True and runner.start() is False
    release.set()
    wait_until(lambda: not runner.state()["running"], 10.0, "the end of the run")
    state = runner.state()
    assert state["exit_code"] == 1 and state["error"] is None
    assert [r["name"] for r in state["results"]] == ["config", "clock"]
    assert SelftestRunner(None, fake_run).start() is False  # no config file to test


def logged_in(server: WebServer) -> dict[str, str]:
    """The headers of a logged-in page's POST: its session cookie, Origin and CSRF token."""
    form = {"Origin": server.url, "Content_Type": "application/x-www-form-urlencoded"}
    _, headers, _ = request(server, "POST", "/login", f"password={PASSWORD}".encode(), **form)
    session = headers["Set-Cookie"].split(";")[0]
    _, _, page = request(server, "GET", "/", Cookie=session)
    csrf = page.split(b'name="csrf-token" content="')[1].split(b'"')[0].decode()
    return {"Cookie": session, "Origin": server.url, "X_CSRF_Token": csrf}


def raw_request(server: WebServer, head: bytes) -> bytes:
    """What the page answers to bytes no well-behaved client would send (it closes the
    connection after a refused body)."""
    with socket.create_connection(server.address, timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
        return answer


@pytest.mark.parametrize(
    "query",
    [
        "width=" + "9" * 5000,  # int() of 5000 digits raises
        "width=%C2%B2",  # "²".isdigit() is True, int("²") raises
        "width=-5",
        "width=0",
    ],
)
def test_a_hostile_picture_width_is_clamped_not_a_dropped_connection(
    server: WebServer, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    widths: list[int] = []

    def latest_jpeg(target: object, camera_id: str, *, draw: bool, width_px: int) -> bytes:
        widths.append(width_px)
        return b"JPEG"

    monkeypatch.setattr(server.frames, "latest_jpeg", latest_jpeg)
    auth = basic(PASSWORD)
    answer = request(server, "GET", f"/api/cameras/cam1/latest.jpg?{query}", Authorization=auth)
    assert (answer[0], answer[2]) == (200, b"JPEG")
    assert len(widths) == 1 and 0 <= widths[0] <= 999_999


def test_hostile_posts_get_a_clear_refusal_and_the_page_goes_on(server: WebServer) -> None:
    headers = {**logged_in(server), "Content_Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000  # within the size bound; json.loads recurses
    status, _, body = request(server, "POST", "/api/config/zones", deep, **headers)
    assert status == 400 and b"nested deeper" in body
    status, _, body = request(server, "POST", "/api/config/zones", b"\xff\xfe{", **headers)
    assert status == 400 and b"not JSON" in body
    cookie = f"Cookie: {headers['Cookie']}\r\nOrigin: {server.url}\r\n".encode()
    host = f"Host: {server.address[0]}:{server.address[1]}\r\n".encode()
    negative = raw_request(
        server, b"POST /api/selftest HTTP/1.1\r\n" + host + cookie + b"Content-Length: -5\r\n\r\n"
    )
    assert negative.startswith(b"HTTP/1.1 400") and b"Content-Length must be" in negative
    chunked = raw_request(
        server,
        b"POST /api/selftest HTTP/1.1\r\n"
        + host
        + cookie
        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    assert chunked.startswith(b"HTTP/1.1 400") and b"Transfer-Encoding" in chunked
    assert request(server, "GET", "/api/health", Authorization=basic(PASSWORD))[0] == 200


def test_a_save_with_a_key_given_twice_is_refused_not_guessed(server: WebServer) -> None:
    """{"camera":"cam1",...,"camera":"gate"} edited the gate's zones (Python keeps the
    last key) while the page, or a script's log, said cam1."""
    headers = {**logged_in(server), "Content_Type": "application/json"}
    save = b'{"camera":"cam1","zones":[],"camera":"gate"}'
    status, _, body = request(server, "POST", "/api/config/zones", save, **headers)
    assert status == 400, body
    assert "key 'camera' given twice" in json.loads(body)["problems"][0]


def test_a_bug_behind_a_route_is_a_500_with_json_and_the_page_goes_on(
    server: WebServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_health(target: object) -> dict[str, object]:
        raise RuntimeError("a bug in health")

    monkeypatch.setattr("edge_agent.web.api.health", failing_health)
    auth = basic(PASSWORD)
    status, headers, body = request(server, "GET", "/api/health", Authorization=auth)
    assert status == 500 and json.loads(body) == {"error": "internal error"}
    assert headers["Content-Type"] == "application/json"
    assert "a bug in health" in caplog.text  # the traceback is in the log, not the answer
    monkeypatch.undo()
    assert request(server, "GET", "/api/health", Authorization=auth)[0] == 200


def test_one_host_holding_idle_connections_cannot_lock_the_technician_out(
    server: WebServer,
) -> None:
    """Slowloris from one LAN host: connections opened and left idle held every request
    thread (16) for their 30 s timeout; now one address gets 8, the next host is served."""
    httpd = server._httpd
    idle = [socket.create_connection(server.address, timeout=10) for _ in range(8)]
    try:
        wait_until(lambda: httpd._per_address.get("127.0.0.1") == 8, 10.0, "8 held")
        with socket.create_connection(server.address, timeout=10) as ninth:
            ninth.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert ninth.recv(100) == b""  # closed without an answer: busy
        host, port = server.address
        other = http.client.HTTPConnection(host, port, timeout=10, source_address=("127.0.0.2", 0))
        try:
            other.request("GET", "/login")
            assert other.getresponse().status == 200  # another host is served
        finally:
            other.close()
    finally:
        for connection in idle:
            connection.close()
    wait_until(lambda: not httpd._per_address, 10.0, "every slot given back")
    assert request(server, "GET", "/login")[0] == 200


def test_a_request_dripped_byte_by_byte_is_closed_at_its_deadline(
    server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slowloris proper: a header byte now and then never lets the 30 s socket timeout
    expire, so 8 such connections per address held their request threads for ever (two
    hosts: the whole page). A request must now be read whole within its deadline (30 s;
    1 s here)."""
    monkeypatch.setattr("edge_agent.web.server.REQUEST_DEADLINE_S", 1.0)
    closed = threading.Event()
    with socket.create_connection(server.address, timeout=10) as connection:
        connection.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
        for _ in range(100):  # 20 s of drip, far past the deadline
            try:
                connection.sendall(b"a")
            except OSError:  # reset by the page
                closed.set()
                break
            if closed.wait(0.2):
                break
            connection.settimeout(0.0)
            try:
                if connection.recv(100) == b"":
                    closed.set()
            except BlockingIOError:
                pass
            except OSError:
                closed.set()
            connection.settimeout(10)
    assert closed.is_set(), "the page still waits for the dripped request"
    wait_until(lambda: not server._httpd._per_address, 10.0, "the slot given back")
    assert request(server, "GET", "/login")[0] == 200


def test_a_health_report_holding_nan_is_answered_as_json_with_null(
    server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        server.target, "status_report", lambda: {"condition": "ok", "fps": float("nan")}
    )
    status, _, body = request(server, "GET", "/api/health", Authorization=basic(PASSWORD))
    assert status == 200 and json.loads(body)["fps"] is None  # was a 500 (allow_nan=False)
