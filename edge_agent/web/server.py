"""The page's HTTP server: the standard library's ``ThreadingHTTPServer`` in one thread of
the agent, a thread per request.

Why no framework: a technician's page serves one or two people a few requests a second;
the standard library does that with no dependency to ship, patch or build for ARM, and no
event loop beside the agent's threads (docs/web.md). Each request is checked in the same
order: the Host header (a DNS-rebinding page is refused), then for a POST the Origin (or
Referer) against that host, the session cookie and the session's CSRF token. GET /api/*
also takes HTTP Basic auth with the same password, for scripts.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from email.message import Message
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edge_agent.strict_json import AmbiguousJSON, finite, loads_strict, nests_deeper_than
from edge_agent.web import api
from edge_agent.web.auth import (
    LoginLimiter,
    PasswordFileError,
    Session,
    SessionStore,
    csrf_matches,
    read_password_hash,
    verify_password,
)
from edge_agent.web.config import WebConfig, split_listen
from edge_agent.web.edit import ConfigEditor
from edge_agent.web.feed import RecentOutputs
from edge_agent.web.limits import DeadlineReader, LimitedServer, LimitedV6Server
from edge_agent.web.selftest import SelftestRunner

__all__ = ["COOKIE", "WebServer", "default_password_file", "start_web"]

log = logging.getLogger(__name__)

COOKIE = "edge_agent_session"
CSRF_HEADER = "X-CSRF-Token"
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
    "login.html": "text/html; charset=utf-8",
}
MAX_FORM_BYTES = 4096
IDLE_TIMEOUT_S = 30.0
REQUEST_DEADLINE_S = 30.0  # a request's line, headers and body, read whole within this
MAX_JSON_BYTES = 256 * 1024
MAX_JSON_DEPTH = 16  # the editor's save nests four levels (zones, polygon, point)
MAX_LOGGED_PATH = 200
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


def default_password_file(config: WebConfig, config_path: Path | None) -> Path | None:
    """``web.password_file``, else ``web-password`` beside the config file."""
    if config.password_file is not None:
        return config.password_file
    return config_path.parent / "web-password" if config_path is not None else None


MAX_HASHES_AT_ONCE = 2  # scrypt: 16 MiB and ~0.2 s of CPU each


class WebServer:
    """The page, started and stopped with the agent (``edge_agent.app``)."""

    def __init__(
        self,
        target: api.WebTarget,
        settings: WebConfig,
        *,
        password_file: Path,
        recent: RecentOutputs | None = None,
    ) -> None:
        self.target = target
        self.settings = settings
        self.password_file = password_file
        self.recent = recent or RecentOutputs()
        self.sessions = SessionStore(settings.session_ttl_s)
        self.limiter = LoginLimiter(settings.login_failures_per_minute)
        self._hashing = threading.BoundedSemaphore(MAX_HASHES_AT_ONCE)
        self.frames = api.FrameCache()
        self.selftest = SelftestRunner(target.config_path)
        config_path = target.config_path
        self.editor = ConfigEditor(config_path, lambda: target.reload()) if config_path else None
        package = resources.files("edge_agent.web").joinpath("static")
        self.static = {name: package.joinpath(name).read_bytes() for name in STATIC}
        read_password_hash(password_file)  # no page without a password: say so at start
        host, port = split_listen(settings.listen)
        server_class = LimitedV6Server if ":" in host else LimitedServer
        self._httpd = server_class((host, port), _Handler)
        self._httpd.page = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="web", daemon=True
        )
        self._thread.start()
        log.info("technician page on %s", self.url)

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5.0)
        self._httpd.server_close()

    # -- checks -------------------------------------------------------------------

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        try:
            name = urlsplit(f"//{host_header}").hostname or ""
        except ValueError:  # "[bad", say
            return False
        if name == "localhost" or name in self.settings.host_names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def password_ok(self, password: str, client: str) -> bool | None:
        """True or False; None when ``client`` must wait (too many failures, or two
        hashes already running: each costs 16 MiB and ~0.2 s, and the page must never
        take the agent's memory)."""
        stamp = self.limiter.begin(client)  # counted as a failure until it succeeds
        if stamp is None:
            return None
        if not self._hashing.acquire(blocking=False):
            self.limiter.cancel(client, stamp)
            return None
        try:
            stored = read_password_hash(self.password_file)  # a new one needs no restart
            ok = verify_password(stored, password)
        except PasswordFileError as error:
            log.error("%s", error)
            return False
        finally:
            self._hashing.release()
        if ok:
            self.limiter.succeeded(client, stamp)
            return True
        log.warning("page: wrong password from %s", client)
        return False


class _Handler(BaseHTTPRequestHandler):
    server: LimitedServer
    _answered = False  # a status line was sent for the request in hand
    server_version = "edge-agent"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S  # an idle kept-alive connection gives its thread back

    @property
    def page(self) -> WebServer:
        return self.server.page

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the standard one: reads only through the deadline's
        self._reader = DeadlineReader(self.connection, IDLE_TIMEOUT_S)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.start(REQUEST_DEADLINE_S)
        super().handle_one_request()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("page: %s %s", self.client_address[0], format % args)

    # -- answers --------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS + headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> None:
        try:
            data = json.dumps(body, allow_nan=False, default=str).encode("utf-8")
        except ValueError:  # a NaN in a report: null, as the command replies
            data = json.dumps(finite(body), allow_nan=False, default=str).encode("utf-8")
        self._send(status, data, "application/json", headers)

    def _redirect(self, location: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", (("Location", location), *headers))

    def _login_page(self, status: int, message: str = "") -> None:
        html = self.page.static["login.html"].decode("utf-8")
        text = f'<p class="error" id="login-error">{message}</p>' if message else ""
        html = html.replace("<!--message-->", text)
        self._send(status, html.encode("utf-8"), STATIC["login.html"])

    # -- who is asking ----------------------------------------------------------------

    def _session(self) -> Session | None:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = cookie.get(COOKIE)
        return self.page.sessions.get(morsel.value if morsel else None)

    def _basic_auth_ok(self) -> bool | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.page.password_ok(password, self.client_address[0])

    def _same_origin(self) -> bool:
        """A POST must say it comes from this page: Origin (or, without it, Referer)
        naming the very host the request went to."""
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if origin is not None:
            return origin == f"http://{host}"
        referer = self.headers.get("Referer")
        return referer is not None and referer.startswith(f"http://{host}/")

    def _body(self, limit: int) -> bytes | str:
        """The request's body, or why it was not read: ``"too large"``, or a bad
        Content-Length (not a number, negative) or Transfer-Encoding (chunked bodies are
        not taken: the page never sends one)."""
        if self.headers.get("Transfer-Encoding"):
            return "Transfer-Encoding is not supported: send a Content-Length"
        text = self.headers.get("Content-Length", "0").strip()
        if not (text.isascii() and text.isdigit()):
            return "Content-Length must be a number of bytes"
        text = text.lstrip("0") or "0"
        if len(text) > len(str(limit)) or int(text) > limit:
            return "too large"
        return self.rfile.read(int(text))

    # -- GET ----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, handle: Callable[[], None]) -> None:
        """Run ``handle``; a bug it hits is a 500 with a short JSON body and one logged
        traceback, never a connection dropped without an answer."""
        self._answered = False
        if self.command != "POST":  # read whole (a POST's body: in _post)
            self._reader.finish()
        try:
            handle()
        except OSError as error:  # the client went away: nothing to answer
            log.debug("page: %s %s: %s", self.command, self.path[:MAX_LOGGED_PATH], error)
            self.close_connection = True
        except Exception:
            log.exception("page: %s %s failed", self.command, self.path[:MAX_LOGGED_PATH])
            self.close_connection = True
            if not self._answered:
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def _get(self) -> None:
        if not self.page.host_allowed(self.headers.get("Host")):
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unknown host name"})
            return
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if path.startswith("/static/") and path[8:] in ("app.js", "style.css"):
            name = path[8:]
            self._send(HTTPStatus.OK, self.page.static[name], STATIC[name])
        elif path == "/login":
            self._login_page(HTTPStatus.OK)
        elif path == "/":
            session = self._session()
            if session is None:
                self._redirect("/login")
                return
            html = self.page.static["index.html"].replace(
                b"{{csrf}}", session.csrf_token.encode("ascii")
            )
            self._send(HTTPStatus.OK, html, STATIC["index.html"])
        elif path.startswith("/api/"):
            allowed = self._session() is not None or self._basic_auth_ok()
            if allowed is None:
                self._json(HTTPStatus.TOO_MANY_REQUESTS, {"error": "too many failed logins"})
            elif not allowed:
                self._json(HTTPStatus.UNAUTHORIZED, {"error": "log in first"})
            else:
                self._api_get(path, query)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _api_get(self, path: str, query: dict[str, list[str]]) -> None:
        target = self.page.target
        parts = path.strip("/").split("/")
        if path == "/api/health":
            self._json(HTTPStatus.OK, api.health(target))
        elif path == "/api/config":
            self._json(HTTPStatus.OK, api.public_config(target))
        elif path == "/api/cameras":
            self._json(HTTPStatus.OK, api.cameras(target))
        elif path == "/api/events":
            self._json(HTTPStatus.OK, self.page.recent.recent())
        elif path == "/api/selftest":
            self._json(HTTPStatus.OK, self.page.selftest.state())
        elif len(parts) == 4 and parts[:2] == ["api", "cameras"] and parts[3] == "latest.jpg":
            draw = query.get("draw", ["0"])[0] in ("1", "true", "yes")
            width = query.get("width", ["640"])[0]
            # ASCII digits only ("²".isdigit() is True), and few of them: int() of 5000
            # digits raises; anything wider than MAX_WIDTH_PX is that width anyway.
            width_px = int(width[:6]) if width.isascii() and width.isdigit() else 640
            try:
                jpeg = self.page.frames.latest_jpeg(target, parts[2], draw=draw, width_px=width_px)
            except KeyError:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no camera {parts[2]!r}"})
                return
            if jpeg is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame yet"})
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg")
        elif len(parts) == 4 and parts[:2] == ["api", "events"] and parts[3] == "thumbnail.jpg":
            thumbnail = self.page.recent.thumbnail(parts[2])
            if thumbnail is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no thumbnail kept"})
            else:
                self._send(HTTPStatus.OK, thumbnail, "image/jpeg")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    # -- POST ---------------------------------------------------------------------------

    def _post(self) -> None:
        body = self._body(MAX_JSON_BYTES)  # read first: a refusal must not leave it unread
        self._reader.finish()
        if not isinstance(body, bytes):
            self.close_connection = True
            if body == "too large":
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            else:
                self._json(HTTPStatus.BAD_REQUEST, {"error": body})
            return
        if not self.page.host_allowed(self.headers.get("Host")):
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unknown host name"})
            return
        if not self._same_origin():
            log.warning("page: cross-site POST %s refused (%s)", self.path, self.client_address[0])
            self._json(HTTPStatus.FORBIDDEN, {"error": "cross-site request refused"})
            return
        path = urlsplit(self.path).path
        if path == "/login":
            self._login(body)
            return
        session = self._session()
        if session is None:
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "log in first"})
            return
        token = self.headers.get(CSRF_HEADER) or _form_field(self.headers, body, "csrf")
        if not csrf_matches(session, token):
            self._json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong CSRF token"})
            return
        if path == "/logout":
            self.page.sessions.end(session.token)
            self._redirect("/login", (("Set-Cookie", _cookie("", 0)),))
        elif path in ("/api/config/zones", "/api/config/rollback"):
            self._edit(path, body)
        elif path == "/api/selftest":
            started = self.page.selftest.start()
            status = HTTPStatus.ACCEPTED if started else HTTPStatus.CONFLICT
            self._json(status, {"started": started, **self.page.selftest.state()})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _login(self, body: bytes) -> None:
        password = _form_field(self.headers, body[:MAX_FORM_BYTES], "password") or ""
        verdict = self.page.password_ok(password, self.client_address[0])
        if verdict is None:
            self._login_page(HTTPStatus.TOO_MANY_REQUESTS, "Too many tries: wait a minute.")
        elif not verdict:
            self._login_page(HTTPStatus.UNAUTHORIZED, "Wrong password.")
        else:
            session = self.page.sessions.create()
            ttl_s = int(self.page.settings.session_ttl_s)
            self._redirect("/", (("Set-Cookie", _cookie(session.token, ttl_s)),))

    def _edit(self, path: str, body: bytes) -> None:
        editor = self.page.editor
        if editor is None:
            self._json(HTTPStatus.CONFLICT, {"ok": False, "problems": ["no config file"]})
            return
        if path.endswith("/rollback"):
            result = editor.rollback()
        else:
            try:
                if nests_deeper_than(body.decode("utf-8"), MAX_JSON_DEPTH):
                    problem = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
                    self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "problems": [problem]})
                    return
                data = loads_strict(body.decode("utf-8"))
            except AmbiguousJSON as error:  # a key given twice: which one did they mean?
                self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "problems": [str(error)]})
                return
            except ValueError:  # UnicodeDecodeError too
                self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "problems": ["not JSON"]})
                return
            result = editor.save_zones(data)
        self._json(result.status, result.body)


def _cookie(token: str, max_age_s: int) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}"


def _form_field(headers: Message, body: bytes, name: str) -> str | None:
    if headers.get_content_type() != "application/x-www-form-urlencoded":
        return None
    try:
        values = parse_qs(body.decode("utf-8"), max_num_fields=10).get(name)
    except (UnicodeDecodeError, ValueError):
        return None
    return values[0] if values else None


def start_web(
    target: api.WebTarget, settings: WebConfig, recent: RecentOutputs | None
) -> WebServer | None:
    """The page, serving; None (said in the log) when it cannot start — the agent's work
    goes on without it."""
    password_file = default_password_file(settings, target.config_path)
    if password_file is None:
        log.error("technician page not started: no web.password_file and no config file")
        return None
    try:
        server = WebServer(target, settings, password_file=password_file, recent=recent)
    except (PasswordFileError, OSError) as error:
        log.error("technician page not started: %s", error)
        return None
    server.start()
    return server
