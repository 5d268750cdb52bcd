"""The sequential gate's guarantees, measured with few seeded draws (``harness/compare/calibration_sequential.py``
measures the same with many): each verdict errs at most alpha over 2,000 looks, each one-sided sequence covers the
truth at every time at once, error spending holds a training run's false regressions to alpha, the gate needs
fewer items than the fixed design, and the path is a deterministic function of the ordered items."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

import numpy as np
import pytest

from ftbench.harness.compare.betting import Side, confidence_bound, log_wealth
from ftbench.harness.compare.calibration import mcnemar_significant
from ftbench.harness.compare.calibration_sequential import (
    ACCURACY,
    DESIGN_ITEMS,
    DISCORDANCE,
    RELATIVE_MARGIN,
    binary_paths,
    bounded_paths,
    expected_items_table,
    fixed_bounded_design,
    fixed_design,
    fixed_items,
    items_to_verdict,
    sequence_coverage,
    verdict_errors,
)
from ftbench.harness.compare.calibration_spending import checkpoint_errors, shared_baseline_checkpoint_errors
from ftbench.harness.compare.permutation import permutation_items_needed
from ftbench.harness.compare.sequential import (
    confidence_sequence,
    detectable_drop,
    fewest_items,
    sequential_verdict,
    verdict_path,
)
from ftbench.harness.compare.spending import checkpoint_alpha, significant_at_checkpoint, spent_alpha

ALPHA = 0.05
NI_MARGIN = RELATIVE_MARGIN * ACCURACY
"""The default policy's 5% relative margin on a 45% accuracy."""


def tolerance(draws: int, rate: float = ALPHA) -> float:
    """Three binomial standard errors of a share near ``rate`` measured on ``draws`` draws."""
    return 3 * math.sqrt(rate * (1 - rate) / draws)


@pytest.mark.parametrize(("binary", "margin"), [(True, 0.0), (True, NI_MARGIN), (False, 0.0), (False, 0.05)])
def test_each_verdict_errs_at_most_alpha_over_every_look_at_the_margin(binary: bool, margin: float) -> None:
    """A true change exactly at −margin, looked at after every one of 2,000 items: a regression is ever called, and
    a pass ever called, each at most alpha of the time."""
    draws = 240
    errors = verdict_errors(binary, margin, draws, seed=11)
    assert errors.false_regression <= ALPHA + tolerance(draws)
    assert errors.false_pass <= ALPHA + tolerance(draws)


@pytest.mark.parametrize(("binary", "change"), [(True, -0.05), (False, -0.03)])
def test_each_one_sided_sequence_covers_the_truth_at_every_time(binary: bool, change: float) -> None:
    draws = 240
    coverage = sequence_coverage(binary, change, draws, seed=12)
    assert coverage.lower >= 1 - ALPHA - tolerance(draws)
    assert coverage.upper >= 1 - ALPHA - tolerance(draws)
    assert coverage.both >= 1 - 2 * ALPHA - tolerance(draws, 2 * ALPHA)


@pytest.mark.parametrize("binary", [True, False])
def test_the_verdicts_are_the_sequence_crossing_the_margin(binary: bool) -> None:
    """On each path the regression verdict holds once the upper sequence has gone below −margin, and the pass once
    the lower one has gone above it (for bounded scores the sequence may lag by its rounding, under 1e-4)."""
    margin, slack = 0.02, 0.0 if binary else 1e-4
    rng = np.random.default_rng(13)
    seen = np.zeros(2, dtype=int)
    for path in binary_paths(rng, 6, 600, -0.06, 0.25) if binary else bounded_paths(rng, 6, 600, -0.04):
        for sign in (1.0, -1.0):
            sequence = confidence_sequence(sign * path, 1.0, binary=binary)
            verdicts = verdict_path(sign * path, 1.0, margin=margin, binary=binary)
            assert np.all(verdicts.regression >= (sequence.upper < -margin))
            assert np.all(verdicts.regression <= (sequence.upper < -margin + slack))
            assert np.all(verdicts.passed >= (sequence.lower > -margin))
            assert np.all(verdicts.passed <= (sequence.lower > -margin - slack))
            seen += (verdicts.regression.any(), verdicts.passed.any())
    assert np.all(seen > 0)


