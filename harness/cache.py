"""Cache keys that cannot lie: every input that decides an evaluation's result is in its key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from harness.checkpoints import content_hash
from harness.results import SCHEMA_VERSION
from tasks.data import local_file
from tasks.registry import get_task, task_definition_hash


class EvalKey(BaseModel):
    """The inputs of one variant × task evaluation. Change any field and the evaluation is redone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    weights_hash: str
    precision: str
    device: str
    task: str
    task_definition_hash: str
    task_data_hash: str | None
    task_options: dict[str, Any]
    generation: dict[str, Any]
    limit: int | None
    seed: int
    batch_size: int
    dependencies: dict[str, str] = {}
    """Hashes of other inputs a task reads: a judge's weights, a reference variant's weights and precision."""

    def digest(self) -> str:
        """A short stable digest of the key, used as the record's file name."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def task_data_hash(task: str, options: dict[str, Any]) -> str | None:
    """The content hash of the task's offline data files that are present, when it reads them."""
    info = get_task(task)
    if not info.data_files or options.get("source") in ("hub", "generated"):
        return None
    paths = [local_file(name, options.get("data_dir")) for name in info.data_files]
    present = [f"{name}:{content_hash(path)}" for name, path in zip(info.data_files, paths, strict=True) if path]
    return hashlib.sha256("+".join(present).encode()).hexdigest() if present else None


def make_key(
    *,
    weights_hash: str,
    precision: str,
    device: str,
    task: str,
    task_options: dict[str, Any],
    generation: dict[str, Any],
    limit: int | None,
    seed: int,
    batch_size: int,
    dependencies: dict[str, str] | None = None,
) -> EvalKey:
    """Build the key of one evaluation, hashing the task's definition and data."""
    return EvalKey(
        weights_hash=weights_hash,
        precision=precision,
        device=device,
        task=task,
        task_definition_hash=task_definition_hash(task),
        task_data_hash=task_data_hash(task, task_options),
        task_options=task_options,
        generation=generation,
        limit=limit,
        seed=seed,
        batch_size=batch_size,
        dependencies=dependencies or {},
    )
