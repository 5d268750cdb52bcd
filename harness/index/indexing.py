"""Adding results directories to the store: read through the verifying loaders, written in one transaction per
directory under the store's write lock.

Adding is idempotent: an evaluation is one row per content (request key and content digest), linked to each run
directory that lists it, so adding a directory again, or a copy of it, adds nothing. A directory whose records were
rewritten (``--force``) is relinked to the new content; content no directory lists any more leaves the store.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import eval_path, load_run, load_run_evals
from ftbench.harness.core.training_curve import load_curve
from ftbench.harness.index.connection import (
    NO_STORE,
    STORE_ENV,
    Dialect,
    Store,
    StoreLocation,
    open_store,
    store_location,
)
from ftbench.harness.index.rows import SAMPLE_COLUMNS, metric_rows, record_header, sample_rows
from ftbench.harness.index.schema import opened_store, refuse_newer, stored_version
from ftbench.tasks.registry import define_recorded

_STEP_NAME = re.compile(r"checkpoint-(\d+)$")
_EVAL_COLUMNS = (
    "key, digest, task, checkpoint, checkpoint_path, stage, precision, engine, step, repeat_index, n_samples, "
    "created_at, header"
)
_SAMPLE_INSERT = f"INSERT INTO samples ({', '.join(SAMPLE_COLUMNS)}) VALUES ({', '.join('?' * len(SAMPLE_COLUMNS))})"


class AddSummary(NamedTuple):
    """What adding directories did."""

    runs: int
    """Directories written to the store."""
    unchanged: int
    """Directories skipped: indexed already, as they are now."""
    added: int
    """Evaluations new to the store."""
    linked: int
    """Evaluations the store held already, now (also) listed under a directory."""


class _StoredFile(NamedTuple):
    path: str
    sha256: str
    size: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stored_file(path: Path) -> _StoredFile:
    data = path.read_bytes()
    return _StoredFile(str(path), hashlib.sha256(data).hexdigest(), len(data))


def _steps(directory: Path) -> dict[str, int]:
    """The training step of each evaluation a training curve in ``directory`` lists."""
    curve = load_curve(directory)
    return {key: step.step for step in curve.steps for key in step.evaluations} if curve else {}


def _step(record: EvalRecord, steps: dict[str, int]) -> int | None:
    if record.key in steps:
        return steps[record.key]
    found = _STEP_NAME.search(record.variant.name)
    return int(found.group(1)) if found else None


def _up_to_date(store: Store, path: str, run: RunRecord) -> bool:
    """Whether the store lists exactly this run's evaluations (by content) under this directory already."""
    rows = store.execute(
        "SELECT e.key, e.digest, r.finished_at FROM runs r JOIN run_evaluations l ON l.run_id = r.run_id "
        "JOIN evaluations e ON e.eval_id = l.eval_id WHERE r.path = ?",
        (path,),
    )
    linked = {(key, digest) for key, digest, _ in rows}
    finished = {finished for _, _, finished in rows}
    listed = {(key, run.digests.get(key)) for key in run.evaluations}
    return bool(rows) and listed <= linked and finished == {run.finished_at}


def _upsert_run(store: Store, path: str, run: RunRecord) -> int:
    rows = store.execute(
        "INSERT INTO runs (path, name, started_at, finished_at, wall_seconds, seed, git_commit, device, indexed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET name = excluded.name, "
        "started_at = excluded.started_at, finished_at = excluded.finished_at, wall_seconds = excluded.wall_seconds, "
        "seed = excluded.seed, git_commit = excluded.git_commit, device = excluded.device, "
        "indexed_at = excluded.indexed_at RETURNING run_id",
        (path, run.name, run.started_at, run.finished_at, run.wall_seconds, run.seed, run.provenance.git_commit,
         run.provenance.device, _now()),
    )  # fmt: skip
    return int(rows[0][0])


def _insert_eval(store: Store, record: EvalRecord, step: int | None) -> int:
    variant = record.variant
    values = (record.key, record.digest, record.task, variant.name, variant.checkpoint, variant.stage,
              str(variant.precision), variant.engine, step, record.request.repeat, len(record.samples),
              record.created_at, record_header(record))  # fmt: skip
    rows = store.execute(
        f"INSERT INTO evaluations ({_EVAL_COLUMNS}) VALUES ({', '.join('?' * len(values))}) RETURNING eval_id", values
    )
    eval_id = int(rows[0][0])
    store.execute_many(
        "INSERT INTO metrics (eval_id, metric, value, stderr, n, scale, kind, low, high) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        metric_rows(eval_id, record),
    )
    store.execute_many(_SAMPLE_INSERT, sample_rows(eval_id, record))
    return eval_id


