"""How many items a comparison needs: from stored results, the items needed to detect a given change of each
task's headline metric with 80% power at the level ``alpha``, and what the current item count can detect.

Pairs are each variant against the reference variant (the first checkpoint at its widest precision), using the
observed discordance (0/1 metrics: McNemar's exact power) or the spread of the paired differences (continuous
metrics: the paired permutation test's power for normal differences, its discreteness included). A run with
one variant assumes independent errors: discordance 2p(1 − p), spread √2 times the per-item standard
deviation. Corpus metrics (BLEU, perplexity) are read through their per-sample counterpart when the task has
one. Where no change can reach p < alpha at the current count (five items or fewer at 0.05) the row says it
cannot decide rather than print a number.
"""

from __future__ import annotations

from statistics import mean, stdev
from typing import NamedTuple

import numpy as np

from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.mcnemar import mcnemar_items_needed, mcnemar_mde, smallest_mcnemar_p
from ftbench.harness.compare.permutation import permutation_items_needed, permutation_mde, smallest_permutation_p
from ftbench.harness.compare.statistics import pair_samples
from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.tasks.base import TaskOf

CORPUS_PROXIES = {"bleu": "sentence_bleu", "chrf": "sentence_bleu", "bits_per_byte": "loglikelihood"}
"""Per-sample scores that stand in for corpus metrics in a power estimate."""


class PowerRow(NamedTuple):
    """One comparison's power: what it detects now, and the items a change of ``delta`` needs."""

    task: str
    metric: str
    comparison: str
    n: int
    spread: str
    detectable_now: float | None
    """None where the comparison cannot decide at ``n`` or nothing varies."""
    items_needed: int | None
    """None where nothing varies (nothing to size a change against) or beyond a million items."""
    decides: bool = True
    """Whether the test can reach p < alpha at ``n`` at all."""

    @property
    def detectable_text(self) -> str:
        """``0.449``, ``cannot decide at 4 items`` or ``–`` (no spread)."""
        if not self.decides:
            return f"cannot decide at {self.n} items"
        return f"{self.detectable_now:.3g}" if self.detectable_now is not None else "–"

    @property
    def needed_text(self) -> str:
        """``312``, or why there is no count."""
        if self.items_needed is not None:
            return str(self.items_needed)
        return "– (no spread to size a change against)" if self.spread == "no spread" else "over a million"


def _order(record: EvalRecord) -> tuple[tuple[int, str], str, int]:
    return (stage_rank(record.variant.stage), record.variant.name, record.variant.precision.rank)


def _binary_row(
    head: tuple[str, str, str], base: list[float], cand: list[float] | None, delta: float, alpha: float
) -> PowerRow:
    n = len(base)
    if cand is None:
        p = mean(base)
        psi = 2 * p * (1 - p)
    else:
        psi = float(np.mean((np.asarray(base) >= 0.5) != (np.asarray(cand) >= 0.5)))
    return PowerRow(
        *head,
        n,
        f"discordance {psi:.3f}",
        mcnemar_mde(n, psi, alpha),
        mcnemar_items_needed(delta, psi, alpha),
        smallest_mcnemar_p(n) < alpha,
    )


def _row(
    task: str, metric: str, label: str, base: list[float], cand: list[float] | None, delta: float, alpha: float
) -> PowerRow:
    n = len(base)
    if set(base) <= {0.0, 1.0} and (cand is None or set(cand) <= {0.0, 1.0}):
        return _binary_row((task, metric, label), base, cand, delta, alpha)
    if cand is None:
        spread = (2**0.5) * (stdev(base) if n > 1 else 0.0)
    else:
        spread = stdev([c - b for b, c in zip(base, cand, strict=True)]) if n > 1 else 0.0
    decides = smallest_permutation_p(n, 2000) < alpha
    if spread == 0.0:
        return PowerRow(task, metric, label, n, "no spread", None, None, decides)
    return PowerRow(
        task,
        metric,
        label,
        n,
        f"sd of Δ {spread:.4g}",
        permutation_mde(n, spread, alpha),
        permutation_items_needed(delta, spread, alpha),
        decides,
    )


def power_table(records: list[EvalRecord], task_of: TaskOf, delta: float, alpha: float = ALPHA) -> list[PowerRow]:
    """Power of each task's headline metric in ``records`` for a change of ``delta`` (in the metric's scale), at
    the two-sided level ``alpha``.

    Raises:
        FtbenchError: ``delta`` is not positive, or ``alpha`` not between 0 and 1.
    """
    if not delta > 0:
        raise FtbenchError(f"--delta {delta} must be a positive change in the metric's own scale")
    if not 0 < alpha < 1:
        raise FtbenchError(f"--alpha {alpha} must be a level between 0 and 1, such as 0.05")
    rows = []
    for task in dict.fromkeys(r.task for r in records):
        ordered = sorted((r for r in records if r.task == task and r.request.repeat == 0), key=_order)
        reference = ordered[0]
        info = task_of(reference.request)
        metric = info.headline
        key = info.metrics[metric].sample_score or CORPUS_PROXIES.get(metric, metric)
        label = f"{reference.variant.name}@{reference.variant.precision}"
        if len(ordered) == 1:
            values = [s.scores[key] for s in reference.samples if key in s.scores]
            rows.append(_row(task, key, f"{label} (independent errors assumed)", values, None, delta, alpha))
        for other in ordered[1:]:
            pairs = [
                (b, c) for b, c in pair_samples(reference.samples, other.samples) if key in b.scores and key in c.scores
            ]
            base, cand = [b.scores[key] for b, _ in pairs], [c.scores[key] for _, c in pairs]
            versus = f"{other.variant.name}@{other.variant.precision} vs {label}"
            rows.append(_row(task, key, versus, base, cand, delta, alpha))
    return rows
