"""UltraFeedback win-rate scoring: one outcome per prompt, then the win-rate metrics.

An outcome is 1 (the candidate wins), 0.5 (tie) or 0 (the reference wins). Scales: win, tie and
length-controlled win rates on 0-1; reward margins in the reward model's units; lengths in words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

Verdict = Literal["A", "B"]
_VERDICT = re.compile(r"\b(?:response\s*)?([AB])\b")


def reward_outcome(candidate: float, reference: float, tie_margin: float) -> float:
    """Reward-model outcome: a tie when the rewards differ by at most ``tie_margin``."""
    if abs(candidate - reference) <= tie_margin:
        return 0.5
    return 1.0 if candidate > reference else 0.0


def pairwise_outcome(candidate_first: Verdict | None, candidate_second: Verdict | None) -> float:
    """LLM-judge outcome from two verdicts, asked with the candidate as response A, then as response B.

    The candidate wins when both verdicts pick it, loses when both pick the reference; disagreement or an
    unreadable verdict is a tie.
    """
    if candidate_first == "A" and candidate_second == "B":
        return 1.0
    if candidate_first == "B" and candidate_second == "A":
        return 0.0
    return 0.5


def parse_verdict(text: str) -> Verdict | None:
    """The first ``A`` or ``B`` a judge's reply names, if any."""
    match = _VERDICT.search(text.strip())
    return match.group(1) if match else None  # type: ignore[return-value]


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
