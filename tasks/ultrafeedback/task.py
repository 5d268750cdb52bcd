"""UltraFeedback win rate as a task: prompts answered as chat turns; ftbench's judge step adds the win-rate
metrics (stock lm-eval reports the response length only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.core.records import SampleRecord
from tasks.base import Metric, Task
from tasks.data import DataOptions, local_paths, test_split
from tasks.ultrafeedback.dataset import TEST_FILE, evaluation_items
from tasks.ultrafeedback.scoring import win_rate_metrics, word_length

DATASET_REFERENCE = "dataset"


class JudgeSpec(BaseModel):
    """How responses are judged (task option ``judge``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["reward_model", "llm"] = "reward_model"
    path: Path = Path("checkpoints/reward")
    tie_margin: float = Field(default=0.0, ge=0.0)
    """Reward model: rewards within this margin tie."""
    swap: bool = True
    """LLM judge: ask twice with the order swapped; disagreement is a tie."""
    max_length: int = Field(default=512, ge=16)
    batch_size: int = Field(default=8, ge=1)


class WinRateOptions(DataOptions):
    """The win-rate task's options: its data, the judge, and the reference each response is compared with."""

    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    reference: str = DATASET_REFERENCE
    """``dataset`` (the dataset's chosen response) or ``CHECKPOINT@PRECISION``, a variant of the same run."""


def load(**metadata: Any) -> dict[str, Any]:
    """lm-eval ``custom_dataset`` hook: test prompts, with the dataset's chosen response as the target."""
    options = WinRateOptions.from_metadata("ultrafeedback_winrate", metadata)
    rows = [{"id": i["id"], "prompt": i["prompt"], "chosen": i["chosen"]} for i in evaluation_items(options)]
    return test_split("ultrafeedback_winrate", rows)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The response length in words (the judged metrics need the judge, which ftbench runs)."""
    return {"response_words": float(word_length(results[0]))}


def lc_win_rate(samples: Sequence[SampleRecord]) -> float:
    """The length-controlled win rate of judged samples (see ``win_rate_metrics``)."""
    return win_rate_metrics(
        [s.scores["win"] for s in samples],
        [int(s.scores["candidate_words"]) for s in samples],
        [int(s.scores["reference_words"]) for s in samples],
    ).length_controlled_win_rate


TASKS = (
    Task(
        name="ultrafeedback_winrate",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="win_rate",
        metrics={
            "win_rate": Metric("0-1 (ties count 1/2)", "continuous", sample_score="win"),
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
        data_paths=lambda options: local_paths([TEST_FILE], options),
        judged=True,
    ),
)
