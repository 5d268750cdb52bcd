"""Every level ftbench prints, measured: exact enumeration where the outcomes are few, simulation with fixed seeds
elsewhere (``harness/compare/calibration.py``). A change that breaks a guarantee fails here.
``benchmarks/calibration.py`` prints the same measurements, with more draws, as the README's table."""

from __future__ import annotations

import numpy as np
import pytest

from ftbench.harness.compare.calibration import (
    BINARY_SIZES,
    MARGINS,
    binary_bounds_check,
    binary_gate_errors,
    binary_pairs,
    clopper_pearson_coverage,
    corpus_coverage,
    equivalence_status,
    gate_mode_fails,
    normal_draws,
    paired_corpus_coverage,
    sample_record,
    simulated_mcnemar_power,
    simulated_permutation_power,
    t_coverage,
    tost_equivalent_share,
)
from ftbench.harness.compare.enumeration import binary_outcomes
from ftbench.harness.compare.intervals import paired_binary_bounds
from ftbench.harness.compare.mcnemar import mcnemar_mde, mcnemar_power
from ftbench.harness.compare.permutation import permutation_mde
from ftbench.harness.compare.policy import GatePolicy, MetricRule, judge_metric
from ftbench.harness.compare.statistics import compare_paired
from ftbench.harness.core.records import SampleRecord
from ftbench.reports.numbers import detects_text
from ftbench.tasks.registry import TASKS


@pytest.mark.parametrize("n", BINARY_SIZES)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_paired_binary_bounds_contain_their_estimate_and_hold_each_side(n: int, confidence: float) -> None:
    check = binary_bounds_check(n, confidence, 24 if n < 200 else 14)
    assert check.contain_estimate
    assert check.worst_miss <= (1 - confidence) / 2


@pytest.mark.parametrize("n", BINARY_SIZES)
def test_equivalence_gate_errs_at_most_alpha_at_the_margin(n: int) -> None:
    """A true drop exactly at the margin: a regression (exit 1) at most 5% of the time, and equivalence at most
    5%; a true gain at the margin: equivalence at most 5%."""
    for margin in MARGINS:
        errors = binary_gate_errors(n, margin)
        assert errors.equivalent_at_margin <= 0.05
        assert errors.regression_at_margin <= 0.05


def test_the_gate_applies_the_enumerated_rules() -> None:
    """Every outcome at n = 16 through the real comparison and verdict gives the enumerated rules' statuses."""
    n, margin = 16, 0.1
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n, 0.9)
    expected = equivalence_status(low, high, margin)
    fails = gate_mode_fails(outcomes, margin)
    equivalence = GatePolicy(min_samples=1, headline=MetricRule(mode="equivalence", margin=margin))
    gate = GatePolicy(min_samples=1, headline=MetricRule(max_drop=margin, max_relative_drop=None))
    for g, lost, status, fail in zip(outcomes.gained, outcomes.lost, expected, fails, strict=True):
        comparison = compare_paired("m", "binary", binary_pairs(int(g), int(lost), n))._replace(metric="acc_norm")
        assert judge_metric(TASKS["arc_easy"], "acc_norm", "fp32", comparison, equivalence).status == status
        assert (judge_metric(TASKS["arc_easy"], "acc_norm", "fp32", comparison, gate).status == "regression") == fail


@pytest.mark.parametrize("n", BINARY_SIZES)
def test_gate_mode_fails_an_unchanged_candidate_at_most_alpha_over_two(n: int) -> None:
    for margin in (0.0, *MARGINS):
        assert binary_gate_errors(n, margin).fails_unchanged <= 0.025


@pytest.mark.parametrize("truth", [0.5, 0.8, 0.95])
def test_clopper_pearson_covers_at_sixteen_items(truth: float) -> None:
    assert clopper_pearson_coverage(16, [truth])[0] >= 0.95


def test_clopper_pearson_covers_everywhere() -> None:
    for n in (16, 60):
        assert min(clopper_pearson_coverage(n, np.linspace(0.001, 0.999, 200))) >= 0.95


@pytest.mark.parametrize("n", [4, 8, 16])
def test_t_intervals_hold_their_level_on_normal_data(n: int) -> None:
    assert 0.94 <= t_coverage(normal_draws, n, 4000, seed=n).covered <= 0.96
    narrow = t_coverage(normal_draws, n, 4000, seed=n, confidence=0.9)
    assert narrow.above <= 0.06 and narrow.below <= 0.06


@pytest.mark.parametrize("n", [8, 20])
def test_continuous_equivalence_errs_at_most_alpha_at_the_margin(n: int) -> None:
    """The percentile bootstrap this replaced declared equivalence 7.8% (n = 8) and 7.0% (n = 20) of the time."""
    assert tost_equivalent_share(n, 0.1, 4000, seed=100 + n) <= 0.06


@pytest.mark.parametrize("n", [8, 16])
def test_corpus_intervals_cover_with_documents_of_unequal_size(n: int) -> None:
    """Bits per byte of documents whose sizes spread like real ones (log-normal): the jackknife t interval."""
    assert corpus_coverage(n, 1500, seed=n) >= 0.94


@pytest.mark.parametrize("n", BINARY_SIZES)
@pytest.mark.parametrize("discordance", [0.0, 0.2])
def test_binary_power_at_the_printed_mde_is_eighty_percent(n: int, discordance: float) -> None:
    mde = mcnemar_mde(n, discordance)
    assert mde is not None and mcnemar_power(n, discordance, mde) == pytest.approx(0.8, abs=1e-6)
    assert abs(simulated_mcnemar_power(n, discordance, mde, 20000, seed=n) - 0.8) <= 0.03


@pytest.mark.parametrize("n", [8, 16, 20, 60])
def test_continuous_power_at_the_printed_mde_is_eighty_percent(n: int) -> None:
    """The permutation test itself, at the effect it is said to detect, on normal differences (sd 1)."""
    mde = permutation_mde(n, 1.0)
    assert mde is not None
    assert abs(simulated_permutation_power(n, mde, 1200, seed=1000 + n) - 0.8) <= 0.03 + (0.01 if n <= 12 else 0.0)


def test_four_perplexity_documents_cannot_decide() -> None:
    bits = TASKS["perplexity_ultrafeedback"].metrics["bits_per_byte"].corpus
    assert bits is not None
    texts = ["a short reference text", "another one, longer than the first", "a third", "and a fourth document"]

    def doc(i: int, loglikelihood: float) -> SampleRecord:
        return sample_record(i, {"loglikelihood": loglikelihood}, target=texts[i])

    pairs = [(doc(i, -30.0 - i), doc(i, -33.0 - 2 * i)) for i in range(4)]
    comparison = compare_paired("bits_per_byte", "corpus", pairs, corpus=bits)
    assert comparison.p_value == pytest.approx(0.125) and not comparison.decides(0.05)
    assert detects_text(comparison) == "cannot decide at 4 items"
    verdict = judge_metric(
        TASKS["perplexity_ultrafeedback"], "bits_per_byte", "nf4", comparison, GatePolicy(min_samples=1)
    )
    assert verdict.status == "insufficient"


def test_paired_corpus_intervals_cover_the_difference() -> None:
    """A corpus metric's paired difference (the report's 95% and the gate's 90% jackknife t intervals)."""
    coverage = paired_corpus_coverage(16, 0.05, 600, seed=7)
    assert coverage.report.covered >= 0.94
    assert max(coverage.equivalence.above, coverage.equivalence.below) <= 0.06
