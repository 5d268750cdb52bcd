"""The probability that each checkpoint is truly the best, and its mean with the winner's curse shrunk out.

The checkpoints' means are modelled as a hierarchical normal model (Gelman et al. 2013, BDA3 §5.4-5.7): the
observed means are the true ones plus normal noise with the covariance their items imply (paired items make it far
from diagonal), and the true means are exchangeable, drawn around a common level (flat prior) with spread τ. Only
differences between checkpoints matter, so the model is fitted on the K − 1 orthonormal contrasts of the means,
where the level drops out (the restricted likelihood, Patterson & Thompson 1971) and the true contrasts are
N(0, τ²·I). τ is integrated over a grid from its exact marginal likelihood, the true contrasts are drawn from their
normal posterior given each τ, and P(best) is the share of draws in which each checkpoint is the highest (Laird &
Louis 1989, rank posteriors).

- The contrasts' noise covariance is estimated from the items and shrunk toward its average eigenvalue (Ledoit &
  Wolf 2004): with K close to n the sample covariance's small eigenvalues are too small, which would pass noise
  off as spread between checkpoints and make P(best) over-confident (measured: a gap of 0.11 at K = 20, n = 100
  without it).
- For a 0/1 metric the contrasts' covariance gets a ridge of 2 / n²: every difference of two checkpoints' means
  varies as if two more items had gone each way, pseudo-counts in the manner of Agresti & Min (2005) for matched
  pairs. It keeps identical checkpoints uncertain, and it is the small-sample correction that calibration needed:
  without it P(best) was over-confident at n = 100 (a binned gap of 0.10 at K = 10), with it within a few points;
  it fades as 1 / n.
- τ's prior is half-Cauchy with scale the noise σ_d, the root mean square standard error of a paired
  difference between two checkpoints (Gelman 2006 recommends the half-Cauchy for a group-level spread): a priori
  the checkpoints' true spread is about the size of what these items can resolve, with a heavy tail for runs
  whose checkpoints differ by much more, where the data then dominate.

Why not the share of bootstrap resamples in which each is best: that share treats the observed means as the truth,
and the observed maximum is the most favourably wrong of K (the winner's curse, Efron 2011), so it is
over-confident; the hierarchical model learns from the K means how far apart the true ones are and shrinks the
leader back accordingly. ``calibration_selection.py`` measures both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import null_space

GRID = 120
"""Points of τ's grid, geometric from σ_d / 300 to 50·σ_d plus the means' range."""
DRAWS = 4000
"""Posterior draws of the true contrasts."""
PRIOR_SCALE = 1.0
"""τ's half-Cauchy scale, in units of σ_d."""
RIDGE = 2.0
"""0/1 metrics: the ridge of the contrasts' covariance, in units of 1 / n²."""


class BestPosterior(NamedTuple):
    """What the hierarchical model says about the checkpoints' true means."""

    probabilities: np.ndarray
    """P(best) per checkpoint; sums to 1."""
    shrunken: np.ndarray
    """Posterior mean of each checkpoint's true mean, signed as the input (higher is better)."""


def contrast_noise(oriented_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The orthonormal contrasts (K − 1 × K) and the shrunk covariance of the contrasts' means (see the module's
    notes)."""
    k, n = oriented_scores.shape
    contrasts = null_space(np.ones((1, k))).T
    items = contrasts @ oriented_scores
    centred = items - items.mean(axis=1, keepdims=True)
    sample = centred @ centred.T / n
    target = float(np.trace(sample)) / (k - 1)
    distance = float(np.sum((sample - target * np.eye(k - 1)) ** 2))
    fourth = float(np.sum(np.sum(centred**2, axis=0) ** 2))
    spread = min(fourth / n**2 - float(np.sum(sample**2)) / n, distance)
    weight = spread / distance if distance > 0 else 1.0
    return contrasts, (weight * target * np.eye(k - 1) + (1 - weight) * sample) / (n - 1)


def _tau_grid(noise: float, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """τ's grid and prior weights (half-Cauchy density times each point's width) for noise σ_d."""
    tau = np.geomspace(noise / 300, 50 * noise + float(np.ptp(y)), GRID)
    return tau, np.gradient(tau) / (1 + (tau / (PRIOR_SCALE * noise)) ** 2)


def best_posterior(oriented_scores: np.ndarray, binary: bool, seed: int) -> BestPosterior:
    """P(best) and shrunken means under the hierarchical normal model (see the module's notes).

    Args:
        oriented_scores: per-item scores, one row per checkpoint, signed so that higher is better.
        binary: whether the metric is 0/1.
        seed: the posterior draws' seed.
    """
    k, n = oriented_scores.shape
    means = oriented_scores.mean(axis=1)
    contrasts, covariance = contrast_noise(oriented_scores)
    eigen, basis = np.linalg.eigh(covariance)
    eigen = np.maximum(eigen, 0.0) + (RIDGE / n**2 if binary else 0.0)
    noise = float(np.sqrt(2 * eigen.mean()))  # σ_d: a difference of two means is √2 contrast units
    if not noise > 1e-12 * (1.0 + float(np.max(np.abs(means)))):  # nothing varies: the means are the truth
        best = means >= means.max() - 1e-12 * (1.0 + abs(float(means.max())))
        return BestPosterior(best / best.sum(), means)
    y = basis.T @ (contrasts @ means)
    tau, prior = _tau_grid(noise, y)
    total = eigen[None, :] + tau[:, None] ** 2
    log_like = -0.5 * (np.log(total).sum(axis=1) + (y[None, :] ** 2 / total).sum(axis=1))
    weights = prior * np.exp(log_like - log_like.max())
    weights /= weights.sum()
    keep = tau[:, None] ** 2 / total
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(tau), size=DRAWS, p=weights)
    spread = np.sqrt(eigen[None, :] * keep[pick]) * rng.standard_normal((DRAWS, k - 1))
    draws = (keep[pick] * y[None, :] + spread) @ (contrasts.T @ basis).T
    probabilities = np.bincount(np.argmax(draws, axis=1), minlength=k) / DRAWS
    shrunken = means.mean() + (contrasts.T @ basis) @ (weights @ keep * y)
    return BestPosterior(probabilities, shrunken)
