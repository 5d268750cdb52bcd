"""Closed to data loss, tampering and injection (issue 23): baseline names that stay in their folder, outputs that
never overlap inputs, prompts rendered in Jinja's sandbox, records that prove their content, and console output
that never reads user text as markup."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import ftbench.harness.app.display as display_module
from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import RECORD_KEY_ENV, content_digest, eval_path, load_run_evals
from ftbench.tasks.custom.task import CustomOptions, custom_items
from tests.records import make_record, write_results

runner = CliRunner()
ESCAPE = "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }} Q: {{ question }}"
MARKUP = "odd[/bold][/x]"


def refused(args: list[str], message: str) -> str:
    """Run the CLI; it must exit 2 with one line on stderr holding ``message``."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    return lines[0]


def _results(folder: Path, name: str = "run", values: list[float] | None = None) -> Path:
    return write_results(folder, [make_record("a", "initial", "fp32", {"accuracy": values or [1.0] * 30})], name)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """``results/`` with another run, a sentinel and a stored baseline beside the baselines folder."""
    root = tmp_path / "results"
    (root / "other-run").mkdir(parents=True)
    (root / "other-run" / "sentinel.txt").write_text("keep me")
    assert (
        runner.invoke(
            app, ["baseline", "update", str(_results(root / "r0")), "--name", "kept", "--root", str(root / "baselines")]
        ).exit_code
        == 0
    )
    return root


@pytest.mark.parametrize("name", ["..", ".", "../other-run", "a/b", "-x", ""])
def test_a_baseline_name_that_is_not_a_plain_name_deletes_nothing(results_root: Path, name: str) -> None:
    before = _tree(results_root)
    refused(
        ["baseline", "update", str(results_root / "r0"), "--name", name, "--root", str(results_root / "baselines")],
        "is not a plain name",
    )
    assert _tree(results_root) == before


def test_an_absolute_name_or_a_spec_named_dotdot_deletes_nothing(results_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "sentinel.txt").write_text("keep me")
    before = _tree(tmp_path)
    root = str(results_root / "baselines")
    refused(["baseline", "update", str(results_root / "r0"), "--name", str(elsewhere), "--root", root], "plain name")
    dotdot = _results(tmp_path / "dotdot", name="..")
    before = _tree(tmp_path)
    line = refused(["baseline", "update", str(dotdot), "--root", root], "the run's name; give --name")
    assert "'..'" in line and _tree(tmp_path) == before


def test_only_a_baseline_is_replaced_never_another_folder(results_root: Path) -> None:
    root = results_root / "baselines"
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("mine")
    (root / "linked").symlink_to(results_root / "other-run")
    for name, message in (("notes", "holds no baseline.json"), ("linked", "is not a folder of")):
        refused(["baseline", "update", str(results_root / "r0"), "--name", name, "--root", str(root)], message)
    assert (root / "notes" / "todo.txt").read_text() == "mine" and (
        results_root / "other-run" / "sentinel.txt"
    ).exists()
    newer = _results(results_root / "r1", values=[0.0] * 30)
    assert runner.invoke(app, ["baseline", "update", str(newer), "--name", "kept", "--root", str(root)]).exit_code == 0
    assert [r.metrics["accuracy"].value for r in load_run_evals(root / "kept")] == [0.0]
    assert sorted(p.name for p in root.iterdir()) == ["kept", "linked", "notes"]  # no staging left


def test_candidate_out_or_junit_overlapping_an_input_is_refused(results_root: Path, tmp_path: Path) -> None:
    baseline = results_root / "baselines" / "kept"
    before = _tree(baseline)
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_samples: 10\n")
    gate = ["gate", "--baseline", str(baseline), "--candidate", str(checkpoint)]
    refused([*gate, "--candidate-out", str(baseline)], f"--candidate-out {baseline} is the --baseline")
    refused([*gate, "--candidate-out", str(baseline / "evals")], "lies inside the --baseline")
    refused([*gate, "--candidate-out", str(results_root)], "holds the --baseline")
    refused([*gate, "--candidate-out", str(checkpoint / "out")], "lies inside the --candidate")
    refused([*gate, "--policy", str(policy), "--junit", str(policy)], "--junit")
    assert _tree(baseline) == before and policy.read_text() == "min_samples: 10\n"
    refused(["run", "--checkpoint", str(checkpoint), "--task", "arc_easy", "--out", str(baseline)], "stored baseline")
    assert _tree(baseline) == before


