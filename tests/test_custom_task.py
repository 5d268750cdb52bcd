"""A task from your own data: SQuAD's exact match and F1, several references, the metric menu, stock lm-eval, and
one clear line for every bad definition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.store import load_run_evals
from ftbench.tasks.custom.scoring import corpus_score, exact_match, normalize_answer, token_f1
from ftbench.tasks.custom.task import CustomOptions, custom_items
from ftbench.tasks.custom.training import sft_rows
from tests.evaluate import evaluate

runner = CliRunner()


@pytest.mark.parametrize(
    ("prediction", "references", "em", "f1"),
    [
        ("The Eiffel Tower", ["eiffel tower"], 1.0, 1.0),  # case and the article "the"
        ("Eiffel Tower!", ["the  Eiffel tower."], 1.0, 1.0),  # punctuation and spaces
        ("in Paris, France", ["Paris"], 0.0, 2 * (1 / 3) * 1 / (1 / 3 + 1)),  # precision 1/3, recall 1
        ("a cat sat", ["the dog sat", "a cat sat down"], 0.0, max(0.5, 2 * 1 * (2 / 3) / (1 + 2 / 3))),
        ("nothing alike", ["Paris"], 0.0, 0.0),
        ("Paris", ["London", "paris"], 1.0, 1.0),  # the best reference counts
    ],
)
def test_exact_match_and_f1_follow_the_squad_script(
    prediction: str, references: list[str], em: float, f1: float
) -> None:
    assert exact_match(prediction, references) == em
    assert token_f1(prediction, references) == pytest.approx(f1)


def test_normalization_is_squads() -> None:
    assert normalize_answer("  An apple, THE pear & a fig! ") == "apple pear fig"


def test_corpus_scores_equal_sacrebleu_with_several_references() -> None:
    predictions = ["the cat is on the mat", "a quick brown fox"]
    references = [["the cat sits on the mat", "there is a cat on the mat"], ["the quick brown fox", "a fast fox"]]
    streams = [[refs[i] for refs in references] for i in range(2)]
    assert corpus_score("bleu", predictions, references) == pytest.approx(
        sacrebleu.corpus_bleu(predictions, streams).score
    )
    assert corpus_score("chrf", predictions, references) == pytest.approx(
        sacrebleu.corpus_chrf(predictions, streams).score
    )


def _data(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


ROWS = [
    {
        "id": f"c{i // 3}_{i % 3}",
        "question": f"What is {i} plus one?",
        "answer": str(i + 1),
        "alt": [str(i + 1), f"{i + 1}."],
    }
    for i in range(30)
]


def test_items_prompts_references_and_group_split(tmp_path: Path) -> None:
    path = _data(tmp_path, ROWS)
    options = CustomOptions(
        data=str(path), prompt="Q: {{ question }}", reference="alt", group="id", group_pattern=r"^(.*)_\d+$"
    )
    test, train = custom_items(options), custom_items(options, "train")
    assert test and train and len(test) + len(train) == 30
    group = {item["id"].split("_")[0] for item in test}
    assert not group & {item["id"].split("_")[0] for item in train}  # whole conversations stay on one side
    assert test[0]["ftbench_prompt"].startswith("Q: What is") and len(test[0]["ftbench_references"]) == 2
    rows = sft_rows(options, 5, seed=1)
    assert len(rows) == 5 and rows == sft_rows(options, 10, seed=1)[:5]  # nested subsets for growing counts
    assert {r["prompt"][-1]["content"] for r in rows}.isdisjoint({i["ftbench_prompt"] for i in test})


def test_custom_task_runs_under_its_own_name(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = _data(tmp_path, [{"question": r["question"], "answer": r["answer"]} for r in ROWS[:6]])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"checkpoints: [{tiny_model_dir}]\ndevice: cpu\nout: {tmp_path / 'out'}\ngeneration: {{max_gen_toks: 6}}\n"
        "tasks:\n"
        f"  - {{name: my_qa, task: custom, options: {{data: {path}, prompt: question, "
        "metrics: [f1, exact_match, bleu]}}\n"
        f"  - {{name: my_qa_rouge, task: custom, options: {{data: {path}, prompt: question, metrics: [rougeL]}}}}\n"
    )
    result = runner.invoke(app, ["run", "--spec", str(spec)])
    assert result.exit_code == 0, result.output
    records = {r.task: r for r in load_run_evals(tmp_path / "out")}
    assert set(records) == {"my_qa", "my_qa_rouge"}
    assert set(records["my_qa"].metrics) == {"f1", "exact_match", "bleu"}
    assert set(records["my_qa_rouge"].metrics) == {"rougeL"}
    qa = records["my_qa"]
    answers = [s.response.strip() for s in qa.samples]
    references = [json.loads(s.target) for s in qa.samples]
    assert qa.metrics["f1"].value == pytest.approx(
        sum(token_f1(a, r) for a, r in zip(answers, references, strict=True)) / 6
    )
    assert qa.metrics["bleu"].value == pytest.approx(corpus_score("bleu", answers, references))
    report = runner.invoke(app, ["report", str(tmp_path / "out"), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    assert "### my_qa: f1" in (tmp_path / "rep" / "report.md").read_text()


def test_stock_lm_eval_runs_the_custom_task(tmp_path: Path, tiny_model_dir: Path) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    path = _data(tmp_path, [{"question": r["question"], "answer": r["answer"]} for r in ROWS[:4]])
    folder = Path(__file__).resolve().parents[1] / "tasks" / "custom"
    manager = TaskManager(
        include_path=[str(folder)], include_defaults=False, metadata={"data": str(path), "prompt": "question"}
    )
    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=4)
    output = simple_evaluate(
        model=lm, tasks=["custom"], task_manager=manager, gen_kwargs="max_gen_toks=4", bootstrap_iters=0
    )
    assert output is not None
    ours = evaluate(
        tiny_model_dir,
        "custom_check",
        options={"data": str(path), "prompt": "question"},
        generation={"max_gen_toks": 4},
        chat_template=False,
        kind="custom",
    )
    assert output["results"]["custom"]["f1,none"] == pytest.approx(ours.metrics["f1"][0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{data: DATA, prompt: question, reference: solution}", "row 0: no reference in field 'solution'"),
        ("{data: DATA, prompt: question, metrics: [bleu, meteor]}", "metrics.1: Input should be"),
        ("{data: DATA, prompt: 'Q: {{ questoin }}'}", "row 0: the prompt template names a field the row lacks"),
        ("{data: DATA, prompt: question, colour: red}", "unknown option 'colour'; valid options are"),
        ("{data: missing.jsonl, prompt: question}", "custom task data missing.jsonl does not exist"),
    ],
)
def test_bad_definitions_are_one_line(tmp_path: Path, tiny_model_dir: Path, options: str, message: str) -> None:
    path = _data(tmp_path, ROWS[:3])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"checkpoints: [{tiny_model_dir}]\ndevice: cpu\nout: {tmp_path / 'out'}\n"
        f"tasks:\n  - {{name: mine, task: custom, options: {options.replace('DATA', str(path))}}}\n"
    )
    result = runner.invoke(app, ["run", "--spec", str(spec)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()
