"""Adding results directories to the store: read through the verifying loaders, written in one transaction per
directory under the store's write lock, each evaluation with its seal (``integrity``).

Adding is idempotent: an evaluation is one row per content (request key and content digest), linked to each run
directory that lists it, so adding a directory again, or a copy of it, adds nothing. A directory whose records were
rewritten (``--force``) is relinked to the new content; content no directory lists any more leaves the store.
Adding with ``reindex`` writes every evaluation's rows again from the verified files, whatever the store holds:
that repairs rows changed in the database. A directory that cannot be read is skipped, named in the summary, and
the others are added all the same.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import RUN_FILE, load_run
from ftbench.harness.index.connection import (
    NO_STORE,
    STORE_ENV,
    Dialect,
    Store,
    StoreLocation,
    open_store,
    store_location,
)
from ftbench.harness.index.integrity import seal_of
from ftbench.harness.index.prepared import (
    PreparedEval,
    PreparedRun,
    StoredFile,
    Unreadable,
    prepare_records,
    prepared_runs,
)
from ftbench.harness.index.record_rows import METRIC_INSERT, SAMPLE_COLUMNS
from ftbench.harness.index.schema import opened_store, refuse_newer, stored_version
from ftbench.tasks.base import TaskOf

_EVAL_COLUMNS = (
    "key, digest, task, checkpoint, checkpoint_path, stage, precision, engine, step, repeat_index, n_samples, "
    "created_at, header, seal"
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
    skipped: tuple[Unreadable, ...] = ()
    """Directories not added because they cannot be read or trusted, each with why."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def _insert_eval(store: Store, prepared: PreparedEval, eval_id: int | None = None) -> int:
    """Write an evaluation's rows, sealed: a new one, or in place of the rows of ``eval_id``."""
    values = (*prepared.evaluation, seal_of(prepared.evaluation, prepared.metrics))
    if eval_id is None:
        marks = ", ".join("?" * len(values))
        rows = store.execute(f"INSERT INTO evaluations ({_EVAL_COLUMNS}) VALUES ({marks}) RETURNING eval_id", values)
        eval_id = int(rows[0][0])
    else:
        for table in ("samples", "metrics"):
            store.execute(f"DELETE FROM {table} WHERE eval_id = ?", (eval_id,))
        assignments = ", ".join(f"{name.strip()} = ?" for name in _EVAL_COLUMNS.split(","))
        store.execute(f"UPDATE evaluations SET {assignments} WHERE eval_id = ?", (*values, eval_id))
    store.execute_many(METRIC_INSERT, [(eval_id, *row) for row in prepared.metrics])
    store.execute_many(_SAMPLE_INSERT, [(eval_id, *row) for row in prepared.samples])
    return eval_id


def _link(store: Store, run_id: int, eval_id: int, key: str, stored: StoredFile) -> list[int]:
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


def _unlink_others(store: Store, run_id: int, kept: Sequence[int]) -> list[int]:
    """Remove the run's links to evaluations other than ``kept``; returns their ids."""
    others = [int(row[0]) for row in store.execute("SELECT eval_id FROM run_evaluations WHERE run_id = ?", (run_id,))
              if int(row[0]) not in kept]  # fmt: skip
    for eval_id in others:
        store.execute("DELETE FROM run_evaluations WHERE run_id = ? AND eval_id = ?", (run_id, eval_id))
    return others


def _write_run(store: Store, prepared: PreparedRun, reindex: bool = False) -> tuple[int, int]:
    """Index one verified run in one transaction (with ``reindex``, every evaluation's rows written again and the
    run listing exactly its evaluations); returns (evaluations added, evaluations already held)."""
    added = linked = 0
    with store.writing():
        run_id = _upsert_run(store, prepared.path, prepared.run)
        replaced: list[int] = []
        written: list[int] = []
        for evaluation in sorted(prepared.evaluations, key=lambda e: e.key):
            found = store.execute("SELECT eval_id FROM evaluations WHERE key = ? AND digest = ?",
                                  (evaluation.key, evaluation.digest))  # fmt: skip
            if found:
                eval_id, linked = int(found[0][0]), linked + 1
                if reindex:
                    _insert_eval(store, evaluation, eval_id)
            else:
                eval_id, added = _insert_eval(store, evaluation), added + 1
            replaced += _link(store, run_id, eval_id, evaluation.key, evaluation.file)
            written.append(eval_id)
        _drop_unlisted(store, replaced + (_unlink_others(store, run_id, written) if reindex else []))
    return added, linked


def _pending(store: Store, directories: Sequence[Path], reindex: bool) -> tuple[list[Path], list[Unreadable]]:
    """The directories to write (all with ``reindex``, else those the store does not hold as they are), and those
    whose run record cannot be read."""
    pending, skipped = [], []
    for directory in directories:
        try:
            run = load_run(directory)
        except FtbenchError as exc:
            skipped.append(Unreadable(str(directory), str(exc)))
            continue
        if reindex or not _up_to_date(store, str(directory.resolve()), run):
            pending.append(directory)
    return pending, skipped


