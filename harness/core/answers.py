"""Which answer a sample's score is about, for showing beside that score.

A multiple-choice sample stores, as its response, the choice with the highest log-likelihood: the choice ``acc``
scores. ``acc_norm`` ranks the choices by log-likelihood per character of the choice (lm-eval's rule) and may pick
another one, whose text the record does not hold; shown beside an ``acc_norm`` score, the response alone could
show a wrong answer as the right one. ``answer_for`` says what is known of the choice behind the score instead.
"""

from __future__ import annotations

from ftbench.harness.core.records import SampleRecord

RANKED_BY_LOGLIKELIHOOD = "acc"
"""The multiple-choice metric whose pick the stored response is."""


def answer_for(sample: SampleRecord, metric: str) -> str:
    """The answer behind ``sample``'s ``metric`` score: its response, or for a multiple-choice sample scored by a
    metric that ranks the choices otherwise (``acc_norm``), what is known of that metric's pick."""
    response = sample.response
    scores = sample.scores
    if (
        sample.choice_loglikelihoods is None
        or metric == RANKED_BY_LOGLIKELIHOOD
        or metric not in scores
        or RANKED_BY_LOGLIKELIHOOD not in scores
    ):
        return response
    right, acc_right = scores[metric] >= 0.5, scores[RANKED_BY_LOGLIKELIHOOD] >= 0.5
    if right and acc_right:
        return response
    if right:
        return f"choice {sample.target} (the target), ranked first by {metric}; acc ranked first: {response}"
    if acc_right:
        return (
            f"a wrong choice, ranked first by {metric} (its text is not stored); acc ranked the target first: "
            f"{response}"
        )
    return f"a wrong choice, ranked first by {metric} (its text is not stored); acc ranked first: {response}"
