"""The model-based leakage check on a tiny model trained on some of a task's items for several epochs, the texts a
trainer's dataset holds, and an item's plain text."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState

from ftbench.harness.app.leak import LeakInputs, audit_trainer, leak_audit, leak_membership
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.evaluation.membership_scores import score_tokens
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.harness.leakage.trainer_rows import dataset_rows
from ftbench.tasks.registry import resolve_task
from ftbench.trainers.row_texts import trained_texts
from ftbench.trainers.training_data import RowPlace, TrainingRows
from tests.planted_leaks import arc_items, chat, write_jsonl
from tests.test_leak_audit import train_stage, write_suite

TRAINED = 8


@pytest.fixture(scope="module")
def memorised(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """A tiny model trained for three epochs on the first 8 items of a task (each item the assistant's turn), a
    suite evaluating those 8, and a suite evaluating 8 items it never saw, in a shuffled file (a clean control)."""
    folder = tmp_path_factory.mktemp("memorised")
    items = arc_items()[:200]
    task_file = write_jsonl(folder / "task.jsonl", items)
    unseen = items[TRAINED:]
    random.Random(0).shuffle(unseen)  # evaluated and control items drawn alike (file neighbours share topics)
    unseen_file = write_jsonl(folder / "unseen.jsonl", unseen)
    rows = [chat("Recite an item.", f"{item['question']}\n{item['answer']}") for item in items[:TRAINED]]
    train_file = write_jsonl(folder / "train.jsonl", rows)
    stage = train_stage(
        tiny_model_dir,
        folder / "sft",
        train_file,
        "trl.max_steps=-1",
        "trl.num_train_epochs=3",
        "trl.per_device_train_batch_size=8",
        "trl.learning_rate=2e-2",
    )
    return {
        "stage": stage,
        "base": tiny_model_dir,
        "trained_suite": write_suite(folder / "trained.json", task_file, TRAINED),
        "clean_suite": write_suite(folder / "clean.json", unseen_file, TRAINED),
    }


def test_items_trained_on_score_above_unseen_ones_and_clean_items_do_not(memorised: dict[str, Path]) -> None:
    """Measured (reference score, 8 items against 40 unused ones): trained AUC 1.00, p = 2.7e-9; clean control
    AUC 0.48, p = 0.57 (other shuffles: 0.30 and 0.47). Unshuffled, the 8 items after the trained ones against the
    next 40 gave AUC 0.71, p = 0.035: neighbours in ARC-Easy's file share topics, so a control must be drawn like the
    evaluated items."""
    trained = leak_audit(LeakInputs(memorised["stage"], spec=memorised["trained_suite"]))
    (check,) = leak_membership(trained, "reference", control=40)
    assert check.test is not None and check.test.auc > 0.5 and check.test.p_value < 0.05
    assert check.sentence().startswith("planted_qa: items look seen by sft") and "AUC 1.00" in check.sentence()
    assert check.reference == str(memorised["base"])
    clean = leak_audit(LeakInputs(memorised["stage"], spec=memorised["clean_suite"]))
    (control,) = leak_membership(clean, "reference", control=40)
    assert control.test is not None and control.test.auc < check.test.auc


def test_min_k_plus_plus_needs_no_base_and_finds_the_trained_items(memorised: dict[str, Path]) -> None:
    """Measured: AUC 1.00, p = 2.7e-9 on the trained items (the clean control: 0.53, p = 0.41)."""
    trained = leak_audit(LeakInputs(memorised["stage"], spec=memorised["trained_suite"]))
    (min_k,) = leak_membership(trained, "min_k", control=40)
    assert min_k.test is not None and min_k.test.p_value < 0.05 and min_k.reference is None


def test_a_task_evaluated_in_full_has_no_control(memorised: dict[str, Path], tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "few.jsonl", arc_items()[:6])
    outcome = leak_audit(LeakInputs(memorised["stage"], spec=write_suite(tmp_path / "few.json", items, 6)))
    (check,) = leak_membership(outcome, "reference")
    assert check.test is None and "none is left as a control" in check.sentence()
    with pytest.raises(FtbenchError, match="no trained checkpoint to check"):
        leak_membership(outcome._replace(checkpoints=[str(memorised["base"])]), "reference")


def test_token_scores_sum_to_lm_evals_rolling_log_likelihood(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["Which gas do plants take in?\ncarbon dioxide", "A short one."]
    scores = score_tokens(model, tokenizer, texts, "cpu")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)
    requests = [Instance("loglikelihood_rolling", {}, (text,), 0) for text in texts]
    expected = lm.loglikelihood_rolling(requests, disable_tqdm=True)
    for found, total in zip(scores, expected, strict=True):
        assert found is not None and float(found.logprobs.sum()) == pytest.approx(total, abs=1e-3)
        assert (found.variance >= 0).all() and found.mean.shape == found.logprobs.shape
    assert score_tokens(model, tokenizer, [""], "cpu") == [None]


class _Tokenizer:
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return " ".join(f"w{i}" for i in ids)


class _Trainer:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.train_dataset, self.processing_class = rows, _Tokenizer()


def test_a_trainers_rows_are_read_from_their_text_columns_else_decoded() -> None:
    rows = dataset_rows(
        [
            {"prompt": [{"role": "user", "content": "Q?"}], "completion": [{"role": "assistant", "content": "A."}],
             "input_ids": [1, 2]},
            {"prompt": "Using the numbers [1, 2], reach 3.", "target": 3},
            {"input_ids": [5, 6]},
            {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]},
        ],
        "train_dataset",
        _Tokenizer().decode,
    )  # fmt: skip
    assert [row.text for row in rows] == ["Q?\nA.", "Using the numbers [1, 2], reach 3.", "w5 w6", "w1 w2", "w1 w3"]
    assert rows[3].origin.describe() == "train_dataset#3 [prompt_ids, chosen_ids]"
    with pytest.raises(FtbenchError, match="train_dataset row 0 has no text columns and no token ids"):
        dataset_rows([{"label": 1}], "train_dataset")


def test_the_callbacks_check_flags_a_suite_item_in_the_trainers_dataset(tmp_path: Path) -> None:
    items = arc_items()[:20]
    task_file = write_jsonl(tmp_path / "task.jsonl", items)
    suite = parse_spec(
        {**json.loads(write_suite(tmp_path / "s.json", task_file, 10).read_text()), "checkpoints": ["x"]}, "s"
    )
    trainer = _Trainer(
        [{"prompt": items[4]["question"], "completion": items[4]["answer"]}, {"text": items[15]["question"]}]
    )
    audit = audit_trainer(trainer, suite).audit
    assert audit.flagged_ids("planted_qa") == {4}  # item 15 is beyond the suite's limit of 10
    assert audit.sources[0].label == "train_dataset" and audit.tasks[0].items == 10


def test_an_items_plain_text_is_its_content_without_identifiers_or_labels() -> None:
    arc = resolve_task("arc_easy")
    item = arc.items(arc.parse_options({}))[0]
    text = arc.audit_text(item)
    assert text.splitlines()[0] == item["question"] and text.splitlines()[1:] == item["choices"]["text"]
    assert item["id"] not in text
    cast = resolve_task("rewrite_cast")
    row = cast.items(cast.parse_options({}))[0]
    assert cast.audit_text(row) == "\n".join([*row["history"], row["question"], row["target"]])


def test_a_conversation_with_a_system_turn_is_kept_with_and_without_it() -> None:
    system = {"role": "system", "content": "Answer briefly."}
    row = {
        "prompt": [system, {"role": "user", "content": "Q?"}],
        "completion": [{"role": "assistant", "content": "A."}],
    }
    data = TrainingRows([row, {"prompt": "P", "completion": "C"}], ["file", "file"], [], {}, (RowPlace("f.jsonl", 3),
                        RowPlace("f.jsonl", 5)))  # fmt: skip
    texts = trained_texts(data)
    assert [text.text for text in texts] == ["Answer briefly.\nQ?\nA.", "Q?\nA.", "P\nC"]
    assert texts[1].origin.describe() == "f.jsonl:3 [prompt, completion, without system turn]"


def _arc_suite() -> dict[str, Any]:
    return {"precisions": ["fp32"], "tasks": [{"name": "arc_easy", "limit": 12}], "device": "cpu"}


def _arc_item_text(index: int) -> str:
    arc = resolve_task("arc_easy")
    return arc.audit_text(arc.items(arc.parse_options({}))[index])


class _TrainerWith:
    """The part of a trainer the callback reads when it is made."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.train_dataset, self.args = rows, None


def test_the_callback_warns_or_refuses_a_suite_item_in_its_training_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ftbench import FtbenchCallback

    trainer = _TrainerWith([{"text": "An unrelated sentence about the weather."}, {"text": _arc_item_text(3)}])
    with pytest.raises(FtbenchError, match="1 evaluated items are in the training data: arc_easy doc 3"):
        FtbenchCallback(trainer, _arc_suite(), tmp_path / "refused", leakage="fail")
    assert not (tmp_path / "refused").exists()  # nothing written before the refusal
    with caplog.at_level("WARNING", logger="ftbench"):
        callback = FtbenchCallback(trainer, _arc_suite(), tmp_path / "warned")
    assert "arc_easy doc 3 (exact" in caplog.text
    assert not (tmp_path / "warned").exists()  # nothing written until training begins, on the main process
    callback.on_train_begin(None, TrainerState(is_world_process_zero=True), TrainerControl())  # type: ignore[arg-type]
    assert (tmp_path / "warned" / "training-fingerprints.json.gz").is_file()  # kept for ftbench leak


def test_watch_audits_its_training_file_and_the_gate_policy_can_refuse(tmp_path: Path, tiny_model_dir: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from ftbench.harness.app.cli import app
    from ftbench.harness.app.gate import leakage_warning
    from tests.records import make_record, write_results

    runner = CliRunner()
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(_arc_suite()))
    training = write_jsonl(tmp_path / "train.jsonl", [{"text": "Nothing of the suite."}, {"text": _arc_item_text(5)}])
    folder = tmp_path / "run"
    folder.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text("leakage: fail\n")
    flags = ["--spec", str(suite), "--out", str(tmp_path / "out"), "--once", "--train-data", str(training)]
    gate = ["--baseline", str(tiny_model_dir), "--policy", str(policy)]
    refused = runner.invoke(app, ["watch", str(folder), *flags, *gate])
    assert refused.exit_code == 2 and "arc_easy doc 5 (exact/" in refused.stderr
    watched = runner.invoke(app, ["watch", str(folder), *flags])
    assert watched.exit_code == 0, watched.output
    assert (tmp_path / "out" / "training-fingerprints.json.gz").is_file()
    scores = {"acc": [1.0, 0.0] * 6, "acc_norm": [1.0, 0.0] * 6}
    candidate = write_results(tmp_path / "candidate", [make_record("c", "sft", "fp32", scores, task="arc_easy")])
    candidate.joinpath("training-fingerprints.json.gz").write_bytes(
        (tmp_path / "out" / "training-fingerprints.json.gz").read_bytes()
    )
    assert leakage_warning(candidate, "off") is None
    assert "arc_easy doc 5" in (leakage_warning(candidate, "warn") or "")
    with pytest.raises(FtbenchError, match="remove them from the training data"):
        leakage_warning(candidate, "fail")
