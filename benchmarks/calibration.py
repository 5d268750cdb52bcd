"""The calibration table: every level ftbench prints, measured (a measurement, not a test; the same checks with
fewer draws run in tests/test_calibration.py).

0/1 metrics by exact enumeration of every (gained, lost) at each n, the worst case over a grid of true chances;
continuous and corpus metrics by simulation with fixed seeds. Prints a markdown table: claim, n, measured value.

    PYTHONPATH=. python benchmarks/calibration.py            # --draws 20000 by default; about a minute
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import binom

from ftbench.harness.compare.enumeration import binary_outcomes, truth_grid, truths_at, worst_chance
from ftbench.harness.compare.intervals import (
    clopper_pearson,
    corpus_interval,
    paired_binary_bounds,
    student_interval,
    t_interval,
)
from ftbench.harness.compare.mcnemar import _critical_counts, mcnemar_mde
from ftbench.harness.compare.permutation import paired_permutation_p, permutation_mde, smallest_permutation_p
from ftbench.harness.compare.statistics import compare_paired, paired_spread
from ftbench.harness.core.records import SampleRecord

SIZES = (16, 20, 60, 200)
MARGINS = (0.05, 0.1, 0.2)


class Row(NamedTuple):
    """One measured claim."""

    claim: str
    n: str
    measured: str


def _pct(values: list[float]) -> str:
    return " / ".join(f"{100 * v:.1f}%" for v in values)


def _worst_miss(n: int, confidence: float) -> tuple[float, bool]:
    """The worst one-sided miss of the paired 0/1 bounds at n, and whether every interval holds its estimate."""
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n, confidence)
    estimate = (outcomes.gained - outcomes.lost) / n
    contains = bool(np.all((low <= estimate + 1e-12) & (estimate <= high + 1e-12)))
    grid = truth_grid(40 if n < 200 else 28)
    below = worst_chance(outcomes, grid, lambda t: low[None] > (t.p_gain - t.p_loss)[:, None])
    above = worst_chance(outcomes, grid, lambda t: high[None] < (t.p_gain - t.p_loss)[:, None])
    return max(below, above), contains


def binary_bounds_rows() -> list[Row]:
    """The paired 0/1 bounds at 90% and 95%: worst one-sided misses and whether they contain their estimates."""
    rows = []
    for confidence in (0.9, 0.95):
        measured = [_worst_miss(n, confidence) for n in SIZES]
        contains = all(holds for _, holds in measured)
        tail = f"{100 * (1 - confidence) / 2:.1f}%"
        claim = f"0/1 Δ, {confidence:.0%} exact bounds: worst one-sided miss (nominal ≤ {tail}); contain estimate"
        misses = _pct([miss for miss, _ in measured])
        rows.append(Row(claim, "/".join(map(str, SIZES)), f"{misses}; {'all' if contains else 'NOT all'}"))
    return rows


def _gate_flags(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    outcomes = binary_outcomes(n)
    low, high = paired_binary_bounds(outcomes.gained, outcomes.lost, n, 0.9)
    flips = outcomes.gained + outcomes.lost
    significant = np.minimum(outcomes.gained, outcomes.lost) <= _critical_counts(n, 0.05)[flips]
    return low, high, significant, (outcomes.lost - outcomes.gained) / n


def gate_rows() -> list[Row]:
    """The gate's errors at the margin (equivalence mode) and at no change (gate mode), by exact enumeration."""
    fails: list[float] = []
    called: list[float] = []
    unchanged: list[float] = []
    at_margin: list[float] = []
    for n in SIZES:
        outcomes = binary_outcomes(n)
        low, high, significant, drop = _gate_flags(n)
        worst: list[float] = [0.0, 0.0, 0.0, 0.0]
        for m in MARGINS:
            equivalent, regression = (low > -m) & (high < m), high < -m
            worst[0] = max(worst[0], worst_chance(outcomes, truths_at(-m), regression))
            for delta in (-m, m):
                worst[1] = max(worst[1], worst_chance(outcomes, truths_at(delta), equivalent))
            gate_fails = significant & (drop > m)
            worst[2] = max(worst[2], worst_chance(outcomes, truths_at(0.0), gate_fails))
            worst[3] = max(worst[3], worst_chance(outcomes, truths_at(-m), gate_fails))
        for bucket, value in zip((fails, called, unchanged, at_margin), worst, strict=True):
            bucket.append(value)
    sizes = "/".join(map(str, SIZES))
    return [
        Row("equivalence gate, 0/1, true drop = margin: P(exit 1), worst (≤ 5%)", sizes, _pct(fails)),
        Row("equivalence gate, 0/1, true Δ = ±margin: P(equivalent), worst (≤ 5%)", sizes, _pct(called)),
        Row("gate mode, 0/1, no true change: P(exit 1), worst (≤ 2.5%)", sizes, _pct(unchanged)),
        Row("gate mode, 0/1, true drop = margin: P(exit 1), worst (no guarantee)", sizes, _pct(at_margin)),
    ]


