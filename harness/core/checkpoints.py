"""Checkpoints on disk: what kind each path is, its manifest (``ftbench.json``) and its content hash."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error

MANIFEST_NAME = "ftbench.json"
MANIFEST_VERSION = 2
STAGE_ORDER = ("initial", "sft", "dpo", "rloo", "final")
"""The lifecycle's stages in order; other stage names sort after these, alphabetically."""


class CheckpointKind(StrEnum):
    """How a checkpoint is stored."""

    FULL = "full"
    LORA = "lora"
    GGUF = "gguf"


class DataSource(BaseModel):
    """One dataset a checkpoint was trained on."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    split: str
    rows: int


class TrainingNotes(BaseModel):
    """What a training method records about its stage beyond the trainer's own figures."""

    model_config = ConfigDict(extra="forbid")

    rows: dict[str, int] = Field(default_factory=dict)
    """Row counts along the way, e.g. available and within the length limit."""
    split: dict[str, str | int | bool] = Field(default_factory=dict)
    """How the training rows were kept apart from the evaluation items."""
    on_policy: dict[str, float] = Field(default_factory=dict)
    """On-policy sampling (DPO): samples drawn and their mean reward."""
    reward_function: str | None = None
    mean_reward_by_step: list[float] = Field(default_factory=list)
    heldout: dict[str, float] = Field(default_factory=dict)
    """Held-out measurements after training (reward models: pairwise accuracy on test pairs, and their count)."""
    heldout_split: str | None = None


class Training(TrainingNotes):
    """How a stage was trained: what its inputs hash to, the trainer's steps, loss and time, and the notes."""

    inputs_hash: str
    """Hash of the settings, the parent's weights, the method and the data files: unchanged means reusable."""
    steps: int
    final_loss: float | None
    wall_seconds: float

    def summary(self) -> list[str]:
        """Lines a person reads after training."""
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        lines = [f"steps {self.steps}, final training loss {loss}, {self.wall_seconds:.1f} s"]
        if self.mean_reward_by_step:
            lines.append("mean reward by step: " + ", ".join(f"{r:.3f}" for r in self.mean_reward_by_step))
        lines += [f"held-out {name.replace('_', ' ')}: {value:.3f}" for name, value in self.heldout.items()]
        return lines


