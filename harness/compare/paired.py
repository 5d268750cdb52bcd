"""The one paired comparison of two evaluations of the same task, used by the report and the gate alike.

Samples pair by doc id and doc hash. A 0/1 metric is tested with McNemar's exact test, a continuous or corpus
metric with a paired permutation test; the interval is a paired bootstrap.
"""

from __future__ import annotations

from typing import NamedTuple

from harness.compare.statistics import PairedComparison, compare_paired, pair_samples
from harness.core.records import EvalRecord
from tasks.registry import get_task

BOOTSTRAP_ITERS = 2000
CORPUS_ITERS = 500
"""Corpus metrics (BLEU, perplexity) are recomputed for every replicate, so they get fewer."""


class MetricComparison(NamedTuple):
    """A candidate against a baseline on one metric: the comparison, or why there is none."""

    metric: str
    comparison: PairedComparison | None
    note: str | None = None


def compare_metric(baseline: EvalRecord, candidate: EvalRecord, metric: str, seed: int = 0) -> MetricComparison:
    """Compare ``metric`` of two evaluations of one task on the items both share."""
    info = get_task(baseline.task).metrics[metric]
    pairs = pair_samples(baseline.samples, candidate.samples)
    if not pairs:
        return MetricComparison(metric, None, "no shared items: not compared")
    key = info.sample_score or metric
    if info.corpus is None and any(key not in s.scores for pair in pairs for s in pair):
        return MetricComparison(metric, None, "no per-sample scores: not compared")
    iters = CORPUS_ITERS if info.corpus is not None else BOOTSTRAP_ITERS
    comparison = compare_paired(key, info.kind, pairs, corpus=info.corpus, iters=iters, seed=seed)
    return MetricComparison(metric, comparison._replace(metric=metric))


def compared_metrics(baseline: EvalRecord, candidate: EvalRecord) -> list[str]:
    """The task's metrics that both evaluations report, in the task's order."""
    return [m for m in get_task(baseline.task).metrics if m in baseline.metrics and m in candidate.metrics]