def clopper_pearson_rows() -> list[Row]:
    """Exact coverage of the 0/1 mean's 95% interval."""
    n = 16
    bounds = [clopper_pearson(k, n) for k in range(n + 1)]

    def coverage(truth: float) -> float:
        covered = np.array([low <= truth <= high for low, high in bounds])
        return float(binom.pmf(np.arange(n + 1), n, truth) @ covered)

    lowest = min(coverage(p) for p in np.linspace(0.001, 0.999, 500))
    return [
        Row(
            "0/1 mean, 95% Clopper-Pearson: coverage at p = 0.5 / 0.8 / 0.95",
            "16",
            _pct([coverage(p) for p in (0.5, 0.8, 0.95)]),
        ),
        Row("0/1 mean, 95% Clopper-Pearson: lowest coverage over p", "16", _pct([lowest])),
    ]


Shape = Callable[[np.random.Generator, int], tuple[np.ndarray, float]]
"""Draws n values and says their true mean."""


def _coverage(shape: Shape, n: int, draws: int) -> float:
    rng = np.random.default_rng(n)
    hits = 0
    for _ in range(draws):
        values, truth = shape(rng, n)
        low, high = t_interval(values)
        hits += low <= truth <= high
    return hits / draws


def t_rows(draws: int) -> list[Row]:
    """Coverage of the 95% t interval (means and paired differences of continuous scores)."""
    shapes: dict[str, Shape] = {
        "normal": lambda rng, n: (rng.standard_normal(n), 0.0),
        "t₃ (heavy tails)": lambda rng, n: (rng.standard_t(3, n), 0.0),
        "exponential (skewed)": lambda rng, n: (rng.exponential(size=n), 1.0),
    }
    rows = []
    for name, shape in shapes.items():
        measured = [_coverage(shape, n, draws // 4) for n in (4, 8, 16)]
        rows.append(Row(f"continuous mean or Δ, 95% t interval: coverage, {name}", "4/8/16", _pct(measured)))
    return rows


def tost_rows(draws: int) -> list[Row]:
    """How often paired-t TOST calls a true drop exactly at the margin equivalent."""
    measured, margin = [], 0.1
    for n in (8, 20):
        rng = np.random.default_rng(100 + n)
        hits = 0
        for _ in range(2 * draws):
            base = 0.5 + 0.2 * rng.standard_normal(n)
            cand = base - margin + 0.1 * rng.standard_normal(n)
            low, high = student_interval(
                float((cand - base).mean()), paired_spread(base, cand) / math.sqrt(n), n - 1, 0.9
            )
            hits += -margin < low and high < margin
        measured.append(hits / (2 * draws))
    return [
        Row("continuous equivalence (paired t TOST), true drop = margin: P(equivalent) (≤ 5%)", "8/20", _pct(measured))
    ]


def _ratio(samples: Sequence[tuple[float, float]]) -> float:
    return sum(bits for bits, _ in samples) / sum(size for _, size in samples)


def corpus_rows(draws: int) -> list[Row]:
    """Coverage of the jackknife t interval of bits per byte over documents of log-normal sizes."""
    measured = []
    for n in (4, 8, 16):
        rng = np.random.default_rng(n)
        hits = 0
        for _ in range(draws // 4):
            sizes = rng.lognormal(7, 0.8, n)
            low, high = corpus_interval(
                _ratio, list(zip((1 + 0.15 * rng.standard_normal(n)) * sizes, sizes, strict=True))
            )
            hits += low <= 1.0 <= high
        measured.append(hits / (draws // 4))
    return [
        Row(
            "corpus metric (bits per byte), 95% jackknife t: coverage, document sizes log-normal",
            "4/8/16",
            _pct(measured),
        )
    ]


def _bits_per_byte(samples: Sequence[SampleRecord]) -> float:
    return sum(s.scores["bits"] for s in samples) / sum(s.scores["bytes"] for s in samples)


def _paired_docs(rng: np.random.Generator, n: int, shift: float) -> list[tuple[SampleRecord, SampleRecord]]:
    sizes = rng.lognormal(7, 0.8, n)
    base = 1.0 + 0.15 * rng.standard_normal(n)
    cand = base + shift + 0.03 * rng.standard_normal(n)

    def doc(i: int, rate: float) -> SampleRecord:
        scores = {"bits": float(rate * sizes[i]), "bytes": float(sizes[i])}
        return SampleRecord(doc_id=i, doc_hash=f"h{i}", prompt="", response="", target="", scores=scores)

    return [(doc(i, base[i]), doc(i, cand[i])) for i in range(n)]


def corpus_difference_rows(draws: int) -> list[Row]:
    """Coverage of the jackknife t interval of a paired corpus difference (the report's 95% CI of Δ)."""
    measured = []
    for n in (8, 16):
        rng, runs = np.random.default_rng(n), draws // 10
        hits = 0
        for _ in range(runs):
            result = compare_paired("bits", "corpus", _paired_docs(rng, n, 0.05), corpus=_bits_per_byte, iters=1)
            hits += result.interval.low <= 0.05 <= result.interval.high
        measured.append(hits / runs)
    return [
        Row("corpus metric, paired Δ, 95% jackknife t: coverage, log-normal document sizes", "8/16", _pct(measured))
    ]


def power_rows(draws: int) -> list[Row]:
    """Simulated power at the printed minimum detectable effect: McNemar's test and the permutation test."""
    rows = []
    for discordance in (0.0, 0.2):
        measured = []
        for n in SIZES:
            mde = mcnemar_mde(n, discordance) or 1.0
            psi = max(discordance, mde)
            sample = np.random.default_rng(n).multinomial(n, [(psi + mde) / 2, (psi - mde) / 2, 1 - psi], size=draws)
            critical = _critical_counts(n, 0.05)[sample[:, 0] + sample[:, 1]]
            measured.append(float(np.mean(np.minimum(sample[:, 0], sample[:, 1]) <= critical)))
        claim = f"0/1 power at the printed MDE, McNemar exact, observed discordance {discordance} (80%)"
        rows.append(Row(claim, "/".join(map(str, SIZES)), _pct(measured)))
    measured = []
    for n in (8, 16, 20, 60):
        mde, rng = permutation_mde(n, 1.0) or 0.0, np.random.default_rng(1000 + n)
        runs = draws // 5
        measured.append(
            sum(paired_permutation_p(np.zeros(n), rng.standard_normal(n) + mde) < 0.05 for _ in range(runs)) / runs
        )
    rows.append(
        Row("continuous power at the printed MDE, permutation test, normal Δ (80%)", "8/16/20/60", _pct(measured))
    )
    floor = smallest_permutation_p(4, 500)
    rows.append(Row("4 perplexity documents: smallest p the test can give (so: cannot decide)", "4", f"{floor:.3f}"))
    return rows


def main() -> None:
    """Measure every claim and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20000, help="simulated draws per measurement (up to)")
    args = parser.parse_args()
    rows = binary_bounds_rows() + gate_rows() + clopper_pearson_rows()
    rows += t_rows(args.draws) + tost_rows(args.draws) + corpus_rows(args.draws) + corpus_difference_rows(args.draws)
    rows += power_rows(args.draws)
    print("| claim | n | measured |\n|---|---|---|")
    for row in rows:
        print(f"| {row.claim} | {row.n} | {row.measured} |")


if __name__ == "__main__":
    main()
