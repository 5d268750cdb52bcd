"""The paired comparison of two evaluations' stored samples: a test, two intervals, power.

Paired comparisons use only the samples both sides share, matched by doc id and doc hash.

- 0/1 metrics: McNemar's exact test (``mcnemar.py``); the intervals of the difference are exact bounds from the
  flips (``intervals.paired_binary_interval``); power is McNemar's exact power.
- Continuous metrics: the paired permutation test (``permutation.py``); the intervals are paired Student t; power
  is the permutation test's, discreteness included.
- Corpus metrics (BLEU, perplexity): the permutation test, swapping whole samples; the intervals are jackknife t
  (``intervals.py``); power as for continuous metrics, from the jackknife standard error.

Each comparison carries a 95% interval (the report's) and the 1 − 2·alpha interval of the two one-sided tests
of equivalence at ``alpha`` (the gate's), the minimum detectable effect at ``alpha`` with 80% power, and the
smallest p-value its test can reach at this n: at or above ``alpha`` the comparison cannot decide anything.
Where the paired differences do not vary at all (identical outputs) their spread is taken as that of
independent errors, √(var baseline + var candidate), as a change would have it, rather than zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, TypeVar

import numpy as np

from ftbench.harness.compare.intervals import (
    UNBOUNDED,
    Interval,
    jackknife_error,
    leave_one_out,
    paired_binary_interval,
    student_interval,
)
from ftbench.harness.compare.levels import ALPHA, CONFIDENCE
from ftbench.harness.compare.mcnemar import mcnemar_mde, mcnemar_p, smallest_mcnemar_p
from ftbench.harness.compare.permutation import paired_permutation_p, permutation_mde, smallest_permutation_p
from ftbench.harness.core.records import SampleRecord

T = TypeVar("T")
CorpusFunction = Callable[[Sequence[SampleRecord]], float]
Test = Literal["mcnemar_exact", "paired_permutation"]


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
    """The 95% interval of the difference (see the module's notes)."""
    p_value: float
    test: Test
    equivalence_interval: Interval | None = None
    """The 1 − 2·``alpha`` interval: the two one-sided tests of equivalence at ``alpha``."""
    mde: float | None = None
    """The smallest difference this test detects at ``alpha`` with 80% power; None where it cannot decide or
    nothing varies to size a change against."""
    flips: Flips | None = None
    """0/1 metrics: which items flipped each way."""
    smallest_p: float = 0.0
    """The smallest p-value the test can reach at this n (2 / 2ⁿ for both tests)."""
    alpha: float = ALPHA
    """The level ``equivalence_interval`` and ``mde`` were computed at."""

    def decides(self, alpha: float) -> bool:
        """Whether the test can be significant at ``alpha`` with this many items at all."""
        return self.smallest_p < alpha


def bootstrap_stderr(
    metric: Callable[[Sequence[T]], float], samples: Sequence[T], iters: int = 1000, seed: int = 0
) -> float | None:
    """The standard deviation of ``metric`` over ``iters`` resamples (with replacement) of ``samples``.

    Returns None for fewer than two samples.
    """
    if len(samples) < 2:
        return None
    rows = np.random.default_rng(seed).integers(0, len(samples), size=(iters, len(samples)))
    values = [metric([samples[i] for i in row]) for row in rows]
    return float(np.std(values, ddof=1))


def pair_samples(
    baseline: Sequence[SampleRecord], candidate: Sequence[SampleRecord]
) -> list[tuple[SampleRecord, SampleRecord]]:
    """The samples both sides share, matched by doc id and doc hash, in doc id order."""
    by_key = {(s.doc_id, s.doc_hash): s for s in candidate}
    pairs = [(s, by_key[(s.doc_id, s.doc_hash)]) for s in baseline if (s.doc_id, s.doc_hash) in by_key]
    return sorted(pairs, key=lambda pair: pair[0].doc_id)


def paired_flips(base: Sequence[float], cand: Sequence[float], doc_ids: Sequence[int]) -> Flips:
    """Which items of a 0/1 metric went wrong → right and right → wrong (right: a score of 0.5 or more)."""
    gained = [d for b, c, d in zip(base, cand, doc_ids, strict=True) if b < 0.5 <= c]
    lost = [d for b, c, d in zip(base, cand, doc_ids, strict=True) if c < 0.5 <= b]
    return Flips(gained, lost)


def paired_spread(base: np.ndarray, cand: np.ndarray) -> float:
    """The standard deviation of the paired differences, or, where they do not vary, that of independent
    errors (see the module's notes); 0 below two pairs or where nothing varies at all."""
    if len(base) < 2:
        return 0.0
    spread = _varying_sd(cand - base)
    return spread if spread > 0 else float(np.hypot(_varying_sd(base), _varying_sd(cand)))


def _varying_sd(values: np.ndarray) -> float:
    """The standard deviation, 0 where the values differ only by rounding (0.6 − 0.5 against 0.1)."""
    spread = float(np.std(values, ddof=1))
    return spread if spread > 1e-9 * (1.0 + float(np.max(np.abs(values)))) else 0.0


def _binary(
    metric: str, pairs: Sequence[tuple[SampleRecord, SampleRecord]], confidence: float, alpha: float
) -> PairedComparison:
    base = [b.scores[metric] for b, _ in pairs]
    cand = [c.scores[metric] for _, c in pairs]
    n = len(pairs)
    flips = paired_flips(base, cand, [b.doc_id for b, _ in pairs])
    gained, lost = len(flips.gained), len(flips.lost)
    base_value, cand_value = float(np.mean(base)), float(np.mean(cand))
    return PairedComparison(
        metric,
        n,
        base_value,
        cand_value,
        cand_value - base_value,
        paired_binary_interval(gained, lost, n, confidence),
        mcnemar_p(gained, lost),
        "mcnemar_exact",
        paired_binary_interval(gained, lost, n, 1 - 2 * alpha),
        mcnemar_mde(n, (gained + lost) / n, alpha),
        flips,
        smallest_mcnemar_p(n),
        alpha,
    )


def _continuous(
    metric: str,
    pairs: Sequence[tuple[SampleRecord, SampleRecord]],
    confidence: float,
    iters: int,
    seed: int,
    alpha: float,
) -> PairedComparison:
    base = np.array([b.scores[metric] for b, _ in pairs], dtype=float)
    cand = np.array([c.scores[metric] for _, c in pairs], dtype=float)
    n, delta = len(pairs), float(cand.mean() - base.mean())
    spread = paired_spread(base, cand)
    stderr = spread / math.sqrt(n) if n > 1 else math.inf
    return PairedComparison(
        metric,
        n,
        float(base.mean()),
        float(cand.mean()),
        delta,
        student_interval(delta, stderr, n - 1, confidence),
        paired_permutation_p(base, cand, iters=iters, seed=seed),
        "paired_permutation",
        student_interval(delta, stderr, n - 1, 1 - 2 * alpha),
        permutation_mde(n, spread, alpha),
        None,
        smallest_permutation_p(n, iters),
        alpha,
    )


def _corpus_error(corpus: CorpusFunction, base: list[SampleRecord], cand: list[SampleRecord]) -> tuple[float, float]:
    """The jackknife standard error of the corpus difference and its degrees of freedom; where the difference
    does not vary, that of independent errors (see the module's notes)."""

    def difference(indices: Sequence[int]) -> float:
        return corpus([cand[i] for i in indices]) - corpus([base[i] for i in indices])

    error = jackknife_error(leave_one_out(difference, range(len(base))))
    if error.stderr > 0:
        return error.stderr, error.df
    sides = [jackknife_error(leave_one_out(corpus, side)) for side in (base, cand)]
    return math.sqrt(sum(side.stderr**2 for side in sides)), min(side.df for side in sides)


def _corpus(
    metric: str,
    pairs: Sequence[tuple[SampleRecord, SampleRecord]],
    corpus: CorpusFunction,
    confidence: float,
    iters: int,
    seed: int,
    alpha: float,
) -> PairedComparison:
    base, cand = [b for b, _ in pairs], [c for _, c in pairs]
    n = len(pairs)
    base_value, cand_value = corpus(base), corpus(cand)
    delta = cand_value - base_value
    stderr, df = _corpus_error(corpus, base, cand) if n > 1 else (math.inf, 0.0)
    return PairedComparison(
        metric,
        n,
        base_value,
        cand_value,
        delta,
        student_interval(delta, stderr, df, confidence) if n > 1 else UNBOUNDED,
        paired_permutation_p(base, cand, corpus, iters, seed),
        "paired_permutation",
        student_interval(delta, stderr, df, 1 - 2 * alpha) if n > 1 else UNBOUNDED,
        permutation_mde(n, stderr * math.sqrt(n), alpha) if n > 1 else None,
        None,
        smallest_permutation_p(n, iters),
        alpha,
    )


def compare_paired(
    metric: str,
    kind: str,
    pairs: Sequence[tuple[SampleRecord, SampleRecord]],
    corpus: CorpusFunction | None = None,
    confidence: float = CONFIDENCE,
    iters: int = 2000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> PairedComparison:
    """Candidate minus baseline on paired samples: the paired test, the intervals and power (module's notes).

    Args:
        metric: the metric's name; per-sample values are read from ``scores`` unless ``corpus`` is given.
        kind: ``binary`` (McNemar's exact test), ``continuous`` or ``corpus`` (paired permutation test).
        pairs: (baseline, candidate) samples of the same items; at least one.
        corpus: recomputes a corpus-level metric from samples.
        confidence: the coverage of ``interval``.
        iters: random swaps of the permutation test above its exact size.
        seed: the swaps' seed.
        alpha: the level of the equivalence interval and of the minimum detectable effect.
    """
    if corpus is not None:
        return _corpus(metric, pairs, corpus, confidence, iters, seed, alpha)
    if kind == "binary":
        return _binary(metric, pairs, confidence, alpha)
    return _continuous(metric, pairs, confidence, iters, seed, alpha)
