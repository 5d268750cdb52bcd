"""``ftbench gate --sequential``: a candidate decided on the fewest items in a seeded order, with anytime-valid
verdicts; the same verdict after a kill and a resume; one line and exit 2 for what it cannot decide."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.store import load_run_evals
from tests.records import make_record, write_results

runner = CliRunner()


def _scores(rng: np.random.Generator, accuracy: float, count: int) -> list[float]:
    return [float(x) for x in (rng.random(count) < accuracy)]


def _pair(tmp_path: Path, drop: float, count: int = 200, seed: int = 3) -> tuple[Path, Path]:
    """A baseline (accuracy 0.75) and a candidate whose every item keeps its score but for a ``drop`` share of the
    items, which it loses."""
    rng = np.random.default_rng(seed)
    base = _scores(rng, 0.75, count)
    right = [i for i, value in enumerate(base) if value == 1.0]
    lost = set(rng.choice(right, size=round(drop * count), replace=False).tolist()) if drop else set()
    cand = [0.0 if i in lost else value for i, value in enumerate(base)]
    baseline = write_results(tmp_path / "baseline", [make_record("b", "initial", "fp32", {"accuracy": base})])
    candidate = write_results(tmp_path / "candidate", [make_record("c", "sft", "fp32", {"accuracy": cand})])
    return baseline, candidate


def _gate(baseline: Path, candidate: Path, *flags: str) -> Any:
    return runner.invoke(app, ["gate", "--baseline", str(baseline), "--candidate", str(candidate), *flags])


def test_a_plain_regression_is_called_on_a_fraction_of_the_items(tmp_path: Path) -> None:
    baseline, candidate = _pair(tmp_path, drop=0.25)
    out = tmp_path / "gate.json"
    result = _gate(baseline, candidate, "--sequential", "--chunk", "10", "--json", str(out))
    assert result.exit_code == 1, result.output
    assert "FAIL: the candidate regressed" in result.stdout
    (metric,) = json.loads(out.read_text())["metrics"]
    assert metric["verdict"] == "regression" and metric["budget"] == 200
    assert metric["items"] < 100 and metric["items"] % 10 == 0  # decided at a look, on under half the items
    low, high = metric["interval"]
    assert high < -metric["margin"] and low <= metric["estimate"] <= high
    assert len(metric["path"]["upper"]) == metric["items"]


def test_an_unchanged_candidate_is_never_called_a_regression(tmp_path: Path) -> None:
    for seed in range(3):
        baseline, candidate = _pair(tmp_path / str(seed), drop=0.0, seed=seed)
        result = _gate(baseline, candidate, "--sequential", "--chunk", "1")
        assert result.exit_code in (0, 2), result.output  # a pass, or undecided at the budget: never exit 1
        assert "regressed" not in result.stdout


def test_the_policy_turns_it_on_and_the_fixed_gate_writes_json_too(tmp_path: Path) -> None:
    baseline, candidate = _pair(tmp_path, drop=0.25)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"sequential": {"budget": 150, "chunk": 25}}))
    out = tmp_path / "sequential.json"
    assert _gate(baseline, candidate, "--policy", str(policy), "--json", str(out)).exit_code == 1
    data = json.loads(out.read_text())
    assert data["kind"] == "sequential" and data["chunk"] == 25 and data["metrics"][0]["budget"] == 150
    fixed = tmp_path / "fixed.json"
    assert _gate(baseline, candidate, "--json", str(fixed)).exit_code == 1
    (metric,) = json.loads(fixed.read_text())["metrics"]
    assert metric["verdict"] == "regression" and metric["items"] == metric["budget"] == 200
    assert metric["p_value"] < 0.05 and metric["test"] == "mcnemar_exact"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sequential", "--chunk", "0"], "--chunk 0 must be 1 or more"),
        (["--sequential", "--budget", "500"], "budget 500 is larger than the 200 items the baseline evaluated"),
        (["--budget", "50"], "--budget and --chunk are the sequential gate's; add --sequential"),
    ],
)
def test_bad_settings_are_refused_in_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    baseline, candidate = _pair(tmp_path, drop=0.25)
    result = _gate(baseline, candidate, *flags)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]


def test_a_metric_it_cannot_cover_and_a_baseline_too_small_are_refused(tmp_path: Path) -> None:
    scores = {"bits_per_byte": [1.0] * 30, "loglikelihood": [-5.0] * 30}
    base = make_record("b", "initial", "fp32", scores, task="perplexity_ultrafeedback")
    baseline = write_results(tmp_path / "ppl", [base])
    result = _gate(baseline, baseline, "--sequential")
    assert result.exit_code == 2 and "cannot gate perplexity_ultrafeedback bits_per_byte@fp32" in result.stderr
    assert "fixed-n gate" in result.stderr
    small, candidate = _pair(tmp_path / "small", drop=0.0, count=6)
    result = _gate(small, candidate, "--sequential")
    assert result.exit_code == 2 and "can reach no verdict within 6 items" in result.stderr


def test_a_killed_sequential_gate_resumes_to_the_same_verdict(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftbench.harness.evaluation.streaming as streaming
    from ftbench.harness.evaluation.run import run_spec
    from ftbench.harness.evaluation.spec import parse_spec

    monkeypatch.setenv("FTBENCH_STORE", "none")
    spec = {"checkpoints": [str(tiny_model_dir)], "precisions": ["fp32"], "tasks": ["arc_easy"], "limit": 24,
            "device": "cpu", "batch_size": 8, "out": str(tmp_path / "baseline")}  # fmt: skip
    run_spec(parse_spec(spec, "test"))
    flags = ["--sequential", "--chunk", "8"]
    whole = tmp_path / "whole.json"
    first = _gate(tmp_path / "baseline", tiny_model_dir, *flags, "--candidate-out", str(tmp_path / "a"),
                  "--json", str(whole))  # fmt: skip
    assert first.exit_code in (0, 2), first.output
    real, calls = streaming.store_eval, []

    def store_then_die(results_dir: Path, record: Any) -> Any:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(record.key)
        return real(results_dir, record)

    monkeypatch.setattr(streaming, "store_eval", store_then_die)
    killed = _gate(tmp_path / "baseline", tiny_model_dir, *flags, "--candidate-out", str(tmp_path / "b"))
    assert killed.exit_code != 0 and len(calls) == 2  # stopped (click's Abort) after two stored chunks
    monkeypatch.setattr(streaming, "store_eval", real)
    resumed = tmp_path / "resumed.json"
    again = _gate(tmp_path / "baseline", tiny_model_dir, *flags, "--candidate-out", str(tmp_path / "b"),
                  "--json", str(resumed))  # fmt: skip
    assert again.exit_code == first.exit_code
    assert json.loads(resumed.read_text())["metrics"] == json.loads(whole.read_text())["metrics"]
    from ftbench.reports.report import write_report

    files = write_report([tmp_path / "a"], tmp_path / "report")  # the report draws the sequence's path
    assert "## Sequential gate" in files.markdown.read_text()
    assert '<h2 id="sequential">' in files.html.read_text()
    from ftbench.harness.viewer.sequence_svg import gated_paths, sequence_svg

    (gated,) = gated_paths(str(tmp_path / "a"), "arc_easy", "fp32")  # and the viewer's evaluation page
    assert sequence_svg(gated).startswith("<svg") and gated_paths(str(tmp_path / "a"), "arc_easy", "nf4") == []
    (record,) = load_run_evals(tmp_path / "b")  # the run lists one record of the items evaluated, verified
    assert (
        record.request.order is not None
        and len(record.samples) == json.loads(whole.read_text())["metrics"][0]["evaluated"]
    )


def test_a_training_run_evaluates_each_checkpoint_sequentially_at_its_spent_level(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftbench.harness.compare.spending import checkpoint_alpha
    from ftbench.harness.core.errors import FtbenchError
    from ftbench.harness.evaluation.run import run_spec
    from ftbench.harness.evaluation.spec import parse_spec
    from ftbench.harness.evaluation.step_gate import load_gate
    from ftbench.harness.evaluation.steps import StepEvaluator, load_suite

    monkeypatch.setenv("FTBENCH_STORE", "none")
    suite = {"precisions": ["fp32"], "tasks": ["arc_easy"], "limit": 24, "device": "cpu", "batch_size": 8}
    run_spec(parse_spec({**suite, "checkpoints": [str(tiny_model_dir)], "out": str(tmp_path / "base")}, "test"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"sequential": {"chunk": 8}, "min_samples": 8}))
    spec = load_suite(suite)
    gate = load_gate(tmp_path / "base", policy, spec)
    evaluator = StepEvaluator(spec, tmp_path / "results", "run", gate)
    result = evaluator.evaluate(2, tiny_model_dir)
    assert result.step.alpha == pytest.approx(checkpoint_alpha(1, 0.05))
    assert result.step.outcome in ("pass", "undecided") and "items" in (result.step.reason or "")
    (record,) = result.evaluations
    assert record.request.order is not None and 8 <= len(record.samples) <= 24 and len(record.samples) % 8 == 0
    with pytest.raises(FtbenchError, match="cannot gate perplexity_ultrafeedback bits_per_byte"):
        load_gate(tmp_path / "base", policy, load_suite({**suite, "tasks": ["perplexity_ultrafeedback"]}))
