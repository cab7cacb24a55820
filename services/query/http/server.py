"""The dashboard's HTTP server: the page, the JSON API, live events and the OpenAPI document.

The standard library's threading server is enough here: a handful of wall screens and laptops,
each with one event stream and a few small JSON requests per change.
"""

from __future__ import annotations

import io
import json
import logging
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from duhub.auth.listen import host_of_header, is_loopback_host
from duhub.auth.principal import Principal, Unauthenticated
from duhub.feed import ChangeFeed
from duhub.health import UNREACHABLE_DB
from services.auth.guard import OPEN, Security
from services.query.answers import DEFAULT_SIZE, AnswerCache
from services.query.http import session
from services.query.http.address import decoded, query_params
from services.query.http.api import CALLER, ApiError, DashboardApi, Params, known
from services.query.http.deadline import HeadDeadline
from services.query.http.encoding import MIN_BYTES, accepts_gzip, gzipped
from services.query.http.openapi import document
from services.query.http.sse import stream_changes
from services.query.http.waiting import WaitingHeads
from services.slots import MAX_STREAMS, SlotRefused, StreamSlots, caller_of

log = logging.getLogger(__name__)

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
# Path template -> what answers it; the OpenAPI document lists exactly these paths.
ROUTES: dict[str, str] = {
    **{path: "static" for path in STATIC},
    "/healthz": "health",
    "/openapi.json": "openapi",
    "/api/campaigns": "campaigns",
    "/api/campaigns/{campaignId}": "campaign",
    "/api/campaigns/{campaignId}/coverage": "coverage",
    "/api/campaigns/{campaignId}/coverage/visits": "coverage_visits",
    "/api/statistics": "statistics",
    "/api/deadletters": "dead_letters",
    "/api/units": "units",
    "/api/units/{unitId}": "unit",
    "/api/events": "events",
    session.PATH: "session",
}
STOP_WAIT_S = 3.0
# A connection gets this long for its request's head in all, and for each write (a page
# taking an event) or TLS handshake read: one that sends nothing, or stops reading, lets its
# thread go.
REQUEST_TIMEOUT_S = 30.0
# Connections answered at once beside the event streams (--max-streams): past them, a new
# one is answered 503 and closed by the accepting thread, without a thread of its own.
CALL_CONNECTIONS = 64
BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
    b'{"error":"connections: the server holds as many as it may; try again later"}'
)
# What a request the standard library refuses before any route got wrong, by status.
UNREADABLE = {
    HTTPStatus.REQUEST_URI_TOO_LONG: "path",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers",
}
# On every answer: the page runs only its own script and style sheet, loads nothing from
# elsewhere and is framed by no other page (clickjacking); no answer is read as another type
# than it says (security probe: none was sent).
HARDENING = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
# Served to anyone: the page itself, health and the API's description hold no figures.
OPEN_ROUTES = ("static", "health", "openapi")


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))


PATTERNS = [(_pattern(t), name) for t, name in ROUTES.items()]


def route(path: str) -> tuple[str, dict[str, str]] | None:
    """Return what answers a path and the path's parameters, or None; ApiError (400) names a
    parameter that is not UTF-8."""
    for pattern, name in PATTERNS:
        found = pattern.fullmatch(path)
        if found:
            return name, {k: decoded(k, v) for k, v in found.groupdict().items()}
    return None


