"""Countdown as a task: TinyZero's prompt and rule reward over Countdown-Tasks-3to4 (hooks named in the YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftbench.tasks.base import Metric, Task
from ftbench.tasks.countdown.dataset import LOCAL_FILE, CountdownOptions, countdown_items
from ftbench.tasks.countdown.scoring import score_countdown
from ftbench.tasks.countdown.training import TRAINING
from ftbench.tasks.data import local_paths

PROMPT = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> "
    "tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)


def doc_to_text(doc: dict[str, Any]) -> str:
    """The TinyZero instruction as the user turn."""
    return PROMPT.format(nums=list(doc["nums"]), target=doc["target"])


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Per-sample metrics, all from the one scoring function: reward, accuracy, format_rate (0-1)."""
    score = score_countdown(results[0], int(doc["target"]), list(doc["nums"]))
    return {
        "reward": score.reward,
        "accuracy": float(score.verdict == "correct"),
        "format_rate": float(score.verdict != "no_answer"),
    }


def _data_paths(options: CountdownOptions) -> list[Path]:
    return [] if options.source == "generated" else local_paths([LOCAL_FILE], options)  # type: ignore[arg-type]


TASKS = (
    Task(
        name="countdown",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="accuracy",
        metrics={
            "reward": Metric("0-1 (TinyZero rule reward: 1, 0.1 or 0)", "continuous", bounds=(0.0, 1.0)),
            "accuracy": Metric("0-1 (share of samples solved)", "binary"),
            "format_rate": Metric("0-1 (share with an <answer> tag)", "binary"),
        },
        options=CountdownOptions,
        items=lambda options: countdown_items("test", options),
        data_paths=_data_paths,
        training=TRAINING,
    ),
)

load = TASKS[0].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): the test items, chosen by the task's options."""
