"""A task's signal-to-noise ratio over one training run's checkpoints, after Heineman et al. (2025), "Signal and
Noise: A Framework for Reducing Uncertainty in Language Model Evaluation" (arXiv 2508.13144).

The paper's signal is a benchmark's relative dispersion across models, the largest pairwise difference of their
scores over the mean score, and its noise the relative standard deviation of one run's last checkpoints; the
ratio tells whether a benchmark can separate the models at all. Adapted to choosing among one run's K checkpoints
evaluated on the same n items:

- signal = max_k mean_k − min_k mean_k, the largest pairwise difference of the checkpoints' means;
- noise = E[max_k e_k − min_k e_k], e ~ N(0, Σ): the largest pairwise difference that item sampling alone gives
  these checkpoints' means, Σ being the covariance of the means estimated from the items (the items' covariance
  matrix over n). It comes from the paired differences, so what the checkpoints share (an item every checkpoint
  gets right or wrong) is not noise; it is the same kind of quantity as the signal and the checkpoint-to-checkpoint
  spread the paper measures;
- SNR = signal / noise. The paper divides both by the mean score; the mean cancels in the ratio, which is
  therefore unit-free and comparable across the metrics of one task (accuracy, a per-item log-likelihood, a
  reward), and defined where a metric's mean is 0 or negative.

SNR < 1 (``cannot_rank``): the checkpoints differ by no more than noise alone would typically make them differ,
so these items cannot rank these checkpoints. It describes, it does not test: with no true difference SNR is about
1 and the flag is up about half the time; the could-be-best set (``simultaneous.py``) is the test. A continuous
per-item metric whose items the checkpoints share strongly (log-likelihood of the gold answer) often ranks
checkpoints that its 0/1 accuracy cannot.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

NOISE_DRAWS = 2000
"""Normal draws behind the noise's expected range."""


class SignalNoise(NamedTuple):
    """A run's checkpoints on one metric: how far apart they are, against how far apart noise puts them."""

    signal: float
    """max − min of the checkpoints' means, in the metric's units."""
    noise: float
    """The expected max − min of the means from item sampling alone, in the metric's units."""
    snr: float
    """signal / noise (inf where nothing is noisy but the means differ, 0 where nothing differs at all)."""
    cannot_rank: bool
    """SNR < 1: these items cannot rank these checkpoints."""
    mean: float
    """The mean over checkpoints: divide signal and noise by it for the paper's relative dispersion and noise."""


def expected_range(covariance: np.ndarray, seed: int, draws: int = NOISE_DRAWS) -> float:
    """E[max − min] of a normal vector with mean 0 and ``covariance``, by ``draws`` seeded draws (exact for two)."""
    k = covariance.shape[0]
    if k == 2:
        return math.sqrt(max(float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]), 0.0) * 2 / math.pi)
    # The range ignores a shift common to every coordinate: draw the differences from the first, whose covariance
    # is exactly 0 where the checkpoints' scores are identical (the full covariance's rounding would leave ~1e-9).
    contrast = np.hstack([-np.ones((k - 1, 1)), np.eye(k - 1)])
    eigen, basis = np.linalg.eigh(contrast @ covariance @ contrast.T)
    root = basis * np.sqrt(np.maximum(eigen, 0.0))
    differences = np.random.default_rng(seed).standard_normal((draws, k - 1)) @ root.T
    values = np.hstack([np.zeros((draws, 1)), differences])
    return float(np.mean(values.max(axis=1) - values.min(axis=1)))


def signal_to_noise(scores: ArrayLike, seed: int = 0) -> SignalNoise:
    """The signal-to-noise ratio of K checkpoints' per-item scores (see the module's notes).

    Args:
        scores: per-item scores, one row per checkpoint (K ≥ 2), one column per item (n ≥ 2), items aligned;
            0/1 or continuous, in either direction (the range does not depend on it).
        seed: the seed of the noise's normal draws.

    Raises:
        ValueError: fewer than two checkpoints or items, or values that are not finite.
    """
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 2:
        raise ValueError(f"signal to noise needs at least 2 checkpoints × 2 items, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("scores hold NaN or infinite values; drop or rescore those items first")
    means = matrix.mean(axis=1)
    signal = float(np.ptp(means))
    noise = expected_range(np.atleast_2d(np.cov(matrix)) / matrix.shape[1], seed)
    tiny = 1e-12 * (1.0 + float(np.max(np.abs(means))))
    snr = (math.inf if signal > tiny else 0.0) if noise <= tiny else signal / noise
    return SignalNoise(signal, noise, snr, snr < 1.0, float(means.mean()))
