"""The live viewer: a read-only HTTP server over the store, on 127.0.0.1 unless asked otherwise.

Only GET and HEAD are served. Each request reads the store's stamp, so pages follow a run that is writing (and
reload themselves when the store changes); a page is rendered once per stamp and then served from a bounded cache. A
request naming another host than the one served is refused, so a page elsewhere cannot reach the viewer through a
rebound DNS name. Connections are taken as ``intake`` describes: a fixed pool of workers, a deadline for every
request head, nothing answered for a client that closed before its request was whole. Every response, errors
included, carries the content security policy (no framing) as headers.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import socket
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.index.connection import StoreLocation
from ftbench.harness.index.schema import opened_store
from ftbench.harness.viewer.html_parts import esc, live_policy, page
from ftbench.harness.viewer.intake import HeadedRequest, RequestIntake, ViewerLimits, WorkerPool
from ftbench.harness.viewer.page_cache import PageCache
from ftbench.harness.viewer.routes import live_page, page_key, store_stamp

LOCAL_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
HOME_LINK = '<a href="/">home</a>'
SECURITY_HEADERS = (
    ("Content-Security-Policy", live_policy()),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
"""Sent with every response."""
_BUSY = b"the viewer is busy; try again in a moment\n"
OVERLOADED = (
    "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    f"Content-Length: {len(_BUSY)}\r\nRetry-After: 1\r\nConnection: close\r\n"
    + "".join(f"{name}: {value}\r\n" for name, value in SECURITY_HEADERS)
    + "\r\n"
).encode() + _BUSY
"""The whole answer to a connection that finds every worker busy and the queue full."""


class ViewerHandler(BaseHTTPRequestHandler):
    """Answers one request over ``server.location`` from the head the intake read (``request``); writes nothing."""

    server: ViewerServer
    default_request_version = "HTTP/1.0"  # a garbled request line is answered with headers too, not as HTTP/0.9

    def __init__(self, request: HeadedRequest, client_address: Any, server: ViewerServer) -> None:
        self.headed = request
        super().__init__(request.connection, client_address, server)

    def setup(self) -> None:
        """Read the request from its head; a response's writes wait at most ``limits.write_seconds`` in all."""
        super().setup()
        self.connection.settimeout(self.server.limits.write_seconds)
        self.rfile.close()  # the socket's reader: left open, it would keep the socket from closing
        self.rfile = io.BytesIO(self.headed.head)

    def handle(self) -> None:
        """One request per connection; a head cut off at the limit within its first line is refused here."""
        self.close_connection = True
        if not self.headed.complete and b"\n" not in self.headed.head:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        self.handle_one_request()

    def parse_request(self) -> bool:
        """Parse the head, refusing one cut off at the limit."""
        if not super().parse_request():
            return False
        if not self.headed.complete:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request head too large")
            return False
        return True

    def end_headers(self) -> None:
        """Add the security headers to every response."""
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # the library never prints
        """Drop the access log."""

    def _send(self, status: HTTPStatus, body: str | bytes, kind: str = "text/html; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _host_allowed(self) -> bool:
        if self.server.names is None:
            return True
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in self.server.names

    def do_GET(self) -> None:
        """A page (rendered once per store stamp), or ``/api/stamp``: the store's state, which live pages poll."""
        if not self._host_allowed():
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "unknown host", "text/plain; charset=utf-8")
            return
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        try:
            with opened_store(self.server.location, read_only=True) as store:
                stamp = store_stamp(store)
                if parts.path == "/api/stamp":
                    self._send(HTTPStatus.OK, stamp, "text/plain; charset=utf-8")
                    return
                key = page_key(parts.path, query)
                body = self.server.pages.page(stamp, key, lambda: live_page(store, parts.path, query, stamp).encode())
            self._send(HTTPStatus.OK, body)
        except LookupError:
            self._send(HTTPStatus.NOT_FOUND, page("Not found", f"<p>No page {esc(parts.path)}.</p>", HOME_LINK))
        except FtbenchError as exc:
            self._send(HTTPStatus.BAD_REQUEST, page("Cannot show this", f"<p>{esc(exc)}</p>", HOME_LINK))
        except Exception as exc:  # a page fails alone, as a page: the server goes on, nothing is printed
            text = f"<p>unexpected {esc(type(exc).__name__)}: {esc(exc)}</p>"
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, page("Cannot show this", text, HOME_LINK))

    do_HEAD = do_GET


class ViewerServer(HTTPServer):
    """The viewer's HTTP server over one store: this thread accepts, ``RequestIntake`` reads the heads and a
    ``WorkerPool`` answers (both started with the first connection, stopped by ``server_close``)."""

    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], location: StoreLocation, names: set[str] | None, limits: ViewerLimits
    ) -> None:
        self.location, self.names, self.limits = location, names, limits
        self.pages = PageCache(limits.cache_pages, limits.cache_bytes)
        self._intake: RequestIntake | None = None
        self._pool: WorkerPool | None = None
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ViewerHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand a connection just accepted to the intake."""
        if self._intake is None:
            self._pool = WorkerPool(self._answer, self.limits)
            self._intake = RequestIntake(self._dispatch, self.limits)
            self._pool.start()
            self._intake.start()
        self._intake.add(request, client_address)

    def server_close(self) -> None:
        """Stop taking connections, then the intake and the workers."""
        super().server_close()
        if self._intake is not None and self._pool is not None:
            self._intake.stop()
            self._pool.stop()
            self._intake = self._pool = None

    def _dispatch(self, request: HeadedRequest) -> None:
        if self._pool is not None and self._pool.submit(request):
            return
        request.connection.setblocking(False)  # the answer fits any socket's buffer; the intake never waits
        with contextlib.suppress(OSError):
            request.connection.sendall(OVERLOADED)
        self.shutdown_request(request.connection)

    def _answer(self, request: HeadedRequest) -> None:
        try:
            ViewerHandler(request, request.address, self)
        finally:
            self.shutdown_request(request.connection)


def _names(host: str) -> set[str] | None:
    """The Host header values a request may carry: this machine's loopback names when serving on loopback, any
    when the user chose to serve on another address."""
    if ipaddress.ip_address(host).is_loopback:
        return {"localhost", "127.0.0.1", "::1", host}
    return None


def make_server(
    location: StoreLocation, host: str = LOCAL_HOST, port: int = DEFAULT_PORT, limits: ViewerLimits | None = None
) -> ViewerServer:
    """A viewer bound to ``host:port`` (port 0: any free one), over a store checked readable first.

    Raises:
        FtbenchError: the store cannot be read, ``host`` is not an IP address of this machine, or the port is out
            of range or in use.
    """
    if not 0 <= port <= 65535:
        raise FtbenchError(f"--port {port} is not a port; give one in 0-65535 (0: any free one)")
    with opened_store(location, read_only=True):
        pass
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise FtbenchError(f"--host {host!r} is not an IP address; give one such as 127.0.0.1 or 0.0.0.0") from None
    try:
        return ViewerServer((host, port), location, _names(host), limits or ViewerLimits())
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise FtbenchError(
                f"port {port} on {host} is in use; give another --port (or stop what serves there)"
            ) from exc
        raise FtbenchError(f"cannot serve on {host}:{port} ({exc.strerror}); give another --host or --port") from exc


def serve(server: ViewerServer, ready: Callable[[str], None]) -> None:
    """Tell ``ready`` the viewer's address, then serve until interrupted."""
    host, port = str(server.server_address[0]), int(server.server_address[1])
    ready(f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()
