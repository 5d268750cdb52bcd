"""Whether the store still matches the records it indexes: every listed file is there, byte for byte as indexed.

A file that changed is read again through the verifying loader to say how: edited by hand (it no longer matches
its own digest) or rewritten by ftbench (a valid record of other content: re-add its directory).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, NamedTuple

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
