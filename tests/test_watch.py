"""``ftbench watch`` on checkpoints a real TRL run wrote: only complete checkpoints, each once, in step order; a
killed watch resumes without duplicates; a regression exits 1 and writes the stop file; the report draws the
curve; bad input exits 2 with one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.store import eval_path, load_run
from ftbench.harness.core.training_curve import load_curve
from tests.training_runs import perplexity_suite, sft_trainer, short_documents

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("suite")
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(perplexity_suite(short_documents(folder / "documents"))))
    return path


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A trainer's output_dir with checkpoint-1 and checkpoint-2."""
    output = tmp_path_factory.mktemp("trained") / "run"
    sft_trainer(tiny_model_dir, output, save_steps=1).train()
    return output


def _steps(out: Path) -> list[int]:
    curve = load_curve(out)
    return [] if curve is None else [step.step for step in curve.steps]


def test_once_evaluates_only_complete_checkpoints_each_once(tmp_path: Path, saved_run: Path, suite_file: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    shutil.copytree(run / "checkpoint-2", run / "checkpoint-3")  # still being written: no trainer state yet
    (run / "checkpoint-3" / "trainer_state.json").unlink()
    shutil.copytree(run / "checkpoint-2", run / "checkpoint-10")  # being written: half its trainer state
    state = (run / "checkpoint-2" / "trainer_state.json").read_text()
    (run / "checkpoint-10" / "trainer_state.json").write_text(state[: len(state) // 2])
    out = tmp_path / "results"
    command = ["watch", str(run), "--spec", str(suite_file), "--out", str(out), "--once"]

    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert _steps(out) == [1, 2] and "evaluated checkpoints: checkpoint-1, checkpoint-2" in first.stdout
    stored = {path: path.stat().st_mtime_ns for path in (out / "evals").glob("*.json")}
    again = runner.invoke(app, command)
    assert again.exit_code == 0 and _steps(out) == [1, 2]
    assert {path: path.stat().st_mtime_ns for path in (out / "evals").glob("*.json")} == stored  # nothing redone

    (run / "checkpoint-3" / "trainer_state.json").write_text(state.replace('"global_step": 2', '"global_step": 3'))
    (run / "checkpoint-10" / "trainer_state.json").write_text(state.replace('"global_step": 2', '"global_step": 10'))
    last = runner.invoke(app, command)
    assert last.exit_code == 0, last.output
    assert _steps(out) == [1, 2, 3, 10]  # step order, not name order
    assert len(load_run(out).evaluations) == 4 == len(list((out / "evals").glob("*.json")))


def test_a_killed_watch_resumes_without_duplicates(tmp_path: Path, saved_run: Path, suite_file: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, "-m", "ftbench.harness.app.cli", "watch", str(saved_run), "--spec", str(suite_file)]
    watcher = subprocess.Popen([*command, "--out", str(out), "--interval", "0.2"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not _steps(out) and time.monotonic() < deadline and watcher.poll() is None:
            time.sleep(0.1)
        assert _steps(out), "the watch evaluated nothing"
    finally:
        watcher.kill()
        watcher.wait()
    first = load_curve(out)
    assert first is not None and first.steps[0].step == 1
    kept = {key: eval_path(out, key).stat().st_mtime_ns for key in first.steps[0].evaluations}

    resumed = runner.invoke(app, ["watch", str(saved_run), "--spec", str(suite_file), "--out", str(out), "--once"])
    assert resumed.exit_code == 0, resumed.output
    curve = load_curve(out)
    assert curve is not None and [step.step for step in curve.steps] == [1, 2]
    assert {key: eval_path(out, key).stat().st_mtime_ns for key in curve.steps[0].evaluations} == kept
    assert len(load_run(out).evaluations) == 2


def test_a_regression_exits_1_writes_the_stop_file_and_the_report_draws_the_curve(
    tmp_path: Path, tiny_model_dir: Path, suite_file: Path
) -> None:
    run = tmp_path / "run"
    sft_trainer(tiny_model_dir, run, learning_rate=1.0, save_steps=1).train()  # destroys the model
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_samples: 8\n")
    out, stop = tmp_path / "results", tmp_path / "STOP"
    gate = ["--baseline", str(tiny_model_dir), "--policy", str(policy), "--stop-file", str(stop)]
    result = runner.invoke(app, ["watch", str(run), "--spec", str(suite_file), "--out", str(out), "--once", *gate])
    assert result.exit_code == 1, result.output
    curve = load_curve(out)
    assert curve is not None and curve.first_regression == 1 and curve.last_good == str(tiny_model_dir)
    # the second look is tested at the alpha left to it (0.05·6/(π²·4) = 0.0076), which 8 documents cannot reach
    assert [step.outcome for step in curve.steps] == ["regression", "undecided"]
    assert [round(step.alpha or 0, 4) for step in curve.steps] == [0.0304, 0.0076]
    note = stop.read_text()
    assert note.startswith(f"regression at checkpoint-1 (step 1) against {tiny_model_dir}")
    assert (
        "perplexity_ultrafeedback bits_per_byte@fp32: Δ +" in note and f"last good checkpoint: {tiny_model_dir}" in note
    )

    report = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Training curves" in markdown and "| 1 | checkpoint-1 |" in markdown
    assert (
        "▼ first regression" in markdown
        and f"first regression at step 1; last good checkpoint `{tiny_model_dir}`" in markdown
    )
    assert "checkpoint-2@fp32 vs checkpoint-1@fp32" in markdown  # each checkpoint against the one before
    html = (tmp_path / "report" / "report.html").read_text()
    assert '<h2 id="curves">Training curves</h2>' in html and html.count("<svg") >= 3
    svg = tmp_path / "report" / "curve-watched-perplexity_ultrafeedback.svg"
    assert svg.read_text().startswith("<svg")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"directory": "missing-dir"}, "watch directory missing-dir does not exist"),
        ({"suite": {"tasks": ["nope"]}}, "unknown task 'nope'"),
        ({"suite": {"tasks": [{"name": "arc_easy", "options": {"colour": 1}}]}}, "colour"),
        ({"flags": ["--baseline", "missing-baseline"]}, "baseline missing-baseline does not exist"),
        ({"flags": ["--baseline", "{model}", "--policy", "{policy}"]}, "is not valid YAML"),
        ({"flags": ["--policy", "{policy}"]}, "needs a baseline"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, tiny_model_dir: Path, suite_file: Path, change: dict[str, object], message: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("alpha: [0.05\n")
    suite = suite_file
    if "suite" in change:
        suite = tmp_path / "suite.yaml"
        suite.write_text(yaml.safe_dump(yaml.safe_load(suite_file.read_text()) | change["suite"]))  # type: ignore[operator]
    directory = str(change.get("directory", tmp_path))
    flags = [str(f).format(model=tiny_model_dir, policy=policy) for f in change.get("flags", [])]  # type: ignore[attr-defined]
    out = tmp_path / "results"
    result = runner.invoke(app, ["watch", directory, "--spec", str(suite), "--out", str(out), "--once", *flags])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_trainer_state_marks_a_complete_checkpoint(tmp_path: Path) -> None:
    from ftbench.harness.app.watch import complete_checkpoints

    for name, state in [("checkpoint-5", {"global_step": 5}), ("checkpoint-7", None), ("not-a-checkpoint", {})]:
        (tmp_path / name).mkdir()
        if state is not None:
            (tmp_path / name / "trainer_state.json").write_text(json.dumps(state))
    (tmp_path / "checkpoint-9").write_text("a file, not a folder")
    assert complete_checkpoints(tmp_path) == [(5, tmp_path / "checkpoint-5")]


def test_the_best_checkpoint_is_kept_as_a_link_or_a_copy(tmp_path: Path, saved_run: Path, suite_file: Path) -> None:
    link, copy = tmp_path / "best", tmp_path / "best-copy"
    base = ["watch", str(saved_run), "--spec", str(suite_file), "--once"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--link-best", str(link)])
    assert result.exit_code == 0, result.output
    curve = load_curve(tmp_path / "a")
    assert curve is not None and link.is_symlink()
    assert str(link.resolve()) in {str(Path(step.checkpoint).resolve()) for step in curve.steps}
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--link-best", str(copy), "--copy-best"])
    assert result.exit_code == 0, result.output
    assert copy.is_dir() and not copy.is_symlink() and (copy / "trainer_state.json").is_file()
    assert (copy / ".ftbench-best").read_text().strip() == str(link.resolve())
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("x")
    refused = runner.invoke(app, [*base, "--out", str(tmp_path / "c"), "--link-best", str(taken)])
    assert refused.exit_code == 2 and "is not a best-checkpoint link or copy" in refused.stderr
