"""Builders of stored records for tests that only read results."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, stdev
from typing import Any

from ftbench.harness.core.checkpoints import Manifest
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.records import (
    EvalRecord,
    MetricValue,
    Performance,
    Provenance,
    RunRecord,
    SampleRecord,
    VariantInfo,
)
from ftbench.harness.core.request import Engine, EvalRequest
from ftbench.harness.core.store import save_eval, save_run


def make_request(**changes: Any) -> EvalRequest:
    """A request for countdown on a made-up checkpoint, with ``changes`` over its fields."""
    fields: dict[str, Any] = {
        "checkpoint": "checkpoints/initial",
        "weights_hash": "w" * 64,
        "precision": Precision.FP32,
        "engine": Engine.HF,
        "device": "cpu",
        "task": "countdown",
        "task_definition_hash": "d" * 64,
        "task_data_hash": None,
        "options": {"source": "local"},
        "generation": {"max_gen_toks": 256, "do_sample": False},
        "chat_template": True,
        "limit": 8,
        "seed": 1,
        "batch_size": 4,
    }
    return EvalRequest(**(fields | changes))


def make_record(
    key: str, stage: str, precision: str, scores: dict[str, list[float]], task: str = "countdown"
) -> EvalRecord:
    """An evaluation record whose samples carry ``scores`` (metric -> per-sample values).

    ``key`` names the weights, so records made with different keys are different evaluations; the record's own
    key is its request's digest, as in stored results.
    """
    count = len(next(iter(scores.values())))
    samples = [
        SampleRecord(
            doc_id=i,
            doc_hash=f"doc{i}",
            prompt=f"prompt {i}",
            response=f"response {i}",
            target="t",
            scores={metric: values[i] for metric, values in scores.items()},
        )
        for i in range(count)
    ]
    metrics = {
        metric: MetricValue(
            value=mean(values),
            stderr=stdev(values) / count**0.5 if count > 1 else None,
            n=count,
            scale="0-1",
            kind="binary",
        )
        for metric, values in scores.items()
    }
    request = make_request(
        checkpoint=f"checkpoints/{stage}", weights_hash=key, precision=Precision(precision), task=task
    )
    return EvalRecord(
        key=request.key(),
        request=request,
        variant=VariantInfo(
            checkpoint=f"checkpoints/{stage}",
            name=stage,
            stage=stage,
            kind="full",
            precision=Precision(precision),
            device="cpu",
            weights_hash=key,
            footprint_bytes=1000,
        ),
        task=task,
        metrics=metrics,
        performance=Performance(
            wall_seconds=1.0,
            generated_tokens=10,
            tokens_per_second=10.0,
            peak_memory_bytes=5,
            memory_measure="rss_peak",
        ),
        samples=samples,
    )


def with_request(record: EvalRecord, **changes: Any) -> EvalRecord:
    """``record`` as if evaluated with ``changes`` to its request (its key follows)."""
    request = record.request.model_copy(update=changes)
    return record.model_copy(update={"request": request, "key": request.key()})


def write_results(out: Path, records: list[EvalRecord], name: str = "test") -> Path:
    """Store ``records`` as one run in ``out``, as ``ftbench run`` does."""
    for record in records:
        save_eval(out, record)
    provenance = Provenance(
        git_commit=None,
        git_dirty=None,
        versions={"lm_eval": "0.4.13"},
        python="3.11",
        platform="linux",
        device="cpu",
        device_name="x86_64",
        torch_threads=2,
    )
    save_run(
        out,
        RunRecord(
            name=name,
            spec={},
            provenance=provenance,
            evaluations=[r.key for r in records],
            seed=1,
            started_at="2026-01-01T00:00:00",
            wall_seconds=1.0,
        ),
    )
    return out


def make_manifest(stage: str, method: str, parent: str | None = None, **fields: Any) -> Manifest:
    """A checkpoint's lineage as ftbench writes it, with made-up hashes."""
    return Manifest(stage=stage, method=method, source="test", parent=parent, content_hash="c" * 64, **fields)
