"""End to end on the real SmolLM2-135M-Instruct from the embedded GGUF (slow)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.checkpoints import content_hash, read_manifest
from ftbench.trainers.base_model import embedded_gguf
from tests.evaluate import load

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
    saved = load(initial, "fp32")
    gguf = load(embedded_gguf(), "fp32")
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


def test_arc_equals_stock_lm_eval_on_the_real_model(initial: Path, tmp_path: Path) -> None:
    """The default run of ARC (no chat template, as lm-eval scores log-likelihood tasks) equals stock lm-eval's
    `--model hf --tasks arc_easy/arc_challenge` on the same rows, sample by sample (log-likelihoods within 1e-4 nats:
    ftbench scores each shared question once)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from ftbench.harness.core.store import load_run_evals
    from ftbench.harness.evaluation.run import run_spec
    from ftbench.harness.evaluation.spec import parse_spec
    from ftbench.tasks.data import default_data_dir

    spec = parse_spec(
        {
            "checkpoints": [str(initial)],
            "tasks": [{"name": "arc_easy", "limit": 30}, {"name": "arc_challenge", "limit": 30}],
            "device": "cpu",
            "out": str(tmp_path / "run"),
        },
        "test",
    )
    run_spec(spec)
    records = {record.task: record for record in load_run_evals(tmp_path / "run")}
    lm = HFLM(pretrained=str(initial), device="cpu", batch_size=8)  # stock lm-eval's own loading
    manager = TaskManager()
    for task, local in (("arc_easy", "arc/arc_easy_test.json"), ("arc_challenge", "arc/arc_challenge_test.jsonl")):
        stock = {
            **manager.task_index[task].cfg,
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(default_data_dir() / local)}},
            "training_split": None,
            "validation_split": None,
            "test_split": "test",
        }
        stock.pop("tag", None)
        reference = simple_evaluate(
            model=lm, tasks=[stock], task_manager=manager, limit=30, bootstrap_iters=0, log_samples=True
        )
        assert reference is not None
        ours = records[task]
        assert ours.request.chat_template is False
        for metric in ("acc", "acc_norm"):
            assert ours.metrics[metric].value == reference["results"][task][f"{metric},none"]
        stock_samples = {s["doc_id"]: s for s in reference["samples"][task]}
        for sample in ours.samples:
            theirs = stock_samples[sample.doc_id]
            assert sample.doc_hash == theirs["doc_hash"]
            assert sample.scores["acc"] == theirs["acc"] and sample.scores["acc_norm"] == theirs["acc_norm"]
            # shared-prefix scoring: each choice's log-likelihood within the engine's stated fp32 tolerance
            assert sample.choice_loglikelihoods == pytest.approx(
                [float(r[0]) for r in theirs["filtered_resps"]], abs=1e-4
            )
    ours_easy = records["arc_easy"]
    assert ours_easy.metrics["acc_norm"].value > 0.3  # above the 0.25 of chance on four choices
