"""Stored results as typed, versioned records: a run, its evaluations and their samples.

Layout of a results directory (written and read by ``harness.core.store``)::

    run.json                 RunRecord: spec, provenance, the evaluations that make up the run
    evals/<key>.json         EvalRecord: one request's result; ``key`` is the request's digest

Each stored evaluation carries the digest of its content (``EvalRecord.digest``) and the run lists that digest
beside its key (``RunRecord.digests``); the run record carries the digest of its own content too
(``RunRecord.digest``). The store sets them and checks them on every read, and checks that every evaluation a run
lists is of a task and precision its spec asks for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.core.checkpoints import Manifest
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.request import EvalRequest

SCHEMA_VERSION = 3
"""3: evaluations carry a content digest, listed by the run."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provenance(_Record):
    """Where and with what a run was made."""

    git_commit: str | None
    git_dirty: bool | None
    versions: dict[str, str]
    python: str
    platform: str
    device: str
    device_name: str
    torch_threads: int


class VariantInfo(_Record):
    """The evaluated variant: checkpoint, lineage and precision."""

    checkpoint: str
    name: str
    stage: str
    kind: str
    precision: Precision
    device: str
    weights_hash: str
    base: str | None = None
    footprint_bytes: int
    engine: str = "hf"
    engine_version: str | None = None
    threads: int | None = None
    """CPU threads the engine computed with (llama.cpp), when it chooses them."""
    notes: list[str] = Field(default_factory=list)
    manifest: Manifest | None = None
    """The checkpoint's lineage (None for a checkpoint ftbench did not make)."""


class MetricValue(_Record):
    """One aggregate metric with its standard error (lm-eval's) and sample count."""

    value: float
    stderr: float | None
    n: int
    scale: str
    kind: str


class Performance(_Record):
    """Cost of one evaluation."""

    wall_seconds: float
    generated_tokens: int
    tokens_per_second: float | None
    """Generated tokens (responses re-tokenized) per wall-clock second; None for tasks that do not generate."""
    peak_memory_bytes: int
    memory_measure: str
    """``cuda_max_allocated`` on GPU, ``rss_peak`` (process resident memory, sampled) on CPU."""


TOPK_DECIMALS = 5
"""Decimals a stored next-token log-probability keeps (``TokenTopK.logprobs``)."""


class TokenTopK(_Record):
    """A document's next-token distributions, truncated: for each of its first tokens, the ``k`` most likely next
    tokens and their log-probabilities (natural log, rounded to ``TOPK_DECIMALS``), for token-level KL and
    agreement between variants."""

    tokens: list[int]
    """The document's token ids that were predicted, in order."""
    ids: list[list[int]]
    logprobs: list[list[float]]


class SampleRecord(_Record):
    """One scored sample."""

    doc_id: int
    doc_hash: str
    prompt: str
    response: str
    target: str
    scores: dict[str, float]
    choice_loglikelihoods: list[float] | None = None
    """Multiple choice: the log-likelihood of each choice, in order (for choice-distribution KL and flips)."""
    token_topk: TokenTopK | None = None
    """Perplexity documents: the top-k next-token log-probabilities at each of the first tokens."""


class EvalRecord(_Record):
    """The result of one variant × task."""

    schema_version: int = SCHEMA_VERSION
    key: str
    request: EvalRequest
    variant: VariantInfo
    task: str
    metrics: dict[str, MetricValue]
    performance: Performance
    samples: list[SampleRecord]
    created_at: str = Field(default_factory=_now)
    rescored_from: str | None = Field(default=None, exclude_if=lambda key: key is None)
    """The key of the evaluation whose stored responses were scored again into this one (``ftbench rescore``); None
    for an evaluation of the model. Left out of the stored record when None, so that records made before it keep
    their content digest."""
    digest: str | None = None
    """The digest of every other field (``sha256:`` or, with ``FTBENCH_RECORD_KEY`` set, ``hmac-sha256:``), set by
    the store when it writes the record and checked when it reads it; None only before the record is stored."""


class RunRecord(_Record):
    """One invocation of ``ftbench run``: what was asked, where it ran, which evaluations it holds."""

    schema_version: int = SCHEMA_VERSION
    name: str
    spec: dict[str, Any]
    provenance: Provenance
    evaluations: list[str]
    digests: dict[str, str] = Field(default_factory=dict)
    """The content digest of each listed evaluation, by key: set by the store from the stored records."""
    reused: list[str] = Field(default_factory=list)
    seed: int
    started_at: str
    finished_at: str = Field(default_factory=_now)
    wall_seconds: float
    digest: str | None = Field(default=None, exclude_if=lambda digest: digest is None)
    """The digest of every other field, as for an evaluation, set by the store when it writes ``run.json`` and
    checked when it reads it; None in a run record written before runs carried one (accepted only without
    ``FTBENCH_RECORD_KEY``)."""
