"""The live viewer: a read-only HTTP server over the store, on 127.0.0.1 unless asked otherwise.

Only GET and HEAD are served; each request reads the store afresh (so pages follow a run that is writing, and
reload themselves when the store changes). A request naming another host than the one served is refused, so a
page elsewhere cannot reach the viewer through a rebound DNS name.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.index.connection import Store, StoreLocation
from ftbench.harness.index.schema import opened_store
from ftbench.harness.viewer.html_parts import esc, page
from ftbench.harness.viewer.pages import comparison_page, evaluation_page, history_page, home_page

LOCAL_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
HOME_LINK = '<a href="/">home</a>'


class LiveLinks:
    """Links between live pages: paths with query strings."""

    def home(self) -> str:
        """The home page."""
        return "/"

    def evaluation(self, key: str) -> str:
        """One evaluation's samples."""
        return "/eval?" + urlencode({"key": key})

    def comparison(self, first: str, second: str) -> str | None:
        """Two evaluations compared."""
        return "/compare?" + urlencode({"a": first, "b": second})

    def history(self, task: str, metric: str) -> str | None:
        """A metric's history."""
        return "/history?" + urlencode({"task": task, "metric": metric})


def store_stamp(store: Store) -> str:
    """What changes whenever anything is indexed: the counts and newest ids of evaluations and links."""
    row = store.execute(
        "SELECT (SELECT count(*) FROM evaluations), (SELECT max(eval_id) FROM evaluations), "
        "(SELECT count(*) FROM run_evaluations), (SELECT max(indexed_at) FROM runs)"
    )[0]
    return ":".join(str(value) for value in row)


def _route(store: Store, path: str, query: dict[str, str]) -> str:
    """The page at ``path``; raises FtbenchError for unknown evaluations or a path that is no page."""
    links, stamp = LiveLinks(), store_stamp(store)
    if path == "/":
        return home_page(store, links, stamp, [])
    if path == "/eval":
        return evaluation_page(store, query.get("key", ""), links, stamp)
    if path == "/compare":
        return comparison_page(store, query.get("a", ""), query.get("b", ""), links, query.get("metric"), stamp)
    if path == "/history":
        return history_page(store, query.get("task", ""), query.get("metric", ""), links, stamp)
    raise LookupError(path)


class ViewerHandler(BaseHTTPRequestHandler):
    """Serves the pages of ``server.location``; writes nothing."""

    server: ViewerServer

    def log_message(self, format: str, *args: Any) -> None:  # the library never prints
        """Drop the access log."""

    def _send(self, status: HTTPStatus, body: str, kind: str = "text/html; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _host_allowed(self) -> bool:
        if self.server.names is None:
            return True
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in self.server.names

    def do_GET(self) -> None:
        """A page, or ``/api/stamp``: the store's state, which live pages poll."""
        if not self._host_allowed():
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "unknown host", "text/plain; charset=utf-8")
            return
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        try:
            with opened_store(self.server.location, read_only=True) as store:
                if parts.path == "/api/stamp":
                    self._send(HTTPStatus.OK, store_stamp(store), "text/plain; charset=utf-8")
                    return
                self._send(HTTPStatus.OK, _route(store, parts.path, query))
        except LookupError:
            self._send(HTTPStatus.NOT_FOUND, page("Not found", f"<p>No page {esc(parts.path)}.</p>", HOME_LINK))
        except FtbenchError as exc:
            self._send(HTTPStatus.BAD_REQUEST, page("Cannot show this", f"<p>{esc(exc)}</p>", HOME_LINK))
        except Exception as exc:  # a page fails alone, as a page: the server goes on, nothing is printed
            text = f"<p>unexpected {esc(type(exc).__name__)}: {esc(exc)}</p>"
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, page("Cannot show this", text, HOME_LINK))

    do_HEAD = do_GET


class ViewerServer(ThreadingHTTPServer):
    """The viewer's HTTP server over one store."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], location: StoreLocation, names: set[str] | None) -> None:
        self.location, self.names = location, names
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ViewerHandler)


def _names(host: str) -> set[str] | None:
    """The Host header values a request may carry: this machine's loopback names when serving on loopback, any
    when the user chose to serve on another address."""
    if ipaddress.ip_address(host).is_loopback:
        return {"localhost", "127.0.0.1", "::1", host}
    return None


def make_server(location: StoreLocation, host: str = LOCAL_HOST, port: int = DEFAULT_PORT) -> ViewerServer:
    """A viewer bound to ``host:port`` (port 0: any free one), over a store checked readable first.

    Raises:
        FtbenchError: the store cannot be read, ``host`` is not an IP address of this machine, or the port is in use.
    """
    with opened_store(location, read_only=True):
        pass
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise FtbenchError(f"--host {host!r} is not an IP address; give one such as 127.0.0.1 or 0.0.0.0") from None
    try:
        return ViewerServer((host, port), location, _names(host))
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
