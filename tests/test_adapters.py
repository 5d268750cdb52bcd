"""Stages saved as adapters: unmerged adapters equal their merged copies, and a chain of adapter stages applies to
the one base (so an engine can serve them all from one load)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from ftbench.harness.core.checkpoints import CheckpointKind, read_manifest, resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.trainers import sft
from ftbench.trainers.config import load_settings
from ftbench.trainers.stage import run_stage

COMMON = [
    "data.countdown_rows=4",
    "data.ultrafeedback_rows=0",
    "trl.max_length=2048",
    "trl.learning_rate=5e-2",
    "trl.per_device_train_batch_size=4",
    "lora.targets=[q_proj, v_proj]",
]


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([[1, 17, 233, 4000, 9]])).logits


def _adapter_on_base(adapter: Path) -> torch.nn.Module:
    checkpoint = resolve_checkpoint(adapter)
    assert checkpoint.kind is CheckpointKind.LORA and checkpoint.base is not None
    base = AutoModelForCausalLM.from_pretrained(checkpoint.base, dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter)).eval()


def test_both_writes_the_merged_model_and_an_equal_adapter(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "sft"
    settings = load_settings(sft.DEFAULTS, None, [f"parent={tiny_model_dir}", f"output={out}", "save=both", *COMMON])
    result = run_stage(sft.METHOD, settings)
    assert result.adapter == tmp_path / "sft-adapter"
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert torch.allclose(_logits(_adapter_on_base(result.adapter)), _logits(merged), atol=1e-4)
    assert not torch.allclose(_logits(merged), _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir)))
    manifest = read_manifest(result.adapter)
    assert manifest is not None and manifest.base_model == str(tiny_model_dir)
    assert run_stage(sft.METHOD, settings).reused


def test_a_chain_of_adapter_stages_applies_to_the_first_base(tmp_path: Path, tiny_model_dir: Path) -> None:
    first = tmp_path / "first"
    run_stage(
        sft.METHOD,
        load_settings(sft.DEFAULTS, None, [f"parent={tiny_model_dir}", f"output={first}", "save=adapter", *COMMON]),
    )
    second = tmp_path / "second"
    settings = load_settings(
        sft.DEFAULTS, None, [f"parent={first}", f"output={second}", "save=both", "seed=7", *COMMON]
    )
    result = run_stage(sft.METHOD, settings)
    assert result.adapter is not None
    assert resolve_checkpoint(result.adapter).base == tiny_model_dir.resolve()  # the chain's base, not `first`
    merged_chain = AutoModelForCausalLM.from_pretrained(second).eval()
    assert torch.allclose(_logits(_adapter_on_base(result.adapter)), _logits(merged_chain), atol=1e-4)
    assert not torch.allclose(_logits(_adapter_on_base(first)), _logits(merged_chain), atol=1e-4)


def test_full_fine_tuning_cannot_save_an_adapter(tmp_path: Path, tiny_model_dir: Path) -> None:
    settings = load_settings(
        sft.DEFAULTS,
        None,
        [f"parent={tiny_model_dir}", f"output={tmp_path / 'o'}", "finetune=full", "save=adapter", *COMMON],
    )
    with pytest.raises(FtbenchError, match="save: adapter needs finetune: lora"):
        run_stage(sft.METHOD, settings)
    assert not (tmp_path / "o").exists()
