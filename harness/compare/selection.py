"""Which checkpoint of a training run to ship, with the winner's curse taken out.

A run leaves K checkpoints evaluated on the same n items, and a baseline (the base model or a named checkpoint)
evaluated on those items. Picking the checkpoint with the best mean and quoting its mean is biased upward: the
best of K noisy means is, more often than not, one whose noise happened to favour it. ``select_checkpoint``
reports, beside the naive numbers:

- the selected checkpoint's gain over the baseline with a selection-adjusted interval: max-|t| simultaneous over
  all K paired comparisons with the baseline (``simultaneous.py``), so it holds the selected checkpoint's true gain
  with probability at least 1 − alpha whatever the truth and whichever checkpoint was picked;
- the could-be-best set, Hsu's multiple comparisons with the best (``simultaneous.py``): it holds the true best
  with probability at least 1 − alpha;
- P(best) for each checkpoint and shrunken means, from a hierarchical normal model (``best_posterior.py``),
  calibrated where a bootstrap share is over-confident;
- the run's signal-to-noise ratio (``signal_noise.py``).

Scores are per item: ``binary`` (0/1, the metric is their mean) or ``continuous`` (any per-item score whose mean is
the metric). Corpus metrics (corpus BLEU, chrF, perplexity over a corpus) are out of scope: pass a per-item proxy
(sentence BLEU, per-document bits per byte) as ``continuous``. Several metrics with weights: combine them first
with ``combine_metrics`` and select on the composite as ``continuous``.

Measured (``calibration_selection.selection_table``, 1000 simulated runs per cell, 0/1 scores, K = 5, 10, 20 and
n = 100, 500, true accuracies on a noisy rising curve, uniform, all equal, or all equal but one): the adjusted
interval held the selected checkpoint's true gain in 97.5-99.4% of runs, the could-be-best set the true best in
96.9-99.5%, and P(best) was within 0.06 of the truth in every well-populated bin for random truths, where the
bootstrap share missed by 0.12-0.40. The naive interval's upper miss reached 3.9% at K = 20 (nominal 2.5%; the exact
0/1 bounds are conservative, so its two-sided coverage stayed at 96%), 17% for continuous scores (coverage 83%);
the naive gain was 0.01-0.07 too high on average, the shrunken one within 0.013. Down to n = 16 items (K ≤ 20)
both guarantees held (≥ 98.8% and ≥ 96.4%); the intervals are then wide. K = 20 on n = 2000 items takes about
0.3 s (2000 resamples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import t as student_t

from ftbench.harness.compare.best_posterior import best_posterior
from ftbench.harness.compare.intervals import Interval, paired_binary_bounds
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.signal_noise import SignalNoise, signal_to_noise
from ftbench.harness.compare.simultaneous import (
    RESAMPLES,
    bootstrap_pass,
    could_be_best,
    pairwise_errors,
    simultaneous_gains,
)
from ftbench.harness.compare.statistics import paired_spread

Kind = Literal["binary", "continuous"]


class Selection(NamedTuple):
    """The checkpoint to ship, its gain over the baseline, naive and adjusted, and how sure the choice is."""

    selected: int
    """Row of the best mean in the metric's direction; the earliest (lowest row) where several tie."""
    means: tuple[float, ...]
    """Every checkpoint's mean."""
    baseline: float
    """The baseline's mean."""
    delta: float
    """Selected mean − baseline mean (the naive, upward-biased estimate of its gain), in the metric's units."""
    naive_interval: Interval
    """The 1 − alpha paired interval of ``delta`` as if this checkpoint had been chosen beforehand: exact bounds
    for 0/1 scores (``intervals.paired_binary_interval``), Student t otherwise. It misses more often than alpha."""
    adjusted_interval: Interval
    """The selected checkpoint's interval of the simultaneous set: holds its true gain with probability at least
    1 − alpha, selection included. Widened where needed to contain ``naive_interval``, so it is never the
    narrower of the two (a superset keeps the guarantee)."""
    adjusted_intervals: tuple[Interval, ...]
    """Every checkpoint's adjusted interval of its gain (all hold together with probability at least 1 − alpha)."""
    critical: float
    """The max-|t| critical value of the simultaneous intervals."""
    shrunken_delta: float
    """The selected checkpoint's posterior mean less the baseline's mean: its gain with the winner's curse shrunk
    out (``best_posterior.py``)."""
    p_best: tuple[float, ...]
    """P(this checkpoint is truly the best), per checkpoint; sums to 1."""
    could_be_best: tuple[int, ...]
    """Rows that cannot be told apart from the best at alpha; always includes ``selected``."""
    signal_noise: SignalNoise
    alpha: float
    higher_is_better: bool

    @property
    def p_selected_best(self) -> float:
        """P(the selected checkpoint is truly the best)."""
        return self.p_best[self.selected]