def _link(store: Store, run_id: int, eval_id: int, key: str, stored: _StoredFile) -> list[int]:
    """List the evaluation under the run (in place of another content of the same key); returns the ids of the
    contents it replaced."""
    replaced = [
        int(row[0])
        for row in store.execute(
            "SELECT l.eval_id FROM run_evaluations l JOIN evaluations e ON e.eval_id = l.eval_id "
            "WHERE l.run_id = ? AND e.key = ? AND l.eval_id <> ?",
            (run_id, key, eval_id),
        )
    ]
    for old in replaced:
        store.execute("DELETE FROM run_evaluations WHERE run_id = ? AND eval_id = ?", (run_id, old))
    store.execute(
        "INSERT INTO run_evaluations (run_id, eval_id, file, file_sha256, file_size) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, eval_id) DO UPDATE SET file = excluded.file, file_sha256 = excluded.file_sha256, "
        "file_size = excluded.file_size",
        (run_id, eval_id, stored.path, stored.sha256, stored.size),
    )
    return replaced


def _drop_unlisted(store: Store, eval_ids: Sequence[int]) -> None:
    """Remove the evaluations among ``eval_ids`` that no run lists any more."""
    for eval_id in eval_ids:
        if not store.execute("SELECT 1 FROM run_evaluations WHERE eval_id = ?", (eval_id,)):
            for table in ("samples", "metrics", "evaluations"):
                store.execute(f"DELETE FROM {table} WHERE eval_id = ?", (eval_id,))


def _write_run(store: Store, directory: Path, run: RunRecord, records: list[EvalRecord]) -> tuple[int, int]:
    """Index one verified run; returns (evaluations added, evaluations already held)."""
    steps = _steps(directory)
    files = {record.key: _stored_file(eval_path(directory, record.key).resolve()) for record in records}
    added = linked = 0
    with store.writing():
        run_id = _upsert_run(store, str(directory.resolve()), run)
        replaced: list[int] = []
        for record in sorted(records, key=lambda r: r.key):
            found = store.execute("SELECT eval_id FROM evaluations WHERE key = ? AND digest = ?",
                                  (record.key, record.digest))  # fmt: skip
            if found:
                eval_id, linked = int(found[0][0]), linked + 1
            else:
                eval_id, added = _insert_eval(store, record, _step(record, steps)), added + 1
            replaced += _link(store, run_id, eval_id, record.key, files[record.key])
        _drop_unlisted(store, replaced)
    return added, linked


def add_results(store: Store, directories: Sequence[Path]) -> AddSummary:
    """Index results directories written by ``ftbench run`` (each verified as the report reads it).

    Raises:
        FtbenchError: a directory that is not a run, or whose records cannot be trusted (nothing of that
            directory is written; the ones before it are).
    """
    runs = unchanged = added = linked = 0
    for directory in directories:
        run = load_run(directory)
        if _up_to_date(store, str(directory.resolve()), run):
            unchanged += 1
            continue
        new, held = _write_run(store, directory, run, define_recorded(load_run_evals(directory)))
        runs, added, linked = runs + 1, added + new, linked + held
    return AddSummary(runs, unchanged, added, linked)


def _check_reachable(location: StoreLocation) -> None:
    """Refuse, before any work, a store that cannot be reached or is of a newer schema."""
    if location.dialect is Dialect.SQLITE and not Path(location.target).is_file():
        return
    store = open_store(location, read_only=location.dialect is Dialect.SQLITE)
    try:
        refuse_newer(store, stored_version(store))
    finally:
        store.close()


def run_indexer(out: Path) -> Callable[[], Any]:
    """What ``ftbench run`` calls once it has stored ``run.json`` in ``out``: add ``out`` to the store
    (``FTBENCH_STORE``, else ``ftbench.db`` beside ``out``; ``FTBENCH_STORE=none``: no store). The store is
    checked now, so an unreachable one fails before any work.

    Raises:
        FtbenchError: the store cannot be reached or is of a newer schema (now), or adding failed (later; the
            results are stored all the same, and the message says how to index them).
    """
    if os.environ.get(STORE_ENV, "").strip().lower() == NO_STORE:
        return lambda: None
    location = store_location(beside=out.parent)
    _check_reachable(location)

    def index() -> AddSummary:
        try:
            with opened_store(location) as store:
                return add_results(store, [out])
        except FtbenchError as exc:
            raise FtbenchError(
                f"the results are stored in {out} but could not be added to the store {location.label}: {exc}; "
                f"run `ftbench store add {out}` once that is fixed"
            ) from exc

    return index
