"""End to end on the real SmolLM2-135M-Instruct from the embedded GGUF (slow)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from harness.base_model import bootstrap_base, embedded_gguf
from harness.checkpoints import content_hash, read_manifest, resolve_checkpoint
from harness.cli import app
from harness.variants import load_variant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def initial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bootstrap_base(tmp_path_factory.mktemp("checkpoints") / "initial")


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
