"""``ftbench store export``: the store as tidy Parquet files for pandas, polars, DuckDB or a notebook.

- ``metrics.parquet``: one row per evaluation × metric (value, stderr, the report's 95% interval, n), with the
  evaluation's key, task, checkpoint, stage, step, precision, creation time and run folder;
- ``samples.parquet``: one row per sample (key, doc id and hash, prompt, response, target, scores as JSON);
- ``scores.parquet``: one row per sample × per-sample score (key, doc id, score name, value).

Samples are written one evaluation at a time, so a large store is exported in little memory. What is exported is
verified first, as every command verifies what it shows (``integrity``): the metrics against their seals, each
evaluation's samples as its record, against its content digest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.index.connection import Store
from ftbench.harness.index.integrity import verified_record, verify_sealed
from ftbench.harness.index.record_rows import scores_json

_METRICS = (
    "SELECT e.key, e.task, e.checkpoint, e.stage, e.step, e.precision, e.created_at, (SELECT min(r.path) FROM "
    "run_evaluations l JOIN runs r ON r.run_id = l.run_id WHERE l.eval_id = e.eval_id) AS run, m.metric, m.value, "
    "m.stderr, m.low, m.high, m.n FROM metrics m JOIN evaluations e ON e.eval_id = m.eval_id ORDER BY e.created_at, "
    "e.key, m.metric"
)
_SAMPLES = ("key", "doc_id", "doc_hash", "prompt", "response", "target", "scores")


class ExportedFile(NamedTuple):
    """A written Parquet file and its row count."""

    path: Path
    rows: int


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> Any:
    import pyarrow as pa

    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})


def _write_samples(store: Store, out: Path) -> tuple[ExportedFile, ExportedFile]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sample_schema = pa.schema([(n, pa.int64() if n == "doc_id" else pa.string()) for n in _SAMPLES])
    score_schema = pa.schema([("key", pa.string()), ("doc_id", pa.int64()), ("score", pa.string()),
                              ("value", pa.float64())])  # fmt: skip
    counts = [0, 0]
    with (
        pq.ParquetWriter(out / "samples.parquet", sample_schema) as samples,
        pq.ParquetWriter(out / "scores.parquet", score_schema) as scores,
    ):
        for eval_id, key in store.execute("SELECT eval_id, key FROM evaluations ORDER BY created_at, key"):
            record = verified_record(store, eval_id)
            rows = [
                (s.doc_id, s.doc_hash, s.prompt, s.response, s.target, scores_json(s.scores)) for s in record.samples
            ]
            samples.write_table(_table(list(_SAMPLES), [(key, *row) for row in rows]).cast(sample_schema))
            tidy = [(key, row[0], name, float(v)) for row in rows for name, v in json.loads(row[5]).items()]
            scores.write_table(_table(["key", "doc_id", "score", "value"], tidy).cast(score_schema))
            counts[0], counts[1] = counts[0] + len(rows), counts[1] + len(tidy)
    return ExportedFile(out / "samples.parquet", counts[0]), ExportedFile(out / "scores.parquet", counts[1])


def export_parquet(store: Store, out: Path) -> list[ExportedFile]:
    """Write ``metrics.parquet``, ``samples.parquet`` and ``scores.parquet`` into ``out``.

    Raises:
        FtbenchError: ``out`` cannot be made, pyarrow is not installed, or the store's rows are not what was indexed.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise FtbenchError("exporting Parquet needs the pyarrow package; run `pip install pyarrow`") from exc
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FtbenchError(f"cannot make the folder {out} ({exc.strerror}); give another one") from exc
    verify_sealed(store)
    result = store.query(_METRICS)
    pq.write_table(_table(result.columns, result.rows), out / "metrics.parquet")
    return [ExportedFile(out / "metrics.parquet", len(result.rows)), *_write_samples(store, out)]