@pytest.mark.parametrize("binary", [True, False])
def test_the_bounds_are_the_roots_rounded_outwards(binary: bool) -> None:
    """Each one-sided bound lies beyond the exact root of the wealth (found by plain bisection), within 1e-8 for
    0/1 metrics and 1e-4 for bounded scores, and the wealth there reaches 1 / alpha."""
    rng = np.random.default_rng(14)
    path = binary_paths(rng, 1, 400, -0.04, 0.2)[0] if binary else np.clip(rng.normal(0.1, 0.5, 400), -1, 1)
    threshold, slack = math.log(1 / ALPHA), 1e-8 if binary else 1e-4
    sides: tuple[tuple[Side, float], ...] = (("below", 1.0), ("above", -1.0))
    for side, sign in sides:
        bounds = confidence_bound(path, ALPHA, side, binary)
        for t in (30, 120, 399):
            prefix = path[: t + 1]
            kept, rejected = prefix.mean(), sign
            for _ in range(60):
                middle = (kept + rejected) / 2
                rejects = log_wealth(prefix, middle, side, binary)[-1] >= threshold
                kept, rejected = (kept, middle) if rejects else (middle, rejected)
            assert 0 <= sign * (bounds[t] - rejected) <= slack
            assert log_wealth(prefix, bounds[t], side, binary)[-1] >= threshold


def test_error_spending_sums_to_at_most_alpha() -> None:
    levels = [checkpoint_alpha(k, ALPHA) for k in range(1, 100_001)]
    assert math.isclose(levels[0], ALPHA * 6 / math.pi**2)
    assert all(a > b for a, b in itertools.pairwise(levels))
    assert math.fsum(levels) <= ALPHA
    assert spent_alpha(100_000, ALPHA) <= ALPHA
    assert spent_alpha(100_000, ALPHA) > 0.99999 * ALPHA
    assert spent_alpha(0, ALPHA) == 0.0
    assert significant_at_checkpoint(0.02, 1) and not significant_at_checkpoint(0.02, 2)


def test_spending_holds_a_training_runs_false_regressions_to_alpha() -> None:
    """20 checkpoints with no true change, each 200 items at 45% accuracy, 20% discordant: the gate at full alpha
    at every look fails a growing share of runs (beyond alpha by 5 looks); spent, at most alpha over all 20."""
    exact = checkpoint_errors()
    assert exact.spent[-1] <= ALPHA
    assert list(exact.spent) == sorted(exact.spent)
    assert exact.full_alpha[0] < ALPHA < exact.full_alpha[1] < exact.full_alpha[-1]
    draws = 1500
    shared = shared_baseline_checkpoint_errors(draws, seed=15)
    assert shared.spent[-1] <= ALPHA + tolerance(draws)
    assert shared.full_alpha[-1] > ALPHA + tolerance(draws)


def test_the_exact_checkpoint_chance_matches_a_simulation() -> None:
    """The enumerated chance that one fresh 200-item comparison fails the fixed gate agrees with a seeded
    simulation of the same comparisons, within three standard errors."""
    draws, items = 20_000, 200
    rng = np.random.default_rng(16)
    chances = (ACCURACY - DISCORDANCE / 2, DISCORDANCE / 2, DISCORDANCE / 2, 1 - ACCURACY - DISCORDANCE / 2)
    right, gained, lost, _ = rng.multinomial(items, chances, size=draws).T
    fails = mcnemar_significant(gained, lost, items) & (
        (lost - gained) / items > RELATIVE_MARGIN * (right + lost) / items
    )
    exact = checkpoint_errors(looks=(1,)).full_alpha[0]
    assert abs(float(fails.mean()) - exact) <= 3 * math.sqrt(exact * (1 - exact) / draws)


def test_the_sequential_gate_needs_fewer_items_than_the_fixed_design() -> None:
    """Against the fixed McNemar design of 500 items (80% power at its MDE, discordance 0.2), with a budget of
    twice its items: at 2× and 3× the MDE at most a third of its items on average, at 1× at most 1.3 times."""
    design = fixed_design()
    assert design.items == DESIGN_ITEMS
    needed = fixed_items(design.mde)
    assert needed is not None and abs(needed - DESIGN_ITEMS) <= 10
    budget, draws = 2 * DESIGN_ITEMS, 200
    at = {k: items_to_verdict(-k * design.mde, 0.0, budget, draws, seed=17) for k in (1, 2, 3)}
    assert at[3].expected_items <= at[2].expected_items <= DESIGN_ITEMS / 3
    assert at[1].expected_items <= 1.3 * DESIGN_ITEMS
    assert at[2].regression == 1.0 and at[1].regression >= 0.8
    assert all(row.passed == 0.0 for row in at.values())


def test_on_bounded_scores_the_gate_is_as_quick_as_the_fixed_permutation_design() -> None:
    """Skewed bounded scores against the fixed permutation design of 500 items (sd 0.16): at most 1.3 times its
    items at its MDE, at most a third at 3× (2×, measured 0.41, is reported, not promised)."""
    design = fixed_bounded_design()
    needed = permutation_items_needed(design.mde, design.spread)
    assert needed is not None and abs(needed - DESIGN_ITEMS) <= 10
    rows = expected_items_table(design, 2 * DESIGN_ITEMS, 150, seed=24, binary=False, multiples=(1.0, 3.0))
    assert rows[0].ratio <= 1.3 and rows[0].sequential.regression >= 0.8
    assert rows[1].ratio <= 1 / 3


