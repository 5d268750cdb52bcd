"""UltraFeedback win rate as a task: prompts answered as chat turns; ftbench's judge step adds the win-rate
metrics (stock lm-eval reports the response length only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from ftbench.tasks.base import Metric, Task
from ftbench.tasks.data import DataOptions, local_paths
from ftbench.tasks.judging import DATASET_REFERENCE, JudgeSpec, Judging
from ftbench.tasks.ultrafeedback.dataset import TEST_FILE, evaluation_items
from ftbench.tasks.ultrafeedback.scoring import judged_scores, lc_win_rate, word_length
from ftbench.tasks.ultrafeedback.training import TRAINING


class WinRateOptions(DataOptions):
    """The win-rate task's options: its data, the judge, and the reference each response is compared with."""

    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    reference: str = DATASET_REFERENCE
    """``dataset`` (the dataset's chosen response) or ``CHECKPOINT@PRECISION``, a variant of the same run."""


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The response length in words (the judged metrics need the judge, which ftbench runs)."""
    return {"response_words": float(word_length(results[0]))}


TASKS = (
    Task(
        name="ultrafeedback_winrate",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="win_rate",
        metrics={
            "win_rate": Metric("0-1 (ties count 1/2)", "continuous", sample_score="win", bounds=(0.0, 1.0)),
            "lc_win_rate": Metric(
                "0-1 (win rate at zero length difference, logistic fit)", "corpus", corpus=lc_win_rate
            ),
            "tie_rate": Metric("0-1", "binary", False, sample_score="tie"),
            "reward_margin": Metric("reward units (candidate minus reference, mean)", "continuous"),
            "candidate_words": Metric("words (mean)", "continuous"),
            "reference_words": Metric("words (mean)", "continuous"),
            "response_words": Metric("words (mean, from lm-eval)", "continuous"),
        },
        options=WinRateOptions,
        items=evaluation_items,
        lm_eval_row=lambda item: {"id": item["id"], "prompt": item["prompt"], "chosen": item["chosen"]},
        data_paths=lambda options: local_paths([TEST_FILE], options),
        judging=Judging(
            judge=lambda options: options.judge, reference=lambda options: options.reference, score=judged_scores
        ),
        training=TRAINING,
    ),
)

load = TASKS[0].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): test prompts, with the dataset's chosen response as target."""
