"""The simulations that check the sequential gate's claims (``sequential.py``), and the fixed-n designs it is
compared with (the error spending over checkpoints is checked in ``calibration_spending.py``).

Every simulation draws from a given seed, vectorised over draws, so the same arguments give the same numbers;
``tests/test_sequential.py`` asserts the claims with few draws and the same functions measure them with many.
0/1 differences are drawn item by item: gained with chance (ψ + Δ) / 2, lost with (ψ − Δ) / 2, unchanged
otherwise, for a discordance ψ and a true mean change Δ. Bounded scores are skewed: Δ plus a centred Beta(2, 5)
variable (sd 0.16, within [−0.29, 0.71]). A verdict "holds" as ``sequential.verdict_path`` says, with a look after
every item; the gate's error, which stops at its first verdict, is at most that.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ftbench.harness.compare.betting import log_wealth
from ftbench.harness.compare.levels import ALPHA, POWER
from ftbench.harness.compare.mcnemar import mcnemar_items_needed, mcnemar_mde
from ftbench.harness.compare.permutation import permutation_mde

HORIZON = 2000
"""Items each simulated sequence runs to, looked at after every item."""
DISCORDANCE = 0.2
"""The share of items that flip either way in the 0/1 simulations."""
ACCURACY = 0.45
"""The baseline's accuracy in the checkpoint and non-inferiority simulations."""
RELATIVE_MARGIN = 0.05
"""The default policy's largest allowed drop, as a share of the baseline's value."""
DESIGN_ITEMS = 500
"""The fixed-n design the expected items are compared with."""
BOUNDED_SD = float(np.sqrt(10 / 392))
"""The sd of the bounded scores' differences (a Beta(2, 5) variable's): 0.160."""
BATCH = 64
"""Sequences simulated at once (bounds the memory: ``BATCH`` × items × stakes floats)."""


def binary_paths(rng: np.random.Generator, draws: int, items: int, change: float, discordance: float) -> np.ndarray:
    """``draws`` sequences of ``items`` 0/1 differences in {−1, 0, 1} with mean ``change`` and ``discordance``."""
    if not abs(change) <= discordance <= 1:
        raise ValueError(f"a change of {change} needs a discordance of at least |change| (and at most 1)")
    uniform = rng.random((draws, items))
    gain = (discordance + change) / 2
    return np.where(uniform < gain, 1.0, np.where(uniform < discordance, -1.0, 0.0))


def bounded_paths(rng: np.random.Generator, draws: int, items: int, change: float) -> np.ndarray:
    """``draws`` sequences of ``items`` skewed differences in [−1, 1] with mean exactly ``change``."""
    return change + rng.beta(2.0, 5.0, size=(draws, items)) - 2 / 7


class Crossings(NamedTuple):
    """Per simulated sequence, the item after which each verdict first holds; 0 where it never does."""

    regression: np.ndarray
    passed: np.ndarray


def _first(holds: np.ndarray) -> np.ndarray:
    return np.where(holds.any(axis=-1), holds.argmax(axis=-1) + 1, 0)


def crossings(paths: np.ndarray, tested: float, binary: bool, alpha: float = ALPHA) -> Crossings:
    """When each verdict first holds on each of ``paths`` (scaled differences, one sequence a row), with the
    margin at −``tested``: the regression's when the wealth betting below ``tested`` reaches 1 / alpha, the
    pass's when the one betting above does (``sequential.verdict_path``)."""
    threshold = np.log(1 / alpha)
    regression = _first(log_wealth(paths, tested, "below", binary) >= threshold)
    return Crossings(regression, _first(log_wealth(paths, tested, "above", binary) >= threshold))


def simulated_crossings(
    binary: bool, change: float, tested: float, draws: int, items: int, seed: int, discordance: float = DISCORDANCE
) -> Crossings:
    """``crossings`` on ``draws`` simulated sequences of ``items`` items with a true ``change`` (scaled): 0/1 at
    ``discordance``, or the skewed bounded scores; drawn ``BATCH`` at a time from one seeded stream."""
    rng, found = np.random.default_rng(seed), []
    for start in range(0, draws, BATCH):
        count = min(BATCH, draws - start)
        paths = (
            binary_paths(rng, count, items, change, discordance) if binary else bounded_paths(rng, count, items, change)
        )
        found.append(crossings(paths, tested, binary))
    return Crossings(*(np.concatenate(parts) for parts in zip(*found, strict=True)))


class VerdictErrors(NamedTuple):
    """With the true change exactly at −margin: the shares of sequences on which each verdict ever held within
    the horizon; each at most alpha."""

    false_regression: float
    false_pass: float
    draws: int


def verdict_errors(
    binary: bool, margin: float, draws: int, seed: int, horizon: int = HORIZON, discordance: float = DISCORDANCE
) -> VerdictErrors:
    """The regression and pass verdicts' errors at a true change of exactly −``margin`` (scaled), looking after
    every item up to ``horizon`` (0/1 differences at ``DISCORDANCE``, or the skewed bounded scores)."""
    found = simulated_crossings(binary, -margin, -margin, draws, horizon, seed, discordance)
    return VerdictErrors(float(np.mean(found.regression > 0)), float(np.mean(found.passed > 0)), draws)