def test_0_1_differences_give_the_same_sequence_read_either_way() -> None:
    """Exact betting on differences in {−1, 0, 1}: from the counts (binary) and from the bounded scores' table the
    verdicts agree and the bounds differ only by the table's outward rounding."""
    path = binary_paths(np.random.default_rng(25), 1, 1500, -0.03, 0.3)[0]
    counted, tabled = confidence_sequence(path, 1.0, binary=True), confidence_sequence(path, 1.0)
    assert np.all(tabled.upper >= counted.upper) and np.all(tabled.lower <= counted.lower)
    assert np.max(tabled.upper - counted.upper) < 2e-5 and np.max(counted.lower - tabled.lower) < 2e-5
    read = {m: (verdict_path(path, 1.0, margin=m, binary=True), verdict_path(path, 1.0, margin=m)) for m in (0, 0.1)}
    for counts, table in read.values():
        assert np.array_equal(counts.regression, table.regression) and np.array_equal(counts.passed, table.passed)
    assert read[0][0].regression.any() and read[0.1][0].passed.any()


def test_an_unchanged_model_passes_with_the_relative_margin() -> None:
    """No true change, a 5% relative margin: some runs pass within 2,000 items, and none is called a regression."""
    result = items_to_verdict(0.0, NI_MARGIN, 2000, 120, seed=18)
    assert result.regression <= tolerance(120)
    assert result.passed > 0.1
    assert result.expected_items < 2000
    assert math.isclose(result.passed + result.undecided + result.regression, 1.0)


@pytest.mark.parametrize(("binary", "margin"), [(True, 0.0), (True, NI_MARGIN), (False, 0.0), (False, 0.01)])
def test_the_detectable_drop_is_detected_with_at_least_the_power(binary: bool, margin: float) -> None:
    """An unchanged candidate undecided at a budget of 400: at the drop it reports, with the observed discordance or
    spread, the gate calls a regression by the budget at least 80% of the time (less a sampling tolerance)."""
    budget, draws = 400, 300
    rng = np.random.default_rng(19)
    observed = binary_paths(rng, 1, budget, 0.0, DISCORDANCE)[0] if binary else bounded_paths(rng, 1, budget, 0.0)[0]
    verdict = sequential_verdict(observed, 1.0, budget=budget, margin=margin, binary=binary)
    assert verdict.decision == "undecided"
    drop = verdict.detectable_drop
    assert drop is not None and margin < drop < 0.5
    assert drop == detectable_drop(observed, 1.0, budget=budget, margin=margin, binary=binary)
    discordance = max(float(np.mean(observed != 0)), drop)
    found = items_to_verdict(-drop, margin, budget, draws, seed=20, binary=binary, discordance=discordance)
    assert found.regression >= 0.8 - tolerance(draws, 0.2)
    bigger = detectable_drop(observed, 1.0, budget=4 * budget, margin=margin, binary=binary)
    assert bigger is not None and bigger < drop


@pytest.mark.parametrize("binary", [True, False])
def test_a_resumed_run_replays_the_same_path_and_verdict(binary: bool) -> None:
    """The path of a prefix is the prefix of the path, bit for bit, wherever it is split; the same items give the
    same verdict."""
    rng = np.random.default_rng(21)
    path = binary_paths(rng, 1, 900, -0.1, 0.2)[0] if binary else bounded_paths(rng, 1, 900, -0.05)[0]
    whole = confidence_sequence(path, 1.0, binary=binary)
    verdicts = verdict_path(path, 1.0, binary=binary)
    for split in (1, 37, 450, 899):
        prefix = confidence_sequence(path[:split], 1.0, binary=binary)
        assert np.array_equal(prefix.lower, whole.lower[:split])
        assert np.array_equal(prefix.upper, whole.upper[:split])
        assert np.array_equal(verdict_path(path[:split], 1.0, binary=binary).regression, verdicts.regression[:split])
    first = sequential_verdict(path, 1.0, budget=900, binary=binary, chunk=50)
    assert first == sequential_verdict(list(path), 1.0, budget=900, binary=binary, chunk=50)
    assert first.decision == "regression" and first.items % 50 == 0
    assert first.upper < 0 and first.lower <= first.estimate