def test_a_prompt_template_cannot_escape_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = str(tmp_path / "rows.jsonl")
    Path(data).write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    for template, message in (
        (ESCAPE, "the template reaches '__globals__'"),
        ("{{ question|attr('__class__') }}", "the template reaches '__class__'"),
        ("{% include 'rows.jsonl' %}", "a template may not include, import or extend"),
        ("{% import 'x' as y %}{{ question }}", "a template may not include"),
        ("{{ question", "not a usable template"),
    ):
        with pytest.raises(FtbenchError, match=f"task qa: option prompt: {re.escape(message)}"):
            CustomOptions.parse("qa", {"data": data, "prompt": template})
    built = "{{ cycler[('_' ~ '_init__')] }}{{ question }}"  # a name made at render time: the sandbox refuses it
    with pytest.raises(FtbenchError, match="option prompt reaches what templates may not"):
        custom_items(CustomOptions.parse("qa", {"data": data, "prompt": built}))
    unchecked = CustomOptions.model_construct(**(CustomOptions.parse("qa", {"data": data, "prompt": "q"}).__dict__))
    with pytest.raises(FtbenchError, match="option prompt reaches what templates may not"):
        custom_items(unchecked.model_copy(update={"prompt": ESCAPE}))  # the environment alone refuses it too
    assert not (tmp_path / "MARKER").exists()
    items = custom_items(
        CustomOptions.parse("qa", {"data": data, "prompt": "Q: {{ question | upper }} {{ answer[0] }}"})
    )
    assert items[0]["ftbench_prompt"] == "Q: 2+2? 4"


def test_a_spec_with_the_escape_is_refused_before_any_model_load(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.jsonl").write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    spec = tmp_path / "spec.yaml"
    options = {"data": str(tmp_path / "rows.jsonl"), "prompt": ESCAPE}
    tasks = [{"name": "qa", "task": "custom", "options": options}]
    spec.write_text(json.dumps({"checkpoints": [str(tiny_model_dir)], "tasks": tasks, "out": str(tmp_path / "out")}))
    refused(["run", "--spec", str(spec), "--device", "cpu"], "task qa: option prompt: the template reaches")
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "out").exists()


def _edit_scores(path: Path) -> None:
    """What a hand edit does: every sample right, the metric 1.0, the key (and the request) untouched."""
    data = json.loads(path.read_text())
    for sample in data["samples"]:
        sample["scores"]["accuracy"] = 1.0
    data["metrics"]["accuracy"]["value"] = 1.0
    path.write_text(json.dumps(data, indent=1))


def test_an_edited_record_is_refused_by_every_reader(tmp_path: Path) -> None:
    worse = write_results(tmp_path / "worse", [make_record("b", "sft", "fp32", {"accuracy": [0.0] * 30})])
    baseline = _results(tmp_path / "base")
    (path,) = (worse / "evals").glob("*.json")
    _edit_scores(path)
    message = "was changed after ftbench wrote it"
    for args in (
        ["results", str(worse)],
        ["report", str(worse), "--out", str(tmp_path / "rep")],
        ["gate", "--baseline", str(baseline), "--candidate", str(worse)],
        ["gate", "--baseline", str(worse), "--candidate", str(baseline)],
        ["baseline", "update", str(worse), "--name", "x", "--root", str(tmp_path / "b")],
        ["power", "--results", str(worse), "--delta", "0.1"],
    ):
        assert str(path) in refused(args, message)
    assert not (tmp_path / "rep").exists() and not (tmp_path / "b").exists()


def test_a_record_re_digested_by_hand_is_not_the_one_its_run_lists(tmp_path: Path) -> None:
    results = _results(tmp_path / "r", values=[0.0] * 30)
    (path,) = (results / "evals").glob("*.json")
    _edit_scores(path)
    record = EvalRecord.model_validate_json(path.read_text())
    path.write_text(record.model_copy(update={"digest": content_digest(record)}).model_dump_json())
    refused(["results", str(results)], "is not the evaluation")


def test_a_record_key_tells_a_jobs_own_records_from_anyones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unsigned = _results(tmp_path / "unsigned")
    monkeypatch.setenv(RECORD_KEY_ENV, "ci-secret")
    signed = _results(tmp_path / "signed")
    assert runner.invoke(app, ["results", str(signed)]).exit_code == 0
    refused(["results", str(unsigned)], f"is not signed with the key in {RECORD_KEY_ENV}")
    monkeypatch.setenv(RECORD_KEY_ENV, "another")
    refused(["results", str(signed)], "was signed with another key, or changed after ftbench wrote it")
    monkeypatch.delenv(RECORD_KEY_ENV)
    refused(["results", str(signed)], f"is signed with a key; set {RECORD_KEY_ENV}")


