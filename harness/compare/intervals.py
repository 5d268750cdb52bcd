"""Confidence intervals that hold their level, each construction with its reference.

- A 0/1 mean: Clopper & Pearson (1934), exact: every one-sided miss is at most its tail for every true value,
  and an all-correct sample still gets a lower bound below 1.
- The paired difference of a 0/1 metric, (gained − lost) / n: the box of two exact Clopper-Pearson intervals,
  one for the flip share ψ (items that changed) and one, conditional on the flips, for the flip direction π
  (the share of flips that went wrong → right). The difference is ψ·(2π − 1); each side of the interval takes
  the box's corner that bounds it, so the interval contains its estimate, and by Bonferroni each one-sided
  miss is at most the sum of the two pieces' tails, each half the side's tail. Exact enumeration measures the
  worst miss at about half the nominal tail (README, statistics).
- A mean of continuous scores and a paired difference of them: Student's t, exact for normal data (Student
  1908); measured at its level also for heavy-tailed (t₃) data, while strongly skewed data miss on the long side.
- A corpus metric and a paired difference of two: the jackknife standard error (Efron & Tibshirani 1993, ch. 11)
  with a Student t quantile at an effective number of degrees of freedom estimated from the leave-one-out
  values, Satterthwaite's (Σ e²)² / Σ e⁴ − 1 (capped at n − 1): documents of very different sizes weigh
  unequally, and t at n − 1 degrees of freedom then under-covers (measured 90% at 4 documents).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta
from scipy.stats import t as student_t

from ftbench.harness.compare.levels import ALPHA, CONFIDENCE

T = TypeVar("T")


class Interval(NamedTuple):
    """A confidence interval."""

    low: float
    high: float


UNBOUNDED = Interval(-math.inf, math.inf)
"""What one item (or none) says about a mean of continuous scores."""


def exact_lower(successes: ArrayLike, trials: ArrayLike, tail: float) -> np.ndarray:
    """Clopper-Pearson lower bounds that miss with probability at most ``tail`` (0 where there is no success)."""
    k, n = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    with np.errstate(all="ignore"):
        bound = beta.ppf(tail, k, n - k + 1)
    return np.where(k <= 0, 0.0, bound)


def exact_upper(successes: ArrayLike, trials: ArrayLike, tail: float) -> np.ndarray:
    """Clopper-Pearson upper bounds that miss with probability at most ``tail`` (1 where every trial succeeded)."""
    k, n = np.asarray(successes, dtype=float), np.asarray(trials, dtype=float)
    with np.errstate(all="ignore"):
        bound = beta.ppf(1 - tail, k + 1, n - k)
    return np.where(k >= n, 1.0, bound)


def clopper_pearson(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The exact interval of a 0/1 mean: ``successes`` of ``n``."""
    if n <= 0:
        return Interval(0.0, 1.0)
    tail = (1 - confidence) / 2
    return Interval(float(exact_lower(successes, n, tail)), float(exact_upper(successes, n, tail)))


def paired_binary_bounds(
    gained: ArrayLike, lost: ArrayLike, n: int, confidence: float = 1 - 2 * ALPHA
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of (gained − lost) / n for arrays of outcomes (the box; see the module's notes).

    Args:
        gained: items wrong → right, per outcome.
        lost: items right → wrong, per outcome.
        n: paired items.
        confidence: two-sided coverage; each side misses with probability at most (1 − confidence) / 2.
    """
    g, lost_ = np.asarray(gained, dtype=float), np.asarray(lost, dtype=float)
    flips = g + lost_
    piece = (1 - confidence) / 4  # each side's tail, split evenly between the flip share and the direction
    share_low, share_high = exact_lower(flips, n, piece), exact_upper(flips, n, piece)
    some = np.maximum(flips, 1)
    direction_low = np.where(flips == 0, -1.0, 2 * exact_lower(g, some, piece) - 1)
    direction_high = np.where(flips == 0, 1.0, 2 * exact_upper(g, some, piece) - 1)
    low = np.where(direction_low >= 0, share_low * direction_low, share_high * direction_low)
    high = np.where(direction_high >= 0, share_high * direction_high, share_low * direction_high)
    return low, high


def paired_binary_interval(gained: int, lost: int, n: int, confidence: float = 1 - 2 * ALPHA) -> Interval:
    """The exact interval of a 0/1 metric's paired difference (gained − lost) / n (see the module's notes).

    With no flips among n items the difference is still only known within ±(1 − t^(1/n)), t the flip share's
    tail, so a handful of items cannot prove equivalence.
    """
    if n <= 0:
        return Interval(-1.0, 1.0)
    low, high = paired_binary_bounds(gained, lost, n, confidence)
    return Interval(float(low), float(high))


def student_interval(estimate: float, stderr: float, df: float, confidence: float = CONFIDENCE) -> Interval:
    """``estimate`` ± the Student t quantile at ``df`` degrees of freedom times ``stderr``."""
    if df < 1 or not math.isfinite(stderr):
        return UNBOUNDED
    half = float(student_t.ppf(1 - (1 - confidence) / 2, df)) * stderr
    return Interval(estimate - half, estimate + half)


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Student's t interval of a mean: exact for normal data; unbounded for fewer than two values."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return UNBOUNDED
    return student_interval(
        float(data.mean()), float(data.std(ddof=1)) / math.sqrt(len(data)), len(data) - 1, confidence
    )


def mean_interval(values: Sequence[float], binary: bool, confidence: float = CONFIDENCE) -> Interval:
    """The interval of a mean of per-sample scores: Clopper-Pearson for a 0/1 metric, Student's t otherwise."""
    if binary:
        return clopper_pearson(sum(1 for v in values if v >= 0.5), len(values), confidence)
    return t_interval(values, confidence)


class JackknifeError(NamedTuple):
    """A jackknife standard error and the degrees of freedom its t quantile uses."""

    stderr: float
    df: float


def jackknife_error(leave_one_out: np.ndarray) -> JackknifeError:
    """The jackknife standard error from the leave-one-out values, and Satterthwaite's effective degrees of
    freedom (Σ e²)² / Σ e⁴ − 1 of its deviations e, capped at n − 1 (see the module's notes)."""
    n = len(leave_one_out)
    if n < 2:
        return JackknifeError(math.inf, 0.0)
    deviations = leave_one_out - leave_one_out.mean()
    squares = deviations**2
    stderr = math.sqrt((n - 1) / n * float(squares.sum()))
    if stderr <= 1e-9 * (1.0 + float(np.max(np.abs(leave_one_out)))):  # equal but for rounding
        return JackknifeError(0.0, n - 1.0)
    df = float(squares.sum() ** 2 / (squares**2).sum()) - 1
    return JackknifeError(stderr, min(max(df, 1.0), n - 1.0))


def leave_one_out(metric: Callable[[Sequence[T]], float], samples: Sequence[T]) -> np.ndarray:
    """``metric`` of ``samples`` without each one in turn."""
    items = list(samples)
    return np.array([metric(items[:i] + items[i + 1 :]) for i in range(len(items))])


def corpus_interval(
    metric: Callable[[Sequence[T]], float], samples: Sequence[T], confidence: float = CONFIDENCE
) -> Interval:
    """The jackknife t interval of a corpus-level metric (see the module's notes); unbounded below two samples."""
    if len(samples) < 2:
        return UNBOUNDED
    error = jackknife_error(leave_one_out(metric, samples))
    return student_interval(metric(list(samples)), error.stderr, error.df, confidence)
