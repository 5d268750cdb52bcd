"""What moved between two variants beyond the metric: how far their output distributions are apart (KL), how
often their top choices agree, and how many answers changed.

Equal accuracy can hide many flips; a small KL with many flips means the flipped items were near-ties.

- Multiple choice: the softmax of each item's choice log-likelihoods is the model's distribution over choices;
  ``kl`` is the mean over items of KL(reference ‖ variant), ``top_agreement`` the share of items whose top
  choice is the same.
- Perplexity documents: at each of a document's first tokens the stored top-k next-token distributions
  (``TokenTopK``) are coarse-grained to the tokens both variants list plus one "other" bucket; ``kl`` is the
  mean KL(reference ‖ variant) of those over tokens. Coarse-graining never increases KL, so this is a lower
  bound of the full-vocabulary KL. ``top_agreement`` is the share of positions whose most likely next token is
  the same. Documents tokenized differently by the two variants are skipped.
- Generated answers: ``churn`` is the share of items whose answer text changed (whitespace aside).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from ftbench.harness.core.records import TOPK_DECIMALS, SampleRecord, TokenTopK

Pairs = Sequence[tuple[SampleRecord, SampleRecord]]


class Agreement(NamedTuple):
    """How alike two variants' outputs are on shared items."""

    unit: Literal["choices", "tokens", "answers"]
    n: int
    """Items (or token positions) compared."""
    kl: float | None
    """Mean KL(reference ‖ variant) in nats; ``math.inf`` only where stored values leave the variant no mass for
    what the reference predicts beyond what their rounding allows."""
    top_agreement: float | None
    churn: float | None


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats; infinite where q gives no mass to an outcome p can have."""
    mask = p > 0
    if np.any(q[mask] <= 0):
        return math.inf
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask]))))


def _log_softmax(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    shifted = array - array.max()
    return shifted - np.log(np.exp(shifted).sum())


def _choice_kl(reference: Sequence[float], variant: Sequence[float]) -> float:
    """KL between two softmaxes of choice log-likelihoods, in log space (no underflow to a false infinity)."""
    log_p, log_q = _log_softmax(reference), _log_softmax(variant)
    return max(0.0, float(np.sum(np.exp(log_p) * (log_p - log_q))))


def choice_agreement(pairs: Pairs) -> Agreement | None:
    """KL and top-choice agreement of the choice distributions (multiple-choice items)."""
    usable = [
        (b.choice_loglikelihoods, c.choice_loglikelihoods)
        for b, c in pairs
        if b.choice_loglikelihoods
        and c.choice_loglikelihoods
        and len(b.choice_loglikelihoods) == len(c.choice_loglikelihoods)
    ]
    if not usable:
        return None
    kls = [_choice_kl(b, c) for b, c in usable]
    agree = [int(np.argmax(b)) == int(np.argmax(c)) for b, c in usable]
    return Agreement("choices", len(usable), float(np.mean(kls)), float(np.mean(agree)), None)


ROUNDING = 0.5 * 10.0**-TOPK_DECIMALS
"""The most a stored log-probability is off by its rounding."""


def _position_kl(ref_ids: list[int], ref_lp: list[float], ids: list[int], lp: list[float]) -> float:
    """KL of one position's distributions, coarse-grained to the shared listed tokens plus "other": a lower bound
    of the full KL. The variant's "other" mass is taken at the most its rounded log-probabilities allow (each
    listed probability at least ``exp(lp - ROUNDING)``), so a variant whose listed tokens seem to hold all its mass
    gets a large finite KL, not an infinite one its rounding cannot prove."""
    mine = dict(zip(ids, lp, strict=True))
    shared = [(math.exp(r), math.exp(mine[t])) for t, r in zip(ref_ids, ref_lp, strict=True) if t in mine]
    least = sum(math.exp(mine[t] - ROUNDING) for t in ref_ids if t in mine)
    p = np.array([a for a, _ in shared] + [max(0.0, 1.0 - sum(a for a, _ in shared))])
    q = np.array([b for _, b in shared] + [max(0.0, 1.0 - least)])
    return max(0.0, _kl(p, q))


def token_agreement(pairs: Pairs) -> Agreement | None:
    """Token-level KL (a lower bound, see the module's notes) and top-1 agreement over perplexity documents."""
    kls: list[float] = []
    agree: list[bool] = []
    for b, c in pairs:
        ref, other = b.token_topk, c.token_topk
        if ref is None or other is None or not _same_tokens(ref, other):
            continue
        for position in range(len(ref.tokens)):
            kls.append(
                _position_kl(ref.ids[position], ref.logprobs[position], other.ids[position], other.logprobs[position])
            )
            agree.append(ref.ids[position][0] == other.ids[position][0])
    if not kls:
        return None
    return Agreement("tokens", len(kls), float(np.mean(kls)), float(np.mean(agree)), None)


def _same_tokens(first: TokenTopK, second: TokenTopK) -> bool:
    return bool(first.tokens) and first.tokens == second.tokens


def answer_churn(pairs: Pairs) -> Agreement | None:
    """The share of items whose generated answer changed."""
    if not pairs:
        return None
    changed = [" ".join(b.response.split()) != " ".join(c.response.split()) for b, c in pairs]
    return Agreement("answers", len(pairs), None, None, float(np.mean(changed)))


def agreement(output: str, pairs: Pairs) -> Agreement | None:
    """The agreement measure that fits a task's output type."""
    if output == "multiple_choice":
        return choice_agreement(pairs)
    if output == "loglikelihood_rolling":
        return token_agreement(pairs)
    return answer_churn(pairs)
