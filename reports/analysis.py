"""What a comparison report shows, computed from stored results only: cells with intervals, paired deltas
against a baseline, the quantization trade-off, the samples that moved most, and provenance notes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, stdev

from harness.compare.paired import compare_metric, compared_metrics
from harness.compare.statistics import Interval, PairedComparison, corpus_interval, mean_interval, pair_samples
from harness.core.checkpoints import stage_rank
from harness.core.errors import FtbenchError
from harness.core.precision import Precision
from harness.core.records import EvalRecord, RunRecord, SampleRecord
from harness.core.request import differing_settings
from harness.core.store import load_run, load_run_evals
from tasks.base import Metric, Task
from tasks.registry import get_task

ALPHA = 0.05


@dataclass(frozen=True)
class Variant:
    """A checkpoint at a precision, as labelled in reports."""

    checkpoint: str
    stage: str
    precision: Precision

    @property
    def label(self) -> str:
        """``checkpoint@precision``."""
        return f"{self.checkpoint}@{self.precision}"


def variant_of(record: EvalRecord) -> Variant:
    """The variant a record evaluates."""
    return Variant(record.variant.name, record.variant.stage, record.variant.precision)


def variant_order(variant: Variant) -> tuple[tuple[int, str], str, int]:
    """Stage order, then checkpoint, then precision from widest to narrowest."""
    return (stage_rank(variant.stage), variant.checkpoint, variant.precision.rank)


@dataclass(frozen=True)
class Cell:
    """One metric of one variant on one task, with a 95% interval (or mean ± sd over repeats)."""

    value: float
    interval: Interval | None
    n: int
    repeats: int = 1
    repeat_sd: float | None = None


@dataclass(frozen=True)
class Delta:
    """A variant against the baseline on one task and metric."""

    task: str
    metric: str
    variant: Variant
    comparison: PairedComparison | None
    note: str | None = None

    @property
    def significant(self) -> bool:
        """Whether the paired test rejects no difference at the 5% level."""
        return self.comparison is not None and self.comparison.p_value < ALPHA


@dataclass(frozen=True)
class Moved:
    """A sample whose headline score changed between the baseline and a variant."""

    doc_id: int
    prompt: str
    baseline_response: str
    variant_response: str
    baseline_score: float
    variant_score: float


@dataclass
class Analysis:
    """Everything a report renders."""

    baseline: Variant
    tasks: list[str]
    variants: list[Variant]
    cells: dict[tuple[str, str, Variant], Cell]
    deltas: list[Delta]
    moved: dict[tuple[str, Variant], list[Moved]]
    records: dict[tuple[str, Variant], list[EvalRecord]]
    runs: list[RunRecord]
    notes: list[str] = field(default_factory=list)


def load_records(results_dirs: list[Path]) -> tuple[list[RunRecord], list[EvalRecord]]:
    """The runs and evaluation records of several results directories (each record once).

    Raises:
        FtbenchError: a directory holds no run, or none of them holds any evaluation.
    """
    runs, records, seen = [], [], set()
    for directory in results_dirs:
        runs.append(load_run(directory))
        for record in load_run_evals(directory):
            if record.key not in seen:
                seen.add(record.key)
                records.append(record)
    if not records:
        raise FtbenchError("the results hold no evaluations; run `ftbench run` first")
    return runs, records


def sample_value(info: Metric, metric: str, sample: SampleRecord) -> float | None:
    """A sample's per-sample score for ``metric``, when the metric has one."""
    return sample.scores.get(info.sample_score or metric)


def pick_baseline(variants: list[Variant], wanted: str | None) -> Variant:
    """The baseline: ``CHECKPOINT[@PRECISION]`` or a stage name; by default the first stage at its widest precision.

    Raises:
        FtbenchError: ``wanted`` names no variant of the results.
    """
    ordered = sorted(variants, key=variant_order)
    if wanted is None:
        return ordered[0]
    name, _, precision = wanted.partition("@")
    matches = [v for v in ordered if name in (v.checkpoint, v.stage) and precision in ("", v.precision)]
    if not matches:
        labels = ", ".join(v.label for v in ordered)
        raise FtbenchError(f"baseline {wanted!r} is not in the results; choose one of {labels} or a stage name")
    return matches[0]


