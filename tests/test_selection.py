"""Choosing a checkpoint to ship: the selection, its edge cases, and its claims measured by simulation with fixed
seeds (``harness/compare/calibration_selection.py``). A change that breaks a guarantee fails here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ftbench.harness.compare.best_posterior import best_posterior
from ftbench.harness.compare.calibration_selection import (
    TRUTHS,
    best_calibration,
    binary_run,
    selection_coverage,
)
from ftbench.harness.compare.selection import combine_metrics, select_checkpoint
from ftbench.harness.compare.signal_noise import signal_to_noise

ALPHA = 0.05


def tolerance(draws: int, share: float = ALPHA) -> float:
    """How far below its level a share measured over ``draws`` runs may fall by chance (one-sided, about 1%)."""
    return 2.33 * math.sqrt(share * (1 - share) / draws)


def run(k: int, n: int, truth: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = TRUTHS[truth](rng, k)
    scores, baseline = binary_run(rng, true, n)
    return true, scores, baseline


def clear_winner(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A baseline at 0.45, five checkpoints near 0.5 and the fourth (row 3) at 0.8."""
    truth = np.array([0.45, 0.5, 0.52, 0.5, 0.8, 0.51])
    scores, baseline = binary_run(np.random.default_rng(seed), truth, n)
    return scores, baseline


def test_selects_the_best_mean_and_reports_its_naive_gain() -> None:
    scores, baseline = clear_winner()
    result = select_checkpoint(scores, baseline, resamples=500)
    assert result.selected == int(np.argmax(scores.mean(axis=1))) == 3
    assert result.delta == pytest.approx(scores[3].mean() - baseline.mean())
    assert result.naive_interval.low <= result.delta <= result.naive_interval.high


def test_a_clear_winner_stands_alone() -> None:
    scores, baseline = clear_winner()
    result = select_checkpoint(scores, baseline, resamples=500)
    assert result.could_be_best == (3,)
    assert result.p_selected_best > 0.99
    assert not result.signal_noise.cannot_rank


def test_the_adjusted_interval_holds_the_naive_one_and_the_estimate() -> None:
    _, scores, baseline = run(10, 200, "curve", seed=4)
    result = select_checkpoint(scores, baseline, resamples=500)
    adjusted, naive = result.adjusted_interval, result.naive_interval
    assert adjusted.low <= naive.low and naive.high <= adjusted.high
    assert adjusted.low < result.delta < adjusted.high
    assert result.critical > 1.96
    assert result.selected in result.could_be_best
    assert sum(result.p_best) == pytest.approx(1.0)


def test_ties_go_to_the_earliest_step() -> None:
    scores = np.array([[0, 1, 0, 1], [1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1]], dtype=float)
    result = select_checkpoint(scores, np.zeros(4), resamples=200)
    assert result.selected == 1
    assert set(result.could_be_best) >= {1, 2}


def test_lower_is_better_selects_the_lowest_mean() -> None:
    rng = np.random.default_rng(5)
    perplexity = np.array([3.0, 2.0, 2.6, 2.9])[:, None] + 0.1 * rng.standard_normal((4, 300))
    baseline = 3.2 + 0.1 * rng.standard_normal(300)
    result = select_checkpoint(perplexity, baseline, higher_is_better=False, kind="continuous", resamples=500)
    assert result.selected == 1 and result.could_be_best == (1,)
    assert result.delta < 0 and result.adjusted_interval.high < 0
    assert result.p_best[1] > 0.99
    flipped = select_checkpoint(-perplexity, -baseline, kind="continuous", resamples=500)
    assert flipped.selected == 1 and flipped.p_best == result.p_best


def test_the_same_seed_gives_the_same_result() -> None:
    _, scores, baseline = run(8, 120, "uniform", seed=6)
    first = select_checkpoint(scores, baseline, seed=11, resamples=300)
    assert select_checkpoint(scores, baseline, seed=11, resamples=300) == first
    assert select_checkpoint(scores, baseline, seed=12, resamples=300).p_best != first.p_best


