"""``ftbench view`` cannot be exhausted: held, slow and half-sent connections cost no thread and no page, many
loads of a page cost one rendering, the queue and the workers are bounded, every response carries the security
headers; ``--port`` and ``--export`` refuse what they cannot use in one line."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.index.connection import StoreLocation, store_location
from ftbench.harness.index.schema import opened_store
from ftbench.harness.viewer import routes
from ftbench.harness.viewer.export import MARKER, check_export_folder, export_site
from ftbench.harness.viewer.intake import ViewerLimits
from ftbench.harness.viewer.server import ViewerServer, make_server
from tests.records import make_record, write_results
from tests.store_records import add_dirs, pipeline_runs

HALF_SENT = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
"""A request head without its closing blank line."""
WHOLE = HALF_SENT + b"\r\n"


@pytest.fixture
def location(tmp_path: Path) -> StoreLocation:
    location = store_location(tmp_path / "results" / "ftbench.db")
    add_dirs(location, pipeline_runs(tmp_path / "results"))
    return location


class Renders:
    """Counts home-page renderings; ``gate`` (when cleared) holds each rendering until set."""

    def __init__(self, render: Callable[..., str]) -> None:
        self.render, self.count, self.gate = render, 0, threading.Event()
        self.gate.set()

    def __call__(self, *args: Any) -> str:
        self.count += 1
        self.gate.wait(timeout=30)
        return self.render(*args)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Renders:
    counting = Renders(routes.home_page)
    monkeypatch.setattr(routes, "home_page", counting)
    return counting


def _serve(location: StoreLocation, limits: ViewerLimits) -> Iterator[ViewerServer]:
    served = make_server(location, port=0, limits=limits)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()
    thread.join(timeout=5)


@pytest.fixture
def server(location: StoreLocation, renders: Renders) -> Iterator[ViewerServer]:
    yield from _serve(location, ViewerLimits(head_seconds=1.0))


def _connect(server: ViewerServer, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=timeout)


def _read(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _ask(server: ViewerServer, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of the answer to ``head``."""
    with _connect(server) as connection:
        connection.sendall(head)
        answer = _read(connection)
    top, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = top.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status.split()[1]), headers, body


def _viewer_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("viewer-"))


def test_every_response_carries_the_security_headers(server: ViewerServer) -> None:
    asked = {
        "page": WHOLE,
        "head": b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "no page": b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "bad key": b"GET /eval?key=0123abcd HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "other host": b"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n",
        "post": b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx",
        "garbled": b"NONSENSE\r\n\r\n",
    }
    statuses = {}
    for name, head in asked.items():
        status, headers, _ = _ask(server, head)
        statuses[name] = status
        assert "frame-ancestors 'none'" in headers["content-security-policy"], name
        assert "default-src 'none'" in headers["content-security-policy"], name
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", name
    assert statuses == {"page": 200, "head": 200, "no page": 404, "bad key": 400, "other host": 421, "post": 501,
                        "garbled": 400}  # fmt: skip


def test_a_half_sent_request_closed_by_its_client_is_never_answered(server: ViewerServer, renders: Renders) -> None:
    for _ in range(50):  # as a client that gives up: half a request, then gone
        with _connect(server) as connection:
            connection.sendall(HALF_SENT)
    time.sleep(1.5)  # past the head deadline
    assert renders.count == 0
    status, _, body = _ask(server, WHOLE)
    assert status == 200 and b"Evaluations (8)" in body and renders.count == 1


