"""Shared-prefix scoring on llama.cpp: a context decoded once, copied into one KV stream per continuation.

For a batch of groups (``prefix_groups``) whose continuations fit the context's sequences, each group's context is
decoded into the sequence of its first continuation, all contexts in the same decode calls, and the logits at its
last token score every continuation's first token. ``llama_memory_seq_cp`` then copies that sequence into the
sequences of the group's other continuations (with separate KV streams llama.cpp copies the whole stream, before
the next decode), and every ``continuation[:-1]`` is decoded on its copy, all continuations of the batch together.
The positions, tokens and attended cells are those of the unshared pass over ``(context + continuation)[:-1]``;
llama.cpp picks its matrix kernels by batch size, so quantized types may differ from it in the last bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftbench.harness.engines.llamacpp_runtime import GgufRuntime, Stream, TokenScores, add_score
from ftbench.harness.engines.prefix_groups import PrefixGroup, Triple, batches_of_groups


def can_share_prefix(runtime: GgufRuntime) -> bool:
    """Whether the model's KV cache supports whole-sequence copies: not recurrent or hybrid (their state is not a
    list of cells) and without sliding-window attention (llama.cpp copies across streams only full caches)."""
    lib, model = runtime.lib, runtime.model
    return not (lib.llama_model_is_recurrent(model) or lib.llama_model_is_hybrid(model) or lib.llama_model_n_swa(model))


def score_groups(
    runtime: GgufRuntime, requests: Sequence[Triple], groups: Sequence[PrefixGroup], n_seq: int
) -> dict[int, TokenScores]:
    """The scores of each grouped request's continuation tokens, every group's context decoded once.

    Args:
        runtime: the loaded model (see ``can_share_prefix``).
        requests: lm-eval's encoded requests (continuations of at least one token).
        groups: requests with a shared context, by their indices in ``requests``.
        n_seq: KV-cache sequences decoded together; a group with more continuations gets as many.
    """
    if not groups:
        return {}
    n_seq = max(n_seq, *(len(group.indices) for group in groups))
    longest = max(len(group.context) + len(requests[i][2]) - 1 for group in groups for i in group.indices)
    runtime.ensure_context(n_seq, min(longest, runtime.max_length))
    results = {index: TokenScores([], [], [], []) for group in groups for index in group.indices}
    for batch in batches_of_groups(groups, contexts=n_seq, rows=n_seq):
        _score_batch(runtime, requests, batch, results)
    return results


def _score_batch(
    runtime: GgufRuntime, requests: Sequence[Triple], groups: list[PrefixGroup], results: dict[int, TokenScores]
) -> None:
    """Score a batch of groups whose continuations fit the context's sequences (one sequence each)."""
    lib, memory = runtime.lib, runtime.memory()
    firsts = [sum(len(group.indices) for group in groups[:position]) for position in range(len(groups))]
    for stale in range(sum(len(group.indices) for group in groups)):
        lib.llama_memory_seq_rm(memory, stale, -1, -1)
    contexts = [
        _context_stream(runtime, group.context, [(requests[i][2], results[i]) for i in group.indices], first)
        for group, first in zip(groups, firsts, strict=True)
    ]
    runtime.decode_streams(contexts)
    streams = []
    for group, first in zip(groups, firsts, strict=True):
        for offset, index in enumerate(group.indices):
            if offset:
                lib.llama_memory_seq_cp(memory, first, first + offset, -1, -1)
            continuation = requests[index][2]
            if len(continuation) > 1:
                start = len(group.context)
                streams.append(_continuation_stream(runtime, start, continuation, results[index], first + offset))
    runtime.decode_streams(streams)


def _context_stream(
    runtime: GgufRuntime, context: list[int], continuations: list[tuple[list[int], TokenScores]], seq: int
) -> Stream:
    """The context decoded into ``seq``; the logits at its last token score each continuation's first token."""

    def first_tokens(stream: Stream, pos: int, row: int) -> None:
        logits: np.ndarray = runtime.logits(row)
        for continuation, scores in continuations:
            add_score(scores, logits, continuation[0])

    return Stream(list(context), len(context) - 1, first_tokens, seq=seq, pos=0, pending=list(context))


def _continuation_stream(
    runtime: GgufRuntime, start: int, continuation: list[int], scores: TokenScores, seq: int
) -> Stream:
    """``continuation[:-1]`` decoded into ``seq`` from position ``start`` (after its copied context), scoring
    ``continuation[1:]``."""

    def next_tokens(stream: Stream, pos: int, row: int) -> None:
        add_score(scores, runtime.logits(row), continuation[pos - start + 1])

    tokens = continuation[:-1]
    return Stream(list(tokens), start, next_tokens, seq=seq, pos=start, pending=list(tokens))
