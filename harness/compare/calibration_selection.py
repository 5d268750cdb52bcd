"""The simulations that check ``select_checkpoint``'s claims: the adjusted interval's coverage of the selected
checkpoint's true gain (beside the naive interval's), the could-be-best set's coverage of the true best, and how
well P(best) is calibrated (beside the bootstrap share it replaces). Same arguments, same numbers.

A run is simulated on n items as 0/1 scores with known true accuracies through a Gaussian copula (a Thurstone
model): item i has a difficulty z_i ~ N(0, 1) shared by every model, each model a noise w_ki that is an AR(1)
chain over the baseline and then the checkpoints in step order (neighbouring checkpoints answer alike), and model
k gets item i right when √ρ·z_i + √(1 − ρ)·w_ki < Φ⁻¹(p_k): exactly p_k of the item population. True gains are
p_k − p_0; the true best is the checkpoint of highest p_k.

True accuracies are drawn at random per run (``TRUTHS``), baseline p_0 ~ U(0.3, 0.6):

- ``curve``: a rising training curve with noise, p_k = p_0 + g·(1 − exp(−k / T)) + σ·ε_k, k = 1..K, with
  g ~ U(0, 0.2), T ~ U(0.5, K / 2), σ ~ U(0, 0.03), ε_k ~ N(0, 1);
- ``uniform``: p_k ~ U(c − w / 2, c + w / 2) independently, c = p_0 + U(0, 0.1), w ~ U(0, 0.1);
- ``equal``: every checkpoint at p_0 + U(0, 0.1). Every checkpoint is then best, so the could-be-best set always
  holds one, and P(best)'s calibration credits each with 1 / K;
- ``slippage``: every checkpoint at p_0 + U(0, 0.1) but one, drawn at random, 0.01 higher: the hardest case for the
  could-be-best set, whose one true best is hardly ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.stats import norm

from ftbench.harness.compare.best_posterior import best_posterior
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.selection import Kind, select_checkpoint
from ftbench.harness.compare.simultaneous import resample_counts

SHARED = 0.5
"""ρ: the share of an item's latent score that its difficulty explains."""
NEIGHBOUR = 0.7
"""The AR(1) coefficient between consecutive models' item noise."""
BINS = 10
"""Equal-width bins of P(best)."""


def curve_truth(rng: np.random.Generator, k: int) -> np.ndarray:
    """The baseline's and K checkpoints' true accuracies on a noisy rising curve (see the module's notes)."""
    start, gain = rng.uniform(0.3, 0.6), rng.uniform(0.0, 0.2)
    pace, wobble = rng.uniform(0.5, k / 2), rng.uniform(0.0, 0.03)
    steps = np.arange(1, k + 1)
    curve = start + gain * (1 - np.exp(-steps / pace)) + wobble * rng.standard_normal(k)
    return np.clip(np.concatenate([[start], curve]), 0.02, 0.98)


def uniform_truth(rng: np.random.Generator, k: int) -> np.ndarray:
    """The baseline's and K checkpoints' true accuracies, the checkpoints uniform in a range."""
    start = rng.uniform(0.3, 0.6)
    centre, width = start + rng.uniform(0.0, 0.1), rng.uniform(0.0, 0.1)
    return np.concatenate([[start], centre + width * (rng.uniform(size=k) - 0.5)])


def equal_truth(rng: np.random.Generator, k: int) -> np.ndarray:
    """The baseline's and K checkpoints' true accuracies, the checkpoints all equal."""
    start = rng.uniform(0.3, 0.6)
    return np.concatenate([[start], np.full(k, start + rng.uniform(0.0, 0.1))])


def slippage_truth(rng: np.random.Generator, k: int) -> np.ndarray:
    """The baseline's and K checkpoints' true accuracies, all equal but one just ahead."""
    truth = equal_truth(rng, k)
    truth[1 + rng.integers(k)] += 0.01
    return truth


TRUTHS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "curve": curve_truth,
    "uniform": uniform_truth,
    "equal": equal_truth,
    "slippage": slippage_truth,
}


