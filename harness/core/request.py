"""The evaluation request: one frozen value that decides an evaluation's result. Its digest is the cache key.

A request names one checkpoint × precision × engine × task × repeat and every setting that changes the result.
The runner builds it once; the engine loads what it names; the task runs from it; the stored record carries
it; the gate and the report compare requests' ``COMPARED_FIELDS``.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.core.precision import Precision

REQUEST_VERSION = 2


class Engine(StrEnum):
    """What computes a variant's outputs."""

    HF = "hf"
    """transformers, through lm-eval's ``HFLM``."""
    LLAMACPP = "llamacpp"
    """llama.cpp's own kernels on a GGUF file, through llama-cpp-python."""
    VLLM = "vllm"
    """vLLM's ``LLM`` through lm-eval's ``VLLM`` (GPU build, or the CPU build); LoRA adapters share their base."""


class ItemOrder(BaseModel):
    """A slice of the items in a seeded random order: the items at positions ``start`` to ``stop`` (exclusive) of a
    permutation, drawn with ``seed``, of the items the request's task and limit select. A sequential evaluation
    draws its chunks this way, so a resumed or repeated run continues the same order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int
    start: int = Field(ge=0)
    stop: int = Field(ge=1)

    def positions(self, count: int) -> list[int]:
        """The item indices of this slice among ``count`` selected items (fewer when the selection is shorter)."""
        import numpy as np

        order = np.random.default_rng(self.seed).permutation(count)
        return [int(index) for index in order[self.start : min(self.stop, count)]]


class EvalRequest(BaseModel):
    """Everything that decides one evaluation's result. Change any field but ``checkpoint`` and it is redone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = REQUEST_VERSION
    checkpoint: str
    """The checkpoint's path as given; not part of the key (the weights hash is)."""
    base: str | None = None
    """The base model of a LoRA adapter; not part of the key (the weights hash covers it)."""
    weights_hash: str
    """Content hash of the weights (adapter and base for LoRA)."""
    precision: Precision
    engine: Engine
    device: str
    task: str
    task_kind: str | None = None
    """The kind of a task a spec defined under its own name (``custom``); None for a built-in task."""
    task_definition_hash: str
    task_data_hash: str | None
    options: dict[str, Any] = Field(default_factory=dict)
    """The task's options, validated by the task and written out with their defaults."""
    generation: dict[str, Any] = Field(default_factory=dict)
    """Generation settings over the task's own (generative tasks only)."""
    chat_template: bool
    """Whether prompts are rendered with the tokenizer's chat template."""
    limit: int | None = None
    seed: int
    batch_size: int
    repeat: int = 0
    """Which repeat of a sampled evaluation this is (0 for the first); seeds derive from it."""
    dependencies: dict[str, str] = Field(default_factory=dict)
    """Hashes of other inputs a task reads: a judge's weights, a reference variant's weights and precision."""
    order: ItemOrder | None = Field(default=None, exclude_if=lambda order: order is None)
    """Only a slice of the selected items, in a seeded order (a sequential evaluation's chunk); None: all of them
    in their own order. Left out of the key and the record when None, so earlier requests keep their keys."""

    def key(self) -> str:
        """A short stable digest of every field but the paths: the record's file name and cache key."""
        fields = self.model_dump(mode="json", exclude=set(NOT_IN_KEY))
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    @property
    def effective_seed(self) -> int:
        """The seed of this repeat: the run's seed for repeat 0, a distinct derived seed for the others."""
        if self.repeat == 0:
            return self.seed
        digest = hashlib.sha256(f"{self.seed}:{self.repeat}".encode()).hexdigest()
        return int(digest[:8], 16)


NOT_IN_KEY = ("checkpoint", "base")
"""Request fields that name rather than decide a result."""

COMPARED_FIELDS = (
    "task_definition_hash",
    "task_data_hash",
    "options",
    "generation",
    "chat_template",
    "limit",
    "seed",
    "dependencies",
)
"""Settings two requests must share for their samples to be compared item by item (gate and report)."""


def differing_settings(first: EvalRequest, second: EvalRequest) -> list[str]:
    """The ``COMPARED_FIELDS`` in which two requests differ."""
    return [name for name in COMPARED_FIELDS if getattr(first, name) != getattr(second, name)]
