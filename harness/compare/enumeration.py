"""Exact enumeration of paired 0/1 outcomes: how the calibration tests and ``benchmarks/calibration.py`` measure
the levels of McNemar's test, the exact bounds and the gate without simulation.

n paired items each gain (wrong → right) with probability p_gain, lose with p_loss, or stay; the counts
(gained, lost) are trinomial. A decision's error is the total chance of the outcomes where it errs, and its
worst case the largest of those over a grid of true (p_gain, p_loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from scipy.special import gammaln


class Outcomes(NamedTuple):
    """Every (gained, lost) of n paired 0/1 items, as two arrays of equal length."""

    n: int
    gained: np.ndarray
    lost: np.ndarray


class Truths(NamedTuple):
    """True chances of a gain and of a loss per item, as two arrays of equal length."""

    p_gain: np.ndarray
    p_loss: np.ndarray


def binary_outcomes(n: int) -> Outcomes:
    """Every (gained, lost) with gained + lost ≤ n."""
    gained, lost = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    inside = gained + lost <= n
    return Outcomes(n, gained[inside], lost[inside])


def outcome_chances(outcomes: Outcomes, truths: Truths) -> np.ndarray:
    """Trinomial probabilities of each outcome (columns) under each truth (rows)."""
    n, gained, lost = outcomes
    same = n - gained - lost
    log = gammaln(n + 1) - gammaln(gained + 1) - gammaln(lost + 1) - gammaln(same + 1)
    p_gain, p_loss = truths.p_gain[:, None], truths.p_loss[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (
            log[None]
            + np.where(gained[None] > 0, gained[None] * np.log(p_gain), 0.0)
            + np.where(lost[None] > 0, lost[None] * np.log(p_loss), 0.0)
            + np.where(same[None] > 0, same[None] * np.log1p(-p_gain - p_loss), 0.0)
        )
    return np.exp(terms)


def truth_grid(count: int) -> Truths:
    """A ``count`` × ``count`` grid of flip shares ψ (0.01-0.99) by flip directions π (0.005-0.995)."""
    psi, pi = np.meshgrid(np.linspace(0.01, 0.99, count), np.linspace(0.005, 0.995, count), indexing="ij")
    return Truths((psi * pi).ravel(), (psi * (1 - pi)).ravel())


def truths_at(delta: float, count: int = 40) -> Truths:
    """Truths with p_gain − p_loss = ``delta``, over ``count`` flip shares from |delta| to 1."""
    psi = np.linspace(abs(delta) + 1e-4, 0.999, count)
    return Truths((psi + delta) / 2, (psi - delta) / 2)


def _blocks(truths: Truths, size: int) -> Iterator[Truths]:
    for start in range(0, len(truths.p_gain), size):
        yield Truths(truths.p_gain[start : start + size], truths.p_loss[start : start + size])


def worst_chance(outcomes: Outcomes, truths: Truths, errs: np.ndarray | Callable[[Truths], np.ndarray]) -> float:
    """The largest chance, over ``truths``, of the outcomes where a decision errs.

    Args:
        outcomes: every outcome of the decision.
        truths: the true chances to try.
        errs: whether the decision errs on each outcome: flags, or, for an error that depends on the truth, a
            function of a block of truths giving one row of flags per truth.
    """
    worst = 0.0
    for block in _blocks(truths, 64):
        weights = outcome_chances(outcomes, block)
        flags = errs(block) if callable(errs) else errs[None]
        worst = max(worst, float((weights * flags).sum(axis=1).max()))
    return worst
