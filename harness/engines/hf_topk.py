"""Next-token distributions of perplexity documents on the transformers engine (token-level KL between variants).

A document's first rolling window starts at the model's prefix token, so lm-eval's rolling log-likelihood pass
already computes the logits ``next_token_topk`` needs at the document's first ``TOPK_TOKENS`` positions.
``FirstWindows`` keeps their top-``TOPK`` as those logits go by, so a perplexity task costs one forward pass per
window instead of one more over each document's start; a document whose window it did not see is computed alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ftbench.harness.core.records import TOPK_DECIMALS, TokenTopK
from ftbench.harness.engines.prefix_groups import Triple
from ftbench.harness.engines.session import TOPK, TOPK_TOKENS


def topk_of(targets: Sequence[int], logits: torch.Tensor) -> TokenTopK:
    """The top-``TOPK`` log-probabilities (rounded to ``TOPK_DECIMALS``) of each row of ``logits``, the rows that
    predict ``targets``."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    top = torch.topk(logprobs, TOPK, dim=-1)
    return TokenTopK(
        tokens=list(targets),
        ids=top.indices.tolist(),
        logprobs=[[round(v, TOPK_DECIMALS) for v in row] for row in top.values.tolist()],
    )


class FirstWindows:
    """The top-k of the first rolling windows that go through the model, by their document's first tokens.

    Args:
        prefix_token_id: the token lm-eval puts before a document's first window.
    """

    def __init__(self, prefix_token_id: int) -> None:
        self.prefix = prefix_token_id
        self.kept: dict[tuple[int, ...], TokenTopK] = {}
        self._watched: dict[int, dict[tuple[int, ...], list[int]]] = {}
        """Input length -> (the window's first input tokens -> the tokens they predict)."""

    def watch(self, requests: Sequence[Triple]) -> None:
        """Look out for the first windows among ``requests`` (context: the prefix token alone) in the passes
        that follow, until ``stop``."""
        self._watched = {}
        for _, context, continuation in requests:
            if list(context) == [self.prefix] and continuation:
                targets = list(continuation[:TOPK_TOKENS])
                inputs = (self.prefix, *targets[:-1])
                self._watched.setdefault(len(inputs), {})[inputs] = targets

    def stop(self) -> None:
        """Watch nothing any more."""
        self._watched = {}

    def keep(self, inputs: torch.Tensor, logits: torch.Tensor) -> None:
        """Keep the top-k of every watched window among the rows of one pass (``inputs`` right-padded, as lm-eval
        batches them; ``logits`` its output)."""
        if not self._watched or inputs.dim() != 2:
            return
        width = min(inputs.shape[1], max(self._watched))
        for row, tokens in enumerate(inputs[:, :width].tolist()):
            if tokens[0] != self.prefix:
                continue
            for length, windows in self._watched.items():
                targets = windows.get(tuple(tokens[:length])) if length <= width else None
                if targets is not None:
                    self.kept[tuple(targets)] = topk_of(targets, logits[row, :length])
