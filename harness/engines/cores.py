"""How many of this machine's cores an engine may use: those not busy with other processes.

Every engine sizes its threads with ``free_cores`` when a variant loads (llama.cpp's decode threads, torch's
intra-op threads for transformers), so an evaluation beside training or beside another evaluation does not
oversubscribe the cores they already use.
"""

from __future__ import annotations

import os
import time

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
    busy = psutil.cpu_percent(None) / 100 * cores - me.cpu_percent(None) / 100
    return max(1, min(cores, cores - round(max(0.0, busy))))
