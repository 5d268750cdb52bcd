"""The results store as pandas DataFrames, for notebooks: evaluations, their metrics and their samples, filtered by
task, checkpoint, precision or run (as inspect's ``evals_df`` and ``samples_df`` offer a log directory).

Each frame is one query on the store, opened read-only: nothing is written, and the store's own checks (its
schema version, its reachability) apply. The rows are verified first, as every command verifies what it shows
(``integrity``): evaluations and metrics against their seals, samples against their records' content digests.
Checkpoint and run filters are shell patterns (``checkpoint-*``) matched against the name and the path.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ftbench.harness.index.connection import store_location
from ftbench.harness.index.integrity import verify_records, verify_sealed
from ftbench.harness.index.schema import opened_store

if TYPE_CHECKING:
    import pandas as pd

_EVALUATION_COLUMNS = (
    "e.eval_id", "e.key", "e.task", "e.checkpoint", "e.checkpoint_path", "e.stage", "e.precision", "e.engine",
    "e.step", "e.repeat_index", "e.n_samples", "e.created_at",
)  # fmt: skip
_RUNS = (
    "(SELECT min(r.path) FROM run_evaluations l JOIN runs r ON r.run_id = l.run_id WHERE l.eval_id = e.eval_id)",
    "(SELECT min(r.name) FROM run_evaluations l JOIN runs r ON r.run_id = l.run_id WHERE l.eval_id = e.eval_id)",
)


class Filters(NamedTuple):
    """Which evaluations a frame holds (None: any)."""

    task: str | None = None
    checkpoint: str | None = None
    precision: str | None = None
    run: str | None = None

    def keeps(self, row: dict[str, Any]) -> bool:
        """Whether an evaluation row passes the checkpoint and run patterns (task and precision filter in SQL)."""
        named = self.checkpoint is None or any(
            fnmatchcase(str(row[column]), self.checkpoint) for column in ("checkpoint", "checkpoint_path")
        )
        ran = self.run is None or any(fnmatchcase(str(row[column] or ""), self.run) for column in ("run", "run_path"))
        return named and ran


def _where(filters: Filters) -> tuple[str, tuple[str, ...]]:
    clauses, params = [], []
    if filters.task is not None:
        clauses.append("e.task = ?")
        params.append(filters.task)
    if filters.precision is not None:
        clauses.append("e.precision = ?")
        params.append(filters.precision)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _query(
    store: str | Path | None, select: str, joins: str, filters: Filters, names: list[str], samples: bool = False
) -> pd.DataFrame:
    import pandas as pd

    where, params = _where(filters)
    statement = f"SELECT {', '.join(_EVALUATION_COLUMNS)}, {', '.join(_RUNS)}{select} FROM evaluations e{joins}{where}"
    columns = [c.split(".")[-1] for c in _EVALUATION_COLUMNS] + ["run_path", "run", *names]
    with opened_store(store_location(store), read_only=True) as opened:
        (verify_records if samples else verify_sealed)(opened, where.removeprefix(" WHERE "), params)
        rows = [dict(zip(columns, row, strict=True)) for row in opened.execute(statement, params)]
    kept = [row for row in rows if filters.keeps(row)]
    frame = pd.DataFrame(kept, columns=columns)
    return frame.drop(columns=["eval_id"]).sort_values(["created_at", "key"], kind="stable").reset_index(drop=True)


def evaluations_df(
    store: str | Path | None = None,
    *,
    task: str | None = None,
    checkpoint: str | None = None,
    precision: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """One row per evaluation in the store: its key, task, checkpoint (name, path, stage, training step),
    precision, engine, repeat, sample count, creation time and the run folder that lists it.

    Args:
        store: the store (a SQLite file or a ``postgresql://`` URL); None: ``FTBENCH_STORE``, else
            ``results/ftbench.db``.
        task: only this task.
        checkpoint: only checkpoints whose name or path matches this pattern.
        precision: only this precision.
        run: only evaluations listed by a run whose name or folder matches this pattern.

    Raises:
        FtbenchError: the store cannot be reached, is empty, or is not an ftbench store of this version, or its rows
            are not what was indexed.
    """
    return _query(store, "", "", Filters(task, checkpoint, precision, run), [])


def metrics_df(
    store: str | Path | None = None,
    *,
    task: str | None = None,
    checkpoint: str | None = None,
    precision: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """One row per evaluation × metric: the evaluation's columns (as ``evaluations_df``) with the metric, its value,
    standard error, sample count, scale, kind and the report's 95% interval (``low``, ``high``).

    Raises:
        FtbenchError: as ``evaluations_df``.
    """
    names = ["metric", "value", "stderr", "n", "scale", "kind", "low", "high"]
    select = ", " + ", ".join(f"m.{name}" for name in names)
    return _query(
        store, select, " JOIN metrics m ON m.eval_id = e.eval_id", Filters(task, checkpoint, precision, run), names
    )


def samples_df(
    store: str | Path | None = None,
    *,
    task: str | None = None,
    checkpoint: str | None = None,
    precision: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """One row per scored sample: the evaluation's columns (as ``evaluations_df``) with the sample's position, doc id
    and hash, prompt, response, target, and one ``score_<name>`` column per per-sample score.

    Raises:
        FtbenchError: as ``evaluations_df``.
    """
    import pandas as pd

    names = ["position", "doc_id", "doc_hash", "prompt", "response", "target", "scores"]
    select = ", " + ", ".join(f"s.{name}" for name in names)
    joins = " JOIN samples s ON s.eval_id = e.eval_id"
    frame = _query(store, select, joins, Filters(task, checkpoint, precision, run), names, samples=True)
    scores = pd.DataFrame([json.loads(text) for text in frame.pop("scores")], index=frame.index)
    return pd.concat([frame, scores.add_prefix("score_")], axis=1)
