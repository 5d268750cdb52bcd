"""Evaluation records as the store's rows and back: the record's header (everything but its samples) as JSON,
its metrics with the report's intervals, one row per sample.

A record rebuilt from its rows equals the stored JSON record, so whatever reads the store (the comparison of two
evaluations above all) computes exactly what it would compute from the files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ftbench.harness.compare.intervals import Interval, corpus_interval, mean_interval
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, SampleRecord
from ftbench.tasks.base import TaskOf

SAMPLE_COLUMNS = (
    "eval_id",
    "position",
    "doc_id",
    "doc_hash",
    "prompt",
    "response",
    "target",
    "scores",
    "choice_loglikelihoods",
    "token_topk",
)
"""The ``samples`` table's columns, in the order ``sample_rows`` gives them."""
SAMPLE_READ = ", ".join(SAMPLE_COLUMNS[2:])
"""The columns ``sample_from_row`` reads, in its order."""
METRIC_INSERT = (
    "INSERT INTO metrics (eval_id, metric, value, stderr, n, scale, kind, low, high) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""One row of ``metrics``: ``eval_id`` and a row of ``metric_rows``."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=1024)
def _name_json(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def scores_json(scores: dict[str, float]) -> str:
    """``json.dumps(scores)`` (compact), written directly: a record's thousand samples are indexed in a
    millisecond rather than ten."""
    parts = (
        f"{_name_json(name)}:{repr(float(v)) if math.isfinite(v) else json.dumps(v)}" for name, v in scores.items()
    )
    return "{" + ",".join(parts) + "}"


def record_header(record: EvalRecord) -> str:
    """The record without its samples, as JSON (``rebuild_record`` joins the samples back)."""
    return record.model_dump_json(exclude={"samples"})


def sample_rows(record: EvalRecord) -> list[tuple[Any, ...]]:
    """The record's samples as rows of ``SAMPLE_COLUMNS`` but the first (``eval_id``), in stored order."""
    return [
        (
            position,
            sample.doc_id,
            sample.doc_hash,
            sample.prompt,
            sample.response,
            sample.target,
            scores_json(sample.scores),
            _json(sample.choice_loglikelihoods),
            sample.token_topk.model_dump_json() if sample.token_topk is not None else None,
        )
        for position, sample in enumerate(record.samples)
    ]


def _sample_data(row: Sequence[Any]) -> dict[str, Any]:
    doc_id, doc_hash, prompt, response, target, scores, choices, topk = row
    return {
        "doc_id": doc_id,
        "doc_hash": doc_hash,
        "prompt": prompt,
        "response": response,
        "target": target,
        "scores": json.loads(scores),
        "choice_loglikelihoods": json.loads(choices) if choices is not None else None,
        "token_topk": json.loads(topk) if topk is not None else None,
    }


def sample_from_row(row: Sequence[Any]) -> SampleRecord:
    """A sample from a row of ``SAMPLE_READ``."""
    return SampleRecord.model_validate(_sample_data(row))


def rebuild_record(header: str, samples: Sequence[Sequence[Any]]) -> EvalRecord:
    """The record whose header and sample rows (of ``SAMPLE_READ``, in stored order) these are."""
    data = json.loads(header)
    data["samples"] = [_sample_data(row) for row in samples]
    return EvalRecord.model_validate(data)


def metric_interval(record: EvalRecord, metric: str, task_of: TaskOf) -> Interval | None:
    """The 95% interval the report shows for one metric of one evaluation: Clopper-Pearson for a 0/1 metric,
    Student t for another mean of per-sample scores, jackknife t for a corpus metric; None where the samples do
    not carry the metric (or the task is not one this version knows)."""
    try:
        info = task_of(record.request).metrics.get(metric)
    except FtbenchError:
        return None
    if info is None:
        return None
    if info.corpus is not None:
        return corpus_interval(info.corpus, record.samples)
    key = info.sample_score or metric
    values = [sample.scores.get(key) for sample in record.samples]
    if any(value is None for value in values):
        return None
    return mean_interval([float(v) for v in values if v is not None], binary=info.kind == "binary")


def finite(value: float | None) -> float | None:
    """``value``, or None for an infinite bound (an interval that one sample cannot bound)."""
    return None if value is None or not math.isfinite(value) else value


def metric_rows(record: EvalRecord, task_of: TaskOf) -> list[tuple[Any, ...]]:
    """The record's metrics as rows of the ``metrics`` table but its first column (``eval_id``), each with the
    report's interval."""
    rows = []
    for name, value in record.metrics.items():
        interval = metric_interval(record, name, task_of)
        low, high = (interval.low, interval.high) if interval is not None else (None, None)
        rows.append((name, value.value, value.stderr, value.n, value.scale, value.kind, low, high))
    return rows
