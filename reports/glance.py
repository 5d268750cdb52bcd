"""The report's first screen: each stage against its parent and each precision against the widest (the two
questions users ask: what did DPO do? what did nf4 break?), the significant changes against the baseline, and
the items gained and forgotten along the lineage."""

from __future__ import annotations

from typing import NamedTuple

from ftbench.reports.analysis import Analysis
from ftbench.reports.numbers import agreement_text, delta_text, detects_text, flips_text, fmt, fmt_p
from ftbench.reports.pairs import FAMILY_NAMES, Delta, Family
from ftbench.reports.variants import variant_order

GLANCE_FAMILIES: tuple[tuple[Family, str], ...] = (
    ("parent", "Each stage against its parent"),
    ("precision", "Each precision against the widest"),
)
"""The families the first screen always shows in full, with their titles."""

STANDING: frozenset[Family] = frozenset(family for family, _ in GLANCE_FAMILIES)


def glance_families(analysis: Analysis) -> list[tuple[Family, str]]:
    """The families shown in full: a baseline the user chose (``--baseline``) joins the two that always are."""
    chosen: list[tuple[Family, str]] = []
    if analysis.baseline_chosen:
        chosen.append(("baseline", f"Each variant against the baseline {analysis.baseline.label}"))
    return [*GLANCE_FAMILIES, *chosen]


class GlanceRow(NamedTuple):
    """One comparison of the first screen."""

    family: str
    comparison: str
    task: str
    metric: str
    delta: str
    interval: str
    p_value: str
    flips: str
    agreement: str
    detects: str
    verdict: str
    """``better``, ``worse`` (significant, by the metric's direction) or ``same`` (not significant)."""


def _row(delta: Delta, family: Family, analysis: Analysis) -> GlanceRow:
    c = delta.comparison
    assert c is not None
    better = delta.definition.metrics[delta.metric].higher_is_better
    verdict = "same" if not delta.significant else ("better" if (c.delta > 0) == better else "worse")
    return GlanceRow(
        FAMILY_NAMES[family],
        delta.pair.label,
        delta.task,
        delta.metric,
        delta_text(c.delta),
        f"[{fmt(c.interval.low, c.delta)}, {fmt(c.interval.high, c.delta)}]",
        fmt_p(c.p_value),
        flips_text(c),
        agreement_text(analysis.agreements.get((delta.task, delta.pair))),
        detects_text(c),
        verdict,
    )


def family_rows(analysis: Analysis, family: Family) -> list[GlanceRow]:
    """Every pair of ``family`` on each task's headline metric, and its other metrics that changed significantly.

    A pair the two standing families already show is not repeated under the baseline."""
    rows = []
    for delta in analysis.deltas:
        if family not in delta.pair.families or delta.comparison is None:
            continue
        if family == "baseline" and STANDING & set(delta.pair.families):
            continue
        if delta.metric == delta.definition.headline or delta.significant:
            rows.append(_row(delta, family, analysis))
    return rows


def baseline_changes(analysis: Analysis) -> list[GlanceRow]:
    """Significant changes against the baseline not already shown as a stage or precision comparison (the first
    screen lists them when the baseline's pairs are not shown in full)."""
    deltas = [
        d
        for d in analysis.deltas
        if d.significant and "baseline" in d.pair.families and not STANDING & set(d.pair.families)
    ]
    deltas.sort(key=lambda d: (d.metric != d.definition.headline, d.comparison.p_value if d.comparison else 1.0))
    return [_row(d, "baseline", analysis) for d in deltas]


def significance_counts(analysis: Analysis) -> tuple[int, int]:
    """How many paired comparisons were made, and how many of them differ significantly."""
    compared = sum(1 for d in analysis.deltas if d.comparison is not None)
    return compared, sum(1 for d in analysis.deltas if d.significant)


class LineageStep(NamedTuple):
    """Items of one 0/1 metric that a stage gained (wrong → right) and forgot (right → wrong) from its parent."""

    task: str
    metric: str
    step: str
    gained: list[tuple[int, str]]
    """(doc id, prompt) of each item gained."""
    forgotten: list[tuple[int, str]]


def lineage(analysis: Analysis) -> list[LineageStep]:
    """Along the stages (each against its parent, at each precision), the items gained and forgotten per task."""
    steps = []
    ordered = sorted(
        (d for d in analysis.deltas if "parent" in d.pair.families and d.comparison and d.comparison.flips),
        key=lambda d: (d.task, variant_order(d.pair.variant)),
    )
    for delta in ordered:
        flips = delta.comparison.flips if delta.comparison else None
        if flips is None:
            continue
        prompts = {s.doc_id: s.prompt for s in analysis.records[(delta.task, delta.pair.variant)][0].samples}
        steps.append(
            LineageStep(
                delta.task,
                delta.metric,
                delta.pair.label,
                [(doc, prompts.get(doc, "")) for doc in flips.gained],
                [(doc, prompts.get(doc, "")) for doc in flips.lost],
            )
        )
    return steps