@pytest.mark.parametrize(
    ("scores", "baseline", "kind", "message"),
    [
        (np.ones((1, 10)), np.ones(10), "binary", "at least 2 checkpoints"),
        (np.ones((3, 1)), np.ones(1), "binary", "at least 2 items"),
        (np.ones(10), np.ones(10), "binary", "checkpoints × items"),
        (np.ones((3, 10)), np.ones(9), "binary", "one score per item"),
        (np.full((3, 10), np.nan), np.ones(10), "continuous", "NaN or infinite"),
        (np.ones((3, 10)), np.full(10, np.inf), "continuous", "NaN or infinite"),
        (np.full((3, 10), 0.5), np.ones(10), "binary", "must be 0 or 1"),
        (np.ones((3, 10)), np.ones(10), "corpus", "per-item proxy"),
        (np.ones((3, 10)), np.ones(10), "binary", "alpha must lie"),
    ],
)
def test_bad_input_is_refused(scores: np.ndarray, baseline: np.ndarray, kind: str, message: str) -> None:
    alpha = 1.5 if message == "alpha must lie" else ALPHA
    with pytest.raises(ValueError, match=message):
        select_checkpoint(scores, baseline, kind=kind, alpha=alpha)  # type: ignore[arg-type]


def test_identical_binary_scores_give_finite_honest_answers() -> None:
    """No item differs anywhere: no NaN, every checkpoint could be best with equal chance, and the gain is only known
    to within a few items (the rule of three), not exactly."""
    scores, baseline = np.tile([1.0, 0.0, 1.0, 1.0], (4, 25)), np.tile([1.0, 0.0, 1.0, 1.0], 25)
    result = select_checkpoint(scores, baseline, resamples=300)
    values = [*result.means, *result.p_best, *result.adjusted_interval, *result.naive_interval, result.shrunken_delta]
    assert all(math.isfinite(v) for v in values)
    assert result.selected == 0 and result.delta == 0.0
    assert result.could_be_best == (0, 1, 2, 3)
    assert result.p_best == pytest.approx((0.25,) * 4, abs=0.03)
    assert -0.1 < result.adjusted_interval.low < 0 < result.adjusted_interval.high < 0.1
    assert result.signal_noise.snr == 0.0 and result.signal_noise.cannot_rank


def test_constant_continuous_scores_degenerate_to_points() -> None:
    result = select_checkpoint(np.full((3, 20), 0.7), np.full(20, 0.5), kind="continuous", resamples=200)
    assert result.selected == 0 and result.delta == pytest.approx(0.2)
    assert result.adjusted_interval == pytest.approx((0.2, 0.2)) and result.naive_interval == pytest.approx((0.2, 0.2))
    assert result.p_best == pytest.approx((1 / 3,) * 3) and result.could_be_best == (0, 1, 2)
    assert result.shrunken_delta == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("k", "n", "truth"), [(5, 100, "curve"), (10, 100, "equal"), (5, 300, "slippage"), (20, 16, "slippage")]
)
def test_adjusted_interval_and_could_be_best_set_hold_their_level(k: int, n: int, truth: str) -> None:
    """The selected checkpoint's true gain and the true best, each at least 95% of the time less chance, down to
    20 checkpoints on 16 items."""
    draws = 160
    coverage = selection_coverage(k, n, truth, draws, seed=40 + k, resamples=300)
    assert coverage.adjusted >= 1 - ALPHA - tolerance(draws)
    assert coverage.could_be_best >= 1 - ALPHA - tolerance(draws)


def test_continuous_scores_hold_the_adjusted_level() -> None:
    """Normal per-item scores sharing item difficulty, five checkpoints of equal true gain 0.1 over the baseline
    on 40 items: the selected checkpoint's adjusted interval holds 0.1 at least 95% of the time less chance."""
    rng, draws, held = np.random.default_rng(21), 200, 0
    for draw in range(draws):
        difficulty = rng.standard_normal(40)
        scores = 0.1 + difficulty + 0.5 * rng.standard_normal((5, 40))
        baseline = difficulty + 0.5 * rng.standard_normal(40)
        interval = select_checkpoint(scores, baseline, kind="continuous", seed=draw, resamples=300).adjusted_interval
        held += interval.low <= 0.1 <= interval.high
    assert held / draws >= 1 - ALPHA - tolerance(draws)


def test_the_winners_curse_is_measured_and_shrunk_out() -> None:
    """Ten equal checkpoints: the best-looking one's observed gain is too high; its shrunken gain much less so."""
    coverage = selection_coverage(10, 100, "equal", 120, seed=9, resamples=200)
    assert coverage.naive_bias > 0.02
    assert abs(coverage.shrunken_bias) < coverage.naive_bias / 3


