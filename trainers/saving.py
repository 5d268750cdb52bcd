"""Writing a trained stage: LoRA merged into a full model directory, the adapter alone, or both.

An adapter is always relative to a full model directory: a stage trained from another adapter stage saves the
two adapters concatenated (PEFT's ``cat`` combination: the sum of two low-rank updates is one update of the summed
rank), so every adapter of a chain applies to the same base and an engine can serve them all from one load.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from ftbench.harness.core.checkpoints import Checkpoint, CheckpointKind
from ftbench.harness.core.errors import FtbenchError

ADAPTER_SUFFIX = "-adapter"
"""``save: both`` writes the merged model to the stage's output and the adapter beside it, under this suffix."""


def adapter_output(output: Path) -> Path:
    """Where ``save: both`` writes the adapter."""
    return output.with_name(output.name + ADAPTER_SUFFIX)


def adapter_base(parent: Checkpoint) -> Path:
    """The full model directory a stage's adapter applies to: the parent, or for an adapter parent its base."""
    return parent.base if parent.kind is CheckpointKind.LORA and parent.base is not None else parent.path


def _cumulative(parent: Checkpoint, trained: PeftModel, out: Path) -> None:
    """Save ``trained`` (an adapter on the merged parent) concatenated with the parent's own adapter, so the result
    applies to the parent's base."""
    base = AutoModelForCausalLM.from_pretrained(str(adapter_base(parent)), dtype=torch.float32)
    chain = PeftModel.from_pretrained(base, str(parent.path), adapter_name="parent")
    with tempfile.TemporaryDirectory() as tmp:
        trained.save_pretrained(tmp)
        chain.load_adapter(tmp, adapter_name="stage")
    try:
        chain.add_weighted_adapter(["parent", "stage"], [1.0, 1.0], "default_cat", combination_type="cat")
    except (ValueError, TypeError) as exc:
        raise FtbenchError(
            f"cannot chain this stage's adapter onto {parent.path}: {exc}; give both stages the same LoRA targets "
            "and layers, or use save: merged"
        ) from exc
    with tempfile.TemporaryDirectory() as tmp:
        chain.save_pretrained(tmp, selected_adapters=["default_cat"])
        for file in (Path(tmp) / "default_cat").iterdir():
            shutil.copy2(file, out / file.name)


def save_adapter(parent: Checkpoint, trained: PeftModel, out: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Save the stage's adapter into ``out`` (see the module's notes), with the tokenizer."""
    if parent.kind is CheckpointKind.LORA:
        _cumulative(parent, trained, out)
    else:
        trained.save_pretrained(str(out))
    tokenizer.save_pretrained(out)


def merge(model: Any) -> PreTrainedModel:
    """The trained model with any LoRA adapter merged into its weights, in eval mode."""
    return cast(PreTrainedModel, (model.merge_and_unload() if isinstance(model, PeftModel) else model).eval())
