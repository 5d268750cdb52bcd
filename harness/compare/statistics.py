"""Statistics over stored samples: bootstrap intervals and standard errors, paired tests, power.

Paired comparisons use only the samples both sides share, matched by doc id and doc hash. 0/1 metrics are
tested with McNemar's exact test; continuous and corpus-level metrics with a paired permutation test, which
swaps baseline and candidate within random pairs (exactly, over every swap, when there are few pairs). Unlike
inverting a bootstrap interval it stays honest on a handful of items: with 4 pairs no p-value falls below 1/8.

Power: the minimum detectable effect (MDE) is the smallest true difference the paired test would find at
``ALPHA`` (two-sided) with 80% probability, for this many pairs. For 0/1 metrics it follows Connor's (1987)
sample size for McNemar's test, with the discordance ψ (share of items that flip either way) taken as the larger
of the observed one and the effect itself (a difference δ needs at least δ of the items to flip); for the others
it is (z₀.₉₇₅ + z₀.₈) times the standard error of the paired difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, TypeVar

import numpy as np
from scipy.stats import beta, binomtest, norm

from harness.core.records import SampleRecord

T = TypeVar("T")
CorpusFunction = Callable[[Sequence[SampleRecord]], float]


class Interval(NamedTuple):
    """A confidence interval."""

    low: float
    high: float


ALPHA = 0.05
POWER = 0.8


class Flips(NamedTuple):
    """Items of a 0/1 metric that changed: wrong → right (gained) and right → wrong (lost), by doc id."""

    gained: list[int]
    lost: list[int]


class PairedComparison(NamedTuple):
    """A candidate against a baseline on their shared samples."""

    metric: str
    n: int
    baseline: float
    candidate: float
    delta: float
    interval: Interval
    p_value: float
    test: Literal["mcnemar_exact", "paired_permutation"]
    interval90: Interval | None = None
    """The paired bootstrap's 90% interval: the two one-sided tests of equivalence at the 5% level."""
    mde: float | None = None
    """The smallest difference this test detects with 80% power (see the module's notes)."""
    flips: Flips | None = None
    """0/1 metrics: which items flipped each way."""


def _resamples(n: int, iters: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(iters, n))


def bootstrap_stderr(
    metric: Callable[[Sequence[T]], float], samples: Sequence[T], iters: int = 1000, seed: int = 0
) -> float | None:
    """The standard deviation of ``metric`` over ``iters`` resamples (with replacement) of ``samples``.

    Returns None for fewer than two samples.
    """
    if len(samples) < 2:
        return None
    values = [metric([samples[i] for i in row]) for row in _resamples(len(samples), iters, seed)]
    return float(np.std(values, ddof=1))


def mean_interval(values: Sequence[float], confidence: float = 0.95, iters: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a mean."""
    data = np.asarray(values, dtype=float)
    means = data[_resamples(len(data), iters, seed)].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return Interval(float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def corpus_interval(
    metric: CorpusFunction, samples: Sequence[SampleRecord], confidence: float = 0.95, iters: int = 1000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of a corpus-level metric."""
    values = [metric([samples[i] for i in row]) for row in _resamples(len(samples), iters, seed)]
    tail = (1 - confidence) / 2 * 100
    return Interval(float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))


def pair_samples(
    baseline: Sequence[SampleRecord], candidate: Sequence[SampleRecord]
) -> list[tuple[SampleRecord, SampleRecord]]:
    """The samples both sides share, matched by doc id and doc hash, in doc id order."""
    by_key = {(s.doc_id, s.doc_hash): s for s in candidate}
    pairs = [(s, by_key[(s.doc_id, s.doc_hash)]) for s in baseline if (s.doc_id, s.doc_hash) in by_key]
    return sorted(pairs, key=lambda pair: pair[0].doc_id)


