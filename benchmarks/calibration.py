"""The calibration table: every level ftbench prints, measured (a measurement, not a test; the same checks with
fewer draws run in tests/test_calibration.py).

0/1 metrics by exact enumeration of every (gained, lost) at each n, the worst case over a grid of true chances;
continuous and corpus metrics by simulation with fixed seeds. Prints a markdown table: claim, n, measured value.
The measurements themselves live in ``ftbench.harness.compare.calibration``.

    PYTHONPATH=. python benchmarks/calibration.py            # --draws 20000 by default; about a minute
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

import numpy as np

from ftbench.harness.compare.calibration import (
    BINARY_SIZES,
    MARGINS,
    GateErrors,
    Shape,
    binary_bounds_check,
    binary_gate_errors,
    clopper_pearson_coverage,
    corpus_coverage,
    heavy_tailed_draws,
    normal_draws,
    paired_corpus_coverage,
    simulated_mcnemar_power,
    simulated_permutation_power,
    skewed_draws,
    t_coverage,
    tost_equivalent_share,
)
from ftbench.harness.compare.calibration_selection import selection_table
from ftbench.harness.compare.calibration_sequential import (
    ACCURACY,
    RELATIVE_MARGIN,
    expected_items_table,
    fixed_bounded_design,
    fixed_design,
    items_to_verdict,
    sequence_coverage,
    verdict_errors,
)
from ftbench.harness.compare.calibration_spending import checkpoint_errors, shared_baseline_checkpoint_errors
from ftbench.harness.compare.mcnemar import mcnemar_mde
from ftbench.harness.compare.permutation import permutation_mde, smallest_permutation_p

SIZES = "/".join(map(str, BINARY_SIZES))


class Row(NamedTuple):
    """One measured claim."""

    claim: str
    n: str
    measured: str


def _pct(values: list[float]) -> str:
    return " / ".join(f"{100 * v:.1f}%" for v in values)


def binary_bounds_rows() -> list[Row]:
    """The paired 0/1 bounds at 90% and 95%: worst one-sided misses and whether they contain their estimates."""
    rows = []
    for confidence in (0.9, 0.95):
        checks = [binary_bounds_check(n, confidence, 40 if n < 200 else 28) for n in BINARY_SIZES]
        contains = all(check.contain_estimate for check in checks)
        tail = f"{100 * (1 - confidence) / 2:.1f}%"
        claim = f"0/1 Δ, {confidence:.0%} exact bounds: worst one-sided miss (nominal ≤ {tail}); contain estimate"
        misses = _pct([check.worst_miss for check in checks])
        rows.append(Row(claim, SIZES, f"{misses}; {'all' if contains else 'NOT all'}"))
    return rows


def _worst_gate_errors(n: int) -> GateErrors:
    """The gate's errors on ``n`` items, each at its worst over the margins."""
    at_margins = [binary_gate_errors(n, margin) for margin in MARGINS]
    return GateErrors(*(max(errors) for errors in zip(*at_margins, strict=True)))


def gate_rows() -> list[Row]:
    """The gate's errors at the margin (equivalence mode) and at no change (gate mode), by exact enumeration."""
    worst = [_worst_gate_errors(n) for n in BINARY_SIZES]
    return [
        Row(
            "equivalence gate, 0/1, true drop = margin: P(exit 1), worst (≤ 5%)",
            SIZES,
            _pct([w.regression_at_margin for w in worst]),
        ),
        Row(
            "equivalence gate, 0/1, true Δ = ±margin: P(equivalent), worst (≤ 5%)",
            SIZES,
            _pct([w.equivalent_at_margin for w in worst]),
        ),
        Row(
            "gate mode, 0/1, no true change: P(exit 1), worst (≤ 2.5%)", SIZES, _pct([w.fails_unchanged for w in worst])
        ),
        Row(
            "gate mode, 0/1, true drop = margin: P(exit 1), worst (no guarantee)",
            SIZES,
            _pct([w.fails_at_margin for w in worst]),
        ),
    ]


