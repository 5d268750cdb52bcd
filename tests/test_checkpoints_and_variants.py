"""Checkpoint resolution and variant loading at every precision this machine supports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from ftbench.harness.core.checkpoints import CheckpointKind, content_hash, resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import parse_precisions
from tests.evaluate import load


def _linear_types(model: torch.nn.Module) -> set[str]:
    return {type(module).__name__ for name, module in model.named_modules() if name.endswith("q_proj")}


def test_full_precision_variants(tiny_model_dir: Path) -> None:
    fp32 = load(tiny_model_dir, "fp32")
    bf16 = load(tiny_model_dir, "bf16")
    assert fp32.model.dtype == torch.float32
    assert bf16.model.dtype == torch.bfloat16
    assert bf16.footprint_bytes == pytest.approx(fp32.footprint_bytes / 2, rel=0.01)
    assert fp32.weights_hash == bf16.weights_hash


@pytest.mark.parametrize(
    ("precision", "layer"), [("int8", "Linear8bitLt"), ("nf4", "Linear4bit"), ("fp4", "Linear4bit")]
)
def test_quantized_variants(tiny_model_dir: Path, precision: str, layer: str) -> None:
    variant = load(tiny_model_dir, precision)
    assert _linear_types(variant.model) == {layer}
    if precision != "int8":
        assert variant.model.model.layers[0].self_attn.q_proj.weight.quant_type == precision
    fp32 = load(tiny_model_dir, "fp32")
    assert variant.footprint_bytes < fp32.footprint_bytes
    ids = variant.tokenizer("Hello there", return_tensors="pt")
    logits = variant.model(**ids).logits
    assert torch.isfinite(logits).all()


def test_fp16_on_cpu_and_unknown_precision_are_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(FtbenchError, match="fp16 needs a GPU"):
        load(tiny_model_dir, "fp16")
    with pytest.raises(ValueError, match="unknown precision 'int3'"):
        parse_precisions("fp32,int3")


def _save_adapter(base_dir: Path, out: Path) -> Path:
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    peft.save_pretrained(out)
    return out


def test_lora_adapter_is_evaluated_unmerged_on_its_base(tmp_path: Path, tiny_model_dir: Path) -> None:
    adapter = _save_adapter(tiny_model_dir, tmp_path / "adapter")
    checkpoint = resolve_checkpoint(adapter)
    assert checkpoint.kind is CheckpointKind.LORA
    assert checkpoint.base == tiny_model_dir.resolve()
    variant = load(adapter, "fp32")
    assert isinstance(variant.model, PeftModel)
    base = load(tiny_model_dir, "fp32")
    ids = variant.tokenizer("Hello there", return_tensors="pt")
    assert not torch.allclose(variant.model(**ids).logits, base.model(**ids).logits)
    assert variant.weights_hash != base.weights_hash
    quantized = load(adapter, "nf4")
    assert _linear_types(quantized.model) == {"Linear4bit"}


def test_adapter_base_missing_or_explicit(tmp_path: Path, tiny_model_dir: Path) -> None:
    adapter = _save_adapter(tiny_model_dir, tmp_path / "adapter")
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    config_path.write_text(json.dumps(config))
    with pytest.raises(FtbenchError, match=r"cannot find the base model of adapter .*pass --base"):
        resolve_checkpoint(adapter)
    assert resolve_checkpoint(adapter, base=tiny_model_dir).base == tiny_model_dir.resolve()


def test_bad_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FtbenchError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FtbenchError, match="is not a model directory"):
        resolve_checkpoint(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(FtbenchError, match=r"not a \.gguf"):
        resolve_checkpoint(tmp_path / "weights.bin")


def test_gguf_refuses_quantized_precisions(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    checkpoint = resolve_checkpoint(gguf)
    assert checkpoint.kind is CheckpointKind.GGUF
    with pytest.raises(FtbenchError, match="GGUF file, which loads dequantized"):
        load(gguf, "nf4")


def test_content_hash_follows_the_bytes(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "copy"))
    assert content_hash(copy) == content_hash(tiny_model_dir)
    (copy / "ftbench.json").write_text("{}")  # the manifest is not part of the weights
    assert content_hash(copy) == content_hash(tiny_model_dir)
    with (copy / "config.json").open("a") as handle:
        handle.write("\n")
    assert content_hash(copy) != content_hash(tiny_model_dir)


def test_discovery_orders_stages_and_skips_reward_models(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoConfig

    from ftbench.harness.core.checkpoints import Manifest, discover_checkpoints, write_manifest

    folder = tmp_path / "checkpoints"
    for name, stage in (("b-sft", "sft"), ("a-initial", "initial"), ("c-rloo", "rloo")):
        shutil.copytree(tiny_model_dir, folder / name)
        write_manifest(folder / name, Manifest(stage=stage, method="test", source="test", content_hash="x"))
    reward = Path(shutil.copytree(tiny_model_dir, folder / "reward"))
    config = AutoConfig.from_pretrained(reward)
    config.architectures = ["LlamaForSequenceClassification"]
    config.save_pretrained(reward)
    (folder / "notes").mkdir()
    (folder / "notes" / "readme.txt").write_text("not a model")
    assert [c.stage for c in discover_checkpoints(folder)] == ["initial", "sft", "rloo"]
