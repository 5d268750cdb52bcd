"""The seam between planning and the engines: what a planned evaluation holds, and what every engine gives the
runner (a check before any work, which evaluations share a load, and a session that serves loaded models)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lm_eval.api.model import LM

from ftbench.harness.core.checkpoints import Checkpoint
from ftbench.harness.core.records import TokenTopK
from ftbench.harness.core.request import EvalRequest
from ftbench.tasks.base import Task, TaskOptions

TOPK = 8
"""Next-token candidates kept per position for token-level KL (see ``TokenTopK``)."""
TOPK_TOKENS = 256
"""Positions kept per document for token-level KL: the document's first tokens."""

TopKFunction = Callable[[Sequence[str]], list[TokenTopK]]
"""The top-``TOPK`` next-token log-probabilities at each of the first ``TOPK_TOKENS`` tokens of each text, each
text scored after the model's prefix token as lm-eval scores rolling log-likelihoods."""


@dataclass(frozen=True)
class PlannedEval:
    """One checked evaluation of a run: its request, and the objects the request names, resolved once by planning."""

    request: EvalRequest
    checkpoint: Checkpoint
    """The checkpoint the request names (its path, kind, base and lineage)."""
    task: Task
    """The task the request evaluates (resolved from the spec once)."""
    options: TaskOptions
    """The task's typed options (the request holds them as data)."""
    reference_key: str | None = None
    """The key of the reference variant's request for the same task and repeat (win-rate tasks)."""
    items: int = 0
    """How many items the request evaluates: the task's selection, capped by the request's limit (and, with an
    order, that slice of them)."""
    doc_ids: tuple[int, ...] | None = None
    """The items an ordered request evaluates, in its order (None: the first ``items`` of the selection)."""

    @property
    def label(self) -> str:
        """``checkpoint@precision``."""
        return f"{self.checkpoint.name}@{self.request.precision}"


@dataclass
class LoadedModel:
    """A variant ready for lm-eval, with what results say about it."""

    lm: LM
    count_tokens: Callable[[str], int]
    """Tokens of a generated text, as the variant's tokenizer counts them."""
    footprint_bytes: int
    device: str
    engine_version: str
    threads: int | None = None
    notes: list[str] = field(default_factory=list)
    token_topk: TopKFunction | None = None
    """The engine's next-token distributions, when it can give them (token-level KL of perplexity tasks)."""


class Session(Protocol):
    """One engine load that serves the evaluations of one group (see ``Driver.group``)."""

    def model_for(self, item: PlannedEval) -> LoadedModel:
        """The loaded model that evaluates ``item``."""
        ...

    def close(self) -> None:
        """Release the engine's memory."""
        ...


@dataclass(frozen=True)
class Driver:
    """An engine: how to check an evaluation before any work, which evaluations share a load, and how to load them."""

    check: Callable[[PlannedEval], None]
    """Raise FtbenchError when the engine cannot run the evaluation here (what planning cannot know: its libraries,
    the checkpoint's files, the device): each engine owns what it can run."""
    group: Callable[[PlannedEval], Hashable]
    """Evaluations with equal groups are served by one session."""
    open: Callable[[list[PlannedEval]], Session]
