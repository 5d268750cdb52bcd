"""What every engine gives the runner: a session that serves loaded models for requests."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from lm_eval.api.model import LM

from harness.core.request import EvalRequest


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

    check: Callable[[EvalRequest], None]
    """Raise FtbenchError when the engine cannot run the request here."""
    group: Callable[[EvalRequest], Hashable]
    """Requests with equal groups are served by one session."""
    open: Callable[[list[EvalRequest]], Session]
