"""How many items a comparison needs: from stored results, the items needed to detect a given change of each
task's headline metric with 80% power at the 5% level, and what the current item count can detect.

Pairs are each variant against the reference variant (the first checkpoint at its widest precision), using the
observed discordance (0/1 metrics) or the spread of the paired differences (continuous metrics). A run with one
variant assumes independent errors: discordance 2p(1 − p), spread √2 times the per-item standard deviation.
Corpus metrics (BLEU, perplexity) are read through their per-sample counterpart when the task has one.
"""

from __future__ import annotations

from statistics import mean, stdev
from typing import NamedTuple

import numpy as np

from harness.compare.statistics import (
    mcnemar_items_needed,
    mcnemar_mde,
    normal_items_needed,
    normal_mde,
    pair_samples,
)
from harness.core.checkpoints import stage_rank
from harness.core.errors import FtbenchError
from harness.core.records import EvalRecord
from tasks.registry import define_recorded, get_task

CORPUS_PROXIES = {"bleu": "sentence_bleu", "chrf": "sentence_bleu", "bits_per_byte": "loglikelihood"}
"""Per-sample scores that stand in for corpus metrics in a power estimate."""


class PowerRow(NamedTuple):
    """One comparison's power: what it detects now, and the items a change of ``delta`` needs."""

    task: str
    metric: str
    comparison: str
    n: int
    spread: str
    detectable_now: float
    items_needed: int


def _order(record: EvalRecord) -> tuple[tuple[int, str], str, int]:
    return (stage_rank(record.variant.stage), record.variant.name, record.variant.precision.rank)


def _row(task: str, metric: str, label: str, base: list[float], cand: list[float] | None, delta: float) -> PowerRow:
    n = len(base)
    binary = set(base) <= {0.0, 1.0} and (cand is None or set(cand) <= {0.0, 1.0})
    if binary:
        if cand is None:
            p = mean(base)
            psi = 2 * p * (1 - p)
        else:
            psi = float(np.mean(np.asarray(base) != np.asarray(cand)))
        return PowerRow(
            task, metric, label, n, f"discordance {psi:.3f}", mcnemar_mde(n, psi), mcnemar_items_needed(delta, psi)
        )
    if cand is None:
        spread = (2**0.5) * (stdev(base) if n > 1 else 0.0)
    else:
        spread = stdev([c - b for b, c in zip(base, cand, strict=True)]) if n > 1 else 0.0
    if spread == 0.0:
        return PowerRow(task, metric, label, n, "no spread", 0.0, 1)
    return PowerRow(
        task, metric, label, n, f"sd of Δ {spread:.4g}", normal_mde(spread / n**0.5), normal_items_needed(delta, spread)
    )


def power_table(records: list[EvalRecord], delta: float) -> list[PowerRow]:
    """Power of each task's headline metric in ``records`` for a change of ``delta`` (in the metric's scale).

    Raises:
        FtbenchError: ``delta`` is not positive.
    """
    if delta <= 0:
        raise FtbenchError(f"--delta {delta} must be a positive change in the metric's own scale")
    rows = []
    for task in dict.fromkeys(r.task for r in define_recorded(records)):
        info = get_task(task)
        metric = info.headline
        key = info.metrics[metric].sample_score or CORPUS_PROXIES.get(metric, metric)
        ordered = sorted((r for r in records if r.task == task and r.request.repeat == 0), key=_order)
        reference = ordered[0]
        label = f"{reference.variant.name}@{reference.variant.precision}"
        if len(ordered) == 1:
            values = [s.scores[key] for s in reference.samples if key in s.scores]
            rows.append(_row(task, key, f"{label} (independent errors assumed)", values, None, delta))
        for other in ordered[1:]:
            pairs = [
                (b, c) for b, c in pair_samples(reference.samples, other.samples) if key in b.scores and key in c.scores
            ]
            base, cand = [b.scores[key] for b, _ in pairs], [c.scores[key] for _, c in pairs]
            versus = f"{other.variant.name}@{other.variant.precision} vs {label}"
            rows.append(_row(task, key, versus, base, cand, delta))
    return rows
