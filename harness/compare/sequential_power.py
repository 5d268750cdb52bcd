"""What the sequential gate could still detect by its budget: the drop behind an ``undecided`` verdict's
"detects only drops ≥ …".

For a true drop δ, the gate is taken to detect it when the outcome that δ beats with probability ``power`` (80%)
would be called a regression at the budget. That outcome's mean difference is −δ + z·sd / √budget (a normal
approximation, z the ``power`` quantile). For 0/1 metrics the items flip with the observed discordance ψ, taken
as at least δ as ``mcnemar.mcnemar_power`` does, so sd² = ψ − δ², and the outcome is the gained, lost and
unchanged counts with that mean. For bounded scores the outcome is the items seen so far, shifted to that mean
(clipped to the bound) and counted budget / t times each: the observed spread, at the budget's size. The wealth
betting below −margin (``betting.py``) is read at that outcome. Only the budget's look is counted: a sequence
can cross earlier, which adds to the chance, so at the drop returned a regression by the budget comes with
probability about ``power`` or more (measured in ``tests/test_sequential.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import norm

from ftbench.harness.compare.betting import weighted_log_wealth

HALVINGS = 40
"""Bisection steps over the drop, from the margin to the whole bound."""


class Outcome(NamedTuple):
    """A projected outcome at the budget: scaled values and how many times each counts."""

    values: np.ndarray
    weights: np.ndarray


def projected_outcome(scaled: np.ndarray, drop: float, budget: int, binary: bool, quantile: float) -> Outcome:
    """The outcome at the budget that a true drop ``drop`` (scaled) beats with the probability whose normal
    quantile is ``quantile``, with the observed discordance (0/1) or spread (bounded scores)."""
    if binary:
        flips = max(float(np.mean(scaled != 0)), drop)
        mean = np.clip(-drop + quantile * np.sqrt(max(flips - drop**2, 0.0) / budget), -flips, flips)
        return Outcome(
            np.array([1.0, -1.0, 0.0]), budget * np.array([(flips + mean) / 2, (flips - mean) / 2, 1 - flips])
        )
    spread = float(np.std(scaled, ddof=1)) if scaled.size > 1 else 0.0
    mean = -drop + quantile * spread / np.sqrt(budget)
    shifted = np.clip(scaled - scaled.mean() + mean, -1.0, 1.0)
    return Outcome(shifted, np.full(scaled.size, budget / scaled.size))


def smallest_detected_drop(
    scaled: np.ndarray, budget: int, tested: float, binary: bool, alpha: float, power: float
) -> float | None:
    """The smallest drop (on the [−1, 1] scale, beyond −``tested``) detected by ``budget`` as the module says, from
    the scaled differences so far; None where not even a drop of the whole bound would be."""
    quantile, threshold = float(norm.ppf(power)), np.log(1 / alpha)

    def detected(drop: float) -> bool:
        outcome = projected_outcome(scaled, drop, budget, binary, quantile)
        return weighted_log_wealth(outcome.values, outcome.weights, tested) >= threshold

    low, high = -tested, 1.0
    if not detected(high):
        return None
    for _ in range(HALVINGS):
        middle = (low + high) / 2
        low, high = (low, middle) if detected(middle) else (middle, high)
    return high