def _cell(info: Task, metric: str, records: list[EvalRecord], seed: int) -> Cell:
    if len(records) > 1:  # repeats (seeds): mean ± sd of the repeats' values
        values = [r.metrics[metric].value for r in records]
        return Cell(mean(values), None, records[0].metrics[metric].n, len(values), stdev(values))
    record = records[0]
    value = record.metrics[metric]
    meta = info.metrics.get(metric)
    if meta is not None and meta.corpus is not None:
        interval = corpus_interval(meta.corpus, record.samples, iters=500, seed=seed)
    elif meta is not None and all(sample_value(meta, metric, s) is not None for s in record.samples):
        interval = mean_interval([sample_value(meta, metric, s) or 0.0 for s in record.samples], seed=seed)
    else:
        interval = None
    return Cell(value.value, interval, value.n)


def _delta(info: Task, metric: str, variant: Variant, base: EvalRecord, other: EvalRecord, seed: int) -> Delta:
    compared = compare_metric(base, other, metric, seed)
    return Delta(info.name, metric, variant, compared.comparison, compared.note)


def _moved(info: Task, base: EvalRecord, other: EvalRecord, top: int) -> list[Moved]:
    meta = info.metrics[info.headline]
    key = meta.sample_score or info.headline
    changes = []
    for b, o in pair_samples(base.samples, other.samples):
        if key in b.scores and key in o.scores and b.scores[key] != o.scores[key]:
            changes.append(Moved(b.doc_id, b.prompt, b.response, o.response, b.scores[key], o.scores[key]))
    return sorted(changes, key=lambda m: abs(m.variant_score - m.baseline_score), reverse=True)[:top]


def _settings_notes(task: str, base: EvalRecord, other: EvalRecord, variant: Variant) -> list[str]:
    return [
        f"{task}: {variant.label} differs from the baseline in {name} "
        f"({getattr(base.request, name)!r} vs {getattr(other.request, name)!r}); "
        "only the items both share are compared"
        for name in differing_settings(base.request, other.request)
    ]


def analyse(results_dirs: list[Path], baseline: str | None = None, top: int = 5, seed: int = 0) -> Analysis:
    """Compute everything a comparison report shows."""
    runs, records = load_records(results_dirs)
    grouped: dict[tuple[str, Variant], list[EvalRecord]] = defaultdict(list)
    for record in records:
        grouped[(record.task, variant_of(record))].append(record)
    variants = sorted({variant for _, variant in grouped}, key=variant_order)
    tasks = list(dict.fromkeys(record.task for record in records))
    base = pick_baseline(variants, baseline)
    analysis = Analysis(base, tasks, variants, {}, [], {}, dict(grouped), runs)
    for task in tasks:
        info = get_task(task)
        for variant in variants:
            for metric in info.metrics:
                found = [r for r in grouped.get((task, variant), []) if metric in r.metrics]
                if found:
                    analysis.cells[(task, metric, variant)] = _cell(info, metric, found, seed)
        base_records = grouped.get((task, base))
        if not base_records:
            analysis.notes.append(f"{task}: the baseline {base.label} was not evaluated on it; no deltas")
            continue
        for variant in variants:
            if variant == base or (task, variant) not in grouped:
                continue
            other = grouped[(task, variant)][0]
            analysis.notes += _settings_notes(task, base_records[0], other, variant)
            for metric in compared_metrics(base_records[0], other):
                analysis.deltas.append(_delta(info, metric, variant, base_records[0], other, seed))
            analysis.moved[(task, variant)] = _moved(info, base_records[0], other, top)
    return analysis


def full_precision(variants: list[Variant], checkpoint: str) -> Variant | None:
    """The widest precision a checkpoint was evaluated at."""
    own = sorted((v for v in variants if v.checkpoint == checkpoint), key=variant_order)
    return own[0] if own else None
