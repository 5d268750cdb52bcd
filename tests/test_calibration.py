"""Every level ftbench prints, measured: exact enumeration where the outcomes are few, simulation with fixed seeds
elsewhere. A change that breaks a guarantee fails here. ``benchmarks/calibration.py`` prints the same
measurements, with more draws, as the README's table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.stats import binom

from ftbench.harness.compare.enumeration import binary_outcomes, truth_grid, truths_at, worst_chance
from ftbench.harness.compare.intervals import (
    clopper_pearson,
    corpus_interval,
    paired_binary_bounds,
    student_interval,
    t_interval,
)
from ftbench.harness.compare.mcnemar import _critical_counts, mcnemar_mde, mcnemar_power
from ftbench.harness.compare.permutation import paired_permutation_p, permutation_mde
from ftbench.harness.compare.policy import GatePolicy, MetricRule, judge_metric
from ftbench.harness.compare.statistics import compare_paired, paired_spread
from ftbench.harness.core.records import SampleRecord
from ftbench.reports.numbers import detects_text
from ftbench.tasks.registry import TASKS

SIZES = (16, 20, 60, 200)
MARGINS = (0.05, 0.1, 0.2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_paired_binary_bounds_contain_their_estimate_and_hold_each_side(n: int, confidence: float) -> None:
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n, confidence)
    estimate = (outcomes.gained - outcomes.lost) / n
    assert np.all(low <= estimate + 1e-12) and np.all(estimate <= high + 1e-12)
    grid = truth_grid(24 if n < 200 else 14)
    below = worst_chance(outcomes, grid, lambda t: low[None] > (t.p_gain - t.p_loss)[:, None])
    above = worst_chance(outcomes, grid, lambda t: high[None] < (t.p_gain - t.p_loss)[:, None])
    assert max(below, above) <= (1 - confidence) / 2


def _equivalence_status(low: np.ndarray, high: np.ndarray, margin: float) -> np.ndarray:
    """The gate's rule for a higher-is-better metric (``policy._judge_equivalence``), vectorized."""
    status = np.full(low.shape, "not_equivalent", dtype=object)
    status[(low > -margin) & (high < margin)] = "equivalent"
    status[high < -margin] = "regression"
    return status


@pytest.mark.parametrize("n", SIZES)
def test_equivalence_gate_errs_at_most_alpha_at_the_margin(n: int) -> None:
    """A true drop exactly at the margin: a regression (exit 1) at most 5% of the time, and equivalence at most
    5%; a true gain at the margin: equivalence at most 5%."""
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n, 0.9)
    for margin in MARGINS:
        status = _equivalence_status(low, high, margin)
        equivalent, regression = status == "equivalent", status == "regression"
        for delta in (-margin, margin):
            assert worst_chance(outcomes, truths_at(delta), equivalent) <= 0.05
        assert worst_chance(outcomes, truths_at(-margin), regression) <= 0.05