def checked_scores(scores: ArrayLike, baseline: ArrayLike, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The score matrix (K × n) and baseline row (n) as float arrays, or a ValueError naming what is wrong."""
    if kind not in ("binary", "continuous"):
        raise ValueError(
            f"kind must be 'binary' or 'continuous', got {kind!r}; for a corpus metric pass a per-item proxy"
        )
    matrix, base = np.asarray(scores, dtype=float), np.asarray(baseline, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"scores must be a checkpoints × items matrix, got shape {matrix.shape}")
    if matrix.shape[0] < 2:
        raise ValueError(f"selection needs at least 2 checkpoints, got {matrix.shape[0]}")
    if matrix.shape[1] < 2:
        raise ValueError(f"selection needs at least 2 items, got {matrix.shape[1]}")
    if base.shape != (matrix.shape[1],):
        raise ValueError(f"the baseline must hold one score per item ({matrix.shape[1]}), got shape {base.shape}")
    if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(base))):
        raise ValueError("scores hold NaN or infinite values; drop or rescore those items first")
    if kind == "binary" and not (np.all(np.isin(matrix, (0.0, 1.0))) and np.all(np.isin(base, (0.0, 1.0)))):
        raise ValueError("binary scores must be 0 or 1; pass kind='continuous' for other per-item scores")
    return matrix, base


def best_row(oriented_means: np.ndarray) -> int:
    """The row with the highest mean, the earliest where several tie (to rounding)."""
    top = float(np.max(oriented_means))
    return int(np.flatnonzero(oriented_means >= top - 1e-12 * (1.0 + abs(top)))[0])


def naive_intervals(scores: np.ndarray, base: np.ndarray, binary: bool, alpha: float) -> list[Interval]:
    """Each checkpoint's ordinary 1 − ``alpha`` paired interval of its gain over the baseline, as a report prints
    it for one pair: exact bounds for 0/1 scores (``intervals.paired_binary_bounds``), Student t otherwise."""
    n = len(base)
    if binary:
        gained, lost = np.sum(scores > base, axis=1), np.sum(scores < base, axis=1)
        low, high = paired_binary_bounds(gained, lost, n, 1 - alpha)
        return [Interval(float(a), float(b)) for a, b in zip(low, high, strict=True)]
    half = float(student_t.ppf(1 - alpha / 2, n - 1))
    stderr = np.array([paired_spread(base, row) for row in scores]) / math.sqrt(n)
    deltas = scores.mean(axis=1) - base.mean()
    return [Interval(float(d - half * e), float(d + half * e)) for d, e in zip(deltas, stderr, strict=True)]


def select_checkpoint(
    scores: ArrayLike,
    baseline: ArrayLike,
    *,
    higher_is_better: bool = True,
    kind: Kind = "binary",
    alpha: float = ALPHA,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Selection:
    """Choose the checkpoint to ship and say how sure that choice and its gain are (see the module's notes).

    Args:
        scores: per-item scores, one row per checkpoint in step order (K ≥ 2), one column per item (n ≥ 2),
            columns aligned by doc id with ``baseline``'s.
        baseline: the baseline's per-item scores on the same items.
        higher_is_better: the metric's direction; lower-is-better metrics select the lowest mean.
        kind: ``binary`` for 0/1 scores, ``continuous`` for any other per-item score whose mean is the metric.
        alpha: one minus the coverage of the intervals and of the could-be-best set.
        seed: the seed of the bootstrap resamples and posterior draws; the same inputs and seed give the same result.
        resamples: bootstrap resamples of the items.

    Raises:
        ValueError: fewer than 2 checkpoints or items, a baseline of another length, NaN or infinite scores,
            non-0/1 scores for ``binary``, an unknown kind, alpha outside (0, 1) or no resamples.
    """
    matrix, base = checked_scores(scores, baseline, kind)
    if not 0 < alpha < 1 or resamples < 1:
        raise ValueError(f"alpha must lie in (0, 1) and resamples be positive, got {alpha} and {resamples}")
    binary, sign = kind == "binary", 1.0 if higher_is_better else -1.0
    gains = matrix - base
    floors = matrix.var(axis=1, ddof=1) + base.var(ddof=1)
    bootstrap = bootstrap_pass(gains, floors, binary, resamples, seed)
    simultaneous = simultaneous_gains(gains, floors, binary, alpha, bootstrap)
    means = matrix.mean(axis=1)
    selected = best_row(sign * means)
    naive = naive_intervals(matrix, base, binary, alpha)
    adjusted = tuple(
        Interval(min(a.low, b.low), max(a.high, b.high)) for a, b in zip(simultaneous.intervals, naive, strict=True)
    )
    best_set = could_be_best(sign * means, pairwise_errors(matrix, binary), sign * bootstrap.centred, alpha, len(base))
    posterior = best_posterior(sign * matrix, binary, seed)
    return Selection(
        selected=selected,
        means=tuple(float(m) for m in means),
        baseline=float(base.mean()),
        delta=float(means[selected] - base.mean()),
        naive_interval=naive[selected],
        adjusted_interval=adjusted[selected],
        adjusted_intervals=adjusted,
        critical=simultaneous.critical,
        shrunken_delta=float(sign * posterior.shrunken[selected] - base.mean()),
        p_best=tuple(float(p) for p in posterior.probabilities),
        could_be_best=best_set.members,
        signal_noise=signal_to_noise(matrix, seed),
        alpha=alpha,
        higher_is_better=higher_is_better,
    )


class Composite(NamedTuple):
    """Several metrics' per-item scores combined into one, higher is better."""

    scores: np.ndarray
    """K × n composite scores of the checkpoints."""
    baseline: np.ndarray
    """n composite scores of the baseline."""
    scales: tuple[float, ...]
    """What each metric was divided by."""


def combine_metrics(
    scores: Sequence[ArrayLike],
    baselines: Sequence[ArrayLike],
    weights: Sequence[float],
    higher_is_better: Sequence[bool],
    scales: Sequence[float] | None = None,
) -> Composite:
    """A weighted composite of several metrics' per-item scores: Σ w_m · sign_m · score_m / scale_m.

    Each metric is divided by its scale, by default the standard deviation of its per-item scores over the
    checkpoints and the baseline together (so a weight means "per one item-level standard deviation"), and signed
    so that higher is better. Select on the result with ``kind="continuous"`` and ``higher_is_better=True``.

    Args:
        scores: per metric, its K × n per-item scores of the checkpoints, items aligned across metrics.
        baselines: per metric, the baseline's n per-item scores.
        weights: per metric, its weight.
        higher_is_better: per metric, its direction.
        scales: per metric, what to divide by instead (the metric's natural unit, 100 for BLEU's 0-100).

    Raises:
        ValueError: lists of different lengths, shapes that disagree, a metric whose scale is not positive.
    """
    count = len(scores)
    given = scales if scales is not None else [math.nan] * count
    if count == 0 or not (len(baselines) == len(weights) == len(higher_is_better) == len(given) == count):
        raise ValueError("give each metric its scores, baseline, weight, direction (and scale): lists of one length")
    shape = np.shape(scores[0])
    total_scores, total_base, used = np.zeros(shape), np.zeros(shape[-1:]), []
    for matrix, base, weight, higher, scale in zip(scores, baselines, weights, higher_is_better, given, strict=True):
        rows, row = checked_scores(matrix, base, "continuous")
        if rows.shape != shape:
            raise ValueError(f"every metric needs the same checkpoints × items, got {rows.shape} and {shape}")
        if math.isnan(scale):
            scale = float(np.std(np.vstack([rows, row]), ddof=1))
        if not scale > 0:
            raise ValueError("a metric's scale must be positive: its scores do not vary, give it a scale")
        factor = weight * (1.0 if higher else -1.0) / scale
        total_scores, total_base = total_scores + factor * rows, total_base + factor * row
        used.append(scale)
    return Composite(total_scores, total_base, tuple(used))
