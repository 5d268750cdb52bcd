"""The chance of any false regression over a training run's checkpoints, gated by the fixed gate at full alpha
at every look or at the levels ``spending.checkpoint_alpha`` spends (``tests/test_sequential.py`` asserts them).

The run has no true change: each item is right for the baseline with chance ``ACCURACY`` and flips either way
with chance ``DISCORDANCE`` / 2; the fixed gate calls a regression when the observed drop exceeds
``RELATIVE_MARGIN`` of the baseline's observed accuracy and McNemar's exact test is significant
(``policy.judge_metric``). With a fresh comparison at every checkpoint the looks are independent and the chances
are exact (enumeration); with one baseline run shared by every look they are simulated from a seed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import binom

from ftbench.harness.compare.calibration import mcnemar_significant
from ftbench.harness.compare.calibration_sequential import ACCURACY, DISCORDANCE, RELATIVE_MARGIN
from ftbench.harness.compare.enumeration import Outcomes, Truths, binary_outcomes, outcome_chances
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.spending import checkpoint_alpha

CHECKPOINT_LOOKS = (1, 5, 10, 20)
"""Looks at which a training run's chance of any false regression is reported."""
CHECKPOINT_ITEMS = 200
"""Items in each checkpoint's comparison."""


class CheckpointErrors(NamedTuple):
    """A training run with no true change, gated at each checkpoint by the fixed gate (a drop beyond the relative
    margin that McNemar's test finds significant): the chance of any false regression by each look."""

    looks: tuple[int, ...]
    full_alpha: tuple[float, ...]
    """At alpha at every look, the gate as it is."""
    spent: tuple[float, ...]
    """At ``spending.checkpoint_alpha(k)`` at the k-th look; at most alpha however many looks."""


def _margin_chances(items: int, accuracy: float, discordance: float) -> tuple[Outcomes, np.ndarray]:
    """Every (gained, lost) of one comparison of ``items`` fresh items, and for each the chance of it together
    with an observed drop beyond ``RELATIVE_MARGIN`` of the baseline's observed accuracy (``policy.judge_metric``)."""
    outcomes = binary_outcomes(items)
    half = np.array([discordance / 2])
    chances = outcome_chances(outcomes, Truths(half, half))[0]
    unchanged = items - outcomes.gained - outcomes.lost
    right_share = (accuracy - discordance / 2) / (1 - discordance)
    beyond = np.zeros(len(chances))
    for right in range(items + 1):
        drop = (outcomes.lost - outcomes.gained) / items
        allowed = RELATIVE_MARGIN * (right + outcomes.lost) / items
        beyond += np.where(drop > allowed, binom.pmf(right, unchanged, right_share), 0.0)
    return outcomes, chances * beyond


def checkpoint_errors(
    items: int = CHECKPOINT_ITEMS,
    accuracy: float = ACCURACY,
    discordance: float = DISCORDANCE,
    looks: tuple[int, ...] = CHECKPOINT_LOOKS,
    alpha: float = ALPHA,
) -> CheckpointErrors:
    """Exactly (by enumeration), the chance of any false regression by each of ``looks`` when every checkpoint is
    an independent comparison of ``items`` fresh items, each right for the baseline with chance ``accuracy`` and
    flipped either way with chance ``discordance`` / 2, gated with a ``RELATIVE_MARGIN`` relative margin."""
    outcomes, weights = _margin_chances(items, accuracy, discordance)

    def fails(level: float) -> float:
        return float(weights @ mcnemar_significant(outcomes.gained, outcomes.lost, items, level))

    full = fails(alpha)
    survive = np.cumprod([1 - fails(checkpoint_alpha(k, alpha)) for k in range(1, max(looks) + 1)])
    return CheckpointErrors(
        tuple(looks), tuple(1 - (1 - full) ** k for k in looks), tuple(float(1 - survive[k - 1]) for k in looks)
    )


def shared_baseline_checkpoint_errors(
    draws: int,
    seed: int,
    items: int = CHECKPOINT_ITEMS,
    accuracy: float = ACCURACY,
    discordance: float = DISCORDANCE,
    looks: tuple[int, ...] = CHECKPOINT_LOOKS,
    alpha: float = ALPHA,
) -> CheckpointErrors:
    """As ``checkpoint_errors``, simulated, when every checkpoint is compared with one fixed baseline run on the
    same ``items`` items: each checkpoint loses a baseline-right item with chance (``discordance`` / 2) /
    ``accuracy`` and gains a wrong one with chance (``discordance`` / 2) / (1 − ``accuracy``), afresh at each look."""
    rng = np.random.default_rng(seed)
    right = rng.random((draws, items)) < accuracy
    base = right.sum(axis=1)
    failed = {"full": np.zeros(draws, dtype=bool), "spent": np.zeros(draws, dtype=bool)}
    full, spent = [], []
    for k in range(1, max(looks) + 1):
        flip = rng.random((draws, items))
        lost = (right & (flip < discordance / 2 / accuracy)).sum(axis=1)
        gained = (~right & (flip < discordance / 2 / (1 - accuracy))).sum(axis=1)
        beyond = (lost - gained) / items > RELATIVE_MARGIN * base / items
        failed["full"] |= beyond & mcnemar_significant(gained, lost, items, alpha)
        failed["spent"] |= beyond & mcnemar_significant(gained, lost, items, checkpoint_alpha(k, alpha))
        if k in looks:
            full.append(float(failed["full"].mean()))
            spent.append(float(failed["spent"].mean()))
    return CheckpointErrors(tuple(looks), tuple(full), tuple(spent))
