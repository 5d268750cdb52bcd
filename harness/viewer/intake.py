"""How the viewer takes connections without being exhausted by them.

One thread reads every connection's request head, without blocking, until the blank line that ends it; a client
that is slow, sends half a request, or closes first is dropped at its deadline and nothing is rendered for it. Only
a whole head goes on, to a fixed pool of workers behind a bounded queue: many connections never make many threads,
and when the queue is full a connection is answered at once with 503.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError


@dataclass(frozen=True)
class ViewerLimits:
    """What one viewer may spend on its clients.

    Attributes:
        head_seconds: time a client has, from its connection, to send its whole request head.
        write_seconds: time a worker waits on one read or write of a connection before dropping it.
        workers: threads that answer requests (rendering is CPU-bound: a few suffice).
        queued: whole requests that may wait for a worker; beyond them a connection gets 503.
        pending: connections still sending their head; beyond them the oldest is dropped.
        head_bytes: the largest request head read; a longer one is refused (414 or 431).
        cache_pages: rendered pages kept for the store's current state.
        cache_bytes: the most bytes those pages may hold together.
    """

    head_seconds: float = 5.0
    write_seconds: float = 10.0
    workers: int = 4
    queued: int = 256
    pending: int = 256
    head_bytes: int = 96 * 1024
    cache_pages: int = 64
    cache_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise FtbenchError(f"the viewer's limit {name} is {value}; give a positive number")


class HeadedRequest(NamedTuple):
    """A connection with the request head read from it (``complete``: the head ended with its blank line)."""

    connection: socket.socket
    address: Any
    head: bytes
    complete: bool


def _head_ends(data: bytearray) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


def close_quietly(connection: socket.socket) -> None:
    """Close ``connection``, whatever state its peer left it in."""
    with contextlib.suppress(OSError):
        connection.close()


class _Pending:
    """A connection still sending its head."""

    def __init__(self, connection: socket.socket, address: Any, deadline: float) -> None:
        self.connection, self.address, self.deadline = connection, address, deadline
        self.data = bytearray()


class RequestIntake:
    """Reads request heads on one thread and passes each whole one to ``dispatch``."""

    def __init__(self, dispatch: Callable[[HeadedRequest], None], limits: ViewerLimits) -> None:
        self.dispatch, self.limits = dispatch, limits
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._arrived: queue.SimpleQueue[tuple[socket.socket, Any]] = queue.SimpleQueue()
        self._pending: dict[socket.socket, _Pending] = {}  # in arrival order: the first is the oldest
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer-intake", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def add(self, connection: socket.socket, address: Any) -> None:
        """Take a connection just accepted (from any thread)."""
        self._arrived.put((connection, address))
        self._wake()

    def stop(self) -> None:
        """Stop reading and close every connection still sending its head."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for pending in self._pending.values():
            close_quietly(pending.connection)
        self._pending.clear()
        while not self._arrived.empty():
            close_quietly(self._arrived.get()[0])
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # the wake-up socket is full (already woken) or closed (stopped)
            self._wake_write.send(b"\0")

    def _run(self) -> None:
        while not self._stopping.is_set():
            soonest = min((p.deadline for p in self._pending.values()), default=time.monotonic() + 1.0)
            for key, _ in self._selector.select(timeout=max(0.0, soonest - time.monotonic())):
                if key.data is None:
                    self._take_arrivals()
                else:
                    self._read(key.data)
            self._drop_expired()

    def _take_arrivals(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        while not self._arrived.empty():
            connection, address = self._arrived.get()
            while len(self._pending) >= self.limits.pending:  # the oldest has had the longest to finish
                self._forget(next(iter(self._pending.values())))
            connection.setblocking(False)
            pending = _Pending(connection, address, time.monotonic() + self.limits.head_seconds)
            self._pending[connection] = pending
            self._selector.register(connection, selectors.EVENT_READ, pending)

    def _read(self, pending: _Pending) -> None:
        try:
            chunk = pending.connection.recv(min(65536, self.limits.head_bytes + 1 - len(pending.data)))
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client closed (or reset) before its request was whole: nothing to answer
            self._forget(pending)
            return
        pending.data += chunk
        complete = _head_ends(pending.data)
        if complete or len(pending.data) > self.limits.head_bytes:
            self._selector.unregister(pending.connection)
            del self._pending[pending.connection]
            pending.connection.setblocking(True)
            self.dispatch(HeadedRequest(pending.connection, pending.address, bytes(pending.data), complete))

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self._forget(pending)

    def _forget(self, pending: _Pending) -> None:
        self._selector.unregister(pending.connection)
        del self._pending[pending.connection]
        close_quietly(pending.connection)


class WorkerPool:
    """A fixed number of threads answering whole requests from a bounded queue."""

    def __init__(self, answer: Callable[[HeadedRequest], None], limits: ViewerLimits) -> None:
        self.answer = answer
        self._queue: queue.Queue[HeadedRequest | None] = queue.Queue(maxsize=limits.queued)
        self._threads = [
            threading.Thread(target=self._work, name=f"viewer-worker-{n}", daemon=True) for n in range(limits.workers)
        ]

    def start(self) -> None:
        """Start the workers."""
        for thread in self._threads:
            thread.start()

    def submit(self, request: HeadedRequest) -> bool:
        """Queue ``request``; False (nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            return False
        return True

    def stop(self) -> None:
        """Drop the requests still queued and end the workers once each finishes its current one."""
        while True:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                close_quietly(waiting.connection)
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=5)
            except queue.Full:  # a worker is stuck on a connection; it is a daemon and goes with the process
                break
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    def _work(self) -> None:
        while (request := self._queue.get()) is not None:
            try:
                self.answer(request)
            except Exception:  # one broken connection never ends a worker
                pass
            finally:
                close_quietly(request.connection)
