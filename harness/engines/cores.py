"""How many of this machine's cores an engine may use: those not busy with other processes.

Every engine sizes its threads with ``free_cores`` when a variant loads (llama.cpp's decode threads, torch's
intra-op threads for transformers), so an evaluation beside training or beside another evaluation does not
oversubscribe the cores they already use; the transformers engine keeps re-measuring as it works (``CoreShare``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil


def free_cores(sample_seconds: float = 0.25) -> int:
    """Cores not busy with other processes, measured over ``sample_seconds`` (at least 1).

    llama.cpp's threads spin while they wait for each other (and torch's OpenMP threads do for a while), so one
    more thread than there are free cores makes every step wait for a preempted thread: on a busy machine fewer
    threads are much faster.
    """
    cores = os.cpu_count() or 1
    me = psutil.Process()
    me.cpu_percent(None)
    psutil.cpu_percent(None)
    time.sleep(sample_seconds)
    return _left_free(cores, psutil.cpu_percent(None), me.cpu_percent(None))


def _left_free(cores: int, machine_percent: float, own_percent: float) -> int:
    """The cores other processes leave free (at least 1): the machine's busy share (percent of all cores) less
    this process's own (percent of one core)."""
    busy = machine_percent / 100 * cores - own_percent / 100
    return max(1, min(cores, cores - round(max(0.0, busy))))


class CoreShare:
    """Keeps an engine's threads at the cores other processes leave free while it works, not only when it loads:
    two evaluations started together both find every core free at load, and with a thread per core each they
    oversubscribe the machine (measured: 16% and 31% of their throughput alone); re-measured as they run, both
    step down to their share, and one steps back up when the other ends.

    Args:
        set_threads: applies a thread count (``torch.set_num_threads``).
        threads: the count in use now.
        every: seconds between measurements (each costs two ``psutil`` calls; nothing sleeps).
    """

    def __init__(self, set_threads: Callable[[int], None], threads: int, every: float = 2.0) -> None:
        self.set_threads = set_threads
        self.threads = threads
        self.every = every
        self._me = psutil.Process()
        self._cores = os.cpu_count() or 1
        self._since = time.monotonic()
        self._me.cpu_percent(None)
        psutil.cpu_percent(None)

    def check(self) -> int:
        """Measure the other processes' load since the last measurement (at most every ``every`` seconds) and
        set the threads to the cores they leave free; returns the threads in use."""
        now = time.monotonic()
        if now - self._since < self.every:
            return self.threads
        self._since = now
        threads = _left_free(self._cores, psutil.cpu_percent(None), self._me.cpu_percent(None))
        if threads != self.threads:
            self.set_threads(threads)
            self.threads = threads
        return self.threads
