"""Reading results directories for the store: each run verified by the loaders (as the report reads it) and
turned into the rows the store writes, in this process or, for many directories, in worker processes.

Reading and verifying the JSON is most of the work of indexing, and it needs no lock, so a pool spreads it over the
machine's cores while the one writer inserts what is ready.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import eval_path, load_run, load_run_evals
from ftbench.harness.core.training_curve import load_curve
from ftbench.harness.index.record_rows import metric_rows, record_header, sample_rows
from ftbench.tasks.base import TaskOf

POOL_FROM = 16
"""Directories from which a pool of worker processes pays for its start (a second or two each)."""
MAX_WORKERS = 4
_STEP_NAME = re.compile(r"checkpoint-(\d+)$")


class StoredFile(NamedTuple):
    """Where a record's file is, its SHA-256 and size when read."""

    path: str
    sha256: str
    size: int


class PreparedEval(NamedTuple):
    """One verified evaluation as the store's rows (``eval_id`` left out: the writer assigns it)."""

    key: str
    digest: str
    evaluation: tuple[Any, ...]
    """The ``evaluations`` row: key, digest, task, checkpoint, checkpoint_path, stage, precision, engine, step,
    repeat_index, n_samples, created_at, header."""
    metrics: list[tuple[Any, ...]]
    samples: list[tuple[Any, ...]]
    file: StoredFile


class PreparedRun(NamedTuple):
    """One verified run directory, ready to write."""

    path: str
    run: RunRecord
    evaluations: list[PreparedEval]


class Unreadable(NamedTuple):
    """A directory that cannot be read or trusted, and why (one line naming the file and the fix)."""

    path: str
    reason: str


def _stored_file(path: Path) -> StoredFile:
    data = path.read_bytes()
    return StoredFile(str(path), hashlib.sha256(data).hexdigest(), len(data))


def _step(record: EvalRecord, steps: dict[str, int]) -> int | None:
    """The training step: from the directory's training curve, else from a ``checkpoint-N`` name."""
    if record.key in steps:
        return steps[record.key]
    found = _STEP_NAME.search(record.variant.name)
    return int(found.group(1)) if found else None


def evaluation_row(record: EvalRecord, step: int | None) -> tuple[Any, ...]:
    """The ``evaluations`` row of a record at a training step (``PreparedEval.evaluation``)."""
    variant = record.variant
    return (record.key, record.digest, record.task, variant.name, variant.checkpoint, variant.stage,
            str(variant.precision), variant.engine, step, record.request.repeat, len(record.samples),
            record.created_at, record_header(record))  # fmt: skip


def _prepared_eval(directory: Path, record: EvalRecord, steps: dict[str, int], task_of: TaskOf) -> PreparedEval:
    evaluation = evaluation_row(record, _step(record, steps))
    file = _stored_file(eval_path(directory, record.key).resolve())
    metrics = metric_rows(record, task_of)
    return PreparedEval(record.key, str(record.digest), evaluation, metrics, sample_rows(record), file)


def prepare_records(directory: Path, run: RunRecord, records: Sequence[EvalRecord], task_of: TaskOf) -> PreparedRun:
    """A run's evaluations as rows, from the run and records a process just stored in ``directory`` (as stored:
    with their digests), without reading them back; ``task_of`` gives each record's task (its metrics' intervals).

    Raises:
        FtbenchError: the directory's training curve cannot be read.
    """
    curve = load_curve(directory)
    steps = {key: step.step for step in curve.steps for key in step.evaluations} if curve else {}
    prepared = [_prepared_eval(directory, r, steps, task_of) for r in records]
    return PreparedRun(str(directory.resolve()), run, prepared)


def prepare_run(directory: Path, task_of: TaskOf) -> PreparedRun:
    """Read and verify a run directory and turn its evaluations into rows.

    Raises:
        FtbenchError: the directory is not a run, or one of its records cannot be trusted.
    """
    return prepare_records(directory, load_run(directory), load_run_evals(directory), task_of)


def prepare_or_refuse(directory: Path, task_of: TaskOf) -> PreparedRun | Unreadable:
    """``prepare_run``, or why the directory cannot be prepared."""
    try:
        return prepare_run(directory, task_of)
    except FtbenchError as exc:
        return Unreadable(str(directory), str(exc))
    except OSError as exc:
        reason = f"cannot read {exc.filename or directory} ({exc.strerror or type(exc).__name__}); check it"
        return Unreadable(str(directory), reason)


def prepared_runs(
    directories: Sequence[Path], task_of: TaskOf, workers: int | None = None
) -> Iterator[PreparedRun | Unreadable]:
    """The directories prepared (or why not), in order: here, or by ``workers`` processes (by default one per
    core, at most ``MAX_WORKERS``, once there are ``POOL_FROM`` directories)."""
    if workers is None:
        workers = min(MAX_WORKERS, os.cpu_count() or 1) if len(directories) >= POOL_FROM else 1
    if workers <= 1 or len(directories) < 2:
        yield from (prepare_or_refuse(directory, task_of) for directory in directories)
        return
    context = multiprocessing.get_context("spawn")  # nothing of this process (connections, threads) is inherited
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(partial(prepare_or_refuse, task_of=task_of), directories)
