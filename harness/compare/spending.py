"""Error spending over a training run's checkpoints: each look gets its own share of alpha.

A run gated at every checkpoint with a fixed-n paired test at full alpha is wrong more often the longer it runs:
with no true change the chance of some false regression grows with every look. Spending gives the k-th look
(k = 1, 2, ...) the level alpha·6 / (π²k²); since Σ 1/k² = π²/6 the levels of all looks, however many, sum to
at most alpha, so by the union bound the chance of any false regression over the whole run is at most alpha
whatever the dependence between checkpoints: a Bonferroni correction over a countable family of looks, which,
unlike the spending functions of Lan & DeMets (1983) for a trial's interim analyses, needs no planned number of
looks.
"""

from __future__ import annotations

import math

from ftbench.harness.compare.levels import ALPHA

SPENDING_SCALE = 6 / math.pi**2
"""1 / Σ 1/k², so that the levels alpha·``SPENDING_SCALE`` / k² sum to alpha."""


def _check_look(k: int, alpha: float) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"checkpoint look {k!r} must be a whole number from 1 (the first look)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must be a level between 0 and 1, such as 0.05")


def checkpoint_alpha(k: int, alpha: float = ALPHA) -> float:
    """The level the ``k``-th look of a run may use: alpha·6 / (π²k²) (3.04% at the first look for alpha 0.05).

    Raises:
        ValueError: ``k`` is not a whole number from 1, or ``alpha`` not between 0 and 1.
    """
    _check_look(k, alpha)
    return alpha * SPENDING_SCALE / k**2


def spent_alpha(looks: int, alpha: float = ALPHA) -> float:
    """The level spent by the first ``looks`` looks together (0 for none); below ``alpha`` for any count.

    Raises:
        ValueError: ``looks`` is negative, or ``alpha`` not between 0 and 1.
    """
    if looks == 0:
        _check_look(1, alpha)
        return 0.0
    _check_look(looks, alpha)
    return alpha * SPENDING_SCALE * math.fsum(1 / k**2 for k in range(1, looks + 1))


def significant_at_checkpoint(p_value: float, k: int, alpha: float = ALPHA) -> bool:
    """Whether a fixed-n paired test's ``p_value`` is significant at the ``k``-th look's spent level.

    Raises:
        ValueError: ``p_value`` is not in [0, 1], ``k`` is not a whole number from 1, or ``alpha`` not between 0
            and 1.
    """
    if not 0 <= p_value <= 1:
        raise ValueError(f"p-value {p_value} must lie between 0 and 1")
    return p_value < checkpoint_alpha(k, alpha)