class SequenceCoverage(NamedTuple):
    """The shares of sequences whose bound never excluded the true change over the whole horizon."""

    lower: float
    """The lower sequence stayed at or below the truth (nominal at least 1 − alpha)."""
    upper: float
    """The upper sequence stayed at or above it (nominal at least 1 − alpha)."""
    both: float
    """Both did (nominal at least 1 − 2·alpha; two one-sided sequences at alpha each)."""


def sequence_coverage(
    binary: bool, change: float, draws: int, seed: int, horizon: int = HORIZON, discordance: float = DISCORDANCE
) -> SequenceCoverage:
    """Time-uniform coverage at a true change ``change`` (scaled). A bound excludes the truth at some time exactly
    when the wealth betting against the truth reaches 1 / alpha then (each wealth is monotone in the mean tested),
    so the verdicts' crossings at the truth measure it."""
    found = simulated_crossings(binary, change, change, draws, horizon, seed, discordance)
    upper_held, lower_held = found.regression == 0, found.passed == 0
    return SequenceCoverage(
        float(np.mean(lower_held)), float(np.mean(upper_held)), float(np.mean(lower_held & upper_held))
    )


class FixedDesign(NamedTuple):
    """A fixed-n design: its items, the spread it assumes, and the drop it detects with 80% power at alpha."""

    items: int
    spread: float
    """The discordance (McNemar's test, 0/1 metrics) or the differences' sd (the permutation test)."""
    mde: float


def fixed_design(items: int = DESIGN_ITEMS, discordance: float = DISCORDANCE, alpha: float = ALPHA) -> FixedDesign:
    """The fixed McNemar design of ``items`` items at ``discordance``: its minimum detectable drop (``mcnemar_mde``).

    Raises:
        ValueError: the design cannot reach 80% power for any drop (five items or fewer at alpha 0.05).
    """
    mde = mcnemar_mde(items, discordance, alpha, POWER)
    if mde is None:
        raise ValueError(f"a fixed McNemar design of {items} items detects no drop at alpha {alpha}")
    return FixedDesign(items, discordance, mde)


def fixed_bounded_design(items: int = DESIGN_ITEMS, alpha: float = ALPHA) -> FixedDesign:
    """The fixed paired permutation design of ``items`` items for the bounded scores' differences
    (sd ``BOUNDED_SD``): its minimum detectable drop (``permutation_mde``).

    Raises:
        ValueError: the design cannot reach 80% power for any drop.
    """
    mde = permutation_mde(items, BOUNDED_SD, alpha, POWER)
    if mde is None:
        raise ValueError(f"a fixed permutation design of {items} items detects no drop at alpha {alpha}")
    return FixedDesign(items, BOUNDED_SD, mde)


def fixed_items(delta: float, discordance: float = DISCORDANCE, alpha: float = ALPHA) -> int | None:
    """The items the fixed-n McNemar test needs to detect a drop ``delta`` with 80% power (``mcnemar_items_needed``)."""
    return mcnemar_items_needed(delta, discordance, alpha, POWER)


class ItemsToVerdict(NamedTuple):
    """The sequential gate at one true change: items used, and how its runs ended."""

    change: float
    margin: float
    budget: int
    expected_items: float
    """Mean items evaluated until the first verdict, or the budget."""
    regression: float
    passed: float
    undecided: float


def items_to_verdict(
    change: float,
    margin: float,
    budget: int,
    draws: int,
    seed: int,
    *,
    binary: bool = True,
    chunk: int = 1,
    discordance: float = DISCORDANCE,
) -> ItemsToVerdict:
    """The sequential gate's expected items with a true ``change`` (scaled), looking every ``chunk`` items and at
    the budget, stopping at its first verdict (a regression where both first hold at the same look) or at
    ``budget``; 0/1 items at ``discordance``, or the skewed bounded scores."""
    found = simulated_crossings(binary, change, -margin, draws, budget, seed, discordance)
    seen = [np.where(first > 0, np.minimum(-(-first // chunk) * chunk, budget), budget + 1) for first in found]
    regression = (seen[0] <= budget) & (seen[0] <= seen[1])
    passed = (seen[1] <= budget) & (seen[1] < seen[0])
    used = np.minimum(np.minimum(*seen), budget)
    shares = (float(np.mean(regression)), float(np.mean(passed)), float(np.mean(~(regression | passed))))
    return ItemsToVerdict(change, margin, budget, float(np.mean(used)), *shares)


class ItemsRow(NamedTuple):
    """One row of the expected-items table: the sequential gate against a fixed design at one true drop."""

    multiple: float
    """The true drop as a multiple of the design's MDE."""
    design: FixedDesign
    sequential: ItemsToVerdict

    @property
    def ratio(self) -> float:
        """The sequential gate's expected items over the fixed design's."""
        return self.sequential.expected_items / self.design.items


def expected_items_table(
    design: FixedDesign,
    budget: int,
    draws: int,
    seed: int,
    *,
    binary: bool = True,
    chunk: int = 1,
    multiples: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0),
) -> list[ItemsRow]:
    """The sequential gate's expected items (margin 0) at true drops of each multiple of ``design``'s MDE, on 0/1
    items at the design's discordance or on the bounded scores, each row from its own seed (``seed`` + row)."""
    return [
        ItemsRow(
            multiple,
            design,
            items_to_verdict(
                -multiple * design.mde,
                0.0,
                budget,
                draws,
                seed + row,
                binary=binary,
                chunk=chunk,
                discordance=design.spread if binary else DISCORDANCE,
            ),
        )
        for row, multiple in enumerate(multiples)
    ]
