"""The CLI: bad input gives one line naming it, exit code 2, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--checkpoint", "missing-dir", "--task", "countdown"],
            "checkpoint missing-dir does not exist",
        ),
        (["run", "--checkpoint", "{model}", "--task", "nope"], "unknown task 'nope'"),
        (
            ["run", "--checkpoint", "{model}", "--task", "countdown", "--precision", "fp32,int3"],
            "unknown precision 'int3'",
        ),
        (
            [
                "run",
                "--checkpoint",
                "{model}",
                "--task",
                "countdown",
                "--precision",
                "fp16",
                "--device",
                "cpu",
            ],
            "fp16 needs a GPU",
        ),
        (["run", "--spec", "missing.yaml"], "spec file missing.yaml does not exist"),
        (["results", "{out}"], "holds no run.json"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_model_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    args = [a.format(model=tiny_model_dir, out=out) for a in args]
    if args[0] == "run":
        args += ["--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_tasks_lists_metrics_with_scales() -> None:
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0
    assert "countdown (headline: accuracy)" in result.stdout
    assert "format_rate: 0-1" in result.stdout


def test_empty_selection_exits_2(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    out = tmp_path / "out"
    spec.write_text(
        f"checkpoints: [{tiny_model_dir}]\nout: {out}\n"
        "tasks:\n  - name: countdown\n    options: {source: generated, count: 0}\n"
    )
    result = runner.invoke(app, ["run", "--spec", str(spec)])
    assert result.exit_code == 2, result.output
    assert "task countdown selected no items" in result.stderr
    assert not (out / "run.json").exists() and not list(out.glob("evals/*.json"))
