"""End to end on the real SmolLM2-135M-Instruct from the embedded GGUF (slow)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from harness.base_model import embedded_gguf
from harness.checkpoints import content_hash, read_manifest, resolve_checkpoint
from harness.cli import app
from harness.variants import load_variant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def initial(real_initial: Path) -> Path:
    return real_initial


def test_bootstrap_keeps_the_gguf_weights(initial: Path) -> None:
    manifest = read_manifest(initial)
    assert manifest is not None and manifest.stage == "initial" and manifest.method == "bootstrap"
    assert manifest.content_hash == content_hash(initial)
    assert (initial / "chat_template.jinja").is_file() or "chat_template" in (
        initial / "tokenizer_config.json"
    ).read_text()
    saved = load_variant(resolve_checkpoint(initial), "fp32", "cpu")
    gguf = load_variant(resolve_checkpoint(embedded_gguf()), "fp32", "cpu")
    assert any("dequantized" in note for note in gguf.notes)
    ids = saved.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        assert torch.equal(saved.model(**ids).logits, gguf.model(**ids).logits)
    reloaded = AutoModelForCausalLM.from_pretrained(initial)
    assert reloaded.config.num_hidden_layers == 30


def test_cli_run_on_the_real_model_then_cached(initial: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "results"
    args = [
        "run",
        "--checkpoint",
        str(initial),
        "--precision",
        "fp32,nf4",
        "--task",
        "countdown",
        "--limit",
        "2",
        "--max-gen-toks",
        "48",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "evaluated 2, reused 0" in first.stdout
    table = list(csv.DictReader(io.StringIO(runner.invoke(app, ["results", str(out), "--format", "csv"]).stdout)))
    assert {(row["precision"], row["metric"]) for row in table} == {
        (p, m) for p in ("fp32", "nf4") for m in ("reward", "accuracy", "format_rate")
    }
    assert all(row["n"] == "2" and 0.0 <= float(row["value"]) <= 1.0 for row in table)
    footprints = {row["precision"]: int(row["footprint_bytes"]) for row in table}
    assert footprints["nf4"] < footprints["fp32"] / 2
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "evaluated 0, reused 2" in again.stdout
    assert (out / "summary.md").read_text().count("| initial | initial |") == 2


def test_arc_equals_stock_lm_eval_on_the_real_model(initial: Path) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from harness.lmeval import evaluate_task, make_lm
    from tasks.data import default_data_dir

    variant = load_variant(resolve_checkpoint(initial), "fp32", "cpu")
    lm = make_lm(variant, 8)
    ours = evaluate_task(
        lm, "arc_easy", options={"source": "local"}, generation={}, apply_chat_template=False, limit=30, seed=1
    )
    manager = TaskManager()
    stock = {
        **manager.task_index["arc_easy"].cfg,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(default_data_dir() / "arc/arc_easy_test.json")}},
        "training_split": None,
        "validation_split": None,
        "test_split": "test",
    }
    stock.pop("tag")
    reference = simple_evaluate(model=lm, tasks=[stock], task_manager=manager, limit=30, bootstrap_iters=0)
    assert reference is not None
    for metric in ("acc", "acc_norm"):
        assert ours.metrics[metric][0] == reference["results"]["arc_easy"][f"{metric},none"]
    assert ours.metrics["acc_norm"][0] > 0.3  # above the 0.25 of chance on four choices