def test_a_page_is_rendered_once_per_store_state(server: ViewerServer, renders: Renders, location: StoreLocation,
                                                 tmp_path: Path) -> None:  # fmt: skip
    for query in ("", "?junk=1", "?junk=2&a=b"):  # parameters a page does not read do not make it again
        assert _ask(server, b"GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % query.encode())[0] == 200
    assert renders.count == 1
    later = write_results(tmp_path / "later", [make_record("z", "final", "fp32", {"accuracy": [1.0, 1.0]})])
    add_dirs(location, [later])
    status, _, body = _ask(server, WHOLE)
    assert status == 200 and b"Evaluations (9)" in body and renders.count == 2


def test_a_slow_client_is_dropped_at_its_deadline_unanswered(server: ViewerServer, renders: Renders) -> None:
    with _connect(server) as connection:
        connection.sendall(HALF_SENT[:10])
        started = time.perf_counter()
        answer = _read(connection)  # ends when the viewer closes the connection
        waited = time.perf_counter() - started
    assert answer == b"" and 0.5 < waited < 4 and renders.count == 0


def test_heads_over_the_limit_are_refused(location: StoreLocation, renders: Renders) -> None:
    for served in _serve(location, ViewerLimits(head_bytes=4096)):
        many = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 80) for n in range(60))  # 5 KiB, no blank line yet
        assert _ask(served, HALF_SENT + many)[0] == 431
        assert _ask(served, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n")[0] == 414
        assert renders.count == 0


def test_a_full_queue_answers_503_and_the_workers_stay_few(location: StoreLocation, renders: Renders) -> None:
    renders.gate.clear()  # the one worker renders until the gate opens
    for served in _serve(location, ViewerLimits(workers=1, queued=1)):
        first, second = _connect(served), _connect(served)
        first.sendall(WHOLE)
        deadline = time.monotonic() + 10
        while renders.count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        second.sendall(WHOLE)  # waits in the queue
        time.sleep(0.2)
        status, headers, _ = _ask(served, WHOLE)  # finds the queue full
        assert status == 503 and headers["retry-after"] == "1" and headers["x-frame-options"] == "DENY"
        assert _viewer_threads() == 2  # the worker and the intake
        renders.gate.set()
        assert _read(first).startswith(b"HTTP/1.0 200") and _read(second).startswith(b"HTTP/1.0 200")
        assert renders.count == 1  # the second load was served the first's page
        first.close()
        second.close()


def test_held_connections_and_concurrent_loads_stay_bounded(location: StoreLocation, renders: Renders) -> None:
    process = psutil.Process()
    for served in _serve(location, ViewerLimits(head_seconds=3.0)):
        assert _ask(served, b"GET /api/stamp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[0] == 200  # the workers start
        threads, rss = threading.active_count(), process.memory_info().rss
        held = []
        for _ in range(500):  # half a request each, held open
            connection = _connect(served)
            connection.sendall(HALF_SENT)
            held.append(connection)
        started = time.perf_counter()
        fresh = urllib.request.urlopen(f"http://127.0.0.1:{served.server_address[1]}/api/stamp", timeout=5).read()
        fresh_seconds = time.perf_counter() - started
        loads = []
        started = time.perf_counter()
        for _ in range(200):  # 200 loads of the home page at once
            connection = _connect(served)
            connection.sendall(WHOLE)
            loads.append(connection)
        answers = [_read(connection) for connection in loads]
        loads_seconds = time.perf_counter() - started
        for connection in held + loads:
            connection.close()
        time.sleep(0.5)
        grown = (process.memory_info().rss - rss) / 2**20
        print(f"fresh {fresh_seconds:.3f} s, 200 loads {loads_seconds:.2f} s, RSS +{grown:.0f} MiB")
        assert fresh and fresh_seconds < 2
        assert all(answer.startswith(b"HTTP/1.0 200") and b"Evaluations (8)" in answer for answer in answers)
        assert renders.count == 1 and loads_seconds < 20
        assert threading.active_count() <= threads and _viewer_threads() == ViewerLimits().workers + 1
        assert grown < 200


@pytest.mark.parametrize("port", [99999, -1, 65536])
def test_a_port_out_of_range_is_one_line(location: StoreLocation, port: int) -> None:
    with pytest.raises(FtbenchError, match=f"--port {port} is not a port; give one in 0-65535"):
        make_server(location, port=port)
    result = CliRunner().invoke(app, ["view", "--store", location.target, "--port", str(port)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "0-65535" in lines[0] and "unexpected" not in lines[0]


def test_export_refuses_a_folder_it_did_not_write(location: StoreLocation, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    (mine / "IMPORTANT.txt").write_text("keep")
    result = CliRunner().invoke(app, ["view", "--store", location.target, "--export", str(mine)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "is not empty" in lines[0]
    assert sorted(p.name for p in mine.iterdir()) == ["IMPORTANT.txt", "index.html"]
    assert (mine / "index.html").read_text() == "my page"
    with pytest.raises(FtbenchError, match="root"):
        check_export_folder(Path("/"))
    with pytest.raises(FtbenchError, match="is a file"):
        check_export_folder(mine / "IMPORTANT.txt")
    with opened_store(location, read_only=True) as store:
        first = export_site(store, tmp_path / "site")
        again = export_site(store, tmp_path / "site")  # an earlier export's folder may be written again
    assert (tmp_path / "site" / MARKER).is_file() and first == again and len(first) > 10
