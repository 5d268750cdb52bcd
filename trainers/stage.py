"""What every trainer shares: the parent checkpoint, the LoRA config, and writing the stage with its manifest."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from peft import LoraConfig, PeftModel, TaskType
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from harness.checkpoints import (
    Checkpoint,
    CheckpointKind,
    DataSource,
    Manifest,
    content_hash,
    read_manifest,
    resolve_checkpoint,
    write_manifest,
)
from harness.errors import FtbenchError
from trainers.config import TrainSettings


def parent_checkpoint(settings: TrainSettings) -> Checkpoint:
    """The parent checkpoint, which must be a full model directory.

    Raises:
        FtbenchError: the parent is missing or is not a full model directory.
    """
    parent = resolve_checkpoint(settings.parent)
    if parent.kind is not CheckpointKind.FULL:
        raise FtbenchError(
            f"parent {settings.parent} is a {parent.kind.value} checkpoint; train from a full model directory"
        )
    return parent


def check_lora_targets(settings: TrainSettings, model: torch.nn.Module) -> None:
    """Check that every LoRA target of a ``finetune: lora`` stage names a module of ``model``.

    Raises:
        FtbenchError: a target that matches no module, listing the model's linear layers.
    """
    if settings.finetune == "full":
        return
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = [target for target in settings.lora.targets if target not in names]
    if unknown:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise FtbenchError(
            f"LoRA target {unknown[0]!r} matches no module; the model's linear layers are {', '.join(linear)}"
        )


def skeleton(path: Path) -> torch.nn.Module:
    """The model of a checkpoint directory built on the meta device: its modules, no weights, no memory."""
    with torch.device("meta"):
        return cast(torch.nn.Module, AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path))))


def lora_config(
    settings: TrainSettings, model: torch.nn.Module, task_type: TaskType, **extra: Any
) -> LoraConfig | None:
    """The LoRA config of a ``finetune: lora`` stage (None for ``full``), checked against the model's modules.

    Raises:
        FtbenchError: a target that matches no module of the model.
    """
    check_lora_targets(settings, model)
    if settings.finetune == "full":
        return None
    return LoraConfig(
        r=settings.lora.r,
        lora_alpha=settings.lora.alpha,
        lora_dropout=settings.lora.dropout,
        target_modules=list(settings.lora.targets),
        layers_to_transform=settings.lora.layers,
        task_type=task_type,
        **extra,
    )


def merged_model(model: Any) -> PreTrainedModel:
    """A trained model with any LoRA adapter merged into its weights, in eval mode."""
    merged = model.merge_and_unload() if isinstance(model, PeftModel) else model
    return cast(PreTrainedModel, merged.eval())


def inputs_hash(settings: TrainSettings, parent: Checkpoint, method: str, data_files: list[Path]) -> str:
    """A hash of everything a stage is made from: settings, parent weights, method and data files."""
    parts = [
        method,
        settings.model_dump_json(),
        content_hash(parent.path),
        *(content_hash(path) for path in data_files),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def up_to_date(settings: TrainSettings, digest: str) -> Manifest | None:
    """The manifest of the existing output when it was made from the same inputs, else None."""
    manifest = read_manifest(settings.output) if settings.output.is_dir() else None
    if manifest is not None and manifest.training.get("inputs_hash") == digest:
        return manifest
    return None


def final_loss(log_history: list[dict[str, Any]]) -> float | None:
    """The last training loss the trainer logged."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return float(losses[-1]) if losses else None


@contextmanager
def staging(output: Path) -> Iterator[Path]:
    """A temporary directory beside ``output`` that replaces it when the block succeeds, else vanishes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}-") as tmp:
        staged = Path(tmp) / output.name
        staged.mkdir()
        yield staged
        if output.exists():
            shutil.rmtree(output)
        staged.rename(output)


def save_stage(
    staged: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    settings: TrainSettings,
    method: str,
    parent: Checkpoint,
    data: list[DataSource],
    hyperparameters: dict[str, Any],
    training: dict[str, Any],
) -> Manifest:
    """Save a trained model (LoRA merged into its weights) and its manifest into ``staged``."""
    model.save_pretrained(staged)
    tokenizer.save_pretrained(staged)
    manifest = Manifest(
        stage=settings.stage,
        method=method,
        source=f"{method} on {parent.path}",
        parent=str(parent.path),
        finetune=settings.finetune,
        content_hash=content_hash(staged),
        data=data,
        hyperparameters=hyperparameters,
        training=training,
    )
    write_manifest(staged, manifest)
    return manifest


class StageResult(NamedTuple):
    """Where a stage went, its manifest, and whether an up-to-date output was reused."""

    path: Path
    manifest: Manifest
    reused: bool


def load_causal_lm(parent: Checkpoint, seed: int) -> PreTrainedModel:
    """The parent as an fp32 causal language model (TRL's mixed precision takes over on GPU)."""
    torch.manual_seed(seed)
    return cast(PreTrainedModel, AutoModelForCausalLM.from_pretrained(str(parent.path), dtype=torch.float32))


def finish_stage(
    staged: Path,
    trainer: Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    settings: TrainSettings,
    method: str,
    parent: Checkpoint,
    data: list[DataSource],
    digest: str,
    clock: Stopwatch,
    training: dict[str, Any],
) -> Manifest:
    """Merge a trained TRL trainer's model and save it with a manifest of steps, loss, time and data."""
    return save_stage(
        staged,
        merged_model(trainer.model),
        tokenizer,
        settings=settings,
        method=method,
        parent=parent,
        data=data,
        hyperparameters=settings.model_dump(mode="json") | {"trl_resolved": trainer.args.to_dict()},
        training={
            "inputs_hash": digest,
            "steps": trainer.state.global_step,
            "final_loss": final_loss(trainer.state.log_history),
            "wall_seconds": clock.seconds,
            **training,
        },
    )


class Stopwatch:
    """Wall time since creation."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds elapsed."""
        return time.perf_counter() - self.started
