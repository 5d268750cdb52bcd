"""Trainers draw through each task's training side: the settings resolve the tasks, the sides declare the rows, the
reward and the response prefix, and the generic trainers only ask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftbench import trainers
from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.countdown.scoring import countdown_reward
from ftbench.tasks.registry import TASKS
from ftbench.tasks.training_side import RewardedPrompts
from ftbench.trainers import dpo, rloo, sft
from ftbench.trainers.config import DataSettings, load_settings, setting_tasks
from ftbench.trainers.training_data import preference_rows, prompt_draw, rloo_rows, sft_rows


@pytest.mark.parametrize(
    "name", sorted(name for name, task in TASKS.items() if task.training and task.training.prompts)
)
def test_rewarded_prompts_continue_after_the_evaluations_generation_prefix(name: str) -> None:
    task = TASKS[name]
    assert task.training is not None and task.training.prompts is not None
    assert task.training.prompts.response_prefix == task.lm_eval_definition()["gen_prefix"]


def test_the_data_settings_resolve_their_tasks_once_where_the_names_enter() -> None:
    data = load_settings(sft.DEFAULTS, None, ["data.source=generated"]).data
    countdown, ultrafeedback = data.dataset_draws()
    assert (countdown.name, countdown.task.name, countdown.options.source) == ("countdown", "countdown", "generated")
    assert (ultrafeedback.task.name, ultrafeedback.options.source) == ("ultrafeedback_winrate", "auto")
    assert prompt_draw(data).prompts.reward is countdown_reward


def test_each_rows_setting_is_named_by_one_tasks_side_and_the_trainers_name_no_task() -> None:
    named = [task.training.setting for task in setting_tasks() if task.training is not None]
    fields = [name for name in DataSettings.model_fields if name.endswith("_rows") and name != "eval_rows"]
    assert sorted(named) == sorted(fields) and len(set(named)) == len(named)
    data = DataSettings(countdown_rows=3, ultrafeedback_rows=2)
    assert [(d.name, d.rows, d.setting) for d in data.dataset_draws()] == [
        (task.training.rows_name, getattr(data, task.training.setting), f"data.{task.training.setting}")
        for task in setting_tasks()
        if task.training is not None and task.training.setting is not None
    ]
    for module in ("config", "training_data", "sft", "dpo", "rloo", "reward", "onpolicy", "stage"):
        source = (Path(trainers.__file__).parent / f"{module}.py").read_text()
        code = [line for line in source.splitlines() if not line.lstrip().startswith(("#", '"', "-", "``"))]
        for name in TASKS:  # a task's name in code (not in documentation or the settings' own names)
            assert not any(f'"{name}"' in line for line in code), (module, name)


def test_a_task_entry_draws_through_its_side_and_a_bad_entry_is_one_clear_error() -> None:
    entry = {"task": "arc_easy", "split": "validation", "rows": 4}
    small = load_settings(
        sft.DEFAULTS, None, ["data.countdown_rows=0", "data.ultrafeedback_rows=0"], {"data": {"tasks": [entry]}}
    )
    large = small.data.model_copy(update={"tasks": [small.data.tasks[0].model_copy(update={"rows": 8})]})
    rows = sft_rows(small.data, 3)
    assert rows.origins == ["arc_easy"] * 4 and rows.sources[0].source == "arc_easy validation split"
    assert sft_rows(large, 3).rows[:4] == rows.rows  # a larger draw with the same seed is a superset
    with pytest.raises(FtbenchError, match=r"task rewrite_cast has no training rows; use arc_easy, arc_challenge or"):
        sft_rows(
            load_settings(sft.DEFAULTS, None, [], {"data": {"tasks": [{"task": "rewrite_cast", "rows": 2}]}}).data, 1
        )
    with pytest.raises(FtbenchError, match=r"data.tasks.0: task countdown's rows are set by data.countdown_rows"):
        sft_rows(load_settings(sft.DEFAULTS, None, [], {"data": {"tasks": [{"task": "countdown", "rows": 2}]}}).data, 1)


def test_on_policy_pairs_get_the_sides_rewarded_prompts_and_the_manifest_counts_the_puzzles() -> None:
    data = load_settings(dpo.DEFAULTS, None, ["data.countdown_rows=3", "data.ultrafeedback_rows=2"]).data
    seen: list[tuple[RewardedPrompts, list[dict[str, Any]]]] = []

    def on_policy(prompts: RewardedPrompts, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.append((prompts, rows))
        return [{"prompt": row["prompt"], "chosen": [], "rejected": []} for row in rows]

    pairs = preference_rows(data, 5, on_policy=on_policy)
    ((prompts, rows),) = seen
    assert prompts.reward is countdown_reward and [set(row) for row in rows] == [{"prompt", "target", "nums"}] * 3
    assert pairs.sources[0].source.endswith("; on-policy pairs from 3 puzzles")
    assert pairs.origins == ["countdown"] * 3 + ["ultrafeedback"] * 2
    assert rows == rloo_rows(load_settings(rloo.DEFAULTS, None, ["data.countdown_rows=3"]).data, 5).rows
    assert set(pairs.split) == {"countdown", "countdown_dropped_as_evaluation_puzzles", "ultrafeedback", "checked"}
