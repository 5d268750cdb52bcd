"""Gate policy and verdicts on planted comparisons; outputs; comparability checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from ftbench.harness.compare.policy import (
    GatePolicy,
    MetricRule,
    check_comparable,
    decide,
    gate_records,
    judge_metric,
    load_policy,
)
from ftbench.harness.compare.statistics import Interval, PairedComparison
from ftbench.harness.core.errors import FtbenchError
from ftbench.reports.gate_summary import render_gate_markdown, render_junit
from ftbench.tasks.registry import TASKS, recorded_task
from tests.records import make_record, with_request


def comparison(baseline: float, candidate: float, p: float, n: int = 50) -> PairedComparison:
    return PairedComparison(
        "accuracy", n, baseline, candidate, candidate - baseline, Interval(-1, 1), p, "mcnemar_exact"
    )


@pytest.mark.parametrize(
    ("candidate", "p", "n", "status"),
    [
        (0.40, 0.001, 50, "regression"),  # big and significant
        (0.40, 0.30, 50, "pass"),  # big but noise
        (0.49, 0.001, 50, "pass"),  # significant but within the margin (5% of 0.5)
        (0.60, 0.001, 50, "improvement"),
        (0.40, 0.001, 10, "insufficient"),
    ],
)
def test_verdicts(candidate: float, p: float, n: int, status: str) -> None:
    verdict = judge_metric(TASKS["countdown"], "accuracy", "fp32", comparison(0.5, candidate, p, n), GatePolicy())
    assert verdict.status == status
    assert verdict.allowed_drop == pytest.approx(0.025)


def test_lower_is_better_metrics_and_modes() -> None:
    policy = GatePolicy(
        tasks={"perplexity_ultrafeedback": {"bits_per_byte": MetricRule(max_drop=0.01, max_relative_drop=None)}}
    )
    worse = PairedComparison("bits_per_byte", 30, 0.60, 0.70, 0.10, Interval(0.05, 0.15), 0.001, "paired_permutation")
    assert (
        judge_metric(TASKS["perplexity_ultrafeedback"], "bits_per_byte", "fp32", worse, policy).status == "regression"
    )
    warned = judge_metric(TASKS["countdown"], "format_rate", "fp32", comparison(0.5, 0.3, 0.001), GatePolicy())
    assert warned.status == "warning" and warned.mode == "warn"


def test_policy_file_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("alpha: 0.01\ntasks:\n  countdown:\n    accuracy: {max_drop: 0.1, mode: warn}\n")
    policy = load_policy(path)
    assert policy.alpha == 0.01 and policy.rule(TASKS["countdown"], "accuracy").mode == "warn"
    path.write_text("tasks:\n  countdown:\n    accuracy: {max_dorp: 0.1}\n")
    with pytest.raises(FtbenchError, match=r"tasks\.countdown\.accuracy\.max_dorp: Extra inputs are not permitted"):
        load_policy(path)
    with pytest.raises(FtbenchError, match="does not exist"):
        load_policy(tmp_path / "missing.yaml")


def test_records_are_gated_and_outputs_name_the_regression() -> None:
    base = make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})
    worse = make_record("b", "sft", "fp32", {"accuracy": [1.0] * 10 + [0.0] * 20})
    verdicts = gate_records([base], [worse], GatePolicy(), recorded_task, TASKS)
    (verdict,) = [v for v in verdicts if v.metric == "accuracy"]
    assert verdict.status == "regression" and verdict.comparison.p_value < 1e-4
    decision = decide(verdicts, GatePolicy())
    assert decision.outcome == "regression"
    markdown = render_gate_markdown(verdicts, "base", "cand", decision)
    assert "FAIL: the candidate regressed" in markdown and "| ❌ regression | countdown | accuracy | fp32 |" in markdown
    suite = ElementTree.fromstring(render_junit(verdicts, decision).split("\n", 1)[1])
    assert suite.get("failures") == "1"
    assert suite.find("testcase[@name='accuracy@fp32']/failure") is not None


def test_incomparable_candidates_are_refused() -> None:
    base = make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})
    other_limit = make_record("b", "sft", "fp32", {"accuracy": [1.0] * 30})
    other_limit = with_request(other_limit, limit=10)
    with pytest.raises(FtbenchError, match="differs from the baseline in limit for countdown at fp32"):
        check_comparable(base, other_limit)
    fewer = make_record("c", "sft", "fp32", {"accuracy": [1.0] * 29})
    with pytest.raises(FtbenchError, match="evaluated on other items"):
        check_comparable(base, fewer)
    with pytest.raises(FtbenchError, match="has no result for countdown at fp32"):
        gate_records(
            [base], [make_record("d", "sft", "nf4", {"accuracy": [1.0] * 30})], GatePolicy(), recorded_task, TASKS
        )


def test_a_bare_off_in_yaml_switches_a_metric_off(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("others: {mode: off}\n")  # YAML 1.1 reads `off` as false
    assert load_policy(path).others.mode == "off"


def test_a_policy_names_a_custom_task_of_the_baseline(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n')
    options = {"data": str(data), "prompt": "Q: {{question}}", "reference": "answer", "metrics": ["exact_match"]}

    def custom(key: str, stage: str, values: list[float]) -> Any:
        record = make_record(key, stage, "fp32", {"exact_match": values})
        record = with_request(record, task="my_qa", task_kind="custom", options=options)
        return record.model_copy(update={"task": "my_qa"})

    path = tmp_path / "gate.yaml"
    path.write_text("tasks:\n  my_qa:\n    exact_match: {max_drop: 0.0}\n")
    policy = load_policy(path)  # a custom task is known only from the baseline's records
    verdicts = gate_records(
        [custom("a", "initial", [1.0] * 30)], [custom("b", "sft", [0.0] * 30)], policy, recorded_task, TASKS
    )
    assert [(v.task, v.metric, v.status) for v in verdicts] == [("my_qa", "exact_match", "regression")]
    path.write_text("tasks:\n  my_qb:\n    exact_match: {max_drop: 0.0}\n")
    with pytest.raises(FtbenchError, match="no task 'my_qb' is built in or in the baseline"):
        gate_records(
            [custom("a", "initial", [1.0] * 30)],
            [custom("b", "sft", [0.0] * 30)],
            load_policy(path),
            recorded_task,
            TASKS,
        )