def binary_run(rng: np.random.Generator, truth: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores of the checkpoints (K × n) and of the baseline (n) with true accuracies ``truth`` (baseline
    first), by the Gaussian copula of the module's notes."""
    noise = rng.standard_normal((len(truth), n))
    for row in range(1, len(truth)):
        noise[row] = NEIGHBOUR * noise[row - 1] + np.sqrt(1 - NEIGHBOUR**2) * noise[row]
    latent = np.sqrt(SHARED) * rng.standard_normal(n) + np.sqrt(1 - SHARED) * noise
    right = (latent < norm.ppf(truth)[:, None]).astype(float)
    return right[1:], right[0]


def continuous_run(rng: np.random.Generator, truth: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous scores with true means ``truth`` (baseline first): each model's mean plus 0.5 times the same
    latent score as ``binary_run``'s (shared item difficulty, neighbouring models alike), not thresholded."""
    noise = rng.standard_normal((len(truth), n))
    for row in range(1, len(truth)):
        noise[row] = NEIGHBOUR * noise[row - 1] + np.sqrt(1 - NEIGHBOUR**2) * noise[row]
    scores = truth[:, None] + 0.5 * (np.sqrt(SHARED) * rng.standard_normal(n) + np.sqrt(1 - SHARED) * noise)
    return scores[1:], scores[0]


def _truly_best(truth: np.ndarray) -> np.ndarray:
    """Each checkpoint's credit for being the true best: 1 / (how many tie for it) for those that do, else 0."""
    best = truth[1:] >= truth[1:].max() - 1e-12
    return best / best.sum()


class SelectionCoverage(NamedTuple):
    """How often each claim of ``select_checkpoint`` held over simulated runs."""

    adjusted: float
    """Share of runs whose adjusted interval held the selected checkpoint's true gain (claim: ≥ 1 − alpha)."""
    naive: float
    """The same for the naive interval (no claim: the winner's curse pulls it below)."""
    naive_above: float
    """Share of runs whose naive interval lay wholly above the true gain (alpha / 2 if there were no curse)."""
    could_be_best: float
    """Share of runs whose could-be-best set held a true best (claim: ≥ 1 − alpha)."""
    naive_bias: float
    """Mean of the selected checkpoint's observed gain less its true gain."""
    shrunken_bias: float
    """The same for the shrunken gain."""


def selection_coverage(
    k: int,
    n: int,
    truth: str,
    draws: int,
    seed: int,
    resamples: int = 1000,
    alpha: float = ALPHA,
    kind: Kind = "binary",
) -> SelectionCoverage:
    """``select_checkpoint`` on ``draws`` simulated runs of ``k`` checkpoints on ``n`` items, true accuracies
    drawn by ``TRUTHS[truth]`` (see the module's notes); ``continuous`` scores come from ``continuous_run``."""
    rng = np.random.default_rng(seed)
    adjusted, naive, above, holds, naive_error, shrunken_error = [], [], [], [], [], []
    for draw in range(draws):
        true = TRUTHS[truth](rng, k)
        scores, baseline = (binary_run if kind == "binary" else continuous_run)(rng, true, n)
        result = select_checkpoint(scores, baseline, kind=kind, alpha=alpha, seed=seed + draw, resamples=resamples)
        gain = true[1 + result.selected] - true[0]
        adjusted.append(result.adjusted_interval.low <= gain <= result.adjusted_interval.high)
        naive.append(result.naive_interval.low <= gain <= result.naive_interval.high)
        above.append(result.naive_interval.low > gain)
        holds.append(bool(np.any(_truly_best(true)[list(result.could_be_best)] > 0)))
        naive_error.append(result.delta - gain)
        shrunken_error.append(result.shrunken_delta - gain)
    return SelectionCoverage(
        float(np.mean(adjusted)),
        float(np.mean(naive)),
        float(np.mean(above)),
        float(np.mean(holds)),
        float(np.mean(naive_error)),
        float(np.mean(shrunken_error)),
    )


class Reliability(NamedTuple):
    """Binned calibration of reported probabilities of being the best."""

    gap: float
    """The largest |mean reported − share truly best| over bins holding at least ``min_count`` probabilities."""
    mean_gap: float
    """|mean reported − share truly best| averaged over every bin, weighted by its count (the expected
    calibration error)."""
    mean_reported: tuple[float, ...]
    """Per bin (of those well populated), the mean reported probability."""
    truly_best: tuple[float, ...]
    """Per bin, the share that was truly best (ties credited 1 / number tied)."""
    counts: tuple[int, ...]
    """Per bin, how many probabilities fell in it."""


def reliability(reported: np.ndarray, credit: np.ndarray, min_count: int) -> Reliability:
    """Bin ``reported`` probabilities into ``BINS`` equal bins and compare each bin's mean with its ``credit``."""
    bins = np.minimum((reported * BINS).astype(int), BINS - 1)
    counts = np.bincount(bins, minlength=BINS)
    differences = np.abs(np.bincount(bins, reported - credit, BINS))
    kept = np.flatnonzero(counts >= min_count)
    mean_reported = np.bincount(bins, reported, BINS)[kept] / counts[kept]
    truly = np.bincount(bins, credit, BINS)[kept] / counts[kept]
    gap = float(np.max(np.abs(mean_reported - truly))) if len(kept) else 0.0
    return Reliability(
        gap,
        float(differences.sum() / len(reported)),
        tuple(mean_reported.tolist()),
        tuple(truly.tolist()),
        tuple(int(c) for c in counts[kept]),
    )


def bootstrap_share(scores: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The share of bootstrap resamples of the items in which each checkpoint has the highest mean."""
    k, n = scores.shape
    wins = np.zeros(k)
    for counts in resample_counts(n, resamples, seed):
        wins += np.bincount(np.argmax(counts @ scores.T, axis=1), minlength=k)
    return wins / resamples


class BestCalibration(NamedTuple):
    """The calibration of P(best), and of the bootstrap share it replaces, over simulated runs."""

    posterior: Reliability
    bootstrap: Reliability


def best_calibration(
    k: int, n: int, truth: str, draws: int, seed: int, min_count: int = 100, resamples: int = 500
) -> BestCalibration:
    """The binned calibration of ``best_posterior``'s P(best) and of the bootstrap share over ``draws`` simulated
    runs (``TRUTHS[truth]``, see the module's notes), bins holding fewer than ``min_count`` probabilities left out.
    """
    rng = np.random.default_rng(seed)
    posterior, share, credit = [], [], []
    for draw in range(draws):
        true = TRUTHS[truth](rng, k)
        scores, _ = binary_run(rng, true, n)
        posterior.append(best_posterior(scores, True, seed + draw).probabilities)
        share.append(bootstrap_share(scores, resamples, seed + draw))
        credit.append(_truly_best(true))
    reported, truly = np.concatenate(posterior), np.concatenate(credit)
    return BestCalibration(
        reliability(reported, truly, min_count), reliability(np.concatenate(share), truly, min_count)
    )


class TableRow(NamedTuple):
    """One configuration of ``selection_table``."""

    k: int
    n: int
    truth: str
    coverage: SelectionCoverage
    calibration: BestCalibration
    """P(best)'s claim is for the truths drawn at random (``curve``, ``uniform``); the others are shown, not
    claimed."""


def selection_table(
    draws: int, calibration_draws: int, seed: int, ks: tuple[int, ...] = (5, 10, 20), ns: tuple[int, ...] = (100, 500)
) -> list[TableRow]:
    """Every claim at every K in ``ks``, n in ``ns`` and truth in ``TRUTHS``: ``draws`` runs for the coverages,
    ``calibration_draws`` for P(best)'s calibration (bins of at least 200 probabilities)."""
    rows = []
    for k in ks:
        for n in ns:
            for index, truth in enumerate(TRUTHS):
                config_seed = seed + 1000 * k + 10 * n + index
                coverage = selection_coverage(k, n, truth, draws, config_seed)
                calibration = best_calibration(k, n, truth, calibration_draws, config_seed, 200)
                rows.append(TableRow(k, n, truth, coverage, calibration))
    return rows
