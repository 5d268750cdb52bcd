"""Statistics against hand computations on planted examples."""

from __future__ import annotations

import math

import pytest

from harness.compare.statistics import (
    compare_paired,
    corpus_interval,
    mcnemar_exact,
    mean_interval,
    pair_samples,
    paired_permutation_p,
)
from harness.core.records import SampleRecord


def sample(doc_id: int, value: float, doc_hash: str | None = None) -> SampleRecord:
    return SampleRecord(
        doc_id=doc_id, doc_hash=doc_hash or f"h{doc_id}", prompt="p", response="r", target="t", scores={"m": value}
    )


def test_mcnemar_exact_by_hand() -> None:
    baseline = [1, 1, 1, 1, 1, 0, 0, 0]
    candidate = [0, 0, 0, 1, 1, 0, 1, 0]
    # 3 pairs only the baseline got right, 1 only the candidate: p = 2 * P(X <= 1 | n=4, 1/2) = 2 * 5/16
    assert mcnemar_exact(baseline, candidate) == pytest.approx(10 / 16)
    assert mcnemar_exact([1, 0], [1, 0]) == 1.0
    # 10 discordant pairs all one way: 2 / 2**10
    assert mcnemar_exact([0] * 10, [1] * 10) == pytest.approx(2 / 1024)


def test_mean_interval_by_hand() -> None:
    # Two values: resampled means are 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so the 95% interval is [0, 1].
    assert mean_interval([0.0, 1.0], iters=4000) == (0.0, 1.0)
    assert mean_interval([0.3] * 5) == (0.3, 0.3)
    # 400 coin flips at p = 1/2: the interval is close to the normal one, 0.5 ± 1.96 * sqrt(0.25 / 400).
    low, high = mean_interval([1.0, 0.0] * 200, iters=4000)
    half = 1.96 * math.sqrt(0.25 / 400)
    assert low == pytest.approx(0.5 - half, abs=0.01) and high == pytest.approx(0.5 + half, abs=0.01)


def test_pairing_uses_doc_id_and_hash() -> None:
    baseline = [sample(0, 1), sample(1, 0), sample(2, 1)]
    candidate = [sample(2, 0), sample(1, 1), sample(0, 1, doc_hash="changed")]
    pairs = pair_samples(baseline, candidate)
    assert [(b.doc_id, c.doc_id) for b, c in pairs] == [(1, 1), (2, 2)]


def test_paired_bootstrap_interval_by_hand() -> None:
    # Candidate minus baseline is 0 on one item and 1 on the other: the paired interval is [0, 1] (see above).
    pairs = [(sample(0, 0.2), sample(0, 0.2)), (sample(1, 0.2), sample(1, 1.2))]
    result = compare_paired("m", "continuous", pairs, iters=4000)
    assert result.delta == pytest.approx(0.5)
    assert result.interval == pytest.approx((0.0, 1.0))
    assert result.test == "paired_permutation"
    # A constant improvement of 0.1 on 20 items: the interval is the point itself; of 2000 random swaps none
    # (but with chance 2 / 2**20) is as extreme as the observed difference, so p = 1 / 2001.
    steady = [(sample(i, 0.5), sample(i, 0.6)) for i in range(20)]
    exact = compare_paired("m", "continuous", steady)
    assert exact.interval == pytest.approx((0.1, 0.1)) and exact.p_value == pytest.approx(1 / 2001)


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


def test_binary_metrics_use_mcnemar() -> None:
    pairs = [
        (sample(i, b), sample(i, c))
        for i, (b, c) in enumerate(zip([1, 1, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0, 1, 0], strict=True))
    ]
    result = compare_paired("m", "binary", pairs)
    assert result.test == "mcnemar_exact" and result.p_value == pytest.approx(10 / 16)
    assert result.delta == pytest.approx(-2 / 8)


def test_corpus_metrics_resample_items() -> None:
    def total(samples: list[SampleRecord]) -> float:
        return sum(s.scores["m"] for s in samples)

    pairs = [(sample(i, 1.0), sample(i, 2.0)) for i in range(10)]
    result = compare_paired("m", "corpus", pairs, corpus=total)
    assert result.baseline == 10 and result.candidate == 20
    assert result.interval == pytest.approx((10.0, 10.0))
    assert corpus_interval(total, [s for s, _ in pairs]) == pytest.approx((10.0, 10.0))


def test_no_spread_at_all_leaves_the_detectable_change_undefined() -> None:
    """Every item 0 on one side and 0.1 on the other: nothing to size a change against, so no 'detects ≥ 0'."""
    base = [sample(i, 0.0) for i in range(16)]
    cand = [sample(i, 0.1) for i in range(16)]
    result = compare_paired("m", "continuous", list(zip(base, cand, strict=True)))
    assert result.mde is None and result.delta == pytest.approx(0.1)
    varied = [sample(i, 0.1 * (i % 2)) for i in range(16)]
    mde = compare_paired("m", "continuous", list(zip(base, varied, strict=True))).mde
    assert mde is not None and mde > 0
