"""One run at a time per results directory: an exclusive lock, checked (and the folder proven writable) before
any work."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftbench.harness.core.errors import FtbenchError

LOCK_FILE = ".ftbench.lock"


def check_writable(results_dir: Path) -> None:
    """Refuse, without creating anything, a results directory that could not be made or written: the nearest folder
    that exists above it (or itself) must be a writable directory.

    Raises:
        FtbenchError: naming the directory and the fix.
    """
    existing = results_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        reason = "not a directory" if existing.exists() and not existing.is_dir() else "no permission"
        raise FtbenchError(f"cannot write results directory {results_dir} ({existing}: {reason}); give a writable out")


@contextmanager
def results_lock(results_dir: Path) -> Iterator[None]:
    """Hold ``results_dir``'s lock for the block; a folder this run created and left empty is removed.

    Raises:
        FtbenchError: the folder cannot be written, or another ftbench run holds its lock.
    """
    created = not results_dir.exists()
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        handle = open(results_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held for the block)
    except OSError as exc:
        raise FtbenchError(
            f"cannot write results directory {results_dir} ({exc.strerror}); give a writable --out"
        ) from exc
    try:
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise FtbenchError(
                    f"results directory {results_dir} is in use by another ftbench run (pid {holder}); wait for it to "
                    "finish or give another --out"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                (results_dir / LOCK_FILE).unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        if created and results_dir.is_dir() and not any(results_dir.iterdir()):
            results_dir.rmdir()  # a run that wrote nothing (refused, or failed at its first load) leaves nothing
