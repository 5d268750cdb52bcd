"""The live viewer under held connections and concurrent loads (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/viewer_load.py [--held 500] [--loads 200] [--evaluations 20]
        [--samples 100] [--server-file FILE]

Plants a store (as ``benchmarks/store.py`` does), starts the viewer in its own process (under ``nice``), then:
opens ``--held`` connections that send half a request and stay open, times a fresh request, sends ``--loads``
requests for the home page at once and times them all (and a fresh request among them), closes the held
connections and times a fresh request again. The viewer's RSS and threads are sampled throughout.
``--server-file`` serves with another copy of ``harness/viewer/server.py`` (e.g. ``git show
HEAD:harness/viewer/server.py > /tmp/old.py``), to compare. Every wait is bounded: the run stops by itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

import psutil

from benchmarks.store import plant
from ftbench.harness.index.connection import store_location
from tests.store_records import add_dirs

HALF_SENT = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
WAIT = 120.0
"""The longest any one answer is waited for."""


def _server_module(path: str | None) -> ModuleType:
    if path is None:
        from ftbench.harness.viewer import server

        return server
    spec = importlib.util.spec_from_file_location("viewer_server_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def serve(store: str, server_file: str | None) -> None:
    """The viewer process: print the port, then serve."""
    served = _server_module(server_file).make_server(store_location(store), port=0)
    print(served.server_address[1], flush=True)
    served.serve_forever()


class Sampler:
    """The viewer's peak RSS and thread count, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.process, self.rss, self.threads = psutil.Process(pid), 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.rss = max(self.rss, self.process.memory_info().rss)
                self.threads = max(self.threads, self.process.num_threads())
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _ask(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as connection:
        connection.sendall(head)
        return _read_all(connection)


def _timed_fresh(port: int) -> str:
    started = time.perf_counter()
    try:
        answer = _ask(port, b"GET /api/stamp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    except OSError as exc:
        return f"failed ({type(exc).__name__}) after {time.perf_counter() - started:.2f} s"
    return f"{answer.split(b' ', 2)[1].decode()} in {time.perf_counter() - started:.3f} s"


def _concurrent_loads(port: int, count: int) -> tuple[float, dict[str, int]]:
    """Send ``count`` requests for the home page, time a fresh request among them, then read every answer."""
    started = time.perf_counter()
    loads = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        connection.sendall(HALF_SENT + b"\r\n")
        loads.append(connection)
    print(f"  a fresh request while they load: {_timed_fresh(port)}")
    statuses: dict[str, int] = {}
    for connection in loads:
        try:
            status = _read_all(connection).split(b" ", 2)[1].decode()
        except (OSError, IndexError) as exc:
            status = type(exc).__name__
        statuses[status] = statuses.get(status, 0) + 1
        connection.close()
    return time.perf_counter() - started, statuses


def measure(store: str, args: argparse.Namespace) -> None:
    """Start the viewer, load it, print what it cost."""
    command = ["nice", "-n", "10", sys.executable, __file__, "--serve", store]
    command += ["--server-file", args.server_file] if args.server_file else []
    viewer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert viewer.stdout is not None
        port = int(viewer.stdout.readline())
        process = psutil.Process(viewer.pid)
        print(f"viewer started: RSS {process.memory_info().rss / 2**20:.0f} MiB, {process.num_threads()} threads")
        print(f"one fresh request: {_timed_fresh(port)}; first home page: ", end="")
        started = time.perf_counter()
        _ask(port, HALF_SENT + b"\r\n")
        print(f"{time.perf_counter() - started:.2f} s")
        sampler = Sampler(viewer.pid)
        held = []
        for _ in range(args.held):
            connection = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            connection.sendall(HALF_SENT)
            held.append(connection)
        time.sleep(0.5)
        print(f"{args.held} held: threads {process.num_threads()}; fresh request {_timed_fresh(port)}")
        seconds, statuses = _concurrent_loads(port, args.loads)
        print(f"{args.loads} concurrent home pages: {seconds:.2f} s, statuses {statuses}")
        for connection in held:
            connection.close()
        time.sleep(1.0)
        print(f"held connections closed: fresh request {_timed_fresh(port)}")
        deadline = time.monotonic() + WAIT
        while process.cpu_percent(interval=0.5) > 5 and time.monotonic() < deadline:
            pass
        sampler.stop()
        print(f"peak RSS {sampler.rss / 2**20:.0f} MiB, peak threads {sampler.threads}; "
              f"idle again: RSS {process.memory_info().rss / 2**20:.0f} MiB")  # fmt: skip
    finally:
        viewer.kill()
        viewer.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=500)
    parser.add_argument("--loads", type=int, default=200)
    parser.add_argument("--evaluations", type=int, default=20)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--server-file", help="serve with this copy of harness/viewer/server.py")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.server_file)
        return
    with tempfile.TemporaryDirectory(prefix="ftbench-viewer-bench-") as folder:
        runs = plant(Path(folder) / "results", args.evaluations, args.samples)
        location = store_location(Path(folder) / "ftbench.db")
        add_dirs(location, runs)
        measure(location.target, args)


if __name__ == "__main__":
    main()