@pytest.mark.parametrize(("k", "truth"), [(5, "curve"), (10, "uniform")])
def test_p_best_is_calibrated_where_the_bootstrap_share_is_not(k: int, truth: str) -> None:
    """Binned over 1000 runs (a bin of 300 probabilities has a sampling error of up to 0.03): P(best) within a few
    points of how often the checkpoint was truly best; the bootstrap share off by several times as much."""
    calibration = best_calibration(k, 100, truth, 1000, seed=30 + k, min_count=300, resamples=200)
    assert len(calibration.posterior.counts) >= 3
    assert calibration.posterior.gap <= 0.05
    assert calibration.bootstrap.mean_gap >= 3 * calibration.posterior.mean_gap


def test_p_best_depends_only_on_differences() -> None:
    """Shrinkage pulls the means together around their average; shifting every score shifts only the means."""
    _, scores, _ = run(6, 150, "curve", seed=8)
    first = best_posterior(scores, True, seed=1)
    shifted = best_posterior(scores + 5.0, False, seed=1)
    assert first.probabilities.sum() == pytest.approx(1.0)
    assert first.shrunken.mean() == pytest.approx(scores.mean())
    assert np.std(first.shrunken) < np.std(scores.mean(axis=1))
    assert shifted.shrunken - 5.0 == pytest.approx(best_posterior(scores, False, seed=1).shrunken)


def test_signal_to_noise_for_two_checkpoints_is_exact() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 4.0, 6.0]])
    snr = signal_to_noise(scores)
    difference = scores[1] - scores[0]
    noise = math.sqrt(difference.var(ddof=1) / 4 * 2 / math.pi)
    assert snr.signal == pytest.approx(1.0) and snr.noise == pytest.approx(noise)
    assert snr.snr == pytest.approx(1.0 / noise) and snr.mean == pytest.approx(3.0)


def test_signal_to_noise_is_about_one_without_signal() -> None:
    ratios = [signal_to_noise(run(10, 200, "equal", seed=s)[1], seed=s).snr for s in range(40)]
    assert 0.8 < float(np.mean(ratios)) < 1.25
    assert 0.2 < float(np.mean(np.array(ratios) < 1)) < 0.8


def test_a_shared_continuous_metric_ranks_where_accuracy_cannot() -> None:
    """Five checkpoints 0.01 nats apart in per-item log-likelihood that every checkpoint shares (item difficulty,
    sd 1; own noise, sd 0.1), on 300 items, 20 runs: the log-likelihood ranks them every time; the 0/1 accuracy
    thresholded from the same scores often cannot, at a third of the ratio."""
    continuous, binary = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        difficulty, steps = rng.standard_normal(300), 0.01 * np.arange(5)
        loglikelihood = difficulty[None, :] + steps[:, None] + 0.1 * rng.standard_normal((5, 300))
        continuous.append(signal_to_noise(loglikelihood, seed=seed))
        binary.append(signal_to_noise((loglikelihood > 0).astype(float), seed=seed))
    assert not any(result.cannot_rank for result in continuous)
    assert sum(result.cannot_rank for result in binary) >= 4
    assert np.mean([result.snr for result in continuous]) > 2 * np.mean([result.snr for result in binary])


def test_metrics_combine_with_directions_and_scales() -> None:
    accuracy = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    loss = np.array([[2.0, 4.0, 2.0], [1.0, 1.0, 1.0]])
    composite = combine_metrics(
        [accuracy, loss], [np.zeros(3), np.full(3, 5.0)], [1.0, 0.5], [True, False], scales=[1.0, 2.0]
    )
    assert composite.scores == pytest.approx(accuracy - 0.25 * loss)
    assert composite.baseline == pytest.approx(np.zeros(3) - 0.25 * 5.0)
    standardised = combine_metrics([accuracy], [np.zeros(3)], [1.0], [True])
    assert standardised.scales[0] == pytest.approx(np.std(np.vstack([accuracy, np.zeros(3)]), ddof=1))
    with pytest.raises(ValueError, match="same checkpoints"):
        combine_metrics([accuracy, loss[:, :2]], [np.zeros(3), np.zeros(2)], [1.0, 1.0], [True, True])
    with pytest.raises(ValueError, match="one length"):
        combine_metrics([accuracy], [np.zeros(3)], [1.0, 2.0], [True])


def test_identical_checkpoints_have_no_noise_at_all() -> None:
    items = np.random.default_rng(3).integers(0, 2, 40).astype(float)
    found = signal_to_noise(np.vstack([items, items, items]))
    assert found.signal == 0.0 and found.noise == 0.0 and found.snr == 0.0 and found.cannot_rank