def mcnemar_exact(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes (a binomial test on the discordant pairs)."""
    only_baseline = sum(1 for b, c in zip(baseline, candidate, strict=True) if b == 1 and c == 0)
    only_candidate = sum(1 for b, c in zip(baseline, candidate, strict=True) if b == 0 and c == 1)
    discordant = only_baseline + only_candidate
    if discordant == 0:
        return 1.0
    return float(binomtest(only_candidate, discordant, 0.5).pvalue)


EXACT_PAIRS = 12
"""Up to this many pairs the permutation test enumerates all 2**n swaps; above, it draws ``iters`` of them."""


def _swaps(n: int, iters: int, seed: int) -> tuple[np.ndarray, bool]:
    """Rows of swap decisions (True: exchange baseline and candidate on that item), and whether they are all."""
    if n <= EXACT_PAIRS:
        return (np.arange(2**n)[:, None] >> np.arange(n)) & 1 == 1, True
    return np.random.default_rng(seed + 1).integers(0, 2, size=(iters, n)) == 1, False


def _permutation_p(observed: float, null: np.ndarray, exact: bool) -> float:
    """Two-sided p-value: the share of swapped differences at least as far from zero as the observed one."""
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return extreme / len(null) if exact else (extreme + 1) / (len(null) + 1)


def paired_permutation_p(
    base: Sequence[SampleRecord] | np.ndarray,
    cand: Sequence[SampleRecord] | np.ndarray,
    corpus: CorpusFunction | None = None,
    iters: int = 2000,
    seed: int = 0,
) -> float:
    """The p-value of a zero difference between paired candidate and baseline values (or corpus metrics)."""
    n = len(base)
    swaps, exact = _swaps(n, iters, seed)
    if corpus is None:
        diffs = np.asarray(cand, dtype=float) - np.asarray(base, dtype=float)
        null = np.where(swaps, -diffs, diffs).mean(axis=1)
        return _permutation_p(float(diffs.mean()), null, exact)
    base_list, cand_list = list(base), list(cand)
    observed = corpus(cand_list) - corpus(base_list)
    null = np.array(
        [
            corpus([b if s else c for b, c, s in zip(base_list, cand_list, row, strict=True)])
            - corpus([c if s else b for b, c, s in zip(base_list, cand_list, row, strict=True)])
            for row in swaps
        ]
    )
    return _permutation_p(observed, null, exact)


def _z(power: float = POWER) -> tuple[float, float]:
    return float(norm.ppf(1 - ALPHA / 2)), float(norm.ppf(power))


def mcnemar_mde(n: int, discordance: float, power: float = POWER) -> float:
    """The smallest difference in proportions McNemar's test detects with ``power`` on ``n`` pairs.

    Solves Connor's sample size n = (z_a·√ψ + z_b·√(ψ − δ²))² / δ² for δ, with ψ = max(observed discordance, δ).
    """
    if n <= 0:
        return 1.0
    z_a, z_b = _z(power)

    def needed(delta: float) -> float:
        psi = max(discordance, delta)
        return (z_a * psi**0.5 + z_b * max(psi - delta**2, 0.0) ** 0.5) ** 2 / delta**2

    low, high = 1e-6, 1.0
    if needed(high) > n:
        return 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if needed(middle) > n else (low, middle)
    return high


def mcnemar_items_needed(delta: float, discordance: float, power: float = POWER) -> int:
    """Pairs McNemar's test needs to detect a difference ``delta`` with ``power`` (Connor 1987)."""
    z_a, z_b = _z(power)
    psi = max(discordance, abs(delta))
    return int(np.ceil((z_a * psi**0.5 + z_b * max(psi - delta**2, 0.0) ** 0.5) ** 2 / delta**2))


def normal_mde(standard_error: float, power: float = POWER) -> float:
    """The smallest difference a test with this standard error of the difference detects with ``power``."""
    z_a, z_b = _z(power)
    return (z_a + z_b) * standard_error


def normal_items_needed(delta: float, sd_per_item: float, power: float = POWER) -> int:
    """Pairs needed to detect ``delta`` when one pair's difference has standard deviation ``sd_per_item``."""
    z_a, z_b = _z(power)
    return int(np.ceil(((z_a + z_b) * sd_per_item / abs(delta)) ** 2))


def paired_binary_interval(gained: int, lost: int, n: int, confidence: float = 0.9) -> Interval:
    """A conservative interval of the paired difference of a 0/1 metric, (gained − lost) / n.

    The difference is ψ·(2π − 1), with ψ the share of items that flip and π the share of flips that go wrong →
    right. The interval combines exact (Clopper-Pearson) bounds: ψ's upper bound at ``(1 + confidence) / 2`` one-
    sided and π's two-sided ``confidence`` interval. Unlike a bootstrap it does not collapse to [0, 0] when no item
    flipped: with no flips among n items the difference is still only known to lie within ±(1 − (1 − c)^(1/n))
    for c = (1 + confidence) / 2, so a handful of items cannot prove equivalence.
    """
    if n <= 0:
        return Interval(-1.0, 1.0)
    flips = gained + lost
    tail = (1 - confidence) / 2
    psi_high = 1.0 if flips == n else float(beta.ppf(1 - tail, flips + 1, n - flips))
    pi_low = 0.0 if gained == 0 else float(beta.ppf(tail, gained, flips - gained + 1))
    pi_high = 1.0 if gained == flips else float(beta.ppf(1 - tail, gained + 1, flips - gained))
    return Interval(psi_high * (2 * pi_low - 1), psi_high * (2 * pi_high - 1))


def paired_flips(base: Sequence[float], cand: Sequence[float], doc_ids: Sequence[int]) -> Flips:
    """Which items of a 0/1 metric went wrong → right and right → wrong."""
    gained = [d for b, c, d in zip(base, cand, doc_ids, strict=True) if b < 0.5 <= c]
    lost = [d for b, c, d in zip(base, cand, doc_ids, strict=True) if c < 0.5 <= b]
    return Flips(gained, lost)


def _mde(kind: str, base: np.ndarray | None, cand: np.ndarray | None, deltas: np.ndarray, n: int) -> float | None:
    """The comparison's minimum detectable effect (see the module's notes); None where no spread is observed at
    all (every item scores the same on both sides), which leaves nothing to size a change against."""
    if kind == "binary" and base is not None and cand is not None:
        return mcnemar_mde(n, float(np.mean(base != cand)))
    if base is not None and cand is not None and n > 1:
        spread = float(np.std(cand - base, ddof=1))
        if spread == 0.0:  # identical outputs say nothing about the variance under a change: assume independence
            spread = float(np.sqrt(np.var(base, ddof=1) + np.var(cand, ddof=1)))
        return normal_mde(spread / np.sqrt(n)) if spread > 0.0 else None
    spread = float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0
    return normal_mde(spread) if spread > 0.0 else None


def _percentile_interval(values: np.ndarray, tail: float) -> Interval:
    return Interval(float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))