def parse_listen(listen: str) -> tuple[str, int]:
    """Return (host, port) for HOST:PORT or [V6HOST]:PORT; ValueError names the option."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"http: {listen!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Connections the kernel holds until accepted. A change wakes every page at once, each
    # asking about 4 things; with socketserver's 5 the rest waited on the kernel's SYN-ACK
    # retries (1, 3, 7, 15, 31 s), some past a minute. The cap (CALL_CONNECTIONS) bounds
    # threads, not this queue.
    request_queue_size = 1024
    app: DashboardServer

    def process_request(self, request: Any, client_address: Any) -> None:
        # All taken: the connection longest waiting for its head makes room (waiting.py).
        if not self.app.connections.acquire(blocking=False) and not (
            self.app.waiting.evict_oldest() and self.app.connections.acquire(timeout=1.0)
        ):
            _refuse(request)
            self.shutdown_request(request)
            return
        self.app.waiting.waiting(request)  # from now, in the order accepted
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.app.waiting.done(request)
            self.app.connections.release()  # no thread started to let it go
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.app.waiting.done(request)  # ended before its first head (a failed handshake)
            self.app.connections.release()


def _refuse(request: socket.socket) -> None:
    """Say 503 if the socket takes it at once (a TLS one, not handshaken, does not)."""
    try:
        request.setblocking(False)
        request.send(BUSY)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "duhub-dashboard"

    def setup(self) -> None:
        self.timeout = self.server.app.request_timeout  # StreamRequestHandler applies it
        super().setup()
        self._head = HeadDeadline(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._head)

    def handle_one_request(self) -> None:
        # The whole head (request line and headers) in the time one read had: each line sent
        # inside it held a connection for good.
        self._head.start(self.timeout)
        self.server.app.waiting.waiting(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.app.waiting.done(self.connection)

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self._head.stop()
        self.server.app.waiting.done(self.connection)
        return ok

    def end_headers(self) -> None:
        for name, value in HARDENING:
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
        self._dispatch(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(body=False)

    def do_POST(self) -> None:  # noqa: N802
        self._sign("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._sign("DELETE")

    def __getattr__(self, name: str) -> Any:
        # The stdlib answers a method it finds no do_X for with its own 501 page in HTML:
        # every method but GET and HEAD (OPTIONS, TRACE, any other) is 405 in JSON instead.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _sign(self, method: str) -> None:
        """POST and DELETE: the session's (signing in and out), 405 on every other path."""
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            # A body is never read (none is needed): left unread, it would be taken for the
            # connection's next request.
            self.close_connection = True
        if urlsplit(self.path).path != session.PATH:
            self._not_allowed()
            return
        self._dispatch(body=True, method=method)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Refuse a request the standard library could not read (a URI over 64 KiB, too many
        or too long headers, no request line, HTTP/2) as the API refuses every other: in
        JSON naming what was wrong, not the library's HTML page."""
        if self.request_version == "HTTP/0.9":  # the request line was not understood:
            self.request_version = "HTTP/1.0"  # a status line all the same
        reason = (message or HTTPStatus(code).phrase).lower()
        self.close_connection = True
        self._json(
            code,
            {"error": f"{UNREADABLE.get(code, 'request')}: {reason}"},
            self.command != "HEAD",
            {"Connection": "close"},
            reason=message,
        )

    def _not_allowed(self) -> None:
        allow = session.METHODS if urlsplit(self.path).path == session.PATH else "GET, HEAD"
        error = {"error": f"method: only {allow}"}
        # RFC 9110: a 405 says what is allowed.
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, error, True, {"Allow": allow})

    def _dispatch(self, body: bool, method: str = "GET") -> None:
        host = self.headers.get("Host")
        secured = self.server.app.security.secured
        if not secured and host is not None and not is_loopback_host(host_of_header(host)):
            # A hub without credentials answers whoever reaches it: a web page the operator
            # opened reached it too, through a name of the page's own that it pointed at
            # 127.0.0.1 (DNS rebinding), and read every figure (security probe).
            error = (
                f"host: {host!r} is not a loopback name; a hub without credentials answers "
                "only at 127.0.0.1, localhost or [::1]"
            )
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": error}, body)
            return
        url = urlsplit(self.path)
        try:
            params: Params = query_params(url.query)
            found = route(url.path)
        except ApiError as e:
            self._json(e.status, {"error": str(e)}, body)
            return
        if found is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"path: no route {url.path}"}, body)
            return
        name, args = found
        app = self.server.app
        if name == "session":
            self._session(method, params, body)
            return
        if name not in OPEN_ROUTES and not self._authenticate(body):
            return
        try:
            if name == "static":
                self._static(url.path, body)
            elif name == "events":
                self._events(params, body)
            elif name == "openapi":
                self._json(HTTPStatus.OK, document(), body)
            elif name == "health":
                self._json(HTTPStatus.OK, self._health(), body)
            else:
                answer: Callable[..., Any] = getattr(app.api, name)
                self._json(HTTPStatus.OK, answer(*args.values(), params), body)
        except ApiError as e:
            self._json(e.status, {"error": str(e)}, body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except UNREACHABLE_DB as e:
            # As the gRPC API answers UNAVAILABLE: try again later. The driver's text (the
            # database's host and port) stays in the log.
            log.warning("dashboard request %s: read model unreachable: %s", self.path, e)
            self._json(
                HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the read model is unreachable"}, body
            )
        except Exception:
            log.exception("dashboard request %s failed", self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}, body)

    def _session(self, method: str, params: Params, body: bool) -> None:
        """Sign in (POST: the bearer token checked, kept in an HttpOnly cookie), out (DELETE), or
        say who asks (GET, authenticated as every /api route)."""
        secure = self.server.app.scheme == "https"
        try:
            known(params, ())
        except ApiError as e:
            self._json(e.status, {"error": str(e)}, body)
            return
        if method == "POST":
            answer = session.sign_in(self.server.app.security, self.headers, secure)
        elif method == "DELETE":
            answer = session.sign_out(secure)
        else:
            if self._authenticate(body):
                self._json(HTTPStatus.OK, session.whoami(CALLER.get(), self.headers), body)
            return
        self._json(answer.status, answer.body, body, answer.headers)

    def _caller(self) -> Principal:
        """Return who asks (a client certificate, a bearer token or the page's cookie; the
        local caller without credentials); raise Unauthenticated."""
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        return self.server.app.security.http_principal(self.headers, peer)

    def _still_allowed(self) -> bool:
        """Whether the caller's credentials still hold (a token deleted from the file no
        longer does), asked again while its event stream is open."""
        try:
            self._caller()
        except Unauthenticated:
            return False
        return True

    def _health(self) -> dict[str, Any]:
        """Liveness for anyone; the change counter (`version`) only for a caller with
        credentials where the hub asks for them: its pace told whoever reached the port how
        busy the city's reporting was, and when (security probe)."""
        answer = self.server.app.api.health()
        if self.server.app.security.secured and not self._still_allowed():
            del answer["version"]
        return answer

    def _authenticate(self, body: bool) -> bool:
        """Set who asks, or answer 401 and return False."""
        try:
            CALLER.set(self._caller())
        except Unauthenticated as e:
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": f"authorization: {e}"},
                body,
                {"WWW-Authenticate": 'Bearer realm="duhub"'},
            )
            return False
        return True

    def _send(
        self,
        status: int,
        media: str,
        data: bytes,
        body: bool,
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        self.send_response(status, reason)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if len(data) >= MIN_BYTES:
            # HEAD says what GET would send: the same coding and length.
            self.send_header("Vary", "Accept-Encoding")
            request_headers = getattr(self, "headers", None)  # unset: the head was unreadable
            if request_headers is not None and accepts_gzip(request_headers["Accept-Encoding"]):
                data = gzipped(data)
                self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _json(
        self,
        status: int,
        data: Any,
        body: bool,
        headers: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        self._send(status, "application/json; charset=utf-8", text.encode(), body, headers, reason)

    def _static(self, path: str, body: bool) -> None:
        name, media = STATIC[path]
        data = resources.files("services.query.web").joinpath(name).read_bytes()
        self._send(HTTPStatus.OK, media, data, body)

    def _events(self, params: Params, body: bool) -> None:
        app = self.server.app
        campaign = app.api.watched(params)
        if not body:  # HEAD: headers only, no stream to hold a place
            self._stream(campaign, body)
            return
        # Its place is taken before the answer says it has one, counted against the share of
        # the caller _authenticate found.
        caller = caller_of(CALLER.get())
        try:
            app.streams.take(caller)
        except SlotRefused as refused:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(refused)}, body)
            return
        try:
            self._stream(campaign, body)
        finally:
            app.streams.give_back(caller)

    def _stream(self, campaign: str, body: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        if body:
            app = self.server.app
            connection = self.connection
            stream_changes(
                self.wfile,
                app.api.feed,
                campaign,
                app.closing,
                allowed=self._still_allowed,
                gone=lambda: _client_gone(connection),
            )


def _client_gone(connection: socket.socket) -> bool:
    """Return whether the client of an event stream closed its end. It sends nothing after
    its request, so its socket turns readable only as it goes: end of file, a reset, or (TLS)
    the close_notify alert before them. Without this a stream's place (--max-streams) was
    held until a write failed, up to two heartbeats (30 s) after the page closed."""
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN)
        if not poller.poll(0):
            return False
        if isinstance(connection, ssl.SSLSocket):
            return True
        return connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or closed under it
        return True


