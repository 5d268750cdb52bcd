"""The simulations and enumerations that check the statistics' claims: how often each interval misses, how often
each test and the gate err, and how often the tests detect the effect they are said to detect.

0/1 claims are measured exactly, by enumerating every (gained, lost) of n paired items (``enumeration.py``) and
taking the worst case over true chances; continuous and corpus claims by simulation from a given seed, so the same
arguments give the same numbers. ``tests/test_calibration.py`` asserts the claims on these measurements and
``benchmarks/calibration.py`` prints them, with more draws, as the README's table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import binom

from ftbench.harness.compare.enumeration import Outcomes, binary_outcomes, truth_grid, truths_at, worst_chance
from ftbench.harness.compare.intervals import (
    Interval,
    clopper_pearson,
    corpus_interval,
    paired_binary_bounds,
    student_interval,
    t_interval,
)
from ftbench.harness.compare.levels import ALPHA, CONFIDENCE
from ftbench.harness.compare.mcnemar import mcnemar_critical_counts
from ftbench.harness.compare.permutation import paired_permutation_p
from ftbench.harness.compare.statistics import compare_paired, paired_spread
from ftbench.harness.core.records import SampleRecord

BINARY_SIZES = (16, 20, 60, 200)
"""The item counts the 0/1 claims are measured at."""
MARGINS = (0.05, 0.1, 0.2)
"""The gate's margins the 0/1 claims are measured at."""

Pairs = list[tuple[SampleRecord, SampleRecord]]
Shape = Callable[[np.random.Generator, int], tuple[np.ndarray, float]]
"""Draws n values and says their true mean."""


class Coverage(NamedTuple):
    """Shares of simulated intervals that held the truth, lay wholly above it, and lay wholly below it."""

    covered: float
    above: float
    below: float


def _coverage(intervals: Sequence[Interval], truth: float | np.ndarray) -> Coverage:
    lows = np.array([interval.low for interval in intervals])
    highs = np.array([interval.high for interval in intervals])
    covered = (lows <= truth) & (truth <= highs)
    return Coverage(float(np.mean(covered)), float(np.mean(lows > truth)), float(np.mean(highs < truth)))


class BoundsCheck(NamedTuple):
    """The paired 0/1 bounds at one n and confidence, checked on every outcome."""

    worst_miss: float
    """The larger worst-case chance, over true chances, that the bounds lie wholly above or wholly below the true
    difference (each side's nominal chance is (1 − confidence) / 2)."""
    contain_estimate: bool
    """Whether every outcome's bounds hold its own estimate (gained − lost) / n."""


def binary_bounds_check(n: int, confidence: float, grid_count: int) -> BoundsCheck:
    """The exact one-sided misses of ``intervals.paired_binary_bounds`` on ``n`` items, over a ``grid_count`` ×
    ``grid_count`` grid of true chances (``enumeration.truth_grid``)."""
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n, confidence)
    estimate = (outcomes.gained - outcomes.lost) / n
    contain = bool(np.all(low <= estimate + 1e-12) and np.all(estimate <= high + 1e-12))
    grid = truth_grid(grid_count)
    below = worst_chance(outcomes, grid, lambda t: low[None] > (t.p_gain - t.p_loss)[:, None])
    above = worst_chance(outcomes, grid, lambda t: high[None] < (t.p_gain - t.p_loss)[:, None])
    return BoundsCheck(max(below, above), contain)


def mcnemar_significant(gained: np.ndarray, lost: np.ndarray, n: int, alpha: float = ALPHA) -> np.ndarray:
    """Whether McNemar's exact test (``mcnemar.py``) is significant at ``alpha`` on each outcome of ``n`` items."""
    return np.minimum(gained, lost) <= mcnemar_critical_counts(n, alpha)[gained + lost]


def equivalence_status(low: np.ndarray, high: np.ndarray, margin: float) -> np.ndarray:
    """The gate's equivalence rule for a higher-is-better metric (``policy._judge_equivalence``), vectorized: each
    interval's status, "equivalent", "regression" or "not_equivalent"."""
    status = np.full(low.shape, "not_equivalent", dtype=object)
    status[(low > -margin) & (high < margin)] = "equivalent"
    status[high < -margin] = "regression"
    return status


def gate_mode_fails(outcomes: Outcomes, margin: float, alpha: float = ALPHA) -> np.ndarray:
    """The gate mode's rule for a 0/1 metric (``policy.judge_metric``): whether each outcome is a regression, a
    drop beyond ``margin`` that McNemar's test finds significant at ``alpha``."""
    n, gained, lost = outcomes
    return mcnemar_significant(gained, lost, n, alpha) & ((lost - gained) / n > margin)


