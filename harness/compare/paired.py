"""The one paired comparison of two evaluations of the same task, used by the report and the gate alike. The task
comes from the caller (the application resolves it where the records enter): the statistics read no registry.

Samples pair by doc id and doc hash. A 0/1 metric is tested with McNemar's exact test, a continuous or corpus
metric with a paired permutation test; the intervals and power are those of ``statistics.compare_paired``.

Repeats (several evaluations of one variant with derived seeds) pair item by item: each item's per-sample
scores are averaged over the variant's repeats and the averages are paired by doc id (a 0/1 metric then becomes
a continuous one, tested by permutation); a corpus metric is computed over all repeats' samples of the items in
each resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import Any, NamedTuple

from ftbench.harness.compare.agreement import Agreement, agreement
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.statistics import PairedComparison, compare_paired, pair_samples
from ftbench.harness.core.records import EvalRecord, SampleRecord
from ftbench.tasks.base import CorpusMetric, Task

SWAPS = 2000
"""Random swaps of the permutation test above its exact size."""
CORPUS_SWAPS = 500
"""Corpus metrics (BLEU, perplexity) are recomputed for every swap, so they get fewer."""

Records = EvalRecord | Sequence[EvalRecord]


class MetricComparison(NamedTuple):
    """A candidate against a baseline on one metric: the comparison, or why there is none."""

    metric: str
    comparison: PairedComparison | None
    note: str | None = None


def _as_list(records: Records) -> list[EvalRecord]:
    return [records] if isinstance(records, EvalRecord) else list(records)


def _units(records: list[EvalRecord]) -> dict[tuple[int, str], list[SampleRecord]]:
    units: dict[tuple[int, str], list[SampleRecord]] = {}
    for record in records:
        for sample in record.samples:
            units.setdefault((sample.doc_id, sample.doc_hash), []).append(sample)
    return units


def _averaged(unit: list[SampleRecord], key: str) -> SampleRecord:
    values = [s.scores[key] for s in unit if key in s.scores]
    scores = {key: mean(values)} if len(values) == len(unit) else {}
    return unit[0].model_copy(update={"scores": scores})


def _flattened(corpus: CorpusMetric) -> Any:
    def over_units(units: Sequence[Any]) -> float:
        return corpus([sample for unit in units for sample in unit])

    return over_units


def paired_units(
    baseline: Records, candidate: Records, key: str, corpus: CorpusMetric | None
) -> tuple[list[tuple[Any, Any]], CorpusMetric | None, bool]:
    """The pairs a comparison tests, the corpus function over them, and whether repeats were averaged."""
    base, cand = _as_list(baseline), _as_list(candidate)
    if len(base) == 1 and len(cand) == 1:
        return list(pair_samples(base[0].samples, cand[0].samples)), corpus, False
    base_units, cand_units = _units(base), _units(cand)
    shared = sorted(set(base_units) & set(cand_units))
    if corpus is not None:
        return [(base_units[k], cand_units[k]) for k in shared], _flattened(corpus), True
    return [(_averaged(base_units[k], key), _averaged(cand_units[k], key)) for k in shared], None, True


def compare_metric(
    task: Task, baseline: Records, candidate: Records, metric: str, seed: int = 0, alpha: float = ALPHA
) -> MetricComparison:
    """Compare ``metric`` of two evaluations (or two sets of repeats) of ``task`` on the items both share, with
    the equivalence interval and the minimum detectable effect at ``alpha``."""
    info = task.metrics[metric]
    key = info.sample_score or metric
    pairs, corpus, repeats = paired_units(baseline, candidate, key, info.corpus)
    if not pairs:
        return MetricComparison(metric, None, "no shared items: not compared")
    if corpus is None and any(key not in s.scores for pair in pairs for s in pair):
        return MetricComparison(metric, None, "no per-sample scores: not compared")
    kind = "continuous" if repeats and info.kind == "binary" else info.kind
    iters = CORPUS_SWAPS if corpus is not None else SWAPS
    comparison = compare_paired(key, kind, pairs, corpus=corpus, iters=iters, seed=seed, alpha=alpha)
    return MetricComparison(metric, comparison._replace(metric=metric))


def compared_metrics(task: Task, baseline: Records, candidate: Records) -> list[str]:
    """The task's metrics that both evaluations report, in the task's order."""
    base, cand = _as_list(baseline)[0], _as_list(candidate)[0]
    return [m for m in task.metrics if m in base.metrics and m in cand.metrics]


def compare_outputs(task: Task, baseline: Records, candidate: Records) -> Agreement | None:
    """How alike the two variants' outputs are (first repeat of each): choice or token KL, or answer churn."""
    base, cand = _as_list(baseline)[0], _as_list(candidate)[0]
    return agreement(task.output, pair_samples(base.samples, cand.samples))