class DashboardServer:
    """Serve the dashboard on `listen` (port 0: one the OS picks) from a thread."""

    def __init__(
        self,
        listen: str,
        engine: Engine,
        feed: ChangeFeed,
        security: Security = OPEN,
        answer_cache: int | AnswerCache = DEFAULT_SIZE,
        max_streams: int = MAX_STREAMS,
        max_streams_per_caller: int | None = None,
    ) -> None:
        self.api = DashboardApi(engine, feed, answer_cache)
        self.security = security
        self.closing = threading.Event()
        # A thread per connection: at most max_streams event streams (a caller at most its
        # share of them), and CALL_CONNECTIONS connections beside them.
        self.streams = StreamSlots("events", max_streams, max_streams_per_caller)
        self.connections = threading.BoundedSemaphore(max_streams + CALL_CONNECTIONS)
        self.waiting = WaitingHeads()
        self.request_timeout = REQUEST_TIMEOUT_S
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        try:
            self.httpd: _Server = server_class((host, port), _Handler)
        except OSError as e:
            raise OSError(f"--http: cannot bind {listen}: {e.strerror or e}") from e
        self.httpd.app = self
        tls = security.http_ssl_context()
        if tls is not None:
            # The handshake runs in the request's thread (on its first read), not in accept().
            self.httpd.socket = tls.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
            # A failed handshake (plain HTTP, an unknown client certificate) is the client's
            # problem: a line in the debug log, not a traceback on stderr.
            self.httpd.handle_error = _handshake_failed  # type: ignore[method-assign]
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="dashboard"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end the event streams, close the socket."""
        self.closing.set()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
        self.streams.wait_idle(STOP_WAIT_S)


def _handshake_failed(request: Any, client_address: Any) -> None:
    log.debug("dashboard connection from %s failed", client_address, exc_info=True)


def start_dashboard(
    listen: str,
    engine: Engine,
    feed: ChangeFeed,
    security: Security = OPEN,
    answer_cache: int | AnswerCache = DEFAULT_SIZE,
    max_streams: int = MAX_STREAMS,
    max_streams_per_caller: int | None = None,
) -> DashboardServer:
    server = DashboardServer(
        listen, engine, feed, security, answer_cache, max_streams, max_streams_per_caller
    )
    server.start()
    return server
