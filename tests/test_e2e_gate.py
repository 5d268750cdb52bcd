"""The regression gate end to end on the real SmolLM2 with a small item selection (slow)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from ftbench.harness.app.baseline import evaluate_like_baseline
from ftbench.harness.app.cli import app

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def stored(real_initial: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The base model's run, and that run stored as a baseline."""
    root = tmp_path_factory.mktemp("gate")
    spec = root / "spec.yaml"
    spec.write_text(
        f"name: base\ncheckpoints: [{real_initial}]\nprecisions: [fp32]\ndevice: cpu\nout: {root / 'run'}\n"
        "tasks:\n  - {name: arc_easy, limit: 40}\n  - {name: perplexity_ultrafeedback, limit: 8}\n"
    )
    assert runner.invoke(app, ["run", "--spec", str(spec)]).exit_code == 0
    result = runner.invoke(app, ["baseline", "update", str(root / "run"), "--root", str(root / "baselines")])
    assert result.exit_code == 0, result.output
    return root / "run", root / "baselines" / "base"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default policy, but content with the 8 perplexity documents of this small selection."""
    path = tmp_path_factory.mktemp("policy") / "gate.yaml"
    path.write_text("min_samples: 8\n")
    return path


def _copy_with(real_initial: Path, out: Path, change: str) -> Path:
    shutil.copytree(real_initial, out)
    model = AutoModelForCausalLM.from_pretrained(out)
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if change == "noise":
                param.add_(torch.randn_like(param) * param.std() * 0.5)
            else:
                param.copy_(param.to(torch.bfloat16).to(torch.float32))
    model.save_pretrained(out)
    return out


def test_base_against_its_own_baseline_passes(
    stored: tuple[Path, Path], real_initial: Path, tmp_path: Path, policy: Path
) -> None:
    run, baseline = stored
    junit = tmp_path / "gate.xml"
    result = runner.invoke(
        app,
        [
            "gate",
            "--baseline",
            str(baseline),
            "--candidate",
            str(real_initial),
            "--candidate-out",
            str(run),
            "--junit",
            str(junit),
            "--policy",
            str(policy),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "PASS: no regression" in result.stdout
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests", "0")) >= 6


def test_damaged_copy_fails_and_names_the_regressions(
    stored: tuple[Path, Path], real_initial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Path
) -> None:
    _, baseline = stored
    damaged = _copy_with(real_initial, tmp_path / "damaged", "noise")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = tmp_path / "gate.xml"
    result = runner.invoke(
        app,
        [
            "gate",
            "--baseline",
            str(baseline),
            "--candidate",
            str(damaged),
            "--candidate-out",
            str(tmp_path / "cand"),
            "--junit",
            str(junit),
            "--policy",
            str(policy),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "FAIL: the candidate regressed" in result.stdout
    assert "| ❌ regression | perplexity_ultrafeedback | bits_per_byte | fp32 |" in result.stdout
    assert "FAIL" in summary.read_text()
    failures = [case.get("name") for case in ElementTree.parse(junit).getroot() if case.find("failure") is not None]
    assert "bits_per_byte@fp32" in failures


@pytest.fixture(scope="module")
def rounded(stored: tuple[Path, Path], real_initial: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base rounded to bf16 and back, evaluated like the baseline (its results directory)."""
    root = tmp_path_factory.mktemp("rounded")
    copy = _copy_with(real_initial, root / "bf16", "bf16")
    _, baseline = stored
    return evaluate_like_baseline(baseline, copy, root / "results").results_dir


def test_bf16_copy_passes_or_warns(stored: tuple[Path, Path], rounded: Path, policy: Path) -> None:
    _, baseline = stored
    result = runner.invoke(
        app, ["gate", "--baseline", str(baseline), "--candidate", str(rounded), "--policy", str(policy)]
    )
    assert result.exit_code == 0, result.output
    assert "❌" not in result.stdout


def test_equivalence_passes_a_bf16_copy_at_a_generous_margin(
    stored: tuple[Path, Path], rounded: Path, tmp_path: Path
) -> None:
    _, baseline = stored
    generous = tmp_path / "generous.yaml"
    generous.write_text("min_samples: 8\nheadline: {mode: equivalence, margin: 0.25}\nothers: {mode: off}\n")
    result = runner.invoke(
        app, ["gate", "--baseline", str(baseline), "--candidate", str(rounded), "--policy", str(generous)]
    )
    assert result.exit_code == 0, result.output
    assert "✅ equivalent | arc_easy | acc_norm | fp32" in result.stdout


def test_equivalence_refuses_sixteen_items_at_a_tight_margin(real_initial: Path, rounded: Path, tmp_path: Path) -> None:
    copy = rounded.parent / "bf16"
    for name, checkpoint in (("base", real_initial), ("copy", copy)):
        ran = runner.invoke(
            app,
            [
                "run",
                "--checkpoint",
                str(checkpoint),
                "--task",
                "arc_easy",
                "--limit",
                "16",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / name),
            ],
        )
        assert ran.exit_code == 0, ran.output
    tight = tmp_path / "tight.yaml"
    tight.write_text("min_samples: 8\nheadline: {mode: equivalence, margin: 0.02}\n")
    result = runner.invoke(
        app,
        ["gate", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "copy"), "--policy", str(tight)],
    )
    assert result.exit_code == 2, result.output
    assert "cannot be called equivalent" in result.stdout and "with 16 items this comparison detects" in result.stdout


def test_the_example_workflow_gates_against_the_committed_baseline(real_initial: Path, tmp_path: Path) -> None:
    """The workflow's own command line, run against the committed baseline: the base passes, a damaged copy fails."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/gate.yml").read_text())
    step = next(s for s in workflow["jobs"]["gate"]["steps"] if s.get("name") == "Gate against the stored baseline")
    program, *args = step["run"].split()
    assert program == ".venv/bin/ftbench" and "results/baselines/demo" in args
    (tmp_path / "results" / "baselines").mkdir(parents=True)
    (tmp_path / "results" / "baselines" / "demo").symlink_to(ROOT / "results" / "baselines" / "demo")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    for candidate, code in ((real_initial, 0), (_copy_with(real_initial, tmp_path / "damaged", "noise"), 1)):
        (tmp_path / "candidate").unlink(missing_ok=True)
        (tmp_path / "candidate").symlink_to(candidate)
        done = subprocess.run(
            [sys.executable, "-m", "ftbench.harness.app.cli", *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == code, done.stdout + done.stderr
        suite = ElementTree.parse(tmp_path / "gate-junit.xml").getroot()
        assert (suite.get("failures") == "0") == (code == 0) and int(suite.get("tests", "0")) >= 3


def test_candidate_on_other_items_is_refused(stored: tuple[Path, Path], real_initial: Path, tmp_path: Path) -> None:
    _, baseline = stored
    other = tmp_path / "other"
    ran = runner.invoke(
        app,
        [
            "run",
            "--checkpoint",
            str(real_initial),
            "--task",
            "arc_easy,perplexity_ultrafeedback",
            "--limit",
            "30",
            "--device",
            "cpu",
            "--out",
            str(other),
        ],
    )
    assert ran.exit_code == 0, ran.output
    result = runner.invoke(app, ["gate", "--baseline", str(baseline), "--candidate", str(other)])
    assert result.exit_code == 2
    assert "candidate differs from the baseline in limit for arc_easy at fp32" in result.stderr
