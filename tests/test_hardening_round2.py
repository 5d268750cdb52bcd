"""Closed to hostile and faulty input: names that stay plain and never drive the terminal, prompt
templates that cannot exhaust the machine, runs that never replace another run or list another run's records,
outputs that never land inside their source, failures that leave nothing, and the training loop's checks made
when it starts."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ftbench.harness.core.store as store_module
from ftbench import FtbenchCallback
from ftbench.harness.app.cli import app
from ftbench.harness.app.display import checkpoint_line, library_output
from ftbench.harness.app.watch import complete_checkpoints
from ftbench.harness.core.answers import answer_for
from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.events import CheckpointEvent
from ftbench.harness.core.names import terminal_text
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import RECORD_KEY_ENV, eval_path, load_run, save_eval, store_run
from ftbench.harness.core.training_curve import load_curve
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.harness.index.connection import store_location
from ftbench.harness.index.indexing import add_results
from ftbench.harness.index.schema import opened_store
from ftbench.harness.index.store_matrix import store_grids
from ftbench.reports.analysis import analyse
from ftbench.reports.matrix import report_grids
from ftbench.tasks.custom.task import CustomOptions, custom_items
from ftbench.tasks.registry import recorded_task
from tests.records import make_manifest, make_record, write_results
from tests.training_runs import perplexity_suite, sft_trainer, short_documents

runner = CliRunner()
ESCAPES = "q\x1b[2J\x1b]0;TITLEPWN\x07\x1b[31mRED"


def refused(args: list[str], message: str, env: dict[str, str] | None = None) -> str:
    """Run the CLI; it must exit 2 with one line on stderr holding ``message``, and no raw escape character."""
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert "\x1b" not in result.output and "\x00" not in result.output
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(folder: Path, rows: list[dict[str, Any]] | None = None, prefix: bytes = b"") -> Path:
    path = folder / "rows.jsonl"
    rows = rows or [{"question": "2+2?", "answer": "4"}]
    path.write_bytes(prefix + "".join(json.dumps(row) + "\n" for row in rows).encode())
    return path


def _spec(folder: Path, checkpoint: Path | str, tasks: list[dict[str, Any]], **fields: Any) -> Path:
    spec = folder / "spec.json"
    body = {"checkpoints": [str(checkpoint)], "tasks": tasks, "generation": {"max_gen_toks": 4}} | fields
    spec.write_text(json.dumps(body))
    return spec


def _custom(folder: Path, prompt: str = "question", name: str = "qa") -> dict[str, Any]:
    return {"name": name, "task": "custom", "options": {"data": str(_rows(folder)), "prompt": prompt}}


# Names: plain in specs, written out on the terminal.


@pytest.mark.parametrize("name", ["a/b", "..", "", "a\x00b", "a\nb", ESCAPES, " padded"])
def test_a_spec_names_tasks_and_runs_plainly(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    spec = _spec(tmp_path, tmp_path / "missing-checkpoint", [_custom(tmp_path, name=name)], out=str(out))
    refused(["run", "--spec", str(spec)], "tasks.0.name: task name")
    spec = _spec(tmp_path, tmp_path / "missing-checkpoint", [_custom(tmp_path)], out=str(out), name=name)
    refused(["run", "--spec", str(spec)], "name: run name")
    assert not out.exists()
    assert parse_spec({"checkpoints": ["x"], "tasks": [_custom(tmp_path, name="qa[b] v2.1")]}, "spec").tasks[0].name


def _escaped_run(folder: Path, task: str = ESCAPES) -> Path:
    record = make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0] * 15}, task="countdown")
    record = record.model_copy(update={"task": task, "variant": record.variant.model_copy(update={"name": ESCAPES})})
    return write_results(folder, [record])


def test_stored_names_reach_the_terminal_written_out(tmp_path: Path) -> None:
    results = _escaped_run(tmp_path / "r")
    for fmt in ("md", "csv", "json"):
        shown = runner.invoke(app, ["results", str(results), "--format", fmt])
        assert shown.exit_code == 0, shown.output
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
        assert "RED" in shown.stdout and ("\\x1b[2J" in shown.stdout or "\\u001b[2J" in shown.stdout)
    store = tmp_path / "store.db"
    with opened_store(store_location(store)) as opened:
        add_results(opened, [results], recorded_task)
    line = refused(["history", "--task", "nosuch", "--store", str(store)], "choose one of")
    assert "\\x1b]0;TITLEPWN\\x07" in line
    history = runner.invoke(app, ["history", "--task", ESCAPES, "--store", str(store)])
    assert history.exit_code == 0 and "\x1b" not in history.stdout and "\\x1b[31mRED" in history.stdout
    event = CheckpointEvent(3, f"checkpoint-3{ESCAPES}", failed=f"cannot load {ESCAPES}")
    assert "\x1b" not in checkpoint_line(event) and "\\x1b[2J" in checkpoint_line(event)
    assert terminal_text("tab\there é ✓") == "tab\\x09here é ✓"


def test_an_export_refuses_a_task_name_with_nul_in_one_line(tmp_path: Path) -> None:
    results = _escaped_run(tmp_path / "r", task="a\x00b")
    refused(["export", "lm-eval", str(results), "--out", str(tmp_path / "x")], "cannot be part of a file name")
    assert not (tmp_path / "x").exists()


# Prompt templates: bounded in work, fast as before.

HEAVY = {
    "{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}{% endfor %}": "runs loops of more",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}": "runs loops of more",
    "{{ 'AAAAAAAAAA' * 400000000 }}": "makes a value of more than",
    "{% set a = question ~ question %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}": "makes a value of more than",
    "{{ question|center(999999999) }}": "makes a value of more than",
    "{{ question.ljust(999999999) }}": "makes a value of more than",
    "{{ '%0999999999d' % 1 }}": "formats a field wider than",
    "{{ '{:>{}}'.format(1, 999999999) }}": "formats a field wider than",
    "{{ (question * 99999)|replace('', question * 99) }}": "makes a value of more than",
    "{{ range(99999)|join(question * 999) }}": "makes a value of more than",
    "{{ 9 ** 9999999 }}": "computes an integer of more than",
    "{{ range(100000000) }}": "fails on this row (OverflowError",
}


@pytest.mark.parametrize("template", list(HEAVY))
def test_a_prompt_template_is_bounded_in_work(tmp_path: Path, template: str) -> None:
    options = CustomOptions.parse("qa", {"data": str(_rows(tmp_path)), "prompt": template})
    started = time.perf_counter()
    with pytest.raises(FtbenchError, match=r"options\.prompt") as caught:
        custom_items(options)
    assert HEAVY[template] in str(caught.value) and "row 0" in str(caught.value)
    assert time.perf_counter() - started < 10


def test_a_heavy_template_is_refused_in_one_line_before_any_model_load(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    template = "{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}{% endfor %}"
    spec = _spec(tmp_path, tiny_model_dir, [_custom(tmp_path, template)], out=str(out))
    refused(["run", "--spec", str(spec), "--device", "cpu"], "options.prompt runs loops of more than 100000 steps")
    assert not out.exists()
    refused(["run", "--spec", str(spec), "--device", "cpu"], "options.prompt")


def test_ordinary_templates_render_as_before_and_fast(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": "4", "tags": ["a", "b"]} for i in range(2000)]
    template = (
        "Q: {{ question | upper }} {{ answer[0] }} {% for t in tags %}{{ loop.index }}{{ t }}{% endfor %} "
        "{{ tags|join(', ') }} {{ '%s!' % answer }} {{ '{}?'.format(question) }} {{ question ~ '.' }}"
    )
    options = CustomOptions.parse("qa", {"data": str(_rows(tmp_path, rows)), "prompt": template})
    started = time.perf_counter()
    items = custom_items(options)
    assert time.perf_counter() - started < 5
    assert items[1]["ftbench_prompt"] == "Q: Q1 4 1a2b a, b 4! q1? q1."
    with pytest.raises(FtbenchError, match="recursive loops"):
        CustomOptions.parse("qa", {"data": str(_rows(tmp_path)), "prompt": "{% for x in [1] recursive %}{% endfor %}"})


def test_a_jsonl_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = _rows(tmp_path, prefix=b"\xef\xbb\xbf")
    items = custom_items(CustomOptions.parse("qa", {"data": str(path), "prompt": "question"}))
    assert [item["ftbench_prompt"] for item in items] == ["2+2?"]


def test_repeats_are_bounded(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = _spec(tmp_path, tmp_path / "missing", [{"name": "countdown"}], out=str(out), repeats=1000000)
    refused(["run", "--spec", str(spec)], "repeats: Input should be less than or equal to 100")
    spec = _spec(tmp_path, tmp_path / "missing", [{"name": "countdown", "repeats": 101}], out=str(out))
    refused(["run", "--spec", str(spec)], "tasks.0.repeats")
    assert not out.exists()


# Runs: never replaced by another, never listing another run's records.


def _tiny(folder: Path, checkpoint: Path, out: Path, name: str) -> list[str]:
    tasks = [{"name": "countdown", "options": {"source": "generated", "count": 2, "seed": 3}}]
    spec = _spec(folder, checkpoint, tasks, name=name)
    target = folder / f"{name}.json"
    spec.rename(target)
    return ["run", "--spec", str(target), "--device", "cpu", "--out", str(out)]


def test_a_run_never_replaces_another_run_without_force(tmp_path: Path, tiny_model_dir: Path) -> None:
    victim = write_results(tmp_path / "victim", [make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})], "demo")
    before = _tree(victim)
    refused(_tiny(tmp_path, tiny_model_dir, victim, "mine"), "holds the run 'demo' (1 evaluations); give --out")
    assert _tree(victim) == before
    out = tmp_path / "out"
    first = _tiny(tmp_path, tiny_model_dir, out, "mine")
    assert runner.invoke(app, first).exit_code == 0
    assert runner.invoke(app, first).exit_code == 0  # the same run again: resumed, not refused
    stored = load_run(out)
    older = {key: value for key, value in stored.spec.items() if key != "engine"}  # a version without that setting
    store_run(out, stored.model_copy(update={"spec": older}))
    assert runner.invoke(app, first).exit_code == 0
    refused(_tiny(tmp_path, tiny_model_dir, out, "other"), "holds the run 'mine'")
    replaced = runner.invoke(app, [*_tiny(tmp_path, tiny_model_dir, out, "other"), "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert load_run(out).name == "other"


def _signed_run(out: Path, spec: dict[str, Any], records: list[EvalRecord]) -> None:
    for record in records:
        save_eval(out, record)
    stored = load_run(write_results(out, records))
    store_run(out, stored.model_copy(update={"spec": spec}))


def test_a_run_lists_only_evaluations_its_spec_asks_for(tmp_path: Path) -> None:
    countdown = make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})
    arc = make_record("b", "initial", "fp32", {"acc_norm": [0.0] * 30}, task="arc_easy")
    spec = {"tasks": [{"name": "countdown"}], "precisions": ["fp32"]}
    mixed = tmp_path / "mixed"
    _signed_run(mixed, spec, [countdown, arc])
    message = "is an evaluation of task 'arc_easy', which the spec in its run.json does not ask for"
    for args in (
        ["results", str(mixed), "--format", "csv"],
        ["report", str(mixed), "--out", str(tmp_path / "rep")],
        ["baseline", "update", str(mixed), "--name", "mixed", "--root", str(tmp_path / "bl")],
        ["store", "add", str(mixed), "--store", str(tmp_path / "s.db")],
    ):
        assert str(eval_path(mixed, arc.key)) in refused(args, message)
    assert not (tmp_path / "rep").exists() and not (tmp_path / "bl").exists()
    clean = tmp_path / "clean"
    _signed_run(clean, spec, [countdown])
    save_eval(clean, arc)  # what was done by hand: the record copied in, its key and digest added to run.json
    data = json.loads((clean / "run.json").read_text())
    data["evaluations"].append(arc.key)
    data["digests"][arc.key] = json.loads(eval_path(clean, arc.key).read_text())["digest"]
    (clean / "run.json").write_text(json.dumps(data))
    refused(["results", str(clean)], "run.json was changed after ftbench wrote it")


def test_a_run_listing_an_evaluation_twice_is_refused(tmp_path: Path) -> None:
    record = make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})
    results = write_results(tmp_path / "r", [record])
    store_run(results, load_run(results).model_copy(update={"evaluations": [record.key, record.key]}))
    refused(["results", str(results), "--format", "csv"], f"lists the evaluation {record.key} twice")
    data = json.loads((results / "run.json").read_text())
    data.pop("digest")  # a run record written before runs carried a digest: still checked for duplicates
    (results / "run.json").write_text(json.dumps(data))
    refused(["results", str(results), "--format", "csv"], "twice")


def test_a_record_signed_under_another_key_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RECORD_KEY_ENV, "first")
    signed = write_results(tmp_path / "r", [make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})])
    assert RunRecord.model_validate_json((signed / "run.json").read_text()).digest.startswith("hmac-sha256:")  # type: ignore[union-attr]
    monkeypatch.setenv(RECORD_KEY_ENV, "second")
    line = refused(["results", str(signed)], "was signed with another key, or changed after ftbench wrote it")
    assert f"set {RECORD_KEY_ENV} to the key that wrote it" in line and "delete it" not in line


# Outputs: never inside their source; nothing left after a failure.


def test_rescore_and_export_refuse_an_output_inside_the_run(tmp_path: Path) -> None:
    results = write_results(tmp_path / "r", [make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})])
    before = _tree(results)
    refused(["rescore", str(results), "--out", str(results / "sub")], "lies inside the source directory")
    refused(["export", "lm-eval", str(results), "--out", str(results / "evals")], "lies inside the run")
    refused(["export", "lm-eval", str(results), "--out", str(results)], "lies inside the run")
    assert _tree(results) == before


def test_a_report_writes_both_files_or_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = write_results(tmp_path / "r", [make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})])
    real = tempfile.mkstemp

    def full_disk(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if str(kwargs.get("prefix", "")).startswith(".report.html"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module.tempfile, "mkstemp", full_disk)
    out = tmp_path / "rep"
    line = refused(["report", str(results), "--out", str(out)], "report.html (No space left on device")
    assert not out.exists()
    out.mkdir()
    (out / "report.md").write_text("the previous report")
    refused(["report", str(results), "--out", str(out)], "report.html")
    assert _tree(out) == {"report.md": b"the previous report"} and "report.md" not in line


def test_a_failed_command_leaves_no_log_in_a_folder_it_made(tmp_path: Path) -> None:
    out = tmp_path / "made"
    with pytest.raises(FtbenchError), library_output(out / "ftbench.log", verbose=False):
        out.mkdir()
        logging.getLogger("transformers").warning("a library speaks before the failure")
        raise FtbenchError("cannot load")
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(FtbenchError), library_output(kept / "ftbench.log", verbose=False):
        logging.getLogger("transformers").warning("a library speaks")
        raise FtbenchError("cannot load")
    assert (kept / "ftbench.log").is_file()  # a folder the command did not make keeps its log


def test_an_adapter_without_weights_leaves_nothing(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftbench.harness.engines.hf as hf

    with_adapter = hf._with_adapter

    def speaking(*args: Any) -> Any:  # as the hub client does offline: a warning in the log, then the failure
        logging.getLogger("transformers").warning("the adapter's weights are not in the cache")
        return with_adapter(*args)

    monkeypatch.setattr(hf, "_with_adapter", speaking)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = {"peft_type": "LORA", "base_model_name_or_path": str(tiny_model_dir), "r": 4, "target_modules": ["q_proj"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    args = ["run", "--checkpoint", str(adapter), "--task", "countdown", "--limit", "1", "--max-gen-toks", "4"]
    refused([*args, "--device", "cpu", "--out", str(out)], f"cannot load adapter {adapter}")
    assert not out.exists()


def test_a_checkpoints_json_config_that_does_not_parse_is_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    adapter = tmp_path / "ck" / "lora"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{'r': 8,")
    with pytest.raises(FtbenchError, match=r"adapter_config\.json is not valid JSON"):
        resolve_checkpoint(adapter, base=tiny_model_dir)
    refused(["run", "--checkpoint", str(adapter), "--task", "countdown"], "adapter_config.json is not valid JSON")
    broken = tmp_path / "dir" / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text("{not json")
    refused(["run", "--checkpoints-dir", str(tmp_path / "dir"), "--task", "countdown"], "config.json is not valid JSON")


def test_base_keeps_only_a_complete_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "noweights"
    out.mkdir()
    (out / "config.json").write_text("{}")
    refused(["base", "--out", str(out)], "is not a complete checkpoint (no config.json or weights)")
    assert _tree(out) == {"config.json": b"{}"}


# Smaller frictions: the gate's terminal text, the answer beside a score, the matrix of what moved.


def test_the_gate_shows_p_values_as_text_on_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    baseline = write_results(tmp_path / "b", [make_record("a", "initial", "fp32", {"accuracy": [1.0] * 40})])
    candidate = write_results(tmp_path / "c", [make_record("b", "sft", "fp32", {"accuracy": [0.0] * 40})])
    result = runner.invoke(app, ["gate", "--baseline", str(baseline), "--candidate", str(candidate)])
    assert result.exit_code == 1, result.output
    assert "<0.001" in result.stdout and "&lt;" not in result.stdout and "&gt;" not in result.stdout


def _choice_record(key: str, stage: str, acc: list[float], acc_norm: list[float]) -> EvalRecord:
    record = make_record(key, stage, "fp32", {"acc": acc, "acc_norm": acc_norm}, task="arc_easy")
    samples = [
        s.model_copy(update={"response": f"choice text {s.doc_id}", "target": "0", "choice_loglikelihoods": [-1.0] * 4})
        for s in record.samples
    ]
    return record.model_copy(update={"samples": samples})


def test_a_multiple_choice_answer_is_the_one_its_metric_picked(tmp_path: Path) -> None:
    first = _choice_record("a", "initial", [1.0] * 20, [1.0] * 20)
    second = _choice_record("b", "sft", [1.0] * 20, [0.0] * 20)  # acc still picks the target; acc_norm another
    sample = second.samples[0]
    assert answer_for(sample, "acc") == "choice text 0"
    shown = answer_for(sample, "acc_norm")
    assert shown.startswith("a wrong choice, ranked first by acc_norm") and "acc ranked the target first" in shown
    right = first.samples[0].model_copy(update={"scores": {"acc": 0.0, "acc_norm": 1.0}})
    assert answer_for(right, "acc_norm").startswith("choice 0 (the target), ranked first by acc_norm")
    results = write_results(tmp_path / "r", [first, second])
    assert runner.invoke(app, ["report", str(results), "--out", str(tmp_path / "rep")]).exit_code == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "a wrong choice, ranked first by acc_norm" in html


def test_the_matrix_shows_the_metrics_that_moved_when_the_headline_did_not(tmp_path: Path) -> None:
    def scored(key: str, stage: str, formats: list[float], accuracy: float = 0.0) -> EvalRecord:
        record = make_record(key, stage, "fp32", {"accuracy": [accuracy] * 32, "format_rate": formats})
        parent = "checkpoints/initial" if stage != "initial" else None
        manifest = make_manifest(stage, "sft" if parent else "bootstrap", parent)
        return record.model_copy(update={"variant": record.variant.model_copy(update={"manifest": manifest})})

    initial = scored("a", "initial", [0.0] * 32)
    sft = scored("b", "sft", [1.0] * 28 + [0.0] * 4)
    results = write_results(tmp_path / "r", [initial, sft])
    reported = report_grids(analyse([results]))
    assert [grid.metric for grid in reported] == ["accuracy", "format_rate"]
    assert reported[1].cell("sft", sft.variant.precision).parent.mark == "better"  # type: ignore[union-attr]
    with opened_store(store_location(tmp_path / "s.db")) as store:
        add_results(store, [results], recorded_task)
        assert [grid.metric for grid in store_grids(store, recorded_task)] == ["accuracy", "format_rate"]
    headline_moved = write_results(tmp_path / "m", [initial, scored("c", "sft", [1.0] * 32, accuracy=1.0)])
    assert [grid.metric for grid in report_grids(analyse([headline_moved]))] == ["accuracy"]
    nothing_moved = write_results(tmp_path / "s", [initial, scored("d", "sft", [0.0] * 32)])
    assert [grid.metric for grid in report_grids(analyse([nothing_moved]))] == ["accuracy"]


# The training loop: the callback checks its arguments when made; a watch goes on past a broken checkpoint.


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_documents(tmp_path_factory.mktemp("documents"))


@pytest.fixture(scope="module")
def idle_trainer(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Any:
    return sft_trainer(tiny_model_dir, tmp_path_factory.mktemp("idle"))


def test_the_callback_refuses_unusable_arguments_when_made(
    tmp_path: Path, idle_trainer: Any, documents: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = perplexity_suite(documents)
    a_file = tmp_path / "afile"
    a_file.write_text("mine")
    for arguments, message in (
        ({"suite": suite, "out": a_file}, "is a file"),
        ({"suite": suite, "out": tmp_path / "r", "base": tmp_path / "missing-base"}, "base"),
        ({"suite": suite, "out": tmp_path / "r", "every": "2"}, "every"),
        ({"suite": None, "out": tmp_path / "r"}, "suite"),
    ):
        with pytest.raises(FtbenchError, match=message) as caught:
            FtbenchCallback(idle_trainer, **arguments)
        assert "\n" not in str(caught.value)
    monkeypatch.setenv("FTBENCH_STORE", "postgresql://u@127.0.0.1:1/db")
    with pytest.raises(FtbenchError, match="store"):
        FtbenchCallback(idle_trainer, suite, tmp_path / "r")
    assert a_file.read_text() == "mine" and not (tmp_path / "r").exists() and idle_trainer.state.global_step == 0


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A trainer's output_dir with checkpoint-1 and checkpoint-2."""
    output = tmp_path_factory.mktemp("trained") / "run"
    sft_trainer(tiny_model_dir, output, save_steps=1).train()
    return output


