"""What moved beyond the metric: flips, choice and token KL, power, equivalence, and the report's three families."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.compare.agreement import ROUNDING, choice_agreement, token_agreement
from ftbench.harness.compare.intervals import paired_binary_interval
from ftbench.harness.compare.mcnemar import mcnemar_items_needed, mcnemar_mde, mcnemar_power
from ftbench.harness.compare.policy import GatePolicy, MetricRule, decide, judge_metric
from ftbench.harness.compare.power import power_table
from ftbench.harness.compare.statistics import Interval, PairedComparison, compare_paired
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import TOPK_DECIMALS, SampleRecord, TokenTopK
from ftbench.reports.analysis import analyse
from ftbench.reports.glance import family_rows, lineage
from ftbench.reports.markdown import render_markdown
from ftbench.tasks.registry import TASKS, recorded_task
from tests.records import make_manifest, make_record, write_results


def sample(doc_id: int, score: float, **extra: object) -> SampleRecord:
    return SampleRecord(
        doc_id=doc_id,
        doc_hash=f"h{doc_id}",
        prompt=f"p{doc_id}",
        response="r",
        target="t",
        scores={"m": score},
        **extra,
    )


def test_flips_name_the_items_that_moved_each_way() -> None:
    base = [sample(i, v) for i, v in enumerate([1, 1, 0, 0, 1, 0])]
    cand = [sample(i, v) for i, v in enumerate([0, 1, 1, 1, 1, 0])]
    comparison = compare_paired("m", "binary", list(zip(base, cand, strict=True)))
    assert comparison.flips is not None
    assert comparison.flips.gained == [2, 3] and comparison.flips.lost == [0]


def test_power_by_hand() -> None:
    # Connor (1987) approximates psi = 0.1, d = 0.05 by (1.96 sqrt(psi) + 0.8416 sqrt(psi - d^2))^2 / d^2 = 312 items;
    # the exact binomial power needs more, and from that count on it stays at 80%.
    needed = mcnemar_items_needed(0.05, 0.1)
    assert needed is not None and 312 < needed < 360
    assert all(mcnemar_power(n, 0.1, 0.05) >= 0.8 for n in range(needed, needed + 10))
    assert mcnemar_power(needed - 1, 0.1, 0.05) < 0.8
    # By hand at n = 6, every item flipping: the test rejects only 6-0 or 0-6 (p = 2/64); delta 1 always does.
    assert mcnemar_power(6, 1.0, 1.0) == pytest.approx(1.0) and mcnemar_power(6, 1.0, 0.0) == pytest.approx(2 / 64)
    assert mcnemar_mde(5, 0.5) is None  # five items can never reach p < 0.05
    small, large = mcnemar_mde(16, 0.0), mcnemar_mde(16, 0.3)
    assert small is not None and large is not None and small == pytest.approx(large, abs=1e-6)  # psi >= the effect
    assert 0.3 < small < 0.9  # 16 items detect only large changes


def test_choice_kl_by_hand() -> None:
    base = sample(0, 1.0, choice_loglikelihoods=[math.log(0.5), math.log(0.25), math.log(0.25)])
    cand = sample(0, 1.0, choice_loglikelihoods=[math.log(0.25), math.log(0.5), math.log(0.25)])
    same = sample(1, 1.0, choice_loglikelihoods=[-1.0, -2.0, -3.0])
    agreement = choice_agreement([(base, cand), (same, same)])
    assert agreement is not None
    expected = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # KL of the first item; the second is 0
    assert agreement.kl == pytest.approx(expected / 2)
    assert agreement.top_agreement == 0.5 and agreement.n == 2


def test_token_kl_is_the_coarse_grained_kl_over_shared_tokens() -> None:
    def topk(ids: list[int], probs: list[float]) -> TokenTopK:
        return TokenTopK(tokens=[7], ids=[ids], logprobs=[[math.log(p) for p in probs]])

    ref = sample(0, 0.0, token_topk=topk([1, 2, 3], [0.6, 0.3, 0.05]))
    var = sample(0, 0.0, token_topk=topk([1, 4, 2], [0.5, 0.2, 0.1]))
    agreement = token_agreement([(ref, var)])
    assert agreement is not None
    # shared tokens 1 and 2, then "other": P = (0.6, 0.3, 0.1), Q = (0.5, 0.1, 0.4)
    expected = 0.6 * math.log(0.6 / 0.5) + 0.3 * math.log(0.3 / 0.1) + 0.1 * math.log(0.1 / 0.4)
    assert agreement.kl == pytest.approx(expected, rel=1e-4)
    assert agreement.top_agreement == 1.0
    other_tokens = sample(0, 0.0, token_topk=TokenTopK(tokens=[8], ids=[[1]], logprobs=[[-0.1]]))
    assert token_agreement([(ref, other_tokens)]) is None  # tokenized differently: not compared
    assert token_agreement([(ref, ref)]).kl == pytest.approx(0.0, abs=1e-9)  # type: ignore[union-attr]


def _comparison(low: float, high: float, n: int = 50) -> PairedComparison:
    return PairedComparison(
        "acc_norm", n, 0.5, 0.5, 0.0, Interval(low, high), 0.5, "mcnemar_exact", Interval(low, high)
    )


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [
        (-0.02, 0.03, "equivalent"),
        (-0.08, 0.01, "not_equivalent"),
        (-0.2, -0.06, "regression"),
        (0.06, 0.2, "not_equivalent"),
    ],
)
def test_equivalence_is_two_one_sided_tests(low: float, high: float, status: str) -> None:
    policy = GatePolicy(headline=MetricRule(mode="equivalence", margin=0.05))
    verdict = judge_metric(TASKS["arc_easy"], "acc_norm", "bf16", _comparison(low, high), policy)
    assert verdict.status == status
    outcome = {"equivalent": "pass", "not_equivalent": "undecided", "regression": "regression"}[status]
    assert decide([verdict], policy).outcome == outcome


def test_equivalence_needs_a_margin() -> None:
    with pytest.raises(ValueError, match="mode equivalence needs a margin"):
        MetricRule(mode="equivalence")


def _staged(tmp_path: Path) -> Path:
    """Initial and SFT at fp32 and nf4; SFT's manifest names initial as its parent."""
    records = []
    values = {
        ("initial", "fp32"): [1, 0, 0, 0, 1, 0, 0, 0],
        ("initial", "nf4"): [1, 0, 0, 0, 0, 0, 0, 0],
        ("sft", "fp32"): [1, 1, 1, 1, 1, 1, 0, 0],
        ("sft", "nf4"): [0, 0, 1, 0, 1, 0, 0, 0],
    }
    for (stage, precision), accuracy in values.items():
        record = make_record(f"w-{stage}", stage, precision, {"accuracy": [float(v) for v in accuracy]})
        parent = "checkpoints/initial" if stage == "sft" else None
        manifest = make_manifest(stage, "sft" if stage == "sft" else "bootstrap", parent)
        records.append(record.model_copy(update={"variant": record.variant.model_copy(update={"manifest": manifest})}))
    return write_results(tmp_path / "staged", records)


