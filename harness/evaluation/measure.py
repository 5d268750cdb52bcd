"""Measuring an evaluation's cost: wall time and peak memory (CUDA allocator, or sampled process RSS)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time
from types import TracebackType

import psutil
import torch


class PeakMemory:
    """Context manager that records the peak memory used while it is open.

    On CUDA it reads the allocator's high-water mark; on CPU a thread samples the process's resident set
    size every ``interval`` seconds, so short spikes between samples can be missed.
    """

    def __init__(self, device: str, interval: float = 0.05) -> None:
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self.wall_seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    @property
    def measure(self) -> str:
        """The name of what ``peak_bytes`` measures."""
        return "cuda_max_allocated" if self.device == "cuda" else "rss_peak"

    def __enter__(self) -> PeakMemory:
        self._started = time.perf_counter()
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process()
        while True:
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
            if self._stop.wait(self.interval):
                return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.wall_seconds = time.perf_counter() - self._started
        if self.device == "cuda":
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()


def release_memory() -> None:
    """Collect garbage, free the GPU's cached blocks (without starting CUDA) and hand freed heap pages back to the
    OS, so what runs next starts clean."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