def add_results(
    store: Store, directories: Sequence[Path], task_of: TaskOf, workers: int | None = None, reindex: bool = False
) -> AddSummary:
    """Index results directories written by ``ftbench run``, each verified as the report reads it (by ``workers``
    processes for many directories; see ``prepared.prepared_runs``); with ``reindex``, write every evaluation's
    rows again from its file, whatever the store holds. A directory that is not a run, or whose records cannot be
    trusted, is not written (each is written whole or not at all) and is listed in the summary's ``skipped``.
    """
    pending, unreadable = _pending(store, directories, reindex)
    skipped = list(unreadable)
    runs = added = linked = 0
    for prepared in prepared_runs(pending, task_of, workers):
        if isinstance(prepared, Unreadable):
            skipped.append(prepared)
            continue
        new, held = _write_run(store, prepared, reindex)
        runs, added, linked = runs + 1, added + new, linked + held
    return AddSummary(runs, len(directories) - len(pending) - len(unreadable), added, linked, tuple(skipped))


def run_folders(paths: Sequence[Path]) -> list[Path]:
    """The run folders ``paths`` name: each path holding a ``run.json``, else every folder below it that holds one.

    Raises:
        FtbenchError: a path that holds no run at all.
    """
    found: list[Path] = []
    for path in paths:
        below = [path] if (path / RUN_FILE).is_file() else sorted(p.parent for p in path.rglob(RUN_FILE))
        if not below:
            raise FtbenchError(
                f"{path} holds no {RUN_FILE}, nor any folder below it; give folders written by `ftbench run`"
            )
        found += below
    return list(dict.fromkeys(found))


def _check_writable(path: Path) -> None:
    """Refuse an SQLite store that cannot be written: its folder (or, before the run makes that folder, the nearest
    one that exists) read-only, where the store's journal files go, or the file itself read-only."""
    fix = f"set {STORE_ENV} to a writable SQLite file (or {STORE_ENV}={NO_STORE} to add nothing)"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".ftbench-probe-"):
            pass
    except OSError as exc:
        raise FtbenchError(
            f"cannot write the store {path}: the folder {folder} cannot be written "
            f"({exc.strerror or type(exc).__name__}); {fix}"
        ) from exc
    if path.is_file():
        try:
            os.close(os.open(path, os.O_RDWR))
        except OSError as exc:
            raise FtbenchError(f"cannot write the store {path} ({exc.strerror or type(exc).__name__}); {fix}") from exc


def _check_reachable(location: StoreLocation) -> None:
    """Refuse, before any work, a store that cannot be reached or written, or is of a newer schema."""
    if location.dialect is Dialect.SQLITE:
        _check_writable(Path(location.target))
        if not Path(location.target).is_file():
            return
    store = open_store(location, read_only=location.dialect is Dialect.SQLITE)
    try:
        refuse_newer(store, stored_version(store))
    finally:
        store.close()


def add_run(
    store: Store, directory: Path, run: RunRecord, records: Sequence[EvalRecord], task_of: TaskOf
) -> AddSummary:
    """Index the run a process just stored in ``directory`` from its records in memory (as stored, with their
    digests), without reading them back; nothing is written when the store holds it as it is."""
    if _up_to_date(store, str(directory.resolve()), run):
        return AddSummary(0, 1, 0, 0)
    added, linked = _write_run(store, prepare_records(directory, run, records, task_of))
    return AddSummary(1, 0, added, linked)


Indexer = Callable[[RunRecord, Sequence[EvalRecord]], AddSummary | None]
"""Adds a stored run (its record and its evaluations' records, as stored) to the results store."""


def run_indexer(out: Path, task_of: TaskOf) -> Indexer:
    """What the application calls once it has stored a run in ``out``: add it to the store (``FTBENCH_STORE``, else
    ``ftbench.db`` beside ``out``; ``FTBENCH_STORE=none``: no store) from the records in memory. The store is
    checked now, so one that cannot be reached or written fails before any work.

    Raises:
        FtbenchError: the store cannot be reached or written, or is of a newer schema (now), or adding failed
            (later; the results are stored all the same, and the message says how to index them).
    """
    if os.environ.get(STORE_ENV, "").strip().lower() == NO_STORE:
        return lambda run, records: None
    location = store_location(beside=out.parent)
    _check_reachable(location)

    def index(run: RunRecord, records: Sequence[EvalRecord]) -> AddSummary:
        try:
            with opened_store(location, task_of=task_of) as store:
                return add_run(store, out, run, records, task_of)
        except FtbenchError as exc:
            raise FtbenchError(
                f"the results are stored in {out} but could not be added to the store {location.label}: {exc}; "
                f"run `ftbench store add {out}` once that is fixed"
            ) from exc

    return index
