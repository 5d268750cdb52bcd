"""The sequential gate's statistics: anytime-valid confidence sequences for a mean paired difference, and the
verdicts they give however often they are looked at.

The candidate is evaluated on the baseline's items in a seeded random order; d_i = candidate_i − baseline_i is
oriented so that positive is better and bounded, |d_i| ≤ B. Two one-sided betting processes, each at alpha
(``betting.py``: the average wealth of constant stakes on d / B; Waudby-Smith & Ramdas, "Estimating means of
bounded random variables by betting", JRSS-B 2024; Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Stat. 2021), give after each item an upper and a lower
bound of the true mean difference, intersected over time so that each only tightens. With a largest allowed drop
``margin``:

- **regression** once the upper sequence lies below −margin: with a true mean change ≥ −margin this happens at
  any time, over the whole sequence, with probability at most alpha;
- **pass** (non-inferior) once the lower sequence lies above −margin: with a true change ≤ −margin, at most alpha;
- **undecided** when neither has happened by the budget; ``detectable_drop`` says what the budget could detect.

Each one-sided sequence covers the truth at every time at once with probability at least 1 − alpha (the two
together 1 − 2·alpha). Looking after every item or after chunks changes nothing but when a verdict is seen. The
guarantees are for the mean of the distribution the items are drawn from, as the fixed-n tests' are; a seeded
random order of i.i.d. items is again i.i.d. Everything is a deterministic function of the ordered differences,
so a resumed run that replays its stored items reaches the same path and verdict.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from ftbench.harness.compare.betting import confidence_bound, log_wealth
from ftbench.harness.compare.levels import ALPHA, POWER
from ftbench.harness.compare.sequential_power import smallest_detected_drop

FEWEST_SEARCHED = 20_000
"""``fewest_items`` looks no further than this many items."""

Decision = Literal["regression", "pass", "undecided", "continue"]
"""``continue``: no verdict yet and the budget is not spent; evaluate the next chunk."""


class SequencePath(NamedTuple):
    """After each item, in the metric's scale: the mean difference and the confidence sequence's two bounds."""

    estimate: np.ndarray
    lower: np.ndarray
    """Nondecreasing; below the true mean at every time at once with probability at least 1 − alpha."""
    upper: np.ndarray
    """Nonincreasing; above the true mean at every time at once with probability at least 1 − alpha."""


class VerdictPath(NamedTuple):
    """After each item, whether each verdict holds by then (each, once true, stays true)."""

    regression: np.ndarray
    passed: np.ndarray


class FewestItems(NamedTuple):
    """The fewest items after which each verdict can hold at all; None beyond ``FEWEST_SEARCHED``."""

    regression: int | None
    passed: int | None


class SequentialVerdict(NamedTuple):
    """The sequential gate's verdict on one metric, in the metric's scale."""

    decision: Decision
    items: int
    """Items evaluated when the verdict was reached (the look that saw it), or so far."""
    estimate: float
    lower: float
    """The sequence at ``items``; for bounded scores rounded outwards by up to about 2e-5 of B (``betting.py``),
    so a verdict reached right at the margin can show a bound on it."""
    upper: float
    detectable_drop: float | None
    """For ``undecided``: the drop the budget would have called a regression with 80% probability
    (``detectable_drop``); None otherwise, or where no drop within the bound would have been."""


def checked_differences(differences: np.ndarray | list[float], bound: float, binary: bool) -> np.ndarray:
    """The differences scaled to [−1, 1], after checking them.

    Raises:
        ValueError: the bound is not positive, a difference is not a finite number within ±bound, or a 0/1
            metric's difference is not −bound, 0 or bound.
    """
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"bound {bound} must be a positive number: the largest possible |candidate − baseline|")
    values = np.asarray(differences, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"differences must be one sequence of numbers, not an array of shape {values.shape}")
    outside = np.flatnonzero(~(np.abs(values) <= bound * (1 + 1e-12)))
    if outside.size:
        item = int(outside[0])
        raise ValueError(
            f"difference {values[item]} at item {item} lies outside [−{bound}, {bound}]: give the metric's bound B "
            "so that every paired difference lies within ±B"
        )
    scaled = np.clip(values / bound, -1.0, 1.0)
    odd = np.flatnonzero(~np.isin(scaled, (-1.0, 0.0, 1.0)))
    if binary and odd.size:
        item = int(odd[0])
        raise ValueError(f"difference {values[item]} at item {item} of a 0/1 metric must be −{bound}, 0 or {bound}")
    return scaled


def _check_level(alpha: float, margin: float, bound: float) -> None:
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"bound {bound} must be a positive number: the largest possible |candidate − baseline|")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must be a level between 0 and 1, such as 0.05")
    if not 0 <= margin < bound:
        raise ValueError(f"margin {margin} must be at least 0 and below the bound {bound}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} {value!r} must be a whole number of items, at least 1")


def confidence_sequence(
    differences: np.ndarray | list[float], bound: float, *, binary: bool = False, alpha: float = ALPHA
) -> SequencePath:
    """The confidence sequence of the mean difference after each item (running intersection of each side).

    Args:
        differences: the paired differences in evaluation order, oriented so that positive is better.
        bound: B, with every difference in [−B, B].
        binary: whether it is a 0/1 metric (differences −B, 0 or B).
        alpha: each side's level.

    Raises:
        ValueError: a difference outside ±bound (or not −B, 0, B for a 0/1 metric), or alpha not in (0, 1).
    """
    scaled = checked_differences(differences, bound, binary)
    _check_level(alpha, 0.0, bound)
    if scaled.size == 0:
        return SequencePath(np.zeros(0), np.zeros(0), np.zeros(0))
    upper = np.minimum.accumulate(confidence_bound(scaled, alpha, "below", binary))
    lower = np.maximum.accumulate(confidence_bound(scaled, alpha, "above", binary))
    estimate = np.cumsum(scaled) / np.arange(1, scaled.size + 1)
    return SequencePath(estimate * bound, lower * bound, upper * bound)


def verdict_path(
    differences: np.ndarray | list[float],
    bound: float,
    *,
    margin: float = 0.0,
    binary: bool = False,
    alpha: float = ALPHA,
) -> VerdictPath:
    """After each item, whether the regression and the pass verdicts hold: whether the upper (lower) sequence
    has by then gone below (above) −``margin``, read from the betting wealth at −margin itself (milliseconds for
    thousands of items).

    Raises:
        ValueError: as ``confidence_sequence``, or a margin outside [0, bound).
    """
    scaled = checked_differences(differences, bound, binary)
    _check_level(alpha, margin, bound)
    if scaled.size == 0:
        return VerdictPath(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    tested, threshold = -margin / bound, np.log(1 / alpha)
    regression = np.logical_or.accumulate(log_wealth(scaled, tested, "below", binary) >= threshold)
    passed = np.logical_or.accumulate(log_wealth(scaled, tested, "above", binary) >= threshold)
    return VerdictPath(regression, passed)


def sequential_verdict(
    differences: np.ndarray | list[float],
    bound: float,
    *,
    budget: int,
    margin: float = 0.0,
    binary: bool = False,
    alpha: float = ALPHA,
    chunk: int = 1,
) -> SequentialVerdict:
    """The gate's verdict, looking after every ``chunk`` items and at the ``budget``: the first look at which a
    verdict holds decides (a regression where both first hold at the same look); none by the budget is
    ``undecided``, none yet ``continue``.

    Args:
        differences: the paired differences evaluated so far, in order (at most ``budget``).
        bound: B, with every difference in [−B, B].
        budget: the most items the gate may evaluate.
        margin: the largest allowed drop, in the metric's scale (0: none).
        binary: whether it is a 0/1 metric.
        alpha: the level of each verdict's error.
        chunk: items evaluated between looks.

    Raises:
        ValueError: bad differences, margin or alpha (as ``verdict_path``), a budget or chunk below 1, or more
            differences than the budget.
    """
    _check_count("budget", budget)
    _check_count("chunk", chunk)
    if len(differences) > budget:
        raise ValueError(f"{len(differences)} differences exceed the budget of {budget} items")
    path = verdict_path(differences, bound, margin=margin, binary=binary, alpha=alpha)
    looks = list(range(chunk, len(differences) + 1, chunk))
    if len(differences) == budget and budget not in looks:
        looks.append(budget)
    decision: Decision = "continue" if len(differences) < budget else "undecided"
    items = len(differences)
    for look in looks:
        if path.regression[look - 1] or path.passed[look - 1]:
            decision, items = ("regression" if path.regression[look - 1] else "pass"), look
            break
    if items == 0:
        return SequentialVerdict(decision, 0, 0.0, -bound, bound, None)
    sequence = confidence_sequence(differences[:items], bound, binary=binary, alpha=alpha)
    drop = None
    if decision == "undecided":
        drop = detectable_drop(differences, bound, budget=budget, margin=margin, binary=binary, alpha=alpha)
    return SequentialVerdict(
        decision, items, float(sequence.estimate[-1]), float(sequence.lower[-1]), float(sequence.upper[-1]), drop
    )


def detectable_drop(
    differences: np.ndarray | list[float],
    bound: float,
    *,
    budget: int,
    margin: float = 0.0,
    binary: bool = False,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float | None:
    """The smallest true drop the gate would call a regression by the ``budget`` with probability ``power``, at the
    discordance (0/1 metrics) or spread (bounded scores) observed so far; None where no drop up to the bound would.

    A drop counts as detected when the mean difference's ``power`` quantile at the budget (the outcome a drop of
    that size beats with probability ``power``) still puts the upper sequence below −margin there
    (``sequential_power.py``). Crossings before the budget only add chances, so the probability of a regression
    by the budget at the drop returned is about ``power`` or more (measured in ``tests/test_sequential.py``).

    Raises:
        ValueError: as ``sequential_verdict``, or no differences to read the spread from.
    """
    scaled = checked_differences(differences, bound, binary)
    _check_level(alpha, margin, bound)
    _check_count("budget", budget)
    if not 0 < power < 1:
        raise ValueError(f"power {power} must be a probability between 0 and 1, such as 0.8")
    if scaled.size == 0:
        raise ValueError("detectable_drop needs at least one difference to read the discordance or spread from")
    drop = smallest_detected_drop(scaled, budget, -margin / bound, binary, alpha, power)
    return None if drop is None else drop * bound


def fewest_items(bound: float, *, margin: float = 0.0, binary: bool = False, alpha: float = ALPHA) -> FewestItems:
    """The fewest items before each verdict is possible: the regression's when every item loses the whole bound,
    the pass's when every item gains it (no budget or chunk can decide sooner).

    Raises:
        ValueError: a bound that is not positive, a margin outside [0, bound), or alpha not in (0, 1).
    """
    _check_level(alpha, margin, bound)
    extreme = np.full(FEWEST_SEARCHED, float(bound))
    lost = verdict_path(-extreme, bound, margin=margin, binary=binary, alpha=alpha).regression
    gained = verdict_path(extreme, bound, margin=margin, binary=binary, alpha=alpha).passed
    return FewestItems(*(int(np.argmax(held)) + 1 if held.any() else None for held in (lost, gained)))
