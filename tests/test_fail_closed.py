"""Fault injection: every bad input, damaged record or failed evaluation ends in one line naming it, exit 2 (the gate
exits 1 only for a regression), and nothing partial left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.records import RunRecord
from ftbench.harness.core.store import eval_path, load_run_evals
from ftbench.harness.evaluation.lock import results_lock
from tests.records import make_record, write_results

runner = CliRunner()
GENERATED = {"source": "generated", "count": 4, "seed": 3}


def fails(args: list[str], message: str, code: int = 2) -> str:
    """Run the CLI and check it fails with ``code`` and one line holding ``message``."""
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert message in lines[0], lines[0]
    return lines[0]


def _accuracy(values: list[float], key: str = "a", stage: str = "initial") -> object:
    return make_record(key, stage, "fp32", {"accuracy": values})


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return write_results(tmp_path / "baseline", [_accuracy([1.0] * 30)])  # type: ignore[list-item]


def test_an_empty_baseline_is_refused(tmp_path: Path, baseline: Path) -> None:
    empty = write_results(tmp_path / "empty", [])
    fails(["baseline", "update", str(empty), "--root", str(tmp_path / "b")], "lists no evaluation")
    assert not (tmp_path / "b").exists()
    fails(["gate", "--baseline", str(empty), "--candidate", str(baseline)], "lists no evaluation")


def test_swapped_corrupt_and_wrong_shape_records_are_refused(tmp_path: Path) -> None:
    first, second = _accuracy([1.0] * 4, "a"), _accuracy([0.0] * 4, "b", "sft")
    results = write_results(tmp_path / "r", [first, second])  # type: ignore[list-item]
    path_a, path_b = eval_path(results, first.key), eval_path(results, second.key)  # type: ignore[attr-defined]
    original = path_a.read_text()
    shutil.copy(path_b, path_a)  # one evaluation copied over another
    line = fails(["results", str(results)], "not the one its name says")
    assert str(path_a) in line
    fails(["report", str(results), "--out", str(tmp_path / "rep")], "not the one its name says")
    assert not (tmp_path / "rep").exists()
    path_a.write_text(original[:40])  # truncated
    fails(["results", str(results)], "is not a valid ftbench evaluation record")
    path_a.write_text(json.dumps({"schema_version": 3, "key": "x"}))  # valid JSON, wrong shape
    fails(["results", str(results)], "is not a valid ftbench evaluation record")
    path_a.unlink()
    fails(["results", str(results)], "is missing, though run.json lists it")


def test_records_without_samples_and_old_schemas_are_refused(tmp_path: Path, baseline: Path) -> None:
    record = _accuracy([1.0] * 30)
    empty = record.model_copy(update={"samples": []})  # type: ignore[attr-defined]
    results = write_results(tmp_path / "r", [empty])
    fails(["gate", "--baseline", str(baseline), "--candidate", str(results)], "holds no samples")
    path = eval_path(results, empty.key)
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | {"schema_version": 1}))
    fails(["results", str(results)], "schema 1, this one reads 3")


def test_too_few_items_cannot_decide_unless_the_policy_says_warn(tmp_path: Path) -> None:
    small = write_results(tmp_path / "small", [_accuracy([1.0] * 16)])  # type: ignore[list-item]
    worse = write_results(tmp_path / "worse", [_accuracy([0.0] * 16, "b", "sft")])  # type: ignore[list-item]
    result = runner.invoke(app, ["gate", "--baseline", str(small), "--candidate", str(worse)])
    assert result.exit_code == 2 and "COULD NOT DECIDE" in result.stdout
    assert "no gated metric was compared on enough items" in result.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_samples: 10\n")  # 16 items now decide: a real drop (p < 0.001) is a regression
    result = runner.invoke(app, ["gate", "--baseline", str(small), "--candidate", str(worse), "--policy", str(policy)])
    assert result.exit_code == 1 and "FAIL: the candidate regressed" in result.stdout
    assert "detects only changes ≥" in result.stdout


def test_an_unloadable_candidate_is_exit_2_not_a_regression(tmp_path: Path, tiny_model_dir: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"checkpoints: [{tiny_model_dir}]\ntasks: [{{name: countdown, options: {json.dumps(GENERATED)}}}]\n"
        f"generation: {{max_gen_toks: 4}}\ndevice: cpu\nout: {tmp_path / 'base'}\n"
    )
    assert runner.invoke(app, ["run", "--spec", str(spec)]).exit_code == 0
    broken = Path(shutil.copytree(tiny_model_dir, tmp_path / "broken"))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated weights
    out = tmp_path / "cand"
    fails(
        ["gate", "--baseline", str(tmp_path / "base"), "--candidate", str(broken), "--candidate-out", str(out)],
        "cannot load model",
    )
    assert not (out / "run.json").exists() and not list(out.glob("evals/*"))  # at most the log of what happened
    garbage = Path(shutil.copytree(tiny_model_dir, tmp_path / "garbage"))
    (garbage / "model.safetensors").write_bytes(b"not safetensors at all")
    fails(
        ["gate", "--baseline", str(tmp_path / "base"), "--candidate", str(garbage), "--candidate-out", str(out)],
        "cannot load model",
    )


def test_unwritable_outputs_are_refused_before_any_work(tmp_path: Path, tiny_model_dir: Path, baseline: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    fails(
        [
            "run",
            "--checkpoint",
            str(tiny_model_dir),
            "--task",
            "arc_easy",
            "--limit",
            "2",
            "--device",
            "cpu",
            "--out",
            str(blocker / "results"),
        ],
        "cannot write results directory",
    )
    result = runner.invoke(
        app, ["gate", "--baseline", str(baseline), "--candidate", str(baseline), "--junit", str(blocker / "gate.xml")]
    )
    assert result.exit_code == 2 and "PASS" not in result.stdout
    assert "cannot write" in result.stderr


def test_a_results_directory_in_use_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "shared"
    with results_lock(out):
        fails(
            [
                "run",
                "--checkpoint",
                str(tiny_model_dir),
                "--task",
                "arc_easy",
                "--limit",
                "2",
                "--device",
                "cpu",
                "--out",
                str(out),
            ],
            "is in use by another ftbench run",
        )
    assert not out.exists()  # the refused run wrote nothing; the holder's folder went with its lock


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tasks: [arc_easy, arc_easy]", "task arc_easy is listed twice"),
        ("tasks: [{name: countdown, options: {sourec: local}}]", "unknown option 'sourec'; valid options are count"),
        (
            "tasks: [countdown]\ngeneration: {max_gen_toks: 0}",
            "max_gen_toks: Input should be greater than or equal to 1",
        ),
        ("tasks: [countdown]\nprecisions: [fp32, int3]", "unknown precision 'int3'"),
        ("tasks: [countdown\n", "is not valid YAML: line "),
    ],
)
def test_bad_specs(tmp_path: Path, tiny_model_dir: Path, spec: str, message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(f"checkpoints: [{tiny_model_dir}]\nout: {tmp_path / 'out'}\n{spec}\n")
    line = fails(["run", "--spec", str(path)], message)
    assert str(path) in line
    assert not (tmp_path / "out").exists()


def test_identical_weights_under_two_names_are_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    twin = shutil.copytree(tiny_model_dir, tmp_path / "twin")
    fails(
        [
            "run",
            "--checkpoint",
            str(tiny_model_dir),
            "--checkpoint",
            str(twin),
            "--task",
            "arc_easy",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
        ],
        "have identical weights",
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("relative", "content", "task", "message"),
    [
        (
            "arc/arc_easy_test.json",
            '[{"id": "a", "question": "q", "choices": "A B", "answerKey": "A"}]',
            "arc_easy",
            "row 0 field 'choices': Input should be a valid dictionary",
        ),
        (
            "countdown/countdown_tasks_3to4.jsonl",
            '{"hf_row": 9002, "target": "ninety", "nums": [1, 2]}\n',
            "countdown",
            "row 0 field 'target': Input should be a valid integer",
        ),
        (
            "countdown/countdown_tasks_3to4.jsonl",
            '{"hf_row": 9002, "target": 3, "nums": [1, 2]}\n{oops\n',
            "countdown",
            "line 2 is not valid JSON",
        ),
    ],
)
def test_malformed_data_files_name_the_row_and_field(
    tmp_path: Path, tiny_model_dir: Path, relative: str, content: str, task: str, message: str
) -> None:
    data = tmp_path / "data"
    (data / relative).parent.mkdir(parents=True)
    (data / relative).write_text(content)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"checkpoints: [{tiny_model_dir}]\ndevice: cpu\nout: {tmp_path / 'out'}\n"
        f"tasks: [{{name: {task}, options: {{source: local, data_dir: {data}}}}}]\n"
    )
    line = fails(["run", "--spec", str(spec)], message)
    assert relative.split("/")[-1] in line
    assert not list((tmp_path / "out").glob("**/*.json"))


def test_a_data_folder_that_does_not_exist_is_named(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTBENCH_DATA_DIR", str(tmp_path / "nowhere"))
    fails(
        [
            "run",
            "--checkpoint",
            str(tiny_model_dir),
            "--task",
            "arc_easy",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
        ],
        "FTBENCH_DATA_DIR=",
    )
    assert not (tmp_path / "out").exists()


def test_base_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a gguf")
    fails(["base", "--gguf", str(fake), "--out", str(tmp_path / "initial")], "is not a GGUF file")
    assert not (tmp_path / "initial").exists()
    fake.write_bytes(b"GGUF" + b"\x00" * 20)  # the header, then nothing
    fails(["base", "--gguf", str(fake), "--out", str(tmp_path / "initial")], "cannot read GGUF file")
    assert not (tmp_path / "initial").exists()


def test_reports_survive_odd_names_and_hand_edited_values(tmp_path: Path) -> None:
    record = make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0, 1.0, 1.0]})
    odd = record.model_copy(
        update={"variant": record.variant.model_copy(update={"name": "evil\n<b>name</b>", "checkpoint": "x\ny"})}
    )
    edited = odd.model_copy(update={"metrics": {"accuracy": odd.metrics["accuracy"].model_copy(update={"value": 7.0})}})
    results = write_results(tmp_path / "r", [edited])
    result = runner.invoke(app, ["report", str(results), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "rep" / "report.md").read_text()
    provenance = markdown.split("## Provenance")[1]
    assert "<b>" not in markdown and "&lt;b&gt;" in provenance
    assert all(line.startswith("- ") for line in provenance.strip().splitlines())


def _countdown_spec(model: Path, out: Path) -> dict[str, object]:
    return {
        "checkpoints": [str(model)],
        "precisions": ["fp32", "bf16"],
        "tasks": [{"name": "countdown", "options": GENERATED}, {"name": "arc_easy", "limit": 4}],
        "generation": {"max_gen_toks": 48},
        "batch_size": 2,
        "device": "cpu",
        "out": str(out),
    }


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_records_of_an_uninterrupted_one(tmp_path: Path, tiny_model_dir: Path) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for out in (killed, clean):
        (tmp_path / f"{out.name}.json").write_text(json.dumps(_countdown_spec(tiny_model_dir, out)))
    ftbench = [sys.executable, "-m", "ftbench.harness.app.cli"]
    process = subprocess.Popen([*ftbench, "run", "--spec", str(tmp_path / "killed.json")], start_new_session=True)
    deadline = time.time() + 300
    while not list((killed / "evals").glob("*.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 right after the first stored evaluation
    process.wait()
    assert not (killed / "run.json").exists() and len(list((killed / "evals").glob("*.json"))) >= 1
    for name in ("killed", "clean"):
        done = subprocess.run(
            [*ftbench, "run", "--spec", str(tmp_path / f"{name}.json")], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    resumed, fresh = load_run_evals(killed), load_run_evals(clean)
    assert [r.key for r in resumed] == [r.key for r in fresh]
    for a, b in zip(resumed, fresh, strict=True):
        assert a.samples == b.samples and {k: v.value for k, v in a.metrics.items()} == {
            k: v.value for k, v in b.metrics.items()
        }
    assert RunRecord.model_validate_json((killed / "run.json").read_text()).reused
