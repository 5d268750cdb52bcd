"""Re-scoring stored responses without the model: an unchanged task reproduces its records exactly, a changed
scoring function gives its new numbers under a new key that names its source, and every refusal is one line that
writes nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import content_digest, load_eval, load_run, load_run_evals, save_eval
from ftbench.harness.evaluation import rescore as rescore_module
from ftbench.harness.evaluation.lmeval import BuiltPrompt
from ftbench.harness.evaluation.rescore import rescore_record, rescore_refusal, rescore_results, same_prompt
from ftbench.tasks import registry
from ftbench.tasks.base import Metric, Task
from ftbench.tasks.custom.scoring import token_f1

runner = CliRunner()
DEMO = Path(__file__).resolve().parents[1] / "results" / "baselines" / "demo"
STATIC = ("created_at", "digest", "rescored_from")
"""Fields a re-scored record may differ in from a reproduced one."""


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(args: list[str], message: str) -> None:
    """The CLI exits 2 with one line holding ``message`` (lm-eval's progress bars, which the CLI captures from the
    process's stderr, reach the test runner's stream and are left out)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.endswith("it/s]")]
    assert len(lines) == 1 and message in lines[0], lines


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTBENCH_STORE", "none")


def test_the_committed_baseline_still_loads_with_its_digests() -> None:
    records = load_run_evals(DEMO)
    assert {r.task for r in records} == {"arc_easy", "countdown", "perplexity_ultrafeedback"}
    for record in records:
        assert record.rescored_from is None
        assert "rescored_from" not in record.model_dump_json()
        assert content_digest(record) == record.digest


def test_the_source_record_is_part_of_the_digest(tmp_path: Path) -> None:
    (record,) = [r for r in load_run_evals(DEMO) if r.task == "countdown"]
    rescored = record.model_copy(update={"rescored_from": record.key, "digest": None})
    assert content_digest(rescored) != content_digest(record)
    path = save_eval(tmp_path, rescored)
    assert load_eval(path).rescored_from == record.key
    path.write_text(path.read_text().replace(f'"rescored_from": "{record.key}"', '"rescored_from": "someother"'))
    with pytest.raises(FtbenchError, match="changed after ftbench wrote it"):
        load_eval(path)


def test_the_committed_countdown_record_is_reproduced_from_its_responses() -> None:
    (record,) = [r for r in load_run_evals(DEMO) if r.task == "countdown"]
    assert record.request.chat_template  # the conversation check, on prompts a real chat template rendered
    again = rescore_record(record)
    assert again.rescored_from == record.key
    assert again.model_dump(exclude=set(STATIC)) == record.model_dump(exclude=set(STATIC))


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ("arc_easy", "multiple_choice metrics come from the model's log-likelihoods"),
        ("perplexity_ultrafeedback", "loglikelihood_rolling metrics come from the model's log-likelihoods"),
        ("ultrafeedback_winrate", "judge model"),
        ("countdown", None),
        ("rewrite_noisy", None),
        ("arc_easy_gen", None),
    ],
)
def test_which_tasks_can_be_rescored(task: str, reason: str | None) -> None:
    refusal = rescore_refusal(registry.TASKS[task])
    assert refusal is None if reason is None else reason in str(refusal)


def test_a_prompt_is_compared_as_text_or_as_its_conversation() -> None:
    chat = [{"role": "user", "content": "What is 2?"}, {"role": "assistant", "content": "Let me think.\n"}]
    rendered = "<s>user\nWhat is 2?</s><s>assistant\nLet me think."
    assert same_prompt("Q: 2", BuiltPrompt("Q: 2", None, False))
    assert not same_prompt("Q: 2 ", BuiltPrompt("Q: 2", None, False))
    assert same_prompt(rendered, BuiltPrompt("", chat, True))
    assert not same_prompt(rendered + " more", BuiltPrompt("", chat, True))  # rendering stops at the prefix
    assert not same_prompt(rendered, BuiltPrompt("", list(reversed(chat)), False))  # order counts
    assert not same_prompt(rendered, BuiltPrompt("", [{"role": "user", "content": "What is 3?"}], False))


def test_refusals_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _refused(["rescore", str(DEMO), "--out", str(out)], "task arc_easy cannot be re-scored: its multiple_choice")
    _refused(
        ["rescore", str(DEMO), "--out", str(out), "--task", "perplexity_ultrafeedback"],
        "task perplexity_ultrafeedback cannot be re-scored: its loglikelihood_rolling",
    )
    _refused(["rescore", str(DEMO), "--out", str(out), "--task", "gsm8k"], "holds no evaluation of task 'gsm8k'")
    _refused(["rescore", str(DEMO), "--out", str(DEMO), "--task", "countdown"], "is the source directory")
    _refused(["rescore", str(tmp_path / "missing"), "--out", str(out)], "holds no run.json")
    assert not out.exists()
    (out / "other").mkdir(parents=True)
    _refused(["rescore", str(DEMO), "--out", str(out), "--task", "countdown"], "already exists")
    assert [p.name for p in out.iterdir()] == ["other"]