def test_report_compares_stages_with_parents_and_precisions_with_the_widest(tmp_path: Path) -> None:
    analysis = analyse([_staged(tmp_path)])
    parent = {r.comparison for r in family_rows(analysis, "parent")}
    precision = {r.comparison for r in family_rows(analysis, "precision")}
    assert parent == {"sft@fp32 vs initial@fp32", "sft@nf4 vs initial@nf4"}
    assert precision == {"initial@nf4 vs initial@fp32", "sft@nf4 vs sft@fp32"}
    sft_nf4 = next(r for r in family_rows(analysis, "precision") if r.comparison == "sft@nf4 vs sft@fp32")
    assert sft_nf4.flips == "+0 / −4" and sft_nf4.agreement == "answers changed 0%"
    steps = {s.step: s for s in lineage(analysis)}
    assert [doc for doc, _ in steps["sft@fp32 vs initial@fp32"].gained] == [1, 2, 3, 5]
    assert steps["sft@fp32 vs initial@fp32"].forgotten == []
    markdown = render_markdown(analysis)
    glance = markdown.split("## Overview")[0]
    assert "### Each stage against its parent" in glance and "### Each precision against the widest" in glance
    assert "| sft@nf4 vs sft@fp32 | countdown | accuracy | -0.500 |" in glance
    assert "detects ≥" in glance and "no chat template" not in glance