class GateErrors(NamedTuple):
    """The gate's worst-case error chances on n paired 0/1 items at one margin, by exact enumeration."""

    regression_at_margin: float
    """Equivalence mode, true drop exactly the margin: the chance of a regression (exit 1); at most alpha."""
    equivalent_at_margin: float
    """Equivalence mode, true difference ±margin: the chance of "equivalent"; at most alpha."""
    fails_unchanged: float
    """Gate mode, no true change: the chance of a regression; at most alpha / 2."""
    fails_at_margin: float
    """Gate mode, true drop exactly the margin: the chance of a regression (no guarantee)."""


def binary_gate_errors(n: int, margin: float) -> GateErrors:
    """The gate's errors on ``n`` items at ``margin``: the 1 − 2·alpha paired bounds in equivalence mode, McNemar's
    test in gate mode, each at its worst over true chances with the stated difference (``enumeration.truths_at``)."""
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n)
    status = equivalence_status(low, high, margin)
    equivalent, regression = status == "equivalent", status == "regression"
    fails = gate_mode_fails(outcomes, margin)
    return GateErrors(
        regression_at_margin=worst_chance(outcomes, truths_at(-margin), regression),
        equivalent_at_margin=max(worst_chance(outcomes, truths_at(delta), equivalent) for delta in (-margin, margin)),
        fails_unchanged=worst_chance(outcomes, truths_at(0.0), fails),
        fails_at_margin=worst_chance(outcomes, truths_at(-margin), fails),
    )


def clopper_pearson_coverage(n: int, truths: Sequence[float] | np.ndarray) -> list[float]:
    """The exact coverage of the 95% Clopper-Pearson interval (``intervals.clopper_pearson``) of a 0/1 mean of
    ``n`` items at each true chance in ``truths``: the binomial chance of the counts whose interval holds it."""
    bounds = [clopper_pearson(k, n) for k in range(n + 1)]
    coverages = []
    for truth in truths:
        covered = np.array([low <= truth <= high for low, high in bounds])
        coverages.append(float(binom.pmf(np.arange(n + 1), n, truth) @ covered))
    return coverages


def normal_draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    """``n`` standard normal values; true mean 0."""
    return rng.standard_normal(n), 0.0


def heavy_tailed_draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    """``n`` Student t values with 3 degrees of freedom; true mean 0."""
    return rng.standard_t(3, n), 0.0


def skewed_draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    """``n`` standard exponential values; true mean 1."""
    return rng.exponential(size=n), 1.0


def t_coverage(shape: Shape, n: int, draws: int, seed: int, confidence: float = CONFIDENCE) -> Coverage:
    """The coverage of Student's t interval of a mean (``intervals.t_interval``) over ``draws`` samples of ``n``
    values drawn by ``shape``."""
    rng = np.random.default_rng(seed)
    intervals, truths = [], []
    for _ in range(draws):
        values, truth = shape(rng, n)
        intervals.append(t_interval(values, confidence))
        truths.append(truth)
    return _coverage(intervals, np.array(truths))


def tost_equivalent_share(n: int, margin: float, draws: int, seed: int) -> float:
    """How often the two one-sided paired t tests at alpha (the 1 − 2·alpha Student interval of the mean paired
    difference inside ±``margin``) call a true drop of exactly ``margin`` equivalent; at most alpha. Baseline
    scores are normal (mean 0.5, sd 0.2), the candidate's the baseline's less the margin plus normal noise (sd 0.1).
    """
    noise = np.random.default_rng(seed).standard_normal((draws, 2, n))
    base = 0.5 + 0.2 * noise[:, 0]
    cand = base - margin + 0.1 * noise[:, 1]
    equivalent = 0
    for b, c in zip(base, cand, strict=True):
        low, high = student_interval(float((c - b).mean()), paired_spread(b, c) / math.sqrt(n), n - 1, 1 - 2 * ALPHA)
        equivalent += -margin < low and high < margin
    return equivalent / draws


def _ratio(samples: Sequence[tuple[float, float]]) -> float:
    return sum(bits for bits, _ in samples) / sum(size for _, size in samples)


def corpus_coverage(n: int, draws: int, seed: int) -> float:
    """The coverage of the 95% jackknife t interval (``intervals.corpus_interval``) of bits per byte over ``n``
    documents of log-normal sizes (log-mean 7, log-sd 0.8), each at a normal rate (mean 1, sd 0.15)."""
    rng = np.random.default_rng(seed)
    intervals = []
    for _ in range(draws):
        sizes = rng.lognormal(7, 0.8, n)
        rates = 1.0 + 0.15 * rng.standard_normal(n)
        intervals.append(corpus_interval(_ratio, list(zip(rates * sizes, sizes, strict=True))))
    return _coverage(intervals, 1.0).covered


