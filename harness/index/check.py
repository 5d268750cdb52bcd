"""Whether the store still matches the records it indexes: every listed file is there, byte for byte as indexed.

A file that changed is read again through the verifying loader to say how: edited by hand (it no longer matches
its own digest) or rewritten by ftbench (a valid record of other content: re-add its directory). What the store
serves is its own verified copy (``integrity``); ``source_notes`` says, in a line, when a record it shows has
changed or gone from its file since.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import load_eval
from ftbench.harness.index.connection import Store

Change = Literal["missing", "edited", "rewritten"]


class Finding(NamedTuple):
    """An indexed record whose file is not what the store indexed."""

    change: Change
    run: str
    file: str
    key: str
    detail: str


def _finding(run: str, file: str, key: str, digest: str) -> Finding | None:
    path = Path(file)
    if not path.is_file():
        return Finding("missing", run, file, key, f"{file} is gone; run `ftbench run` again to restore it")
    try:
        record = load_eval(path)
    except FtbenchError as exc:
        return Finding("edited", run, file, key, str(exc))
    if record.digest != digest:
        return Finding(
            "rewritten", run, file, key, f"{file} holds other content than indexed; run `ftbench store add {run}`"
        )
    return None


def check_store(store: Store) -> tuple[int, list[Finding]]:
    """Compare every indexed file with the SHA-256 it had when indexed; returns how many files were checked and
    the findings (in run and key order)."""
    rows = store.execute(
        "SELECT r.path, l.file, l.file_sha256, e.key, e.digest FROM run_evaluations l "
        "JOIN runs r ON r.run_id = l.run_id JOIN evaluations e ON e.eval_id = l.eval_id ORDER BY r.path, e.key"
    )
    findings = []
    for run, file, sha256, key, digest in rows:
        path = Path(file)
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            continue
        found = _finding(run, file, key, digest)
        if found is not None:
            findings.append(found)
    return len(rows), findings


class SourceChange(NamedTuple):
    """An indexed record whose file is gone or differs from what was indexed."""

    key: str
    file: str
    gone: bool


def changed_sources(store: Store, where: str, params: Sequence[Any], hashed: bool) -> list[SourceChange]:
    """The files of the evaluations ``where`` a condition on ``e`` holds that are gone or changed since they were
    indexed, by file name: by size (one ``stat`` each), or with ``hashed`` by SHA-256 too (which reads each file)."""
    rows = store.execute(
        f"SELECT e.key, l.file, l.file_size{', l.file_sha256' if hashed else ''} FROM run_evaluations l "
        f"JOIN evaluations e ON e.eval_id = l.eval_id WHERE {where}",
        params,
    )
    found = []
    for key, file, size, *sha256 in rows:
        try:
            same = os.stat(file).st_size == size and (
                not hashed or hashlib.sha256(Path(file).read_bytes()).hexdigest() == sha256[0]
            )
        except OSError:
            found.append(SourceChange(key, file, gone=True))
            continue
        if not same:
            found.append(SourceChange(key, file, gone=False))
    return sorted(found, key=lambda change: change.file)


def source_notes(changes: Sequence[SourceChange], limit: int = 2) -> list[str]:
    """What is shown is the store's copy, as indexed: one line per changed file, or one line for them all when there
    are more than ``limit``."""
    if len(changes) > limit:
        return [f"{len(changes)} record files shown here changed or went since they were indexed (the first: "
                f"{changes[0].file}); this shows the store's copies (`ftbench store check` lists them)"]  # fmt: skip
    return [
        f"the record file {change.file} of {change.key} {'is gone' if change.gone else 'changed'} since it was "
        "indexed; this shows the store's copy (`ftbench store check` says more)"
        for change in changes
    ]
