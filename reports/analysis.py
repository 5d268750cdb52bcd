"""What a comparison report shows, computed from stored results only: cells with intervals, paired comparisons
in three families (against the baseline, each stage against its parent, each precision against the widest),
how alike the variants' outputs are, the items gained and lost along the lineage, the samples that moved most,
and provenance notes."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from ftbench.harness.compare.agreement import Agreement
from ftbench.harness.compare.intervals import Interval, corpus_interval, mean_interval
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, RunRecord, SampleRecord
from ftbench.harness.core.store import load_run, load_run_evals
from ftbench.harness.core.training_curve import TrainingCurve, load_curve
from ftbench.harness.leakage.task_audit import results_sources
from ftbench.reports.leak_effect import ReportLeakage, report_leakage
from ftbench.reports.pairs import Delta, Moved, Pair, compare_pair, comparison_pairs, parents
from ftbench.reports.variants import Variant, variant_of, variant_order
from ftbench.tasks.base import Metric, Task
from ftbench.tasks.registry import recorded_task

SEQUENTIAL_FILE = "sequential.json"
"""Beside a sequential gate's candidate results: its gated metrics' verdicts and confidence sequences."""


@dataclass(frozen=True)
class Cell:
    """One metric of one variant on one task, with a 95% interval (or mean ± sd over repeats): Clopper-Pearson
    for a 0/1 metric, Student t for another mean, jackknife t for a corpus metric (``compare/intervals.py``)."""

    value: float
    interval: Interval | None
    n: int
    repeats: int = 1
    repeat_sd: float | None = None
    repeat_values: tuple[float, ...] = ()


@dataclass
class Analysis:
    """Everything a report renders."""

    baseline: Variant
    tasks: dict[str, Task]
    """The evaluated tasks by name, rebuilt from their records."""
    variants: list[Variant]
    cells: dict[tuple[str, str, Variant], Cell]
    pairs: list[Pair]
    deltas: list[Delta]
    agreements: dict[tuple[str, Pair], Agreement]
    moved: dict[tuple[str, Pair], list[Moved]]
    records: dict[tuple[str, Variant], list[EvalRecord]]
    runs: list[RunRecord]
    notes: list[str] = field(default_factory=list)
    baseline_chosen: bool = False
    """Whether the user named the baseline; its comparisons are then shown in full on the first screen."""
    training: list[TrainingCurve] = field(default_factory=list)
    """The training curves of results written by ``FtbenchCallback`` or ``ftbench watch`` (steps, gate verdicts)."""
    leakage: ReportLeakage | None = None
    """The evaluated items audited against the checkpoints' lineages, and what a leak did to each stage's gain."""
    sequential: list[dict[str, Any]] = field(default_factory=list)
    """The gated metrics of sequential gates whose candidates are among the results (``sequential.json``): each
    one's verdict and confidence sequence."""


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


def _cell(info: Task, metric: str, records: list[EvalRecord]) -> Cell:
    if len(records) > 1:  # repeats (seeds): mean ± sd of the repeats' values
        values = tuple(r.metrics[metric].value for r in sorted(records, key=lambda r: r.request.repeat))
        return Cell(mean(values), None, records[0].metrics[metric].n, len(values), stdev(values), values)
    record = records[0]
    value = record.metrics[metric]
    meta = info.metrics.get(metric)
    if meta is not None and meta.corpus is not None:
        interval = corpus_interval(meta.corpus, record.samples)
    elif meta is not None and all(sample_value(meta, metric, s) is not None for s in record.samples):
        scores = [sample_value(meta, metric, s) or 0.0 for s in record.samples]
        interval = mean_interval(scores, binary=meta.kind == "binary")
    else:
        interval = None
    return Cell(value.value, interval, value.n)


def sequential_paths(results_dirs: list[Path]) -> list[dict[str, Any]]:
    """Every gated metric of the sequential gates written into ``results_dirs`` (a ``sequential.json`` that does not
    read as one is left out)."""
    found = []
    for directory in results_dirs:
        try:
            data = json.loads((directory / SEQUENTIAL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        metrics = data.get("metrics") if isinstance(data, dict) else None
        found += [{**metric, "candidate": str(directory)} for metric in metrics or [] if isinstance(metric, dict)]
    return found


def analyse(results_dirs: list[Path], baseline: str | None = None, top: int = 5, seed: int = 0) -> Analysis:
    """Compute everything a comparison report shows."""
    runs, records = load_records(results_dirs)
    grouped: dict[tuple[str, Variant], list[EvalRecord]] = defaultdict(list)
    for record in records:
        grouped[(record.task, variant_of(record))].append(record)
    variants = sorted({variant for _, variant in grouped}, key=variant_order)
    tasks: dict[str, Task] = {}
    for record in records:
        tasks.setdefault(record.task, recorded_task(record.request))
    training = [curve for directory in results_dirs if (curve := load_curve(directory)) is not None]
    trained_from = next((curve.baseline_name for curve in training if curve.baseline_name), None)
    base = pick_baseline(variants, baseline or trained_from)  # by default a training run's own baseline
    steps = {later: earlier for curve in training for later, earlier in curve.parents().items()}
    pairs = comparison_pairs(variants, base, parents(records) | steps)  # a checkpoint's parent: the step before
    analysis = Analysis(
        base, tasks, variants, {}, pairs, [], {}, {}, dict(grouped), runs, baseline_chosen=baseline is not None
    )
    analysis.training = training
    analysis.sequential = sequential_paths(results_dirs)
    analysis.leakage = report_leakage(records, recorded_task, results_sources(results_dirs))
    for task in tasks:
        info = tasks[task]
        for variant in variants:
            for metric in info.metrics:
                found = [r for r in grouped.get((task, variant), []) if metric in r.metrics]
                if found:
                    analysis.cells[(task, metric, variant)] = _cell(info, metric, found)
        if (task, base) not in grouped:
            analysis.notes.append(f"{task}: the baseline {base.label} was not evaluated on it; no deltas against it")
        for pair in pairs:
            reference_records, variant_records = grouped.get((task, pair.reference)), grouped.get((task, pair.variant))
            if not reference_records or not variant_records:
                continue
            result = compare_pair(info, pair, reference_records, variant_records, top, seed)
            analysis.deltas += result.deltas
            analysis.notes += result.notes
            analysis.moved[(task, pair)] = result.moved
            if result.agreement is not None:
                analysis.agreements[(task, pair)] = result.agreement
    return analysis


def full_precision(variants: list[Variant], checkpoint: str) -> Variant | None:
    """The widest precision a checkpoint was evaluated at."""
    own = sorted((v for v in variants if v.checkpoint == checkpoint), key=variant_order)
    return own[0] if own else None
