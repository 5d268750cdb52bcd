"""The paired permutation test of continuous and corpus metrics, and its power.

The test swaps baseline and candidate within pairs: exactly, over all 2ⁿ swaps, up to ``EXACT_PAIRS`` pairs,
else over random swaps (the p-value then counts the observed one, (k + 1) / (iters + 1)). Unlike inverting a
bootstrap interval it stays honest on a handful of items: no p-value falls below 2 / 2ⁿ, so at alpha 0.05 five
pairs or fewer can never be significant ("cannot decide").

Power is that of this test for normal paired differences, whose location-and-scale invariance makes the
minimum detectable effect a multiple k(n, alpha) of the differences' standard deviation. Up to ``EXACT_PAIRS``
pairs k comes from a simulation of the exact test itself (``POWER_DRAWS`` draws, fixed seed), which carries
its discreteness (at 6 pairs only all-same-sign differences are significant, so k is 1.8 where the normal
formula says 1.1); above, from the exact power of the paired t-test (noncentral t, Student 1908), which the
permutation test matches within a point there (measured; README, statistics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import chi2, norm
from scipy.stats import t as student_t

from ftbench.harness.compare.levels import ALPHA, POWER

EXACT_PAIRS = 12
"""Up to this many pairs the permutation test enumerates all 2**n swaps; above, it draws ``iters`` of them."""
POWER_DRAWS = 2000
"""Simulated normal samples behind k(n, alpha) for the exact test."""
LARGEST_EFFECT = 20.0
"""Standardized effects beyond this are not searched."""


def swap_rows(n: int, iters: int, seed: int) -> tuple[np.ndarray, bool]:
    """Rows of swap decisions (True: exchange baseline and candidate on that item), and whether they are all."""
    if n <= EXACT_PAIRS:
        return (np.arange(2**n)[:, None] >> np.arange(n)) & 1 == 1, True
    return np.random.default_rng(seed + 1).integers(0, 2, size=(iters, n)) == 1, False


def smallest_permutation_p(n: int, iters: int) -> float:
    """The smallest p-value the test can give on ``n`` pairs with ``iters`` random swaps above ``EXACT_PAIRS``."""
    exact = min(1.0, 2.0 * 0.5 ** max(n, 0))
    return exact if n <= EXACT_PAIRS else max(exact, 1 / (iters + 1))


def _permutation_p(observed: float, null: np.ndarray, exact: bool) -> float:
    """Two-sided p-value: the share of swapped differences at least as far from zero as the observed one."""
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return extreme / len(null) if exact else (extreme + 1) / (len(null) + 1)


def paired_permutation_p(
    base: Sequence[Any] | np.ndarray,
    cand: Sequence[Any] | np.ndarray,
    corpus: Callable[[Sequence[Any]], float] | None = None,
    iters: int = 2000,
    seed: int = 0,
) -> float:
    """The p-value of a zero difference between paired candidate and baseline values (or corpus metrics)."""
    n = len(base)
    swaps, exact = swap_rows(n, iters, seed)
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


def t_test_power(n: int, effect: float, alpha: float = ALPHA, grid: int = 4000) -> float:
    """The exact power of the two-sided paired t-test on ``n`` pairs for a standardized effect (mean / sd of the
    differences): the noncentral t's tails, integrated over ``grid`` quantiles of the chi-square."""
    df = n - 1
    critical = float(student_t.ppf(1 - alpha / 2, df))
    scale = critical * np.sqrt(chi2.ppf((np.arange(grid) + 0.5) / grid, df) / df)
    shift = effect * math.sqrt(n)
    return float(np.mean(norm.sf(scale - shift) + norm.cdf(-scale - shift)))


def _exact_test_power(n: int, alpha: float) -> Callable[[float], float]:
    """The simulated power of the exact permutation test on ``n`` normal differences, by standardized effect."""
    draws = np.random.default_rng(n).standard_normal((POWER_DRAWS, n)).astype(np.float32)
    signs = np.where(swap_rows(n, 0, 0)[0], -1.0, 1.0).astype(np.float32)
    null_noise, null_shift = draws @ signs.T, signs.sum(axis=1)
    noise = draws.sum(axis=1)

    def power(effect: float) -> float:
        observed = np.abs(noise + effect * n)[:, None] - 1e-4
        extreme = (np.abs(null_noise + effect * null_shift[None, :]) >= observed).sum(axis=1)
        return float(np.mean(extreme / len(signs) < alpha))

    return power


@lru_cache(maxsize=256)
def standardized_mde(n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """k(n, alpha): the smallest mean / sd of normal paired differences the test detects with ``power`` on
    ``n`` pairs (see the module's notes); None where no p-value can fall below ``alpha``."""
    if n < 2 or smallest_permutation_p(n, 10**9) >= alpha:
        return None
    power_at = _exact_test_power(n, alpha) if n <= EXACT_PAIRS else (lambda k: t_test_power(n, k, alpha))
    low, high = 0.0, 1.0
    while power_at(high) < power:
        if high >= LARGEST_EFFECT:
            return None
        low, high = high, 2 * high
    while high - low > 1e-5 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if power_at(middle) < power else (low, middle)
    return high


def permutation_mde(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest mean difference the test detects with ``power`` on ``n`` pairs whose differences have
    standard deviation ``sd``; None where nothing can be significant or ``sd`` is 0 (nothing to size against)."""
    k = standardized_mde(n, alpha, power)
    return None if k is None or not sd > 0 else k * sd


def permutation_items_needed(delta: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The pairs the test needs to detect ``delta`` with ``power`` when one pair's difference has standard
    deviation ``sd``; None when ``sd`` is 0 (any decidable count then detects any change)."""
    if not sd > 0:
        return None
    target = abs(delta) / sd

    def enough(n: int) -> bool:
        k = standardized_mde(n, alpha, power)
        return k is not None and k <= target

    guess = (float(norm.ppf(1 - alpha / 2)) + float(norm.ppf(power))) ** 2 / target**2
    high = max(EXACT_PAIRS + 1, math.ceil(guess * 1.2) + 2)
    while not enough(high):
        high *= 2
    low = 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