def compare_paired(
    metric: str,
    kind: str,
    pairs: Sequence[tuple[SampleRecord, SampleRecord]],
    corpus: CorpusFunction | None = None,
    confidence: float = 0.95,
    iters: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Candidate minus baseline on paired samples, with a paired bootstrap interval and a paired test.

    Args:
        metric: the metric's name; per-sample values are read from ``scores`` unless ``corpus`` is given.
        kind: ``binary`` (McNemar's exact test), ``continuous`` or ``corpus`` (paired permutation test).
        pairs: (baseline, candidate) samples of the same items.
        corpus: recomputes a corpus-level metric from samples.
        confidence: the interval's coverage.
        iters: bootstrap replicates.
        seed: the resampling seed.
    """
    n = len(pairs)
    rows = _resamples(n, iters, seed)
    tail = (1 - confidence) / 2 * 100
    if corpus is not None:
        base_samples = [b for b, _ in pairs]
        cand_samples = [c for _, c in pairs]
        base_value, cand_value = corpus(base_samples), corpus(cand_samples)
        deltas = np.array(
            [corpus([cand_samples[i] for i in row]) - corpus([base_samples[i] for i in row]) for row in rows]
        )
    else:
        base = np.array([b.scores[metric] for b, _ in pairs], dtype=float)
        cand = np.array([c.scores[metric] for _, c in pairs], dtype=float)
        base_value, cand_value = float(base.mean()), float(cand.mean())
        deltas = (cand - base)[rows].mean(axis=1)
    interval = _percentile_interval(deltas, tail)
    interval90 = _percentile_interval(deltas, 5.0)
    flips = None
    if corpus is not None:
        p_value, test = paired_permutation_p(base_samples, cand_samples, corpus, iters, seed), "paired_permutation"
        mde = _mde(kind, None, None, deltas, n)
    elif kind == "binary":
        p_value, test = mcnemar_exact(base.tolist(), cand.tolist()), "mcnemar_exact"
        mde = _mde(kind, base, cand, deltas, n)
        flips = paired_flips(base.tolist(), cand.tolist(), [b.doc_id for b, _ in pairs])
        interval90 = paired_binary_interval(len(flips.gained), len(flips.lost), n)
    else:
        p_value, test = paired_permutation_p(base, cand, iters=iters, seed=seed), "paired_permutation"
        mde = _mde(kind, base, cand, deltas, n)
    delta = cand_value - base_value
    return PairedComparison(metric, n, base_value, cand_value, delta, interval, p_value, test, interval90, mde, flips)  # type: ignore[arg-type]