class Manifest(BaseModel):
    """The lineage record written beside every checkpoint ftbench makes."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = MANIFEST_VERSION
    stage: str
    method: str
    source: str
    parent: str | None = None
    base_model: str | None = None
    finetune: str = "full"
    content_hash: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    data: list[DataSource] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training: Training | None = None
    """None for a checkpoint that was not trained (the base)."""
    fingerprints: str | None = Field(default=None, exclude_if=lambda name: name is None)
    """The file beside the checkpoint (a name inside its directory) holding the fingerprints of every training row
    the stage used, for the leakage audit; covered by ``content_hash``. None for a stage trained before they were
    kept, or not trained; left out of the manifest and of records when None, so earlier records keep their digests."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint resolved from a path: its kind, label, stage and (for adapters) its base."""

    path: Path
    kind: CheckpointKind
    name: str
    stage: str
    manifest: Manifest | None
    base: Path | None = None


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` as ``directory/ftbench.json`` and return the path."""
    path = directory / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest in ``directory``, or None when there is none.

    Raises:
        FtbenchError: the manifest exists but is not valid.
    """
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        version = json.loads(text).get("schema_version")
    except (OSError, ValueError, AttributeError) as exc:
        raise FtbenchError(f"{path} is not a valid manifest (not a JSON object); rewrite the checkpoint") from exc
    if version != MANIFEST_VERSION:
        raise FtbenchError(
            f"{path} was written by another ftbench version (manifest schema {version}, this one reads "
            f"{MANIFEST_VERSION}); retrain the stage with --force or rewrite the base with `ftbench base --force`"
        )
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        spot = first_error(exc)
        raise FtbenchError(f"{path} is not a valid manifest: {spot.where}: {spot.message}") from exc


def content_hash(path: Path) -> str:
    """sha256 over a file, or over every file of a directory (relative name and bytes) but the manifest."""
    path = path.resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        if file.name == MANIFEST_NAME:
            continue
        stat = file.stat()
        digest.update(file.relative_to(path if path.is_dir() else path.parent).as_posix().encode())
        digest.update(_file_hash(file, stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read now."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def _file_hash(file: Path, size: int, mtime_ns: int) -> str:
    """``file_sha256``, remembered while the file's size and modification time are unchanged."""
    return file_sha256(file)


GGUF_MAGIC = b"GGUF"


def check_gguf_header(path: Path) -> None:
    """Refuse a file that does not start like a GGUF file.

    Raises:
        FtbenchError: the file cannot be read or has no GGUF header.
    """
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise FtbenchError(f"cannot read {path}: {exc.strerror}") from exc
    if magic != GGUF_MAGIC:
        raise FtbenchError(f"{path} is not a GGUF file (no GGUF header); give a .gguf model file")


def weights_hash(checkpoint: Checkpoint) -> str:
    """The content hash of everything a checkpoint's weights come from (adapter and base for LoRA)."""
    parts = [content_hash(checkpoint.path)]
    if checkpoint.base is not None:
        parts.append(content_hash(checkpoint.base))
    return hashlib.sha256("+".join(parts).encode()).hexdigest()


def resolve_checkpoint(path: str | Path, base: str | Path | None = None) -> Checkpoint:
    """Resolve a model directory, a LoRA adapter directory or a ``.gguf`` file.

    Args:
        path: the checkpoint.
        base: the base model of a LoRA adapter, overriding its manifest and adapter config.

    Raises:
        FtbenchError: the path is missing, is not a model, or an adapter's base cannot be found.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FtbenchError(f"checkpoint {path} does not exist; run `ftbench base` or give a model directory")
    if path.is_file():
        if path.suffix != ".gguf":
            raise FtbenchError(f"checkpoint {path} is a file but not a .gguf; give a model directory")
        check_gguf_header(path)
        return Checkpoint(path, CheckpointKind.GGUF, path.stem, path.stem, None)
    manifest = read_manifest(path)
    stage = manifest.stage if manifest else path.name
    if (path / "adapter_config.json").is_file():
        base_path = _adapter_base(path, manifest, base)
        return Checkpoint(path, CheckpointKind.LORA, path.name, stage, manifest, base_path)
    if (path / "config.json").is_file():
        read_config(path / "config.json")
        return Checkpoint(path, CheckpointKind.FULL, path.name, stage, manifest)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return Checkpoint(ggufs[0], CheckpointKind.GGUF, path.name, stage, manifest)
    raise FtbenchError(f"{path} is not a model directory (no config.json, adapter_config.json or single .gguf file)")


def read_config(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON config file (``config.json``, ``adapter_config.json``) as a mapping.

    Raises:
        FtbenchError: the file cannot be read, is not JSON, or holds no JSON object (naming the file).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FtbenchError(f"cannot read {path}; check the checkpoint's files and their permissions") from exc
    except ValueError as exc:
        reason = f"{exc.msg}, line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise FtbenchError(f"{path} is not valid JSON ({reason}); fix it or write the checkpoint again") from exc
    if not isinstance(data, dict):
        raise FtbenchError(f"{path} holds no JSON object; fix it or write the checkpoint again")
    return data


def _adapter_base(adapter: Path, manifest: Manifest | None, base: str | Path | None) -> Path:
    config = read_config(adapter / "adapter_config.json")  # checked even when the base is given
    if base is not None:
        candidates = [Path(base).expanduser()]
    else:
        named = [manifest.base_model if manifest else None, config.get("base_model_name_or_path")]
        candidates = [candidate for name in named if name for candidate in (adapter / name, Path(name).expanduser())]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates) or "nothing named"
    raise FtbenchError(f"cannot find the base model of adapter {adapter} (tried {tried}); pass --base DIR")


def stage_rank(stage: str) -> tuple[int, str]:
    """A sort key that puts the lifecycle's stages in order and any other stage after them."""
    return (STAGE_ORDER.index(stage), "") if stage in STAGE_ORDER else (len(STAGE_ORDER), stage)


def _is_reward_model(directory: Path) -> bool:
    """A sequence-classification model (a judge), which is not a language model to evaluate."""
    config = directory / "config.json"
    if not config.is_file():
        return False
    architectures = read_config(config).get("architectures") or []
    return bool(architectures) and all(name.endswith("ForSequenceClassification") for name in architectures)


def discover_checkpoints(folder: Path) -> list[Checkpoint]:
    """Every language-model checkpoint directly inside ``folder``, in stage order (reward models are skipped).

    Raises:
        FtbenchError: the folder is missing or holds no checkpoint.
    """
    if not folder.is_dir():
        raise FtbenchError(f"checkpoints folder {folder} does not exist; run `ftbench base` first")
    found = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.is_symlink() and os.listdir(child) and not _is_reward_model(child):
            try:
                found.append(resolve_checkpoint(child))
            except FtbenchError:
                continue
    if not found:
        raise FtbenchError(f"{folder} holds no checkpoint directory; run `ftbench base` first")
    return sorted(found, key=lambda c: (stage_rank(c.stage), c.name))
