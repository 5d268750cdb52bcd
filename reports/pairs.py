"""Which variants a report compares, and the comparisons themselves.

Three families of pairs, each variant against a reference: the baseline (``--baseline``, by default the first
stage at its widest precision), its parent stage at the same precision ("what did DPO do?"), and the same
checkpoint's widest precision ("what did nf4 break?"). A pair that belongs to several families is compared once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from ftbench.harness.compare.agreement import Agreement
from ftbench.harness.compare.paired import compare_metric, compare_outputs, compared_metrics
from ftbench.harness.compare.statistics import ALPHA, PairedComparison, pair_samples
from ftbench.harness.core.answers import answer_for
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.request import differing_settings
from ftbench.reports.variants import Variant, variant_order
from ftbench.tasks.base import Task

Family = Literal["baseline", "parent", "precision"]
FAMILY_NAMES: dict[Family, str] = {
    "parent": "stage against its parent",
    "precision": "precision against the widest",
    "baseline": "against the baseline",
}


@dataclass(frozen=True)
class Pair:
    """A variant and the reference it is compared with, and why (the families it belongs to)."""

    reference: Variant
    variant: Variant
    families: tuple[Family, ...]

    @property
    def label(self) -> str:
        """``variant vs reference``."""
        return f"{self.variant.label} vs {self.reference.label}"


@dataclass(frozen=True)
class Delta:
    """A pair's comparison on one task and metric."""

    task: str
    metric: str
    pair: Pair
    comparison: PairedComparison | None
    definition: Task
    """The task itself (its metrics' directions, its headline)."""
    note: str | None = None

    @property
    def variant(self) -> Variant:
        """The compared variant."""
        return self.pair.variant

    @property
    def significant(self) -> bool:
        """Whether the paired test rejects no difference at the 5% level."""
        return self.comparison is not None and self.comparison.p_value < ALPHA


@dataclass(frozen=True)
class Moved:
    """A sample whose headline score changed between the reference and a variant."""

    doc_id: int
    prompt: str
    baseline_response: str
    variant_response: str
    baseline_score: float
    variant_score: float


@dataclass(frozen=True)
class PairResult:
    """Everything compared for one pair on one task."""

    deltas: list[Delta]
    agreement: Agreement | None
    moved: list[Moved]
    notes: list[str]


def _same_path(first: str, second: str) -> bool:
    return os.path.normpath(first) == os.path.normpath(second)


def parents(records: list[EvalRecord]) -> dict[str, str]:
    """Each checkpoint's parent checkpoint (by name), where the parent is among the records."""
    paths = {r.variant.name: r.variant.checkpoint for r in records}
    found = {}
    for record in records:
        parent = record.variant.manifest.parent if record.variant.manifest else None
        if not parent:
            continue
        matches = [name for name, path in paths.items() if _same_path(path, parent)]
        leaf = os.path.basename(os.path.normpath(parent))
        matches = matches or [name for name, path in paths.items() if os.path.basename(os.path.normpath(path)) == leaf]
        if len(matches) == 1 and matches[0] != record.variant.name:
            found[record.variant.name] = matches[0]
    return found


def comparison_pairs(variants: list[Variant], baseline: Variant, parent_of: dict[str, str]) -> list[Pair]:
    """Every pair of the three families among ``variants``, in stage and precision order."""
    families: dict[tuple[Variant, Variant], list[Family]] = {}

    def add(reference: Variant, variant: Variant, family: Family) -> None:
        if reference != variant:
            families.setdefault((reference, variant), []).append(family)

    by_label = {(v.checkpoint, v.precision): v for v in variants}
    for variant in sorted(variants, key=variant_order):
        parent = parent_of.get(variant.checkpoint)
        if parent is not None and (parent, variant.precision) in by_label:
            add(by_label[(parent, variant.precision)], variant, "parent")
        widest = min((v for v in variants if v.checkpoint == variant.checkpoint), key=variant_order)
        add(widest, variant, "precision")
        add(baseline, variant, "baseline")
    return [Pair(ref, var, tuple(fams)) for (ref, var), fams in families.items()]


def _moved(info: Task, base: EvalRecord, other: EvalRecord, top: int) -> list[Moved]:
    key = info.metrics[info.headline].sample_score or info.headline
    changes = [
        Moved(b.doc_id, b.prompt, answer_for(b, key), answer_for(o, key), b.scores[key], o.scores[key])
        for b, o in pair_samples(base.samples, other.samples)
        if key in b.scores and key in o.scores and b.scores[key] != o.scores[key]
    ]
    return sorted(changes, key=lambda m: abs(m.variant_score - m.baseline_score), reverse=True)[:top]


def compare_pair(
    task: Task, pair: Pair, reference: list[EvalRecord], variant: list[EvalRecord], top: int, seed: int
) -> PairResult:
    """Compare a pair's records (repeats included) on every metric both report, and how alike their outputs are."""
    against = "the baseline" if "baseline" in pair.families else pair.reference.label
    notes = [
        f"{task.name}: {pair.variant.label} differs from {against} in {name} "
        f"({getattr(reference[0].request, name)!r} vs "
        f"{getattr(variant[0].request, name)!r}); only the items both share are compared"
        for name in differing_settings(reference[0].request, variant[0].request)
    ]
    deltas = [
        Delta(task.name, metric, pair, compared.comparison, task, compared.note)
        for metric in compared_metrics(task, reference, variant)
        for compared in [compare_metric(task, reference, variant, metric, seed)]
    ]
    outputs = compare_outputs(task, reference, variant)
    return PairResult(deltas, outputs, _moved(task, reference[0], variant[0], top), notes)
