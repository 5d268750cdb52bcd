"""``ftbench train rloo``: TRL's RLOOTrainer on Countdown prompts, rewarded by the task's own scoring function.

The prompts and the reward come from the task's training side (``RewardedPrompts``): for Countdown the reward is
``countdown_reward``, the function behind the evaluation's reward metric, so training optimises exactly what is
measured. Prompts are rendered exactly as the evaluation renders them (chat template, then the response prefix).
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import RLOOConfig, RLOOTrainer

from ftbench.harness.core.checkpoints import TrainingNotes
from ftbench.tasks.training_side import RewardFunction
from ftbench.trainers.config import TrainSettings
from ftbench.trainers.row_texts import trained_texts
from ftbench.trainers.stage import BuiltStage, Method, StageInputs, load_parent, lora_config
from ftbench.trainers.training_data import evaluation_prompt, prompt_draw, rloo_rows

DEFAULTS: dict[str, Any] = {
    "output": "checkpoints/rloo",
    "stage": "rloo",
    "parent": "checkpoints/dpo",
    "data": {"countdown_rows": 64},
    "trl": {
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 128,
        "max_steps": 4,
        "learning_rate": 5e-5,
    },
}


def rloo_trainer(
    settings: TrainSettings,
    args: RLOOConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    reward: RewardFunction,
) -> RLOOTrainer:
    """TRL's RLOOTrainer rewarded by ``reward``, with a LoRA adapter unless ``finetune: full``."""
    rewards: list[Any] = [reward]  # TRL's type wants list[float | None] returns; ours never return None
    return RLOOTrainer(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(settings, model, TaskType.CAUSAL_LM),
    )


def _rewards_by_step(trainer: Any, model: PreTrainedModel, notes: TrainingNotes) -> TrainingNotes:
    rewards = [float(entry["reward"]) for entry in trainer.state.log_history if "reward" in entry]
    return notes.model_copy(update={"mean_reward_by_step": rewards})


def build_rloo(inputs: StageInputs) -> BuiltStage:
    """RLOO from the parent on a task's rewarded prompts (Countdown's, and extra prompt files)."""
    settings, tokenizer = inputs.settings, inputs.tokenizer
    prompts = prompt_draw(settings.data).prompts
    data = rloo_rows(settings.data, settings.seed)
    rows = [
        {**row, "prompt": evaluation_prompt(tokenizer, row["prompt"], prompts.response_prefix)} for row in data.rows
    ]
    model = load_parent(inputs.parent, settings.seed)
    trainer = rloo_trainer(settings, inputs.args, model, tokenizer, rows, prompts.reward)
    notes = TrainingNotes(
        rows={"prompts": len(data.rows)},
        split=data.split,
        reward_function=f"{prompts.reward.__module__}.{prompts.reward.__qualname__}",
    )
    trained = trained_texts(data, ("prompt",))  # the prompts' messages, before the chat template
    return BuiltStage(trainer, data.sources, notes, after=_rewards_by_step, trained=trained)


METHOD = Method("rloo", DEFAULTS, RLOOConfig, True, build_rloo)