def _suite_file(folder: Path, documents: Path) -> Path:
    path = folder / "suite.json"
    path.write_text(json.dumps(perplexity_suite(documents)))
    return path


def test_a_watch_records_a_broken_checkpoint_and_goes_on(tmp_path: Path, saved_run: Path, documents: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(saved_run / "checkpoint-1", run / "checkpoint-1")
    for weights in (run / "checkpoint-1").glob("*.safetensors"):
        weights.unlink()  # its trainer state says complete, its weights are gone
    shutil.copytree(saved_run / "checkpoint-2", run / "checkpoint-2")
    out = tmp_path / "results"
    command = ["watch", str(run), "--spec", str(_suite_file(tmp_path, documents)), "--out", str(out), "--once"]
    for _ in range(2):  # a second start retries the broken one and keeps the good one
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert (
            "could not evaluate: checkpoint-1" in result.stdout
            and "evaluated checkpoints: checkpoint-2" in result.stdout
        )
        curve = load_curve(out)
        assert curve is not None
        assert [(s.step, s.failed is not None) for s in curve.steps] == [(1, True), (2, False)]
    refused(["watch", str(run), "--spec", str(_suite_file(tmp_path, documents)), "--out", str(run), "--once"],
            "is the watched directory")  # fmt: skip
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-1", "checkpoint-2"]


def test_a_watch_takes_each_step_once_and_skips_steps_the_store_cannot_hold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("checkpoint-3", "checkpoint-03", "checkpoint-99999999999999999999", "checkpoint-5"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    with caplog.at_level(logging.WARNING, logger="ftbench"):
        found = complete_checkpoints(tmp_path)
    assert found == [(3, tmp_path / "checkpoint-3"), (5, tmp_path / "checkpoint-5")]
    assert "checkpoint-3 and checkpoint-03 are both step 3" in caplog.text
    assert "names step 99999999999999999999, beyond what the results store holds; skipped" in caplog.text
