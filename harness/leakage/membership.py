"""The model-based check: per-item membership scores, and whether suspected items score above unseen ones.

The model calls happen elsewhere; these functions take their outputs as arrays. Every score is oriented so that
higher means "more likely trained on".

- ``reference_score``: the fine-tune's mean per-token log-likelihood of an item less its base model's (the
  reference-model likelihood ratio, normalised per token): what fine-tuning raised beyond what the base knew.
- ``min_k_plus_plus``: Min-K%++ (Zhang et al. 2024): each token's log-probability standardised by the mean and
  standard deviation of the log-probability under the model's own next-token distribution at that position,
  averaged over the lowest ``k`` share of tokens.
- ``membership_test``: the AUC of suspected against control scores (the probability that a suspected item scores
  above a control item, ties counted ½) and the one-sided Mann-Whitney p-value (scipy's ``mannwhitneyu``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict
from scipy.stats import mannwhitneyu

from ftbench.harness.core.errors import FtbenchError


class MembershipTest(BaseModel):
    """Suspected items' scores against a control set that is certainly unseen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auc: float
    """P(a suspected item scores above a control item), ties ½: 0.5 is no signal."""
    p_value: float
    """One-sided Mann-Whitney p-value against "suspected items score no higher than control items"."""
    u_statistic: float
    suspected: int
    control: int


class NextTokenMoments(NamedTuple):
    """Per position: the mean and the variance of log p(z) for z drawn from the model's next-token distribution."""

    mean: np.ndarray
    variance: np.ndarray


def _scores(values: ArrayLike, name: str, ndim: int = 1) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim or array.size == 0:
        raise FtbenchError(f"{name} must be a non-empty {ndim}-D array of numbers (got shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise FtbenchError(f"{name} holds a NaN or infinite value; drop or fix that item")
    return array


def membership_test(suspected: ArrayLike, control: ArrayLike) -> MembershipTest:
    """Whether suspected items score higher than control items.

    Args:
        suspected: one score per suspected item (higher: more likely trained on).
        control: one score per control item, items the model certainly never saw.

    Raises:
        FtbenchError: either set is empty or holds a value that is not finite.
    """
    high = _scores(suspected, "suspected scores")
    low = _scores(control, "control scores")
    result = mannwhitneyu(high, low, alternative="greater")
    u_statistic = float(result.statistic)
    return MembershipTest(
        auc=u_statistic / (len(high) * len(low)),
        p_value=float(result.pvalue),
        u_statistic=u_statistic,
        suspected=len(high),
        control=len(low),
    )


def reference_score(finetuned_logprobs: ArrayLike, base_logprobs: ArrayLike) -> float:
    """The fine-tune's mean log-probability per token of an item less the base model's.

    Args:
        finetuned_logprobs: log p(token | preceding text) under the fine-tuned model, for each token of the item's
            scored text (natural log).
        base_logprobs: the same under the base model (its own tokenisation; the lengths may differ).

    Raises:
        FtbenchError: an array is empty or holds a value that is not finite.
    """
    finetuned = _scores(finetuned_logprobs, "finetuned_logprobs")
    base = _scores(base_logprobs, "base_logprobs")
    return float(finetuned.mean() - base.mean())


def next_token_moments(logprobs: ArrayLike) -> NextTokenMoments:
    """The mean and variance of log p(z) under p itself, per position, from full next-token log-probabilities.

    Args:
        logprobs: positions x vocabulary, each row the log-softmax of the logits that predict that position.
    """
    rows = _scores(logprobs, "logprobs", ndim=2)
    probabilities = np.exp(rows)
    mean = (probabilities * rows).sum(axis=1)
    variance = (probabilities * np.square(rows)).sum(axis=1) - np.square(mean)
    return NextTokenMoments(mean, np.maximum(variance, 0.0))


def min_k_plus_plus(
    token_logprobs: ArrayLike, vocab_mean: ArrayLike, vocab_variance: ArrayLike, k: float = 0.2
) -> float:
    """Min-K%++ of one item: the mean of the lowest ``k`` share of ``(log p(x_t) - mean_t) / sqrt(variance_t)``.

    Args:
        token_logprobs: log p(x_t | x_<t) of each token of the item, under the model tested.
        vocab_mean: for each position, E_z[log p(z | x_<t)] with z drawn from p(. | x_<t) itself
            (``next_token_moments``), not a plain average over the vocabulary.
        vocab_variance: for each position, Var_z[log p(z | x_<t)] under the same distribution.
        k: the share of tokens averaged, the lowest-scoring ones (at least one token); the paper's default 0.2.

    Raises:
        FtbenchError: the arrays differ in length, hold a value that is not finite, a variance is not positive,
            or ``k`` is outside (0, 1].
    """
    if not 0 < k <= 1:
        raise FtbenchError(f"k must lie in (0, 1] (got {k}); give the share of tokens to average")
    tokens = _scores(token_logprobs, "token_logprobs")
    mean = _scores(vocab_mean, "vocab_mean")
    variance = _scores(vocab_variance, "vocab_variance")
    if not len(tokens) == len(mean) == len(variance):
        raise FtbenchError(
            f"token_logprobs, vocab_mean and vocab_variance have {len(tokens)}, {len(mean)} and {len(variance)} "
            "positions; give one value per token for each"
        )
    if np.any(variance <= 0):
        raise FtbenchError(
            f"vocab_variance is not positive at position {int(np.argmax(variance <= 0))}; a position whose "
            "next-token distribution is certain has no Min-K%++ score, so leave it out"
        )
    standardised = np.sort((tokens - mean) / np.sqrt(variance))
    return float(standardised[: max(1, math.floor(len(standardised) * k))].mean())
