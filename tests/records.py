"""Builders of stored records for tests that only read results."""

from __future__ import annotations

from statistics import mean, stdev

from harness.results import EvalRecord, MetricValue, Performance, SampleRecord, VariantInfo


def make_record(
    key: str, stage: str, precision: str, scores: dict[str, list[float]], task: str = "countdown"
) -> EvalRecord:
    """An evaluation record whose samples carry ``scores`` (metric -> per-sample values)."""
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
    return EvalRecord(
        key=key,
        key_fields={"precision": precision},
        variant=VariantInfo(
            checkpoint=f"checkpoints/{stage}",
            name=stage,
            stage=stage,
            kind="full",
            precision=precision,
            device="cpu",
            weights_hash="w",
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
