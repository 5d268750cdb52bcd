"""The one stage runner: parent, inputs hash, reuse, staging, merging and the manifest, for every method.

A method (``trainers.methods``) supplies only how to build its TRL trainer from the stage's inputs, and what to
note about its rows; ``run_stage`` does the rest the same way for all of them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from peft import LoraConfig, PeftModel, TaskType
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ftbench.harness.core.checkpoints import (
    Checkpoint,
    CheckpointKind,
    DataSource,
    Manifest,
    Training,
    TrainingNotes,
    content_hash,
    read_manifest,
    resolve_checkpoint,
    write_manifest,
)
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.events import EventSink, TrainingEvent
from ftbench.harness.leakage.lineage import keep_fingerprints
from ftbench.harness.leakage.training_rows import TrainingRow
from ftbench.trainers.config import TrainSettings, build_trl_config, check_trl_keys
from ftbench.trainers.saving import adapter_base, adapter_output, merge, save_adapter
from ftbench.trainers.training_data import data_files


class StageInputs(NamedTuple):
    """What a method builds its trainer from."""

    settings: TrainSettings
    parent: Checkpoint
    tokenizer: PreTrainedTokenizerBase
    args: Any
    """The method's TRL config."""


@dataclass
class BuiltStage:
    """A method's trainer, ready to train, with its data sources and notes."""

    trainer: Any
    sources: list[DataSource]
    notes: TrainingNotes
    after: Callable[[Any, PreTrainedModel, TrainingNotes], TrainingNotes] | None = None
    """Completes the notes once trained (from the trainer, the merged model and the notes so far): rewards by
    step, held-out accuracy."""
    trained: list[TrainingRow] = field(default_factory=list)
    """The texts the trainer reads, with where each row came from: their fingerprints are kept with the stage."""


class Method(NamedTuple):
    """A training method: its name, defaults, TRL config class, whether it makes a language model, its builder."""

    name: str
    defaults: dict[str, Any]
    trl_config: type
    language_model: bool
    build: Callable[[StageInputs], BuiltStage]


class StageResult(NamedTuple):
    """Where a stage went, its manifest, and whether an up-to-date output was reused."""

    path: Path
    manifest: Manifest
    reused: bool
    adapter: Path | None = None
    """``save: both``: where the adapter went."""


def parent_checkpoint(settings: TrainSettings) -> Checkpoint:
    """The parent checkpoint: a full model directory, or a LoRA adapter (merged onto its base to train on).

    Raises:
        FtbenchError: the parent is missing or is a GGUF file.
    """
    parent = resolve_checkpoint(settings.parent)
    if parent.kind is CheckpointKind.GGUF:
        raise FtbenchError(f"parent {settings.parent} is a GGUF file; train from a model directory")
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


def load_parent(parent: Checkpoint, seed: int, model_class: Any = AutoModelForCausalLM, **kwargs: Any) -> Any:
    """The parent in fp32 (TRL's mixed precision takes over on GPU); a LoRA parent is merged onto its base."""
    torch.manual_seed(seed)
    model = model_class.from_pretrained(str(parent.base or parent.path), dtype=torch.float32, **kwargs)
    if parent.kind is CheckpointKind.LORA:
        model = PeftModel.from_pretrained(model, str(parent.path)).merge_and_unload()
    return model


def inputs_hash(settings: TrainSettings, parent: Checkpoint, method: str, files: list[Path]) -> str:
    """A hash of everything a stage is made from: settings, parent weights, method and data files."""
    parts = [method, settings.model_dump_json(), content_hash(parent.path), *(content_hash(path) for path in files)]
    if parent.base is not None:
        parts.append(content_hash(parent.base))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def up_to_date(output: Path, digest: str) -> Manifest | None:
    """The manifest of the existing output when it was made from the same inputs and keeps its training rows'
    fingerprints (a stage trained before they were kept is made again), else None."""
    try:
        manifest = read_manifest(output) if output.is_dir() else None
    except FtbenchError:  # another version's manifest: the stage is made again
        return None
    if manifest is None or manifest.training is None or manifest.fingerprints is None:
        return None
    return manifest if manifest.training.inputs_hash == digest else None


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


@contextmanager
def _optional_staging(output: Path | None) -> Iterator[Path | None]:
    """``staging(output)``, or nothing when there is no second output."""
    if output is None:
        yield None
        return
    with staging(output) as staged:
        yield staged


