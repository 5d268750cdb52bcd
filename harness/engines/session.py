"""What every engine gives the runner: a session that serves loaded models for requests."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lm_eval.api.model import LM

from ftbench.harness.core.records import TokenTopK
from ftbench.harness.core.request import EvalRequest
from ftbench.tasks.base import Task

TOPK = 8
"""Next-token candidates kept per position for token-level KL (see ``TokenTopK``)."""
TOPK_TOKENS = 256
"""Positions kept per document for token-level KL: the document's first tokens."""

TopKFunction = Callable[[Sequence[str]], list[TokenTopK]]
"""The top-``TOPK`` next-token log-probabilities at each of the first ``TOPK_TOKENS`` tokens of each text, each
text scored after the model's prefix token as lm-eval scores rolling log-likelihoods."""


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
    """One engine load that serves the requests of one group (see ``Driver.group``)."""

    def model_for(self, request: EvalRequest) -> LoadedModel:
        """The loaded model that evaluates ``request``."""
        ...

    def close(self) -> None:
        """Release the engine's memory."""
        ...


@dataclass(frozen=True)
class Driver:
    """An engine: how to check a request before any work, which requests share a load, and how to load them."""

    check: Callable[[EvalRequest, Task], None]
    """Raise FtbenchError when the engine cannot run the request (of this task) here: each engine owns what it
    can run."""
    group: Callable[[EvalRequest], Hashable]
    """Requests with equal groups are served by one session."""
    open: Callable[[list[EvalRequest]], Session]
