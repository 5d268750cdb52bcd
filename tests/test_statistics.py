"""Statistics against hand computations on planted examples (tests/test_calibration.py checks their levels)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from ftbench.harness.compare.intervals import (
    clopper_pearson,
    corpus_interval,
    jackknife_error,
    leave_one_out,
    mean_interval,
    paired_binary_interval,
    student_interval,
    t_interval,
)
from ftbench.harness.compare.mcnemar import mcnemar_critical_counts, mcnemar_exact, mcnemar_mde, mcnemar_power
from ftbench.harness.compare.permutation import paired_permutation_p, permutation_mde, standardized_mde
from ftbench.harness.compare.policy import GatePolicy, judge_metric, power_text
from ftbench.harness.compare.power import PowerRow
from ftbench.harness.compare.statistics import compare_paired, pair_samples
from ftbench.harness.core.records import SampleRecord
from ftbench.reports.numbers import detects_text
from ftbench.tasks.registry import TASKS


def sample(doc_id: int, value: float, doc_hash: str | None = None) -> SampleRecord:
    return SampleRecord(
        doc_id=doc_id, doc_hash=doc_hash or f"h{doc_id}", prompt="p", response="r", target="t", scores={"m": value}
    )


def pairs_of(base: list[float], cand: list[float]) -> list[tuple[SampleRecord, SampleRecord]]:
    return [(sample(i, b), sample(i, c)) for i, (b, c) in enumerate(zip(base, cand, strict=True))]


def test_mcnemar_exact_by_hand() -> None:
    baseline = [1, 1, 1, 1, 1, 0, 0, 0]
    candidate = [0, 0, 0, 1, 1, 0, 1, 0]
    # 3 pairs only the baseline got right, 1 only the candidate: p = 2 * P(X <= 1 | n=4, 1/2) = 2 * 5/16
    assert mcnemar_exact(baseline, candidate) == pytest.approx(10 / 16)
    assert mcnemar_exact([1, 0], [1, 0]) == 1.0
    # 10 discordant pairs all one way: 2 / 2**10
    assert mcnemar_exact([0] * 10, [1] * 10) == pytest.approx(2 / 1024)
    # right from 0.5 up, as the flips count it: 0.7 against 0.2 is a flip
    assert mcnemar_exact([0.7] * 10, [0.2] * 10) == pytest.approx(2 / 1024)


def test_critical_counts_agree_with_the_binomial_test() -> None:
    for alpha in (0.01, 0.05, 0.1):
        counts = mcnemar_critical_counts(40, alpha)
        assert counts[0] == -1
        for flips in range(1, 41):
            significant = [g for g in range(flips // 2 + 1) if binomtest(g, flips, 0.5).pvalue < alpha]
            assert counts[flips] == (max(significant) if significant else -1), (alpha, flips)


def test_mcnemar_power_by_hand() -> None:
    # Six items all flipping wrong -> right is p = 2/64 < 0.05, the only significant outcome at n = 6.
    assert mcnemar_power(6, 1.0, 1.0) == pytest.approx(1.0)
    assert mcnemar_power(6, 0.5, 0.5) == pytest.approx(0.5**6)  # psi 0.5, every flip one way: all six must flip
    assert mcnemar_mde(5, 0.3) is None  # at most 5 flips: p >= 2/32 > 0.05
    mde = mcnemar_mde(16, 0.0)
    assert mde is not None and mcnemar_power(16, 0.0, mde) == pytest.approx(0.8, abs=1e-6)


def test_clopper_pearson_by_hand() -> None:
    # 16 of 16: the lower bound solves p**16 = 0.025; 0 of 16: the upper bound solves (1 - p)**16 = 0.025.
    assert clopper_pearson(16, 16) == pytest.approx((0.025 ** (1 / 16), 1.0))
    assert clopper_pearson(0, 16) == pytest.approx((0.0, 1 - 0.025 ** (1 / 16)))
    assert mean_interval([1.0] * 16, binary=True) == clopper_pearson(16, 16)


def test_t_interval_by_hand() -> None:
    # mean 2.5, sd sqrt(5/3), t(3) 97.5% quantile 3.1824
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert t_interval([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-5)
    assert mean_interval([1.0, 2.0, 3.0, 4.0], binary=False) == t_interval([1.0, 2.0, 3.0, 4.0])
    assert t_interval([0.3]) == (-math.inf, math.inf)


def test_jackknife_of_a_mean_is_the_usual_standard_error() -> None:
    values = [0.1, 0.5, 0.2, 0.9, 0.4, 0.7]
    error = jackknife_error(leave_one_out(lambda xs: sum(xs) / len(xs), values))
    assert error.stderr == pytest.approx(float(np.std(values, ddof=1)) / math.sqrt(len(values)))
    assert 1 <= error.df <= len(values) - 1
    low, high = corpus_interval(lambda xs: sum(xs) / len(xs), values)
    assert low < float(np.mean(values)) < high


def test_pairing_uses_doc_id_and_hash() -> None:
    baseline = [sample(0, 1), sample(1, 0), sample(2, 1)]
    candidate = [sample(2, 0), sample(1, 1), sample(0, 1, doc_hash="changed")]
    pairs = pair_samples(baseline, candidate)
    assert [(b.doc_id, c.doc_id) for b, c in pairs] == [(1, 1), (2, 2)]


def test_paired_continuous_intervals_are_paired_t() -> None:
    base = [0.2, 0.4, 0.1, 0.5, 0.3, 0.6, 0.2, 0.4]
    cand = [0.3, 0.4, 0.3, 0.6, 0.3, 0.8, 0.3, 0.5]
    result = compare_paired("m", "continuous", pairs_of(base, cand))
    diffs = np.subtract(cand, base)
    assert result.delta == pytest.approx(diffs.mean())
    assert result.interval == pytest.approx(t_interval(diffs))
    assert result.equivalence_interval == pytest.approx(t_interval(diffs, 0.9))
    assert result.test == "paired_permutation" and result.mde == pytest.approx(
        standardized_mde(8) * float(np.std(diffs, ddof=1))  # type: ignore[operator]
    )
    # A constant improvement of 0.1 on 20 items: nothing varies; of 2000 random swaps none (but with chance
    # 2 / 2**20) is as extreme as the observed difference, so p = 1 / 2001.
    steady = compare_paired("m", "continuous", pairs_of([0.5] * 20, [0.6] * 20))
    assert steady.interval == pytest.approx((0.1, 0.1)) and steady.p_value == pytest.approx(1 / 2001)
    assert steady.mde is None


def test_identical_outputs_do_not_collapse_the_interval() -> None:
    """Equal scores on both sides: the spread is taken as that of independent errors, not zero."""
    values = [0.1 * (i % 5) for i in range(10)]
    result = compare_paired("m", "continuous", pairs_of(values, values))
    spread = math.sqrt(2 * float(np.var(values, ddof=1)))
    assert result.interval == pytest.approx(student_interval(0.0, spread / math.sqrt(10), 9))
    assert result.interval.low < 0 < result.interval.high


def test_paired_permutation_p_by_hand() -> None:
    # Four items, all better: only the two all-same-sign swaps of 16 are as extreme, p = 2/16.
    assert paired_permutation_p([0, 0, 0, 0], [1, 2, 3, 4]) == pytest.approx(2 / 16)
    # Differences 3, 1, 1, -1 (sum 4): |±3 ±1 ±1 ±1| >= 4 for 4 of the 8 sign choices with +3 and 4 with -3.
    assert paired_permutation_p([0, 0, 0, 1], [3, 1, 1, 0]) == pytest.approx(8 / 16)
    # A corpus metric that is the mean gives the same exact p as the per-item test.
    base = [sample(i, v) for i, v in enumerate([0.1, 0.5, 0.2, 0.9, 0.4])]
    cand = [sample(i, v) for i, v in enumerate([0.3, 0.4, 0.6, 1.0, 0.8])]
    mean_of = lambda samples: sum(x.scores["m"] for x in samples) / len(samples)  # noqa: E731
    assert paired_permutation_p(base, cand, corpus=mean_of) == pytest.approx(
        paired_permutation_p([x.scores["m"] for x in base], [x.scores["m"] for x in cand])
    )


def test_binary_metrics_use_mcnemar_and_exact_bounds() -> None:
    result = compare_paired("m", "binary", pairs_of([1, 1, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0, 1, 0]))
    assert result.test == "mcnemar_exact" and result.p_value == pytest.approx(10 / 16)
    assert result.delta == pytest.approx(-2 / 8)
    assert result.interval == paired_binary_interval(1, 3, 8, 0.95)
    assert result.equivalence_interval == paired_binary_interval(1, 3, 8, 0.9)
    # No flips on 16 items: the flip share's exact upper bound at half of each side's tail, either way.
    nothing = paired_binary_interval(0, 0, 16, 0.9)
    assert nothing.high == pytest.approx(1 - 0.025 ** (1 / 16)) and nothing.low == -nothing.high


def test_the_binary_interval_contains_its_estimate() -> None:
    """The old construction gave [−0.384, −0.311] for 30 items lost of 100 and none gained."""
    low, high = paired_binary_interval(0, 30, 100, 0.9)
    assert low < -0.30 < high
    assert paired_binary_interval(10, 0, 20).low < 0.5 < paired_binary_interval(10, 0, 20).high


def test_corpus_metrics_use_the_jackknife() -> None:
    def total(samples: Sequence[SampleRecord]) -> float:
        return sum(s.scores["m"] for s in samples) / len(samples)

    base = [0.1, 0.5, 0.2, 0.9, 0.4, 0.7, 0.3, 0.6]
    cand = [0.3, 0.4, 0.6, 1.0, 0.8, 0.7, 0.4, 0.9]
    result = compare_paired("m", "corpus", pairs_of(base, cand), corpus=total)
    assert result.baseline == pytest.approx(np.mean(base)) and result.candidate == pytest.approx(np.mean(cand))
    error = jackknife_error(leave_one_out(lambda d: sum(d) / len(d), list(np.subtract(cand, base))))
    assert result.interval.high - result.interval.low == pytest.approx(
        2 * error.stderr * float(student_t.ppf(0.975, error.df))
    )


def test_four_items_cannot_decide_anything() -> None:
    """With 4 pairs no p falls below 2/16: the comparison says so, and the gate calls it undecided."""
    result = compare_paired("m", "continuous", pairs_of([0.0, 0.1, 0.2, 0.3], [0.5, 0.7, 0.6, 0.9]))
    assert result.smallest_p == pytest.approx(2 / 16) and not result.decides(0.05) and result.mde is None
    assert detects_text(result) == "cannot decide at 4 items"
    assert "cannot decide at 4 items" in power_text(result)
    verdict = judge_metric(
        TASKS["countdown"], "accuracy", "fp32", result._replace(metric="accuracy"), GatePolicy(min_samples=1)
    )
    assert verdict.status == "insufficient" and "cannot decide at 4 items" in verdict.reason
    six = compare_paired("m", "continuous", pairs_of([0.0] * 6, [0.5, 0.7, 0.6, 0.9, 0.4, 0.8]))
    assert six.decides(0.05) and not six.decides(0.01)
    row = PowerRow("perplexity_ultrafeedback", "loglikelihood", "a vs b", 4, "sd of Δ 1", None, 9, False)
    assert row.detectable_text == "cannot decide at 4 items" and row.needed_text == "9"


def test_the_exact_test_power_at_six_pairs_by_hand() -> None:
    """At 6 pairs only all-same-sign differences are significant: power Φ(k)⁶ + Φ(−k)⁶ = 0.8 gives k = 1.793."""
    k = standardized_mde(6)
    assert k is not None and norm.cdf(k) ** 6 + norm.cdf(-k) ** 6 == pytest.approx(0.8, abs=0.02)
    assert permutation_mde(6, 0.0) is None  # nothing varies: nothing to size a change against


def test_no_spread_at_all_leaves_the_detectable_change_undefined() -> None:
    """Every item 0 on one side and 0.1 on the other: nothing to size a change against, so no 'detects ≥ 0'."""
    result = compare_paired("m", "continuous", pairs_of([0.0] * 16, [0.1] * 16))
    assert result.mde is None and result.delta == pytest.approx(0.1) and detects_text(result) == "–"
    varied = compare_paired("m", "continuous", pairs_of([0.0] * 16, [0.1 * (i % 2) for i in range(16)]))
    assert varied.mde is not None and varied.mde > 0