def test_current_evaluations_are_copied_into_a_run_of_their_own(tmp_path: Path) -> None:
    before = _tree(DEMO)
    out = tmp_path / "out"
    result = runner.invoke(app, ["rescore", str(DEMO), "--out", str(out), "--task", "countdown"])
    assert result.exit_code == 0, result.output
    assert "countdown (initial@fp32): already current" in result.output
    assert "arc_easy (initial@fp32): not selected, copied" in result.output
    assert _tree(DEMO) == before
    source, copied = load_run(DEMO), load_run(out)
    assert copied.evaluations == source.evaluations and copied.digests == source.digests
    assert sorted(copied.reused) == sorted(source.evaluations)
    assert (out / "summary.md").is_file()


def _write_results(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))
    result = runner.invoke(app, ["run", "--spec", str(path)])
    assert result.exit_code == 0, result.output
    return Path(spec["out"])


def test_an_unchanged_task_reproduces_its_stored_metrics_and_scores(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [{"question": f"Name a colour, number {i}.", "answer": ["red", "blue", f"green {i}"]} for i in range(6)]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    custom = {"data": str(data), "prompt": "Q: {{ question }}", "metrics": ["chrf", "f1", "bleu", "rougeL"]}
    results = _write_results(
        tmp_path,
        {
            "checkpoints": [str(tiny_model_dir)],
            "device": "cpu",
            "out": str(tmp_path / "run"),
            "generation": {"max_gen_toks": 12, "do_sample": True, "temperature": 1.0},  # varied, seeded responses
            "tasks": [
                {"name": "rewrite_noisy", "options": {"count": 12}, "limit": 6},
                {"name": "my_qa", "task": "custom", "options": custom, "chat_template": False},
            ],
        },
    )
    records = load_run_evals(results)
    assert all(r.metrics["chrf"].value > 0 and r.metrics["chrf"].stderr for r in records)  # values that could differ
    for record in records:
        again = rescore_record(record)
        assert again.key == record.key and again.rescored_from == record.key
        assert again.model_dump(exclude=set(STATIC)) == record.model_dump(exclude=set(STATIC))
    (qa,) = [r for r in records if r.task == "my_qa"]
    assert qa.metrics["f1"].value == pytest.approx(
        mean(token_f1(s.response.strip(), json.loads(s.target)) for s in qa.samples)
    )


LENGTH_YAML = """task: lengthy
custom_dataset: !function task.load
output_type: generate_until
test_split: test
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: []
  max_gen_toks: 10
  do_sample: false
process_results: !function task.process_results
metric_list:
  - metric: score
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
LENGTH_PY = """from ftbench.tasks.data import test_split

QUESTIONS = {questions!r}


def load(**metadata):
    return test_split("lengthy", [{{"question": q, "answer": "yes"}} for q in QUESTIONS])


def process_results(doc, results):
    return {{"score": {score}}}
"""
QUESTIONS = ["Say yes.", "Say no.", "Count to three.", "Name a fruit."]


def _lengthy(folder: Path, score: str, questions: list[str] = QUESTIONS) -> None:
    """The task ``lengthy`` in ``folder``, scoring each response by the expression ``score``."""
    folder.mkdir(exist_ok=True)
    (folder / "lengthy.yaml").write_text(LENGTH_YAML)
    path = folder / "task.py"
    path.write_text(LENGTH_PY.format(questions=questions, score=score))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # lm-eval reloads hooks whose file is newer


def _items(folder: Path) -> list[dict[str, str]]:
    """The items the task folder's ``task.py`` selects now (it is rewritten by the tests)."""
    spec = importlib.util.spec_from_file_location(f"lengthy_{time.monotonic_ns()}", folder / "task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.load()["test"])


@pytest.fixture
def lengthy_run(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stored run of ``lengthy``, a task defined in ``tmp_path / "lengthy"`` that scores 1.0 for every response."""
    folder = tmp_path / "lengthy"
    _lengthy(folder, "1.0")
    task = Task(
        name="lengthy",
        folder=folder,
        output="generate_until",
        headline="score",
        metrics={"score": Metric("characters", "continuous")},
        items=lambda options: _items(folder),
    )
    monkeypatch.setitem(registry.TASKS, "lengthy", task)
    spec = {
        "checkpoints": [str(tiny_model_dir)],
        "device": "cpu",
        "out": str(tmp_path / "run"),
        "generation": {"do_sample": True, "temperature": 1.0},  # responses of varied lengths
        "tasks": ["lengthy"],
    }
    return _write_results(tmp_path, spec)


def test_a_changed_scoring_function_gives_its_new_numbers(lengthy_run: Path, tmp_path: Path) -> None:
    (source,) = load_run_evals(lengthy_run)
    assert source.metrics["score"].value == 1.0
    before = _tree(lengthy_run)
    _lengthy(tmp_path / "lengthy", "float(len(results[0]))")
    out = tmp_path / "rescored"
    result = runner.invoke(app, ["rescore", str(lengthy_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = load_run_evals(out)
    lengths = [float(len(sample.response)) for sample in source.samples]
    assert len(set(lengths)) > 1  # responses of different lengths, so a wrong pairing would show
    assert [s.scores["score"] for s in record.samples] == lengths
    assert record.metrics["score"].value == pytest.approx(mean(lengths))
    assert record.metrics["score"].stderr is not None and record.metrics["score"].stderr > 0
    assert record.rescored_from == source.key and record.key != source.key
    assert record.request.task_definition_hash == registry.TASKS["lengthy"].definition_hash()
    assert record.request.model_dump(exclude={"task_definition_hash"}) == source.request.model_dump(
        exclude={"task_definition_hash"}
    )
    assert [(s.prompt, s.response, s.doc_hash) for s in record.samples] == [
        (s.prompt, s.response, s.doc_hash) for s in source.samples
    ]
    assert record.variant == source.variant and record.performance == source.performance
    assert f"lengthy (tiny@fp32): re-scored from {source.key} as {record.key}; score 1 -> " in result.output
    assert load_run(out).evaluations == [record.key] and load_run(out).reused == []
    assert _tree(lengthy_run) == before


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        (["Say yes, please.", *QUESTIONS[1:]], "item 0 changed since it was evaluated"),
        ([*QUESTIONS, "One more."], "the task now selects other items than were evaluated"),
    ],
)
def test_changed_items_are_refused(lengthy_run: Path, tmp_path: Path, questions: list[str], message: str) -> None:
    _lengthy(tmp_path / "lengthy", "0.0", questions)
    out = tmp_path / "rescored"
    _refused(["rescore", str(lengthy_run), "--out", str(out)], message)
    assert not out.exists()


def test_changed_prompts_are_refused(lengthy_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lengthy"
    (folder / "lengthy.yaml").write_text(
        LENGTH_YAML.replace('doc_to_text: "{{question}}"', 'doc_to_text: "Q: {{question}}"')
    )
    out = tmp_path / "rescored"
    _refused(["rescore", str(lengthy_run), "--out", str(out)], "lengthy of tiny@fp32: prompts changed (item 0)")
    assert not out.exists()


def test_a_failure_while_writing_leaves_nothing(
    lengthy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lengthy(tmp_path / "lengthy", "0.5")

    def broken(results_dir: Path, record: object, known: object = None) -> Path:
        raise FtbenchError("disk full")

    monkeypatch.setattr(rescore_module, "store_run", broken)
    out = tmp_path / "rescored"
    with pytest.raises(FtbenchError, match="disk full"):
        rescore_results(lengthy_run, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rescored")]
    assert not list((lengthy_run / "evals").glob(".*"))


def test_the_default_out_is_beside_the_source_and_joins_the_store(
    lengthy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.index.lookup import find_evaluations, load_records
    from ftbench.harness.index.schema import opened_store

    monkeypatch.setenv("FTBENCH_STORE", str(tmp_path / "store.db"))
    _lengthy(tmp_path / "lengthy", "0.5")
    result = runner.invoke(app, ["rescore", str(lengthy_run)])
    assert result.exit_code == 0, result.output
    (record,) = load_run_evals(tmp_path / "run-rescored")
    assert record.metrics["score"].value == 0.5
    with opened_store(store_location(), read_only=True) as store:
        (indexed,) = load_records(store, find_evaluations(store, record.key))
    assert indexed == record and indexed.rescored_from == load_run(lengthy_run).evaluations[0]


def test_a_refused_rescore_imports_no_heavy_library(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom ftbench.harness.app.cli import app\n"
        f"try:\n    app(['rescore', {str(tmp_path / 'missing')!r}])\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'transformers', 'lm_eval', 'datasets') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
    assert "holds no run.json" in done.stderr
