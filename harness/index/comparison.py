"""Any two evaluations in the store compared as the report compares a pair: the records are rebuilt from the
store and given to the one paired comparison (``compare.paired``), so delta, interval, p and flips are the
report's own numbers; then the items, flipped ones first, with both responses."""

from __future__ import annotations

from typing import Literal, NamedTuple

from ftbench.harness.compare.paired import MetricComparison, compare_metric, compared_metrics
from ftbench.harness.compare.statistics import Flips, pair_samples
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.request import differing_settings
from ftbench.harness.index.check import changed_sources, source_notes
from ftbench.harness.index.connection import Store
from ftbench.harness.index.lookup import Indexed, find_evaluations, load_records
from ftbench.tasks.base import Task, TaskOf

Change = Literal["gained", "lost", "better", "worse", "same"]


class ComparedItem(NamedTuple):
    """One shared item, with both sides' prompt, response and score (of the first repeat of each)."""

    doc_id: int
    change: Change
    prompt: str
    target: str
    baseline_response: str
    candidate_response: str
    baseline_score: float | None
    candidate_score: float | None


class StoreComparison(NamedTuple):
    """Two evaluations of one task, compared on every metric both report, and their items."""

    task: str
    baseline: list[Indexed]
    candidate: list[Indexed]
    metrics: list[MetricComparison]
    metric: str
    """The metric the items are ordered and labelled by."""
    items: list[ComparedItem]
    """Every shared item: flipped (or changed) first, wrong → right before right → wrong."""
    notes: list[str]

    @property
    def flips(self) -> Flips | None:
        """The flips of ``metric`` both ways (0/1 metrics of single evaluations)."""
        found = next((m.comparison for m in self.metrics if m.metric == self.metric), None)
        return found.flips if found is not None else None


def _change(base: float | None, cand: float | None, flips: Flips | None, doc_id: int, higher: bool) -> Change:
    if flips is not None:
        return "gained" if doc_id in flips.gained else "lost" if doc_id in flips.lost else "same"
    if base is None or cand is None or base == cand:
        return "same"
    return "better" if (cand > base) == higher else "worse"


def _items(task: Task, base: EvalRecord, cand: EvalRecord, metric: str, flips: Flips | None) -> list[ComparedItem]:
    info = task.metrics[metric]
    key = info.sample_score or metric
    items = [
        ComparedItem(
            b.doc_id,
            _change(b.scores.get(key), c.scores.get(key), flips, b.doc_id, info.higher_is_better),
            b.prompt,
            b.target,
            b.response,
            c.response,
            b.scores.get(key),
            c.scores.get(key),
        )
        for b, c in pair_samples(base.samples, cand.samples)
    ]
    rank = {"gained": 0, "better": 0, "lost": 1, "worse": 1, "same": 2}

    def moved(item: ComparedItem) -> float:
        both = item.baseline_score is not None and item.candidate_score is not None
        return -abs((item.candidate_score or 0.0) - (item.baseline_score or 0.0)) if both else 0.0

    return sorted(items, key=lambda item: (rank[item.change], moved(item), item.doc_id))


def compare_records(
    task: Task, baseline: list[EvalRecord], candidate: list[EvalRecord], metric: str | None = None, seed: int = 0
) -> tuple[list[MetricComparison], str, list[ComparedItem]]:
    """The paired comparison of two evaluations (or two sets of repeats) on every metric both report, the metric
    the items follow (``metric``, default the headline) and the items.

    Raises:
        FtbenchError: ``metric`` is not one both report.
    """
    names = compared_metrics(task, baseline, candidate)
    if metric is not None and metric not in names:
        raise FtbenchError(f"both evaluations must report --metric {metric!r}; they share {', '.join(names) or 'none'}")
    headline = task.headline
    chosen = metric or (headline if headline in names else names[0] if names else headline)
    compared = [compare_metric(task, baseline, candidate, name, seed) for name in names]
    found = next((c.comparison for c in compared if c.metric == chosen), None)
    flips = found.flips if found is not None else None
    return compared, chosen, _items(task, baseline[0], candidate[0], chosen, flips) if names else []


def compare_stored(
    store: Store, first: str, second: str, task_of: TaskOf, task: str | None = None, metric: str | None = None
) -> StoreComparison:
    """Compare the evaluations ``first`` (the baseline) and ``second`` name: keys, or ``CHECKPOINT@PRECISION``
    with ``task``; ``task_of`` gives their task.

    Raises:
        FtbenchError: either is unknown or ambiguous, they are of different tasks, ``metric`` is not shared, or
            their rows are not what was indexed. A record file changed or gone since indexing is a note.
    """
    base_found, cand_found = find_evaluations(store, first, task), find_evaluations(store, second, task)
    if base_found[0].task != cand_found[0].task:
        raise FtbenchError(
            f"{first} is an evaluation of {base_found[0].task} and {second} of {cand_found[0].task}; "
            "compare two evaluations of one task"
        )
    baseline, candidate = load_records(store, base_found), load_records(store, cand_found)
    notes = [
        f"they differ in {name} ({getattr(baseline[0].request, name)!r} vs {getattr(candidate[0].request, name)!r}); "
        "only the items both share are compared"
        for name in differing_settings(baseline[0].request, candidate[0].request)
    ]
    ids = sorted({item.eval_id for item in (*base_found, *cand_found)})
    notes += source_notes(changed_sources(store, f"e.eval_id IN ({', '.join('?' * len(ids))})", ids, hashed=True))
    compared, chosen, items = compare_records(task_of(baseline[0].request), baseline, candidate, metric)
    task_name = baseline[0].task
    return StoreComparison(task_name, base_found, cand_found, compared, chosen, items, notes)
