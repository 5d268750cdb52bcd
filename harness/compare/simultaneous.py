"""Selection-adjusted intervals and the could-be-best set, from one paired bootstrap over items.

Each resample draws n items with replacement and keeps every checkpoint's and the baseline's score of an item
together (Efron & Tibshirani 1993, ch. 6), so the strong correlation between checkpoints evaluated on the same
items is kept; both constructions below read the same resamples.

- **Every checkpoint's gain over the baseline**, simultaneously: the single-step max-|t| interval (Westfall &
  Young 1993, §2.6; Romano & Wolf 2005, §4), studentized in every resample (the bootstrap-t, Hall 1992, ch. 3).
  All K intervals hold together with probability 1 − alpha (as the bootstrap does, in large samples; measured
  from 16 items up, ``selection.py``), so the interval of whichever checkpoint is picked
  afterwards, by any rule, holds its true gain at least that often: selection cannot bias it. Its critical value
  is kept between the single interval's Student t quantile and Bonferroni's, the bounds it has in theory.
- **Could be best**: multiple comparisons with the best (Hsu 1981, 1984; Hsu 1996, ch. 4), Gupta's (1965) subset
  rule with a bootstrap critical value per reference checkpoint: checkpoint k stays unless some j beats it by more
  than c_k standard errors of their paired difference, where c_k is the 1 − alpha quantile of the largest
  studentized deviation of the others against k. If the true best b were dropped, some j would beat b by more than
  c_b standard errors although it is not better, which happens at most alpha of the time; so the set holds the
  true best with probability at least 1 − alpha (where several tie for best it needs to hold only one). The
  resampled pairwise deviations are scaled by the observed standard errors (studentizing each of the K² pairs in
  every resample would cost K² × n per resample), so for few items they are corrected as Student's t corrects the
  normal: the deviations are scaled by √(n / (n − 1)) (the bootstrap's variance is (n − 1) / n of the unbiased
  one) and their quantile, read on the normal scale, is mapped to Student t's with n − 1 degrees of freedom
  (measured: without this, 92% coverage at n = 16, K = 20; with it 97%). c_k is then kept between the one-sided
  Student t quantile and Bonferroni's over the K − 1 others.

Where the paired differences of a 0/1 metric vary less than one gained and one lost item would make them vary
(2 / n), that variance is used instead (an interval of about ±3 / n where no item flipped, the rule of three);
where continuous differences do not vary at all, the spread of independent errors is used, as in
``statistics.paired_spread``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

from ftbench.harness.compare.intervals import Interval

RESAMPLES = 2000
"""Bootstrap resamples of the items."""
CHUNK = 250
"""Resamples drawn and multiplied at a time (bounds memory at large n)."""


def resample_counts(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """How often each of ``n`` items is drawn in each bootstrap resample, ``CHUNK`` resamples at a time."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, CHUNK):
        rows = min(CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        yield np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(float)


def floored_variance(variance: np.ndarray, independent: np.ndarray, binary: bool, n: int) -> np.ndarray:
    """Per-item variances of paired differences, floored (see the module's notes)."""
    if binary:
        return np.maximum(variance, 2.0 / n)
    scale = np.maximum(np.abs(variance), np.abs(independent))
    return np.where(variance > 1e-12 * (1.0 + scale), variance, independent)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top / bottom``, and 0 where ``bottom`` is 0 (nothing varies: the deviation is 0 too)."""
    return np.divide(top, bottom, out=np.zeros(np.broadcast(top, bottom).shape), where=bottom > 0)


class BootstrapPass(NamedTuple):
    """What the resamples say: each resample's studentized largest gain deviation and centred mean gains."""

    max_t: np.ndarray
    """Per resample, max over checkpoints of |mean* − mean| / standard error*."""
    centred: np.ndarray
    """Per resample and checkpoint (resamples × K), mean gain* − mean gain."""


def bootstrap_pass(gains: np.ndarray, floors: np.ndarray, binary: bool, resamples: int, seed: int) -> BootstrapPass:
    """One pass over the resamples of the per-item gains (K × n, checkpoint − baseline).

    Args:
        gains: per-item paired differences, one row per checkpoint.
        floors: the variance each row falls back to where its resampled differences do not vary.
        binary: whether the scores are 0/1 (their variances are floored at 2 / n).
        resamples: how many resamples.
        seed: the resamples' seed.
    """
    n = gains.shape[1]
    means = gains.mean(axis=1)
    moments = np.vstack([gains, gains**2]).T
    max_t, centred = [], []
    for counts in resample_counts(n, resamples, seed):
        first, second = np.split(counts @ moments / n, 2, axis=1)
        variance = np.maximum(second - first**2, 0.0) * n / (n - 1)
        errors = np.sqrt(floored_variance(variance, floors, binary, n) / n)
        max_t.append(np.max(np.abs(_ratio(first - means, errors)), axis=1))
        centred.append(first - means)
    return BootstrapPass(np.concatenate(max_t), np.vstack(centred))


def quantile_bounds(alpha: float, comparisons: int, n: int, two_sided: bool) -> tuple[float, float]:
    """One comparison's Student t quantile and Bonferroni's over ``comparisons`` (n − 1 degrees of freedom): the
    bounds a max-t critical value has in theory."""
    tail = alpha / 2 if two_sided else alpha
    low, high = student_t.ppf([1 - tail, 1 - tail / max(comparisons, 1)], n - 1)
    return float(low), float(high)


def clamped_quantile(values: np.ndarray, alpha: float, bounds: tuple[float, float]) -> float:
    """The 1 − ``alpha`` quantile of ``values`` kept within ``bounds`` (``quantile_bounds``)."""
    return min(max(float(np.quantile(values, 1 - alpha, method="higher")), bounds[0]), bounds[1])


def t_scaled(quantiles: np.ndarray, n: int) -> np.ndarray:
    """Quantiles of deviations scaled by observed standard errors, corrected for n items as Student's t corrects
    the normal (see the module's notes)."""
    return student_t.ppf(norm.cdf(quantiles * np.sqrt(n / (n - 1))), n - 1)


class SimultaneousGains(NamedTuple):
    """Every checkpoint's gain over the baseline with intervals that hold together."""

    intervals: tuple[Interval, ...]
    critical: float
    """The max-|t| critical value: each interval is the mean gain ± critical × its standard error."""


def simultaneous_gains(
    gains: np.ndarray, floors: np.ndarray, binary: bool, alpha: float, bootstrap: BootstrapPass
) -> SimultaneousGains:
    """The max-|t| simultaneous 1 − ``alpha`` intervals of each row's mean of ``gains`` (see the module's notes)."""
    k, n = gains.shape
    means = gains.mean(axis=1)
    errors = np.sqrt(floored_variance(gains.var(axis=1, ddof=1), floors, binary, n) / n)
    critical = clamped_quantile(bootstrap.max_t, alpha, quantile_bounds(alpha, k, n, two_sided=True))
    intervals = tuple(
        Interval(float(m - critical * e), float(m + critical * e)) for m, e in zip(means, errors, strict=True)
    )
    return SimultaneousGains(intervals, critical)


def pairwise_errors(scores: np.ndarray, binary: bool) -> np.ndarray:
    """The standard errors of every pair of checkpoints' paired mean difference (K × K, 0 on the diagonal)."""
    n = scores.shape[1]
    covariance = np.atleast_2d(np.cov(scores))
    single = np.diag(covariance)
    variance = single[:, None] + single[None, :] - 2 * covariance
    errors = np.sqrt(floored_variance(np.maximum(variance, 0.0), single[:, None] + single[None, :], binary, n) / n)
    np.fill_diagonal(errors, 0.0)
    return errors


class CouldBeBest(NamedTuple):
    """The checkpoints that cannot be told apart from the best at alpha."""

    members: tuple[int, ...]
    critical: tuple[float, ...]
    """Per reference checkpoint, c_k: how many standard errors another must beat it by to rule it out."""


def could_be_best(oriented: np.ndarray, errors: np.ndarray, centred: np.ndarray, alpha: float, n: int) -> CouldBeBest:
    """Hsu's multiple comparisons with the best with bootstrap critical values (see the module's notes).

    Args:
        oriented: each checkpoint's mean, signed so that higher is better.
        errors: ``pairwise_errors`` of the checkpoints.
        centred: the resampled means less the observed ones (resamples × K), signed as ``oriented``.
        alpha: the chance of leaving the true best out.
        n: items.
    """
    k = len(oriented)
    quantiles = np.empty(k)
    for reference in range(k):
        others = np.delete(np.arange(k), reference)
        deviation = _ratio(centred[:, others] - centred[:, [reference]], errors[reference, others][None, :])
        quantiles[reference] = np.quantile(deviation.max(axis=1), 1 - alpha, method="higher")
    critical = np.clip(t_scaled(quantiles, n), *quantile_bounds(alpha, k - 1, n, two_sided=False))
    lead = oriented[:, None] - oriented[None, :] + critical[:, None] * errors
    tolerance = 1e-12 * (1.0 + np.max(np.abs(oriented)))
    members = tuple(int(i) for i in np.flatnonzero(np.all(lead >= -tolerance, axis=1)))
    return CouldBeBest(members, tuple(float(c) for c in critical))
