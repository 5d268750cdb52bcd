"""Membership statistics: the AUC and Mann-Whitney p of suspected against control scores (checked against direct
computation and calibrated under no difference), the reference-model score and Min-K%++ from arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.leakage.membership import (
    membership_test,
    min_k_plus_plus,
    next_token_moments,
    reference_score,
)


def test_auc_counts_pairs_with_ties_as_half() -> None:
    suspected = [3.0, 2.0, 2.0, 5.0]
    control = [1.0, 2.0, 4.0]
    pairs = [1.0 if s > c else 0.5 if s == c else 0.0 for s in suspected for c in control]
    result = membership_test(suspected, control)
    assert result.auc == pytest.approx(sum(pairs) / len(pairs))
    assert result.p_value == pytest.approx(mannwhitneyu(suspected, control, alternative="greater").pvalue)
    assert (result.suspected, result.control) == (4, 3)


def test_separated_scores_give_auc_one_and_a_small_p() -> None:
    rng = np.random.default_rng(0)
    result = membership_test(rng.normal(3, 1, 40), rng.normal(0, 1, 60))
    assert result.auc > 0.95 and result.p_value < 1e-10
    reversed_result = membership_test(rng.normal(0, 1, 40), rng.normal(3, 1, 60))
    assert reversed_result.auc < 0.05 and reversed_result.p_value > 0.99


def test_p_value_rejects_at_its_level_when_nothing_differs() -> None:
    rng = np.random.default_rng(1)
    draws = 2000
    rejected = sum(membership_test(rng.normal(size=30), rng.normal(size=40)).p_value < 0.05 for _ in range(draws))
    assert 0.035 <= rejected / draws <= 0.065  # nominal 5%; binomial sd 0.5 points


def test_reference_score_is_the_per_token_gain_over_the_base() -> None:
    assert reference_score([-1.0, -2.0, -3.0], [-2.0, -4.0, -3.0, -3.0]) == pytest.approx(-2.0 + 3.0)
    with pytest.raises(FtbenchError, match="base_logprobs must be a non-empty 1-D array"):
        reference_score([-1.0], [])


def test_min_k_plus_plus_matches_the_formula_from_logits() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(12, 50))
    logprobs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    tokens = rng.integers(0, 50, size=12)
    token_logprobs = logprobs[np.arange(12), tokens]
    moments = next_token_moments(logprobs)
    probabilities = np.exp(logprobs)
    for position in range(12):
        mean = float(np.dot(probabilities[position], logprobs[position]))
        variance = float(np.dot(probabilities[position], (logprobs[position] - mean) ** 2))
        assert moments.mean[position] == pytest.approx(mean) and moments.variance[position] == pytest.approx(variance)
    scores = (token_logprobs - moments.mean) / np.sqrt(moments.variance)
    expected = np.sort(scores)[:2].mean()  # 20% of 12 tokens: the lowest 2
    assert min_k_plus_plus(token_logprobs, moments.mean, moments.variance, k=0.2) == pytest.approx(expected)
    assert min_k_plus_plus(token_logprobs[:3], moments.mean[:3], moments.variance[:3], k=0.2) == pytest.approx(
        scores[:3].min()
    )


def test_min_k_plus_plus_refuses_inputs_it_cannot_score() -> None:
    with pytest.raises(FtbenchError, match="have 2, 3 and 3 positions"):
        min_k_plus_plus([-1.0, -2.0], [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
    with pytest.raises(FtbenchError, match="vocab_variance is not positive at position 1"):
        min_k_plus_plus([-1.0, -2.0], [-1.0, -1.0], [1.0, 0.0])
    with pytest.raises(FtbenchError, match="k must lie in"):
        min_k_plus_plus([-1.0], [-1.0], [1.0], k=0.0)
    with pytest.raises(FtbenchError, match="control scores holds a NaN"):
        membership_test([1.0], [float("nan")])