class _Reporter(TrainerCallback):
    """Sends the trainer's logged values as training events instead of printing them."""

    def __init__(self, stage: str, on_event: EventSink) -> None:
        self.stage, self.on_event = stage, on_event

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        numbers = tuple((k, float(v)) for k, v in (logs or {}).items() if isinstance(v, int | float))
        self.on_event(TrainingEvent(self.stage, state.global_step, state.max_steps, numbers))


def _quiet(trainer: Any, stage: str, on_event: EventSink | None) -> None:
    """The trainer reports through ``on_event`` (or not at all) instead of its progress bar and printed dicts."""
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    if on_event is not None:
        trainer.add_callback(_Reporter(stage, on_event))


def _write(
    staged: Path,
    adapter_dir: Path | None,
    trainer: Any,
    tokenizer: PreTrainedTokenizerBase,
    settings: TrainSettings,
    parent: Checkpoint,
) -> PreTrainedModel:
    """Save the stage as ``settings.save`` asks (the adapter first: merging unloads it); return the merged model."""
    if adapter_dir is not None:
        save_adapter(parent, trainer.model, adapter_dir, tokenizer)
    merged = merge(trainer.model)
    if settings.save != "adapter":
        merged.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
    return merged


def _training(trainer: Any, notes: TrainingNotes, digest: str, started: float) -> Training:
    """The manifest's training record: the notes, the inputs hash, and the trainer's steps, loss and time."""
    return Training(
        **notes.model_dump(),
        inputs_hash=digest,
        steps=trainer.state.global_step,
        final_loss=final_loss(trainer.state.log_history),
        wall_seconds=time.perf_counter() - started,
    )


def run_stage(
    method: Method, settings: TrainSettings, force: bool = False, on_event: EventSink | None = None
) -> StageResult:
    """Train one stage with ``method`` unless an output made from the same inputs exists, and save it.

    Args:
        method: the training method.
        settings: the stage's settings.
        force: train even when the output is up to date.
        on_event: receives the trainer's logged values (loss, reward) as training events as it trains.

    Raises:
        FtbenchError: bad input (missing parent, TRL key, LoRA target, data), found before training.
    """
    started = time.perf_counter()
    parent = parent_checkpoint(settings)
    check_trl_keys(method.trl_config, settings)
    if settings.save != "merged" and settings.finetune == "full":
        raise FtbenchError(f"stage {settings.stage}: save: {settings.save} needs finetune: lora; use save: merged")
    digest = inputs_hash(settings, parent, method.name, data_files(settings.data))
    adapter = adapter_output(settings.output) if settings.save == "both" else None
    existing = None if force else up_to_date(settings.output, digest)
    if existing is not None and (adapter is None or up_to_date(adapter, digest) is not None):
        return StageResult(settings.output, existing, True, adapter)
    with staging(settings.output) as staged, _optional_staging(adapter) as staged_adapter:
        args: Any = build_trl_config(method.trl_config, settings, staged.parent / "trainer")
        own_tokenizer = (parent.path / "tokenizer_config.json").is_file() or parent.base is None
        tokenizer = AutoTokenizer.from_pretrained(str(parent.path if own_tokenizer else parent.base))
        built = method.build(StageInputs(settings, parent, tokenizer, args))
        _quiet(built.trainer, settings.stage, on_event)
        built.trainer.train()
        adapter_dir = staged if settings.save == "adapter" else staged_adapter
        merged = _write(staged, adapter_dir, built.trainer, tokenizer, settings, parent)
        fingerprints = keep_fingerprints(built.trained, [staged, *([staged_adapter] if staged_adapter else [])])
        notes = built.after(built.trainer, merged, built.notes) if built.after else built.notes
        training = _training(built.trainer, notes, digest, started)
        manifest = Manifest(
            stage=settings.stage,
            method=method.name,
            source=f"{method.name} on {parent.path}",
            parent=str(parent.path),
            base_model=str(adapter_base(parent)) if settings.save == "adapter" else None,
            finetune=settings.finetune,
            content_hash=content_hash(staged),
            data=built.sources,
            hyperparameters=settings.model_dump(mode="json") | {"trl_resolved": built.trainer.args.to_dict()},
            training=training,
            fingerprints=fingerprints,
        )
        write_manifest(staged, manifest)
        if staged_adapter is not None:
            adapter_manifest = manifest.model_copy(
                update={"base_model": str(adapter_base(parent)), "content_hash": content_hash(staged_adapter)}
            )
            write_manifest(staged_adapter, adapter_manifest)
    return StageResult(settings.output, manifest, False, adapter)