def test_power_command_says_how_many_items_a_change_needs(tmp_path: Path) -> None:
    results = _staged(tmp_path)
    result = CliRunner().invoke(app, ["power", "--results", str(results), "--delta", "0.1"])
    assert result.exit_code == 0, result.output
    # sft@fp32 against initial@fp32: 4 of 8 items flip, discordance 0.5
    assert "| countdown | accuracy | sft@fp32 vs initial@fp32 | 8 | discordance 0.500 |" in result.stdout
    assert f"| {mcnemar_items_needed(0.1, 0.5)} |" in result.stdout
    rows = power_table([make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0, 1.0, 0.0]})], recorded_task, 0.1)
    assert rows[0].comparison.endswith("(independent errors assumed)")
    assert rows[0].items_needed == mcnemar_items_needed(0.1, 0.5)
    with pytest.raises(FtbenchError, match="must be a positive change"):
        power_table([make_record("a", "initial", "fp32", {"accuracy": [1.0]})], recorded_task, 0.0)


def test_no_flips_on_few_items_cannot_prove_equivalence() -> None:
    bound = paired_binary_interval(0, 0, 16)  # the flip share's exact bound at each side's 5% split in two
    assert bound.high == pytest.approx(1 - 0.025 ** (1 / 16)) and bound.low == -bound.high
    assert paired_binary_interval(10, 0, 20).low < 0.5 < paired_binary_interval(10, 0, 20).high
    policy = GatePolicy(min_samples=8, headline=MetricRule(mode="equivalence", margin=0.02))
    for n, status in ((16, "not_equivalent"), (200, "equivalent")):
        same = [sample(i, float(i % 2)) for i in range(n)]
        comparison = compare_paired("m", "binary", list(zip(same, same, strict=True)))
        assert comparison.interval.low < 0.0 < comparison.interval.high  # no flips is not proof of no change
        verdict = judge_metric(TASKS["arc_easy"], "acc_norm", "fp32", comparison._replace(metric="acc_norm"), policy)
        assert verdict.status == status, (n, verdict.reason)


def test_kl_is_a_finite_lower_bound_where_rounding_cannot_prove_zero_mass() -> None:
    def topk(ids: list[int], probs: list[float]) -> TokenTopK:
        return TokenTopK(tokens=[7], ids=[ids], logprobs=[[round(math.log(p), TOPK_DECIMALS) for p in probs]])

    ref = sample(0, 0.0, token_topk=topk([1, 2], [0.5, 0.3]))  # 0.2 left for other tokens
    certain = sample(0, 0.0, token_topk=topk([1, 2], [0.6, 0.4]))  # seems to leave nothing for other tokens
    agreement = token_agreement([(ref, certain)])
    assert agreement is not None and agreement.kl is not None and math.isfinite(agreement.kl)
    p, q = (math.exp(v) for v in ref.token_topk.logprobs[0]), [math.exp(v) for v in certain.token_topk.logprobs[0]]
    p_listed = list(p)
    listed = sum(a * math.log(a / b) for a, b in zip(p_listed, q, strict=True))
    most_other = 1 - sum(q) * math.exp(-ROUNDING)  # the most "other" mass the rounded values allow
    p_other = 1 - sum(p_listed)
    assert 0 < most_other < 1e-4
    assert agreement.kl == pytest.approx(listed + p_other * math.log(p_other / most_other), rel=1e-9)
    assert agreement.kl > 1.5  # far from the 0.04 nats of the listed tokens alone
    loose = sample(0, 0.0, token_topk=topk([1, 2], [0.55, 0.35]))  # 0.1 left: a smaller, ordinary KL
    found = token_agreement([(ref, loose)])
    assert found is not None and found.kl is not None and 0 < found.kl < 0.1
    far = sample(0, 1.0, choice_loglikelihoods=[0.0, -800.0])  # exp(-800) underflows, its log does not
    near = sample(0, 1.0, choice_loglikelihoods=[-800.0, 0.0])
    choices = choice_agreement([(far, near)])
    assert choices is not None and choices.kl == pytest.approx(800.0, rel=1e-6)