def _binary_pairs(gained: int, lost: int, n: int) -> list[tuple[SampleRecord, SampleRecord]]:
    base = [0.0] * gained + [1.0] * lost + [1.0] * ((n - gained - lost) // 2)
    cand = [1.0] * gained + [0.0] * lost + [1.0] * ((n - gained - lost) // 2)
    base += [0.0] * (n - len(base))
    cand += [0.0] * (n - len(cand))
    return [(_sample(i, b), _sample(i, c)) for i, (b, c) in enumerate(zip(base, cand, strict=True))]


def _sample(doc_id: int, value: float) -> SampleRecord:
    return SampleRecord(doc_id=doc_id, doc_hash=f"h{doc_id}", prompt="p", response="r", target="t", scores={"m": value})


def test_the_gate_applies_the_enumerated_rules() -> None:
    """Every outcome at n = 16 through the real comparison and verdict gives the enumerated rules' statuses."""
    n, margin = 16, 0.1
    gained, lost = binary_outcomes(n)[1:]
    low, high = paired_binary_bounds(gained, lost, n, 0.9)
    expected = _equivalence_status(low, high, margin)
    equivalence = GatePolicy(min_samples=1, headline=MetricRule(mode="equivalence", margin=margin))
    gate = GatePolicy(min_samples=1, headline=MetricRule(max_drop=margin, max_relative_drop=None))
    counts = _critical_counts(n, 0.05)
    for g, lost_, status in zip(gained, lost, expected, strict=True):
        comparison = compare_paired("m", "binary", _binary_pairs(int(g), int(lost_), n))._replace(metric="acc_norm")
        assert judge_metric(TASKS["arc_easy"], "acc_norm", "fp32", comparison, equivalence).status == status
        significant = min(g, lost_) <= counts[g + lost_]
        fails = significant and (lost_ - g) / n > margin
        assert (judge_metric(TASKS["arc_easy"], "acc_norm", "fp32", comparison, gate).status == "regression") == fails


@pytest.mark.parametrize("n", SIZES)
def test_gate_mode_fails_an_unchanged_candidate_at_most_alpha_over_two(n: int) -> None:
    outcomes = binary_outcomes(n)
    gained, lost = outcomes.gained, outcomes.lost
    significant = np.minimum(gained, lost) <= _critical_counts(n, 0.05)[gained + lost]
    for margin in (0.0, *MARGINS):
        fails = significant & ((lost - gained) / n > margin)
        assert worst_chance(outcomes, truths_at(0.0), fails) <= 0.025


@pytest.mark.parametrize("truth", [0.5, 0.8, 0.95])
def test_clopper_pearson_covers_at_sixteen_items(truth: float) -> None:
    successes = np.arange(17)
    covered = [low <= truth <= high for low, high in (clopper_pearson(int(k), 16) for k in successes)]
    assert float(binom.pmf(successes, 16, truth) @ np.array(covered)) >= 0.95


def test_clopper_pearson_covers_everywhere() -> None:
    for n in (16, 60):
        bounds = [clopper_pearson(k, n) for k in range(n + 1)]
        for truth in np.linspace(0.001, 0.999, 200):
            covered = np.array([low <= truth <= high for low, high in bounds])
            assert float(binom.pmf(np.arange(n + 1), n, truth) @ covered) >= 0.95


@pytest.mark.parametrize("n", [4, 8, 16])
def test_t_intervals_hold_their_level_on_normal_data(n: int) -> None:
    data = np.random.default_rng(n).standard_normal((4000, n))
    bounds = np.array([t_interval(row) for row in data])
    assert 0.94 <= float(np.mean((bounds[:, 0] <= 0) & (bounds[:, 1] >= 0))) <= 0.96
    narrow = np.array([t_interval(row, 0.9) for row in data])
    assert float(np.mean(narrow[:, 0] > 0)) <= 0.06 and float(np.mean(narrow[:, 1] < 0)) <= 0.06


@pytest.mark.parametrize("n", [8, 20])
def test_continuous_equivalence_errs_at_most_alpha_at_the_margin(n: int) -> None:
    """The percentile bootstrap this replaced declared equivalence 7.8% (n = 8) and 7.0% (n = 20) of the time."""
    margin = 0.1
    rng = np.random.default_rng(100 + n)
    base = rng.standard_normal((4000, n)) * 0.2 + 0.5
    cand = base - margin + rng.standard_normal((4000, n)) * 0.1  # true drop: the margin
    equivalent = 0
    for b, c in zip(base, cand, strict=True):
        delta = float((c - b).mean())
        low, high = student_interval(delta, paired_spread(b, c) / math.sqrt(n), n - 1, 0.9)
        equivalent += -margin < low and high < margin
    assert equivalent / 4000 <= 0.06


def _ratio(samples: Sequence[tuple[float, float]]) -> float:
    return sum(bits for bits, _ in samples) / sum(size for _, size in samples)


@pytest.mark.parametrize("n", [8, 16])
def test_corpus_intervals_cover_with_documents_of_unequal_size(n: int) -> None:
    """Bits per byte of documents whose sizes spread like real ones (log-normal): the jackknife t interval."""
    rng = np.random.default_rng(n)
    covered = 0
    for _ in range(1500):
        sizes = rng.lognormal(7, 0.8, n)
        rates = 1.0 + 0.15 * rng.standard_normal(n)
        low, high = corpus_interval(_ratio, list(zip(rates * sizes, sizes, strict=True)))
        covered += low <= 1.0 <= high
    assert covered / 1500 >= 0.94


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("discordance", [0.0, 0.2])
def test_binary_power_at_the_printed_mde_is_eighty_percent(n: int, discordance: float) -> None:
    mde = mcnemar_mde(n, discordance)
    assert mde is not None and mcnemar_power(n, discordance, mde) == pytest.approx(0.8, abs=1e-6)
    psi = max(discordance, mde)
    draws = np.random.default_rng(n).multinomial(n, [(psi + mde) / 2, (psi - mde) / 2, 1 - psi], size=20000)
    counts = _critical_counts(n, 0.05)
    rejected = np.minimum(draws[:, 0], draws[:, 1]) <= counts[draws[:, 0] + draws[:, 1]]
    assert abs(float(rejected.mean()) - 0.8) <= 0.03


@pytest.mark.parametrize("n", [8, 16, 20, 60])
def test_continuous_power_at_the_printed_mde_is_eighty_percent(n: int) -> None:
    """The permutation test itself, at the effect it is said to detect, on normal differences (sd 1)."""
    mde = permutation_mde(n, 1.0)
    assert mde is not None
    rng = np.random.default_rng(1000 + n)
    draws = 1200
    rejected = sum(paired_permutation_p(np.zeros(n), rng.standard_normal(n) + mde) < 0.05 for _ in range(draws))
    assert abs(rejected / draws - 0.8) <= 0.03 + (0.01 if n <= 12 else 0.0)


def test_four_perplexity_documents_cannot_decide() -> None:
    bits = TASKS["perplexity_ultrafeedback"].metrics["bits_per_byte"].corpus
    assert bits is not None
    texts = ["a short reference text", "another one, longer than the first", "a third", "and a fourth document"]

    def doc(i: int, loglikelihood: float) -> SampleRecord:
        return SampleRecord(
            doc_id=i, doc_hash=f"h{i}", prompt="", response="", target=texts[i], scores={"loglikelihood": loglikelihood}
        )

    pairs = [(doc(i, -30.0 - i), doc(i, -33.0 - 2 * i)) for i in range(4)]
    comparison = compare_paired("bits_per_byte", "corpus", pairs, corpus=bits)
    assert comparison.p_value == pytest.approx(0.125) and not comparison.decides(0.05)
    assert detects_text(comparison) == "cannot decide at 4 items"
    verdict = judge_metric(
        TASKS["perplexity_ultrafeedback"], "bits_per_byte", "nf4", comparison, GatePolicy(min_samples=1)
    )
    assert verdict.status == "insufficient"


def _bits_per_byte(samples: Sequence[SampleRecord]) -> float:
    return sum(s.scores["bits"] for s in samples) / sum(s.scores["bytes"] for s in samples)


def test_paired_corpus_intervals_cover_the_difference() -> None:
    """A corpus metric's paired difference (the report's 95% and the gate's 90% jackknife t intervals)."""
    n, shift, draws = 16, 0.05, 600
    rng = np.random.default_rng(7)
    covered, missed_low, missed_high = 0, 0, 0
    for _ in range(draws):
        sizes = rng.lognormal(7, 0.8, n)
        base = 1.0 + 0.15 * rng.standard_normal(n)
        cand = base + shift + 0.03 * rng.standard_normal(n)
        pairs = [
            (
                SampleRecord(
                    doc_id=i, doc_hash=f"h{i}", prompt="", response="", target="", scores={"bits": b * s, "bytes": s}
                ),
                SampleRecord(
                    doc_id=i, doc_hash=f"h{i}", prompt="", response="", target="", scores={"bits": c * s, "bytes": s}
                ),
            )
            for i, (b, c, s) in enumerate(zip(base, cand, sizes, strict=True))
        ]
        comparison = compare_paired("bits", "corpus", pairs, corpus=_bits_per_byte, iters=1)
        covered += comparison.interval.low <= shift <= comparison.interval.high
        assert comparison.equivalence_interval is not None
        missed_low += comparison.equivalence_interval.low > shift
        missed_high += comparison.equivalence_interval.high < shift
    assert covered / draws >= 0.94
    assert max(missed_low, missed_high) / draws <= 0.06
