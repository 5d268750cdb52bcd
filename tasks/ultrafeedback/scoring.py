"""UltraFeedback win-rate scoring: the judge's outcome per prompt, then the win-rate metrics.

An outcome is 1 (the candidate wins), 0.5 (tie) or 0 (the reference wins); the outcome rules are the judge's
(``tasks.judging``). Scales: win, tie and
length-controlled win rates on 0-1; reward margins in the reward model's units; lengths in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ftbench.harness.core.records import SampleRecord
from ftbench.tasks.judging import JudgedItems, JudgedScores


def word_length(text: str) -> int:
    """Length in whitespace-separated words."""
    return len(text.split())


class WinRate(NamedTuple):
    """Win-rate metrics over a set of prompts."""

    win_rate: float
    win_rate_stderr: float
    tie_rate: float
    length_controlled_win_rate: float
    candidate_length: float
    reference_length: float


def length_controlled_win_rate(outcomes: Sequence[float], length_differences: Sequence[float]) -> float:
    """The win rate predicted at zero length difference by a logistic model of the outcome.

    Fits ``P(win) = sigmoid(a + b * z)`` with ``z`` the standardised length difference (candidate minus
    reference) by maximum likelihood, ties counting as half a win, and returns ``sigmoid(a)``: the length-only
    form of AlpacaEval's length-controlled win rate. With no length variation it is the plain win rate.
    """
    from scipy.optimize import minimize  # scipy only when a win rate is fitted, not on import
    from scipy.special import expit

    y = np.asarray(outcomes, dtype=float)
    diff = np.asarray(length_differences, dtype=float)
    spread = diff.std()
    if len(y) < 2 or spread == 0:
        return float(y.mean())
    z = (diff - diff.mean()) / spread

    def loss(params: np.ndarray) -> float:
        logits = params[0] + params[1] * z
        return float(np.sum(np.logaddexp(0, logits) - y * logits) + 1e-6 * params @ params)

    fitted = minimize(loss, np.zeros(2), method="BFGS")
    intercept, slope = fitted.x
    at_zero = intercept + slope * (-diff.mean() / spread)
    return float(expit(at_zero))


def win_rate_metrics(
    outcomes: Sequence[float], candidate_lengths: Sequence[int], reference_lengths: Sequence[int]
) -> WinRate:
    """Win rate (ties count one half) with its standard error, tie rate, length-controlled win rate, lengths."""
    y = np.asarray(outcomes, dtype=float)
    n = len(y)
    differences = [c - r for c, r in zip(candidate_lengths, reference_lengths, strict=True)]
    return WinRate(
        win_rate=float(y.mean()),
        win_rate_stderr=float(y.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        tie_rate=float(np.mean(y == 0.5)),
        length_controlled_win_rate=length_controlled_win_rate(list(outcomes), differences),
        candidate_length=float(np.mean(candidate_lengths)),
        reference_length=float(np.mean(reference_lengths)),
    )


def _mean_stderr(values: Sequence[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return (sum((v - mean) ** 2 for v in values) / (n - 1) / n) ** 0.5


def _scored(items: JudgedItems) -> list[SampleRecord]:
    """Each sample with its per-item scores: win (ties 1/2), tie, both lengths and the reward margin."""
    scored = []
    for i, sample in enumerate(items.samples):
        extra = {
            "win": items.outcomes[i],
            "tie": float(items.outcomes[i] == 0.5),
            "candidate_words": float(word_length(sample.response)),
            "reference_words": float(word_length(items.references[i])),
        }
        if items.margins is not None:
            extra["reward_margin"] = items.margins[i]
        scored.append(sample.model_copy(update={"scores": {**sample.scores, **extra}}))
    return scored


def judged_scores(items: JudgedItems) -> JudgedScores:
    """The win-rate metrics of judged items, and the samples with their per-item scores.

    ``lc_win_rate``'s standard error is left to the judge step (a bootstrap of ``lc_win_rate`` over samples).
    """
    scored = _scored(items)
    n = len(scored)
    candidate = [s.scores["candidate_words"] for s in scored]
    reference = [s.scores["reference_words"] for s in scored]
    summary = win_rate_metrics(items.outcomes, [int(c) for c in candidate], [int(r) for r in reference])
    tie_stderr = (summary.tie_rate * (1 - summary.tie_rate) / (n - 1)) ** 0.5 if n > 1 else None
    metrics: dict[str, tuple[float, float | None]] = {
        "win_rate": (summary.win_rate, summary.win_rate_stderr if n > 1 else None),
        "tie_rate": (summary.tie_rate, tie_stderr),
        "lc_win_rate": (summary.length_controlled_win_rate, None),
        "candidate_words": (summary.candidate_length, _mean_stderr(candidate)),
        "reference_words": (summary.reference_length, _mean_stderr(reference)),
    }
    if items.margins is not None:
        metrics["reward_margin"] = (sum(items.margins) / n, _mean_stderr(list(items.margins)))
    return JudgedScores(metrics, scored)


def lc_win_rate(samples: Sequence[SampleRecord]) -> float:
    """The length-controlled win rate of judged samples (see ``win_rate_metrics``)."""
    return win_rate_metrics(
        [s.scores["win"] for s in samples],
        [int(s.scores["candidate_words"]) for s in samples],
        [int(s.scores["reference_words"]) for s in samples],
    ).length_controlled_win_rate