def clopper_pearson_rows() -> list[Row]:
    """Exact coverage of the 0/1 mean's 95% interval."""
    lowest = min(clopper_pearson_coverage(16, np.linspace(0.001, 0.999, 500)))
    return [
        Row(
            "0/1 mean, 95% Clopper-Pearson: coverage at p = 0.5 / 0.8 / 0.95",
            "16",
            _pct(clopper_pearson_coverage(16, (0.5, 0.8, 0.95))),
        ),
        Row("0/1 mean, 95% Clopper-Pearson: lowest coverage over p", "16", _pct([lowest])),
    ]


def t_rows(draws: int) -> list[Row]:
    """Coverage of the 95% t interval (means and paired differences of continuous scores)."""
    shapes: dict[str, Shape] = {
        "normal": normal_draws,
        "t₃ (heavy tails)": heavy_tailed_draws,
        "exponential (skewed)": skewed_draws,
    }
    rows = []
    for name, shape in shapes.items():
        measured = [t_coverage(shape, n, draws // 4, seed=n).covered for n in (4, 8, 16)]
        rows.append(Row(f"continuous mean or Δ, 95% t interval: coverage, {name}", "4/8/16", _pct(measured)))
    return rows


def tost_rows(draws: int) -> list[Row]:
    """How often paired-t TOST calls a true drop exactly at the margin equivalent."""
    measured = [tost_equivalent_share(n, 0.1, 2 * draws, seed=100 + n) for n in (8, 20)]
    return [
        Row("continuous equivalence (paired t TOST), true drop = margin: P(equivalent) (≤ 5%)", "8/20", _pct(measured))
    ]


def corpus_rows(draws: int) -> list[Row]:
    """Coverage of the jackknife t interval of bits per byte, alone and as a paired difference (the report's 95%
    CI of Δ), over documents of log-normal sizes."""
    alone = [corpus_coverage(n, draws // 4, seed=n) for n in (4, 8, 16)]
    paired = [paired_corpus_coverage(n, 0.05, draws // 10, seed=n).report.covered for n in (8, 16)]
    return [
        Row(
            "corpus metric (bits per byte), 95% jackknife t: coverage, document sizes log-normal",
            "4/8/16",
            _pct(alone),
        ),
        Row("corpus metric, paired Δ, 95% jackknife t: coverage, log-normal document sizes", "8/16", _pct(paired)),
    ]


def power_rows(draws: int) -> list[Row]:
    """Simulated power at the printed minimum detectable effect: McNemar's test and the permutation test."""
    rows = []
    for discordance in (0.0, 0.2):
        measured = [
            simulated_mcnemar_power(n, discordance, mcnemar_mde(n, discordance) or 1.0, draws, seed=n)
            for n in BINARY_SIZES
        ]
        claim = f"0/1 power at the printed MDE, McNemar exact, observed discordance {discordance} (80%)"
        rows.append(Row(claim, SIZES, _pct(measured)))
    measured = [
        simulated_permutation_power(n, permutation_mde(n, 1.0) or 0.0, draws // 5, seed=1000 + n)
        for n in (8, 16, 20, 60)
    ]
    rows.append(
        Row("continuous power at the printed MDE, permutation test, normal Δ (80%)", "8/16/20/60", _pct(measured))
    )
    floor = smallest_permutation_p(4, 500)
    rows.append(Row("4 perplexity documents: smallest p the test can give (so: cannot decide)", "4", f"{floor:.3f}"))
    return rows


def sequential_rows(draws: int) -> list[Row]:
    """The sequential gate: each verdict's error and the confidence sequence's coverage over 2,000 looks (one after
    every item), error spending over a training run's 20 checkpoints, and the expected items to a verdict against the
    fixed design that detects the same change with 80% power."""
    rows = []
    cases = [("0/1, 20% discordant, margin 0", True, 0.0), ("0/1, 20% discordant, margin 0.0225", True, 0.0225),
             ("bounded score, margin 0.05", False, 0.05)]  # fmt: skip
    for label, binary, margin in cases:
        errors = verdict_errors(binary, margin, min(draws, 10000), 1)
        claim = f"sequential gate, {label}, true change = −margin, a look after every item: P(ever regression) / "
        measured = _pct([errors.false_regression, errors.false_pass])
        rows.append(Row(claim + "P(ever pass) (each ≤ 5%)", "≤ 2,000", measured))
    for label, binary, change in (("0/1, true Δ −0.05", True, -0.05), ("bounded score, true Δ −0.03", False, -0.03)):
        held = sequence_coverage(binary, change, min(draws, 10000), 3)
        rows.append(Row(f"confidence sequence, {label}: never excluded the truth, lower / upper (each ≥ 95%)",
                        "≤ 2,000", _pct([held.lower, held.upper])))  # fmt: skip
    spent, shared = checkpoint_errors(), shared_baseline_checkpoint_errors(min(draws, 20000), 1)
    looks = "/".join(map(str, spent.looks))
    rows.append(Row("training run, no true change, fixed gate at full alpha per checkpoint: P(any false regression) "
                    f"by checkpoint {looks}", "200 each", _pct(list(shared.full_alpha))))  # fmt: skip
    rows.append(Row(f"the same with alpha spent over the checkpoints (α·6/(π²k²)) (≤ 5%), by checkpoint {looks}",
                    "200 each", _pct(list(spent.spent))))  # fmt: skip
    for label, design, binary in (("0/1", fixed_design(), True), ("bounded score", fixed_bounded_design(), False)):
        table = expected_items_table(design, 2 * design.items, min(draws, 10000), 40, binary=binary, chunk=1)
        ratios = " / ".join(f"{row.sequential.expected_items:.0f} ({row.ratio:.2f}×)" for row in table)
        rows.append(Row(f"sequential gate, {label}: expected items at true drops of 0.5 / 1 / 2 / 3 × the fixed "
                        f"design's MDE ({design.mde:.3g}), against its {design.items} items", str(design.items),
                        ratios))  # fmt: skip
    unchanged = items_to_verdict(0.0, RELATIVE_MARGIN * ACCURACY, 1000, min(draws, 4000), 9)
    rows.append(Row("sequential gate, 0/1, unchanged model, 5% relative margin, budget 1,000: expected items; "
                    "pass / undecided / regression", "≤ 1,000",
                    f"{unchanged.expected_items:.0f}; " + _pct([unchanged.passed, unchanged.undecided,
                                                               unchanged.regression])))  # fmt: skip
    return rows


def selection_rows(draws: int, calibration_draws: int) -> list[Row]:
    """Choosing among a training run's checkpoints (0/1 scores, K = 5, 10, 20 and n = 100, 500, true accuracies on a
    rising curve with noise, uniform, all equal, one better): the adjusted interval's and the naive interval's
    coverage of the selected checkpoint's true gain, the could-be-best set's coverage of the true best, and the
    calibration of P(best) (largest binned gap, claimed for truths drawn at random: curve and uniform)."""
    rows = []
    for row in selection_table(draws=draws, calibration_draws=calibration_draws, seed=0):
        c = row.coverage
        gap = row.calibration.posterior.gap
        rows.append(Row(f"select K = {row.k}, truth {row.truth}: adjusted / naive interval coverage (≥ 95% / no "
                        "claim); could-be-best holds the best (≥ 95%); P(best) largest binned gap", str(row.n),
                        f"{_pct([c.adjusted, c.naive])}; {_pct([c.could_be_best])}; {gap:.3f}"))  # fmt: skip
    return rows


def main() -> None:
    """Measure every claim and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20000, help="simulated draws per measurement (up to)")
    parser.add_argument("--selection-draws", type=int, default=1000, help="runs per selection configuration")
    args = parser.parse_args()
    rows = binary_bounds_rows() + gate_rows() + clopper_pearson_rows()
    rows += t_rows(args.draws) + tost_rows(args.draws) + corpus_rows(args.draws) + power_rows(args.draws)
    rows += sequential_rows(args.draws) + selection_rows(args.selection_draws, 2 * args.selection_draws)
    print("| claim | n | measured |\n|---|---|---|")
    for row in rows:
        print(f"| {row.claim} | {row.n} | {row.measured} |")


if __name__ == "__main__":
    main()
