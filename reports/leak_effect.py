"""What a leak did to a result: for each stage compared with its parent at the same precision, the gain on the items
its lineage's training data holds (flagged) against the gain on the others (clean), each with the report's one
paired comparison (``compare_metric``) on the records' samples of those items, and the audit the report shows.

The audit is computed from the lineage's fingerprints (seconds); a lineage that cannot be read is a note, never a
failed report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from ftbench.harness.compare.paired import compare_metric
from ftbench.harness.compare.statistics import PairedComparison
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.leakage.findings import LeakageAudit
from ftbench.harness.leakage.task_audit import TrainingSource, audit_records
from ftbench.reports.pairs import parents
from ftbench.reports.variants import Variant, variant_of, variant_order
from ftbench.tasks.base import Task, TaskOf


class LeakSplit(NamedTuple):
    """A stage against its parent on a task's headline metric: on every item, on the flagged ones, on the clean
    ones (None where that split has no items)."""

    task: str
    metric: str
    pair: str
    """``sft@fp32 vs initial@fp32``."""
    flagged_items: int
    clean_items: int
    overall: PairedComparison | None
    flagged: PairedComparison | None
    clean: PairedComparison | None


class ReportLeakage(NamedTuple):
    """The audit of a report's results and the splits of its stage comparisons, or why there is none."""

    audit: LeakageAudit | None
    splits: list[LeakSplit]
    problem: str | None = None
    """Why the lineage could not be audited (a fingerprints file that cannot be read, a manifest not valid)."""


def _only(records: Sequence[EvalRecord], doc_ids: set[int], keep: bool) -> list[EvalRecord]:
    """The records with only the samples whose doc id is (``keep``) or is not in ``doc_ids``."""
    return [
        record.model_copy(update={"samples": [s for s in record.samples if (s.doc_id in doc_ids) == keep]})
        for record in records
    ]


def split_comparison(
    task: Task, reference: Sequence[EvalRecord], candidate: Sequence[EvalRecord], flagged: set[int], seed: int = 0
) -> LeakSplit:
    """The candidate against the reference on the task's headline: every item, the flagged ones, the clean ones."""
    metric = task.headline
    shared = {s.doc_id for r in candidate for s in r.samples} & {s.doc_id for r in reference for s in r.samples}
    flagged_items, clean_items = len(shared & flagged), len(shared - flagged)

    def on(keep: bool | None) -> PairedComparison | None:
        if keep is not None and (flagged_items if keep else clean_items) == 0:
            return None
        base = list(reference) if keep is None else _only(reference, flagged, keep)
        cand = list(candidate) if keep is None else _only(candidate, flagged, keep)
        return compare_metric(task, base, cand, metric, seed).comparison

    label = f"{variant_of(candidate[0]).label} vs {variant_of(reference[0]).label}"
    return LeakSplit(task.name, metric, label, flagged_items, clean_items, on(None), on(True), on(False))


def _is(variant: Variant, checkpoint: str | None, like: Variant) -> bool:
    """Whether ``variant`` is ``checkpoint`` at ``like``'s precision."""
    return variant.checkpoint == checkpoint and variant.precision == like.precision


def leak_splits(records: Sequence[EvalRecord], audit: LeakageAudit, task_of: TaskOf) -> list[LeakSplit]:
    """Each stage against its parent (same precision) on every task where the stage's lineage holds an evaluated
    item, in stage order."""
    grouped: dict[tuple[str, Variant], list[EvalRecord]] = defaultdict(list)
    for record in records:
        grouped[(record.task, variant_of(record))].append(record)
    parent_of = parents(list(records))
    splits = []
    for (task, variant), candidate in sorted(grouped.items(), key=lambda kv: (kv[0][0], variant_order(kv[0][1]))):
        parent = parent_of.get(variant.checkpoint)
        reference = next(
            (
                found
                for (t, v), found in grouped.items()
                if t == task and (v.checkpoint, v.precision) == (parent, variant.precision)
            ),
            None,
        )
        flagged = audit.flagged_ids(task, candidate[0].variant.checkpoint)
        if reference is not None and flagged:
            splits.append(split_comparison(task_of(candidate[0].request), reference, candidate, flagged))
    return splits


def report_leakage(
    records: Sequence[EvalRecord], task_of: TaskOf, extra: Sequence[TrainingSource] = ()
) -> ReportLeakage:
    """The audit of the records' evaluated items against their checkpoints' lineages (and ``extra`` sources), and
    the splits of each stage comparison; a lineage that cannot be read becomes ``problem``."""
    try:
        audit = audit_records(records, task_of, extra=extra)
    except FtbenchError as exc:
        return ReportLeakage(None, [], str(exc))
    return ReportLeakage(audit, leak_splits(records, audit, task_of))