def sample_record(doc_id: int, scores: dict[str, float], target: str = "") -> SampleRecord:
    """A stored sample carrying only what a paired comparison reads: its doc id, a hash, the target and scores."""
    return SampleRecord(doc_id=doc_id, doc_hash=f"h{doc_id}", prompt="", response="", target=target, scores=scores)


def binary_pairs(gained: int, lost: int, n: int) -> Pairs:
    """``n`` paired 0/1 samples (metric ``m``) of which ``gained`` go wrong → right and ``lost`` right → wrong;
    the others stay, half right and half wrong."""
    same = (n - gained - lost) // 2
    base = [0.0] * gained + [1.0] * lost + [1.0] * same
    cand = [1.0] * gained + [0.0] * lost + [1.0] * same
    base += [0.0] * (n - len(base))
    cand += [0.0] * (n - len(cand))
    return [
        (sample_record(i, {"m": b}), sample_record(i, {"m": c}))
        for i, (b, c) in enumerate(zip(base, cand, strict=True))
    ]


def bits_per_byte(samples: Sequence[SampleRecord]) -> float:
    """The corpus metric of ``document_pairs``: total ``bits`` over total ``bytes``."""
    return sum(s.scores["bits"] for s in samples) / sum(s.scores["bytes"] for s in samples)


def document_pairs(rng: np.random.Generator, n: int, shift: float) -> Pairs:
    """``n`` paired documents of log-normal sizes (log-mean 7, log-sd 0.8) scored in ``bits`` and ``bytes``: the
    baseline at a normal rate (mean 1, sd 0.15), the candidate at that rate plus ``shift`` and normal noise (sd
    0.03), so the true difference in ``bits_per_byte`` is ``shift``."""
    sizes = rng.lognormal(7, 0.8, n)
    base = 1.0 + 0.15 * rng.standard_normal(n)
    cand = base + shift + 0.03 * rng.standard_normal(n)

    def doc(i: int, rate: float) -> SampleRecord:
        return sample_record(i, {"bits": float(rate * sizes[i]), "bytes": float(sizes[i])})

    return [(doc(i, base[i]), doc(i, cand[i])) for i in range(n)]


class DifferenceCoverage(NamedTuple):
    """The coverage of a paired comparison's two intervals of the difference."""

    report: Coverage
    """The 95% interval the report prints."""
    equivalence: Coverage
    """The 1 − 2·alpha interval the gate's equivalence mode reads."""


def paired_corpus_coverage(n: int, shift: float, draws: int, seed: int) -> DifferenceCoverage:
    """The coverage of the jackknife t intervals of a paired corpus difference (``statistics.compare_paired``) over
    ``draws`` sets of ``document_pairs``."""
    rng = np.random.default_rng(seed)
    reports, equivalences = [], []
    for _ in range(draws):
        comparison = compare_paired("bits", "corpus", document_pairs(rng, n, shift), corpus=bits_per_byte, iters=1)
        if comparison.equivalence_interval is None:
            raise ValueError("a paired corpus comparison came without its equivalence interval")
        reports.append(comparison.interval)
        equivalences.append(comparison.equivalence_interval)
    return DifferenceCoverage(_coverage(reports, shift), _coverage(equivalences, shift))


def simulated_mcnemar_power(n: int, discordance: float, delta: float, draws: int, seed: int) -> float:
    """How often McNemar's exact test is significant at alpha on ``n`` items drawn ``draws`` times, each gaining
    with chance (ψ + ``delta``) / 2 and losing with (ψ − ``delta``) / 2, ψ = max(``discordance``, ``delta``): the
    truth ``mcnemar.mcnemar_power`` computes exactly."""
    psi = max(discordance, delta)
    sample = np.random.default_rng(seed).multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=draws)
    return float(np.mean(mcnemar_significant(sample[:, 0], sample[:, 1], n)))


def simulated_permutation_power(n: int, delta: float, draws: int, seed: int) -> float:
    """How often the paired permutation test (``permutation.paired_permutation_p``) is significant at alpha on
    ``n`` normal paired differences (mean ``delta``, sd 1), drawn ``draws`` times."""
    rng = np.random.default_rng(seed)
    rejected = sum(paired_permutation_p(np.zeros(n), rng.standard_normal(n) + delta) < ALPHA for _ in range(draws))
    return rejected / draws
