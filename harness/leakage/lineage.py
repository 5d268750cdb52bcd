"""What a checkpoint's lineage keeps for the audit: each trained stage writes the fingerprints of its training rows
beside its weights (``FINGERPRINTS_FILE``, named in its manifest and covered by its content hash), and a checkpoint
is audited later by following the manifests' ``parent`` back to the base, without any of the data.

A GGUF export's manifest (``<file>.json``) names the checkpoint it came from, so an exported file's lineage is its
parent's. A parent recorded as a relative path is looked for from the working directory, then beside the child.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.checkpoints import read_manifest
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.leakage.fingerprint_store import save_fingerprints
from ftbench.harness.leakage.fingerprints import fingerprint_rows
from ftbench.harness.leakage.training_rows import TrainingRow

FINGERPRINTS_FILE = "training-fingerprints.json.gz"
"""The file each trained stage writes into its checkpoint directory."""


class LineageStage(NamedTuple):
    """One checkpoint of a lineage: its stage, where it is, whether it was trained, and its fingerprints file."""

    stage: str
    path: Path
    trained: bool
    fingerprints: Path | None
    """The stage's fingerprints file; None for an untrained checkpoint or one trained before they were kept."""

    @property
    def label(self) -> str:
        """``sft (checkpoints/sft)``."""
        return f"{self.stage} ({self.path})"


class Lineage(NamedTuple):
    """A checkpoint and its ancestors, the checkpoint first, and the parents that could not be found."""

    stages: list[LineageStage]
    missing: list[str]
    """Parents named by a manifest but not found (``checkpoints/sft, named by checkpoints/dpo``)."""


def keep_fingerprints(rows: Sequence[TrainingRow], directories: Sequence[Path]) -> str | None:
    """Write the fingerprints of a stage's training rows into each of its output directories.

    Returns:
        The file's name (for the manifest), or None when there are no rows.
    """
    if not rows:
        return None
    fingerprints = fingerprint_rows(rows)
    for directory in directories:
        save_fingerprints(fingerprints, directory / FINGERPRINTS_FILE)
    return FINGERPRINTS_FILE


def _parent_path(child: Path, parent: str) -> Path | None:
    """Where the parent a manifest names is: as written, else beside the child."""
    named = Path(parent).expanduser()
    for candidate in (named, child.parent / named.name):
        if candidate.exists():
            return candidate
    return None


def _gguf_parent(path: Path) -> str | None:
    """The checkpoint a GGUF export came from, as its ``<file>.json`` manifest names it."""
    manifest = path.with_name(path.name + ".json")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    parent = data.get("parent") if isinstance(data, dict) else None
    return parent if isinstance(parent, str) else None


def _stage(path: Path) -> tuple[LineageStage, str | None]:
    """One checkpoint as a lineage stage, and the parent its manifest names.

    Raises:
        FtbenchError: its manifest is not valid.
    """
    if path.is_file():
        return LineageStage(path.stem, path, False, None), _gguf_parent(path)
    manifest = read_manifest(path)
    if manifest is None:
        return LineageStage(path.name, path, False, None), None
    file = path / manifest.fingerprints if manifest.fingerprints else None
    return LineageStage(manifest.stage, path, manifest.training is not None, file), manifest.parent


def checkpoint_lineage(checkpoint: Path) -> Lineage:
    """The checkpoint and every ancestor, following the manifests' ``parent`` (a GGUF export's too).

    Raises:
        FtbenchError: the checkpoint does not exist, or a manifest along the way is not valid.
    """
    if not checkpoint.exists():
        raise FtbenchError(f"checkpoint {checkpoint} does not exist; give a checkpoint directory or a .gguf file")
    stages: list[LineageStage] = []
    missing: list[str] = []
    seen: set[Path] = set()
    current: Path | None = checkpoint
    while current is not None and current.resolve() not in seen:
        seen.add(current.resolve())
        stage, parent = _stage(current)
        stages.append(stage)
        if parent is None:
            break
        found = _parent_path(current, parent)
        if found is None:
            missing.append(f"{parent}, named by {current}")
        current = found
    return Lineage(stages, missing)