def test_a_record_of_the_previous_schema_gets_a_version_message(tmp_path: Path) -> None:
    results = _results(tmp_path / "r")
    (path,) = (results / "evals").glob("*.json")
    data = json.loads(path.read_text())
    data.pop("digest")
    path.write_text(json.dumps(data | {"schema_version": 2}))
    refused(["gate", "--baseline", str(results), "--candidate", str(results)], "schema 2, this one reads 3")


def _tiny_run(folder: Path, checkpoint: Path, out: Path, tasks: list[dict[str, object]] | None = None) -> list[str]:
    """``ftbench run`` of two generated Countdown puzzles (or ``tasks``), four tokens each, on ``checkpoint``."""
    spec = folder / "tiny.json"
    tasks = tasks or [{"name": "countdown", "options": {"source": "generated", "count": 2, "seed": 3}}]
    spec.write_text(json.dumps({"checkpoints": [str(checkpoint)], "tasks": tasks, "generation": {"max_gen_toks": 4}}))
    return ["run", "--spec", str(spec), "--device", "cpu", "--out", str(out)]


def test_a_run_refuses_its_own_edited_cache(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    args = _tiny_run(tmp_path, tiny_model_dir, out)
    assert runner.invoke(app, args).exit_code == 0
    path = eval_path(out, json.loads((out / "run.json").read_text())["evaluations"][0])
    data = json.loads(path.read_text())
    data["metrics"]["accuracy"]["value"] = 1.0
    path.write_text(json.dumps(data))
    assert str(path) in refused(args, "was changed after ftbench wrote it")


def test_markup_in_a_checkpoint_path_is_shown_as_text(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.StringIO()
    monkeypatch.setattr(display_module, "console", Console(file=terminal, force_terminal=True, width=200))
    checkpoint = Path(shutil.copytree(tiny_model_dir, tmp_path / "ck[b]pt"))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    task = {"name": "qa[b]", "task": "custom", "options": {"data": str(tmp_path / "rows.jsonl"), "prompt": "question"}}
    out = tmp_path / MARKUP  # folders odd[ / bold][ / x]
    result = runner.invoke(app, _tiny_run(tmp_path, checkpoint, out, [task]))
    assert result.exit_code == 0, result.output
    assert (out / "summary.md").is_file() and "ck[b]pt@fp32 qa[b]" in terminal.getvalue()


def _markup_commands(folder: Path) -> list[list[str]]:
    odd = str(folder / MARKUP)
    return [
        ["base", "--gguf", f"{odd}.gguf", "--out", odd],
        ["run", "--checkpoint", odd, "--out", odd],
        ["run", "--spec", f"{odd}.yaml"],
        ["results", odd],
        ["pipeline", "--config", f"{odd}.yaml"],
        ["report", odd, "--out", odd],
        ["train", "sft", "--config", f"{odd}.yaml"],
        ["train", "sft", "--set", "x[/y]=1"],
        ["gate", "--baseline", odd, "--candidate", odd, "--candidate-out", odd],
        ["baseline", "update", odd, "--name", MARKUP],
        ["baseline", "update", odd, "--root", odd],
        ["power", "--results", odd, "--delta", "0.1"],
        ["power", "--results", odd, "--delta", "nan"],
        ["export", "gguf", odd, "--quant", "q8_0"],
        ["export", "gguf", odd, "--quant", MARKUP],
        ["run", "--task", MARKUP, "--checkpoint", odd],
        ["tasks"],
    ]


def test_every_command_answers_markup_laden_input_without_a_traceback(tmp_path: Path) -> None:
    for args in _markup_commands(tmp_path):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 2), (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Traceback" not in result.output and "MarkupError" not in result.output, args
        if result.exit_code == 2:
            assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, (args, result.stderr)


def test_a_generation_longer_than_the_context_is_refused_before_the_model_loads(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    args = ["run", "--checkpoint", str(tiny_model_dir), "--task", "countdown", "--max-gen-toks", "100000"]
    line = refused([*args, "--out", str(out)], "max_gen_toks 100000 (task countdown) is not below the context")
    assert "1024" in line and "--max-gen-toks" in line
    assert not out.exists()
