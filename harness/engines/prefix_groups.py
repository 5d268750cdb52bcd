"""Which log-likelihood requests share a context, so an engine computes that context once.

lm-eval hands an engine ``(request, context tokens, continuation tokens)`` triples, already split by its own
``_encode_pair`` (a context's trailing spaces moved to the continuation, the pair tokenized whole and split at
the context's length). A multiple-choice item asks for one triple per choice with the same context tokens. An
engine that shares prefixes scores every continuation of a group from one computation of the context's key/value
cache; this module only decides the groups, and is shared by the engines that do so (transformers, llama.cpp).

Sharing computes ``context`` once, keeping the logits at its last token (they score every continuation's first
token), and then, per continuation, ``continuation[:-1]`` on its cache: the same positions and tokens as lm-eval's
one pass over ``(context + continuation)[:-1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Triple = tuple[Any, list[int], list[int]]
"""lm-eval's encoded request: (request strings or None, context tokens, continuation tokens)."""

SHARED_NATS_TOLERANCE = 1e-4
"""How far (nats, absolute) a shared log-likelihood may differ from lm-eval's unshared one at fp32: matrix products
over other shapes round differently (seen: 4.2e-5 at most on 200 ARC items of SmolLM2-135M, 4e-6 on the tiny test
model). At bf16 lm-eval's log-softmax itself runs in bf16, so both paths round every log-probability to bf16
(steps of 0.125 nats near -20): there they agree only to that rounding (seen: up to 0.75 nats per request)."""

NEAR_TIE_NATS = 1e-3
"""At fp32, choices whose log-likelihoods (acc) or per-character ones (acc_norm) differ by less than this are a
near tie, where shared and unshared scoring may rank them differently; beyond it the answer is the same (seen: no
answer changed on 200 ARC-Easy and ARC-Challenge items of SmolLM2-135M). At bf16 the threshold is 0.25 nats for acc
and 0.01 nats per character for acc_norm (seen: 2 and 4 of 200 answers changed, at gaps up to 0.125 and 0.0092)."""


@dataclass
class PrefixGroup:
    """Requests with the same context tokens, computed once."""

    context: list[int]
    indices: list[int] = field(default_factory=list)
    """Positions of the group's requests in the original list."""


@dataclass(frozen=True)
class SharingPlan:
    """Groups whose context is computed once, and the requests scored the unshared way."""

    groups: list[PrefixGroup]
    """Longest context first (so a batch of contexts wastes little padding)."""
    alone: list[int]
    """Requests that share nothing or that lm-eval would truncate, in their original order."""


def plan_sharing(requests: Sequence[Triple], max_length: int) -> SharingPlan:
    """Group ``requests`` by their context tokens.

    A request is scored alone when lm-eval would truncate it (context and continuation longer than
    ``max_length + 1``), when its context is a single token (an empty context's prefix token: nothing worth
    sharing), when its continuation is empty (lm-eval's own path decides what that means), or when no other
    request has its context.

    Args:
        requests: lm-eval's encoded requests.
        max_length: the engine's longest sequence.
    """
    by_context: dict[tuple[int, ...], PrefixGroup] = {}
    alone: list[int] = []
    for index, (_, context, continuation) in enumerate(requests):
        if len(context) < 2 or not continuation or len(context) + len(continuation) > max_length + 1:
            alone.append(index)
            continue
        key = tuple(context)
        group = by_context.get(key)
        if group is None:
            group = by_context[key] = PrefixGroup(list(context))
        group.indices.append(index)
    groups = []
    for group in by_context.values():
        if len(group.indices) > 1:
            groups.append(group)
        else:
            alone.extend(group.indices)
    groups.sort(key=lambda group: -len(group.context))
    return SharingPlan(groups=groups, alone=sorted(alone))


def batches_of_groups(groups: Sequence[PrefixGroup], contexts: int, rows: int) -> list[list[PrefixGroup]]:
    """Consecutive groups packed into batches of at most ``contexts`` contexts and ``rows`` continuations (a
    batch always takes at least one group, however many continuations it has).

    Args:
        groups: the groups in the order they are computed.
        contexts: most contexts computed together.
        rows: most continuations scored together.
    """
    batches: list[list[PrefixGroup]] = []
    current: list[PrefixGroup] = []
    used = 0
    for group in groups:
        size = len(group.indices)
        if current and (len(current) >= contexts or used + size > rows):
            batches.append(current)
            current, used = [], 0
        current.append(group)
        used += size
    if current:
        batches.append(current)
    return batches
