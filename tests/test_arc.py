"""ARC: data loading, the generative letter scorer, and equality with lm-eval's stock arc_easy."""

from __future__ import annotations

from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.arc.dataset import arc_items
from ftbench.tasks.arc.scoring import extract_choice, score_arc_choice
from ftbench.tasks.data import DataOptions, default_data_dir
from tests.evaluate import evaluate


def test_local_copies_load_with_hub_schema() -> None:
    easy = arc_items("ARC-Easy")
    challenge = arc_items("ARC-Challenge")
    assert len(easy) == 2376 and len(challenge) == 1172
    numeric = [row for row in challenge if row["choices"]["label"][0] == "1"]
    assert len(numeric) == 22
    assert all(row["answerKey"] in row["choices"]["label"] for row in numeric)


def test_missing_field_names_file_row_and_field(tmp_path: Path) -> None:
    (tmp_path / "arc").mkdir()
    (tmp_path / "arc" / "arc_challenge_test.jsonl").write_text(
        '{"id": "a", "question": "q", "choices": {"text": ["x"], "label": ["A"]}, "answerKey": "A"}\n'
        '{"id": "b", "question": "q", "answerKey": "A"}\n'
    )
    with pytest.raises(FtbenchError, match=r"arc_challenge_test.jsonl row 1 lacks the field 'choices'"):
        arc_items("ARC-Challenge", "test", DataOptions(data_dir=str(tmp_path)))


@pytest.mark.parametrize(
    ("response", "choice"),
    [
        ("B", "B"),
        (" (C) because", "C"),
        ("D. Photosynthesis", "D"),
        ("The answer is A.", "A"),
        ("answer: 2", None),
        ("I think it is E", None),
        ("", None),
        ("Because plants grow", None),
    ],
)
def test_extract_choice(response: str, choice: str | None) -> None:
    assert extract_choice(response, ["A", "B", "C", "D"]) == choice


def test_numeric_labels() -> None:
    assert score_arc_choice("3", ["1", "2", "3", "4"], "3") == 1.0
    assert score_arc_choice("the answer is 2", ["1", "2", "3", "4"], "3") == 0.0


@pytest.mark.parametrize(
    ("ours", "stock", "local"),
    [
        ("arc_easy", "arc_easy", "arc/arc_easy_test.json"),
        ("arc_challenge", "arc_challenge", "arc/arc_challenge_test.jsonl"),
    ],
)
def test_equals_stock_lm_eval_task_on_the_same_rows(tiny_model_dir: Path, ours: str, stock: str, local: str) -> None:
    limit = 40
    mine = evaluate(tiny_model_dir, ours, options={"source": "local"}, chat_template=False, limit=limit, seed=1)
    manager = TaskManager()
    override = {
        **manager.task_index[stock].cfg,  # the stock definition, pointed at the offline rows
        "task": stock,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(default_data_dir() / local)}},
        "training_split": None,
        "test_split": "test",
        "validation_split": None,
    }
    override.pop("tag")
    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=8)  # stock lm-eval's own loading
    reference = simple_evaluate(
        model=lm, tasks=[override], task_manager=manager, limit=limit, log_samples=True, bootstrap_iters=0
    )
    assert reference is not None
    ref_results = reference["results"][stock]
    for metric in ("acc", "acc_norm"):
        assert mine.metrics[metric][0] == pytest.approx(ref_results[f"{metric},none"], abs=0)
    ref_samples = {s["doc_id"]: s for s in reference["samples"][stock]}
    assert len(mine.samples) == limit
    for sample in mine.samples:
        assert sample.doc_hash == ref_samples[sample.doc_id]["doc_hash"]
        assert sample.scores["acc"] == ref_samples[sample.doc_id]["acc"]
    assert isinstance(lm, HFLM)
