"""Rendered pages kept for the store's current state, so that many loads of a page cost one rendering.

A page is keyed by its path and the query parameters it reads, and belongs to one store stamp (``store_stamp``):
when the stamp changes, every kept page goes. Requests for a page being rendered wait for that rendering instead of
starting their own. The pages kept are bounded in number and in bytes (least recently served go first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

PageKey = tuple[str, tuple[tuple[str, str], ...]]
"""A page's path and the query parameters it reads, in a fixed order."""


class PageCache:
    """Pages rendered at one store stamp, at most ``max_pages`` of them and ``max_bytes`` together."""

    def __init__(self, max_pages: int, max_bytes: int) -> None:
        self.max_pages, self.max_bytes = max_pages, max_bytes
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._pages: OrderedDict[PageKey, bytes] = OrderedDict()
        self._size = 0
        self._rendering: dict[tuple[str, PageKey], threading.Event] = {}
        self.renders = 0
        """Pages rendered so far (served from the cache: not counted)."""

    def page(self, stamp: str, key: PageKey, render: Callable[[], bytes]) -> bytes:
        """The page ``key`` at ``stamp``: kept bytes, or ``render()``'s once (which raises as it raises, keeping
        nothing; a request that waited then renders on its own)."""
        while True:
            with self._lock:
                self._follow(stamp)
                kept = self._pages.get(key)
                if kept is not None:
                    self._pages.move_to_end(key)
                    return kept
                underway = self._rendering.get((stamp, key))
                if underway is None:
                    done = self._rendering[(stamp, key)] = threading.Event()
                    self.renders += 1
                    break
            underway.wait()
        try:
            data = render()
            with self._lock:
                if self._stamp == stamp:
                    self._keep(key, data)
            return data
        finally:
            with self._lock:
                del self._rendering[(stamp, key)]
            done.set()

    def _follow(self, stamp: str) -> None:
        if stamp != self._stamp:
            self._stamp = stamp
            self._pages.clear()
            self._size = 0

    def _keep(self, key: PageKey, data: bytes) -> None:
        if len(data) > self.max_bytes or key in self._pages:
            return
        self._pages[key] = data
        self._size += len(data)
        while len(self._pages) > self.max_pages or self._size > self.max_bytes:
            _, dropped = self._pages.popitem(last=False)
            self._size -= len(dropped)
