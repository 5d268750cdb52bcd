"""Scratch folders of long exports, named by the process that owns them, so that the next export removes what a
killed one left behind (a SIGKILL runs no clean-up; a GGUF export's scratch holds up to an f16 model and a merge)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = ".export-"
"""Scratch folders are ``.export-<pid>-<random>`` inside the folder they export to."""


@contextmanager
def scratch_dir(parent: Path) -> Iterator[str]:
    """A temporary folder in ``parent`` named by this process, removed when the block ends."""
    with tempfile.TemporaryDirectory(dir=parent, prefix=f"{PREFIX}{os.getpid()}-") as folder:
        yield folder


def _owner_gone(folder: Path) -> bool:
    """Whether the process named in a scratch folder's name has ended (False when the name names none)."""
    owner = folder.name.removeprefix(PREFIX).split("-")[0]
    if not owner.isdigit():
        return False
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the scratch folders in ``parent`` whose process is gone; returns what was removed. Folders of live
    processes, links and anything not named like a scratch folder stay."""
    removed = []
    for folder in sorted(parent.glob(f"{PREFIX}*")) if parent.is_dir() else []:
        if folder.is_dir() and not folder.is_symlink() and _owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
