"""McNemar's exact test for paired 0/1 outcomes, and its exact power.

The test is a two-sided binomial test of the items that flipped: wrong → right (gained) against right → wrong
(lost), p = 1/2 each way (McNemar 1947). It is significant when p < alpha; with n items no p falls below
2 / 2ⁿ (every item flipping the same way), so at alpha 0.05 five items or fewer can never be significant.

Power is exact rather than Connor's (1987) normal approximation, which overstates it by 2-7 points at the sizes
ftbench runs: items flip independently, each with probability ψ (the discordance), and a flip goes wrong →
right with probability π = (1 + δ/ψ) / 2, for a true difference δ = ψ·(2π − 1); the power sums, over every
number of flips, the binomial chance of that many flips times the chance the test rejects given them. The
minimum detectable effect (MDE) is the δ at which that power reaches 80%, with ψ the larger of the observed
discordance and δ itself (a difference δ needs at least δ of the items to flip).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.stats import binom, binomtest, norm

from ftbench.harness.compare.levels import ALPHA, POWER

MAX_ITEMS = 10**6
"""``mcnemar_items_needed`` gives up beyond this many items."""


def mcnemar_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value from the counts of items gained and lost."""
    flips = gained + lost
    if flips == 0:
        return 1.0
    return float(binomtest(gained, flips, 0.5).pvalue)


def mcnemar_exact(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes; a score counts as right from 0.5 up, as the
    flips do."""
    pairs = list(zip(baseline, candidate, strict=True))
    gained = sum(1 for b, c in pairs if b < 0.5 <= c)
    lost = sum(1 for b, c in pairs if c < 0.5 <= b)
    return mcnemar_p(gained, lost)


def smallest_mcnemar_p(n: int) -> float:
    """The smallest p-value McNemar's exact test can give on ``n`` items: every item flipping the same way."""
    return min(1.0, 2.0 * 0.5 ** max(n, 0))


@lru_cache(maxsize=512)
def mcnemar_critical_counts(n: int, alpha: float) -> np.ndarray:
    """For f = 0..n flips, the largest count c ≤ f/2 whose two-sided p-value 2·P(X ≤ c) is below ``alpha``
    (X binomial with f trials, 1/2), or −1 where no count is."""
    flips = np.arange(n + 1)
    counts = binom.ppf(alpha / 2, flips, 0.5) - 1
    counts = np.where(binom.cdf(counts, flips, 0.5) < alpha / 2, counts, counts - 1)
    counts = np.where(binom.cdf(counts + 1, flips, 0.5) < alpha / 2, counts + 1, counts)
    return np.maximum(counts, -1).astype(int)


def mcnemar_power(n: int, discordance: float, delta: float, alpha: float = ALPHA) -> float:
    """The exact probability that McNemar's test on ``n`` items is significant at ``alpha`` (see the module's
    notes) when the true difference is ``delta`` and items flip with probability max(discordance, |delta|)."""
    psi = min(1.0, max(discordance, abs(delta)))
    if n <= 0 or psi <= 0.0:
        return 0.0
    flips = np.arange(n + 1)
    counts = mcnemar_critical_counts(n, alpha)
    direction = min(1.0, max(0.0, 0.5 + delta / (2 * psi)))
    given = binom.cdf(counts, flips, direction) + binom.sf(flips - counts - 1, flips, direction)
    reject = np.where(counts >= 0, given, 0.0)
    return float(binom.pmf(flips, n, psi) @ reject)


def mcnemar_mde(n: int, discordance: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest difference McNemar's exact test detects with ``power`` on ``n`` items; None where no
    difference can reach it (at alpha 0.05, five items or fewer)."""
    if n <= 0 or mcnemar_power(n, discordance, 1.0, alpha) < power:
        return None
    low, high = 0.0, 1.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if mcnemar_power(n, discordance, middle, alpha) < power else (low, middle)
    return high


def _connor_items(delta: float, discordance: float, alpha: float, power: float) -> int:
    """Connor's (1987) approximate sample size: the search's starting point."""
    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    psi = max(discordance, delta)
    return int(np.ceil((z_a * psi**0.5 + z_b * max(psi - delta**2, 0.0) ** 0.5) ** 2 / delta**2))


def mcnemar_items_needed(
    delta: float, discordance: float, alpha: float = ALPHA, power: float = POWER, window: int = 10
) -> int | None:
    """The items McNemar's exact test needs to detect ``delta`` with ``power``: the smallest n from which
    ``window`` consecutive counts all reach it (exact power rises in a saw-tooth); None beyond ``MAX_ITEMS``.

    Args:
        delta: the true difference in proportions, positive.
        discordance: the share of items that flip either way (at least ``delta`` is assumed).
        alpha: the test's two-sided level.
        power: the probability of a significant result.
        window: consecutive counts that must all reach ``power``.
    """

    def enough(n: int) -> bool:
        return mcnemar_power(n, discordance, delta, alpha) >= power

    high = max(8, _connor_items(delta, discordance, alpha, power))
    while not enough(high):
        if high > MAX_ITEMS:
            return None
        high *= 2
    low = 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    while not all(enough(m) for m in range(high, high + window)):
        high += 1
    return high