def test_the_verdicts_on_clear_cases() -> None:
    fewest = fewest_items(1.0, binary=True)
    assert fewest.regression is not None and 6 <= fewest.regression <= 20
    lost = sequential_verdict(-np.ones(50), 1.0, budget=100, binary=True)
    assert (lost.decision, lost.items) == ("regression", fewest.regression)
    gained = sequential_verdict(np.ones(50), 1.0, budget=100, binary=True, chunk=25)
    assert (gained.decision, gained.items) == ("pass", 25)
    waiting = sequential_verdict(-np.ones(fewest.regression - 1), 1.0, budget=100, binary=True)
    assert waiting.decision == "continue" and waiting.detectable_drop is None
    nothing = sequential_verdict(np.zeros(100), 1.0, budget=100, binary=True)
    assert nothing.decision == "undecided" and nothing.lower < 0 < nothing.upper
    assert sequential_verdict([], 1.0, budget=10).decision == "continue"
    with_margin = fewest_items(1.0, margin=0.2, binary=True)
    assert with_margin.regression is not None and with_margin.regression > fewest.regression
    assert with_margin.passed is not None and fewest.passed is not None and with_margin.passed < fewest.passed


def test_the_metric_scale_does_not_change_the_verdict() -> None:
    """A 0-100 score with bound 100 gives the 0-1 score's sequence times 100 and the same verdict."""
    path = bounded_paths(np.random.default_rng(22), 1, 300, -0.05)[0]
    unit, hundred = confidence_sequence(path, 1.0), confidence_sequence(100 * path, 100.0)
    assert np.allclose(hundred.upper, 100 * unit.upper) and np.allclose(hundred.lower, 100 * unit.lower)
    first = sequential_verdict(path, 1.0, budget=300, margin=0.01)
    second = sequential_verdict(100 * path, 100.0, budget=300, margin=1.0)
    assert (first.decision, first.items) == (second.decision, second.items)


@pytest.mark.parametrize("binary", [True, False])
def test_a_2000_item_sequence_is_cheap(binary: bool) -> None:
    """The verdicts after each of 2,000 items take milliseconds (here: under 0.1 s on a loaded machine), and the
    whole confidence sequence well under a second and a half."""
    rng = np.random.default_rng(23)
    path = binary_paths(rng, 1, 2000, 0.0, DISCORDANCE)[0] if binary else bounded_paths(rng, 1, 2000, 0.0)[0]
    start = time.perf_counter()
    verdict_path(path, 1.0, margin=NI_MARGIN, binary=binary)
    verdict_seconds = time.perf_counter() - start
    confidence_sequence(path, 1.0, binary=binary)
    assert verdict_seconds < 0.1
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: confidence_sequence([0.5, 1.5], 1.0), "difference 1.5 at item 1 lies outside"),
        (lambda: confidence_sequence([0.5, -30.0], 20.0), "difference -30.0 at item 1 lies outside"),
        (lambda: confidence_sequence([0.0, float("nan")], 1.0), "difference nan at item 1"),
        (lambda: confidence_sequence([0.5], 1.0, binary=True), "of a 0/1 metric must be"),
        (lambda: confidence_sequence([0.5], 0.0), "bound 0.0 must be a positive number"),
        (lambda: confidence_sequence([0.5], 1.0, alpha=1.0), "alpha 1.0 must be a level"),
        (lambda: confidence_sequence([[0.5]], 1.0), "one sequence of numbers"),  # type: ignore[list-item]
        (lambda: verdict_path([0.5], 1.0, margin=-0.1), "margin -0.1 must be at least 0"),
        (lambda: verdict_path([0.5], 1.0, margin=1.0), "below the bound"),
        (lambda: sequential_verdict([0.5], 1.0, budget=0), "budget 0 must be a whole number"),
        (lambda: sequential_verdict([0.5], 1.0, budget=10, chunk=0), "chunk 0 must be a whole number"),
        (lambda: sequential_verdict([0.5], 1.0, budget=10, chunk=2.5), "chunk 2.5 must be a whole number"),  # type: ignore[arg-type]
        (lambda: sequential_verdict([0.5, 0.5], 1.0, budget=1), "exceed the budget of 1 items"),
        (lambda: detectable_drop([], 1.0, budget=10), "needs at least one difference"),
        (lambda: detectable_drop([0.5], 1.0, budget=10, power=1.0), "power 1.0 must be a probability"),
        (lambda: fewest_items(-1.0), "bound -1.0 must be a positive number"),
        (lambda: checkpoint_alpha(0), "look 0 must be a whole number from 1"),
        (lambda: checkpoint_alpha(1, 0.0), "alpha 0.0 must be a level"),
        (lambda: significant_at_checkpoint(1.5, 1), "p-value 1.5 must lie between 0 and 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
