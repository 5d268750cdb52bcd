"""``ftbench train rloo``: TRL's RLOOTrainer on Countdown prompts, rewarded by the task's own scoring function.

The reward is ``tasks.countdown.scoring.countdown_reward``, the function behind the evaluation's reward
metric, so training optimises exactly what is measured.
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from trl import RLOOConfig, RLOOTrainer

from tasks.countdown.scoring import countdown_reward
from trainers.config import TrainSettings, build_trl_config
from trainers.data import data_files, evaluation_prompt, rloo_rows
from trainers.stage import (
    StageResult,
    Stopwatch,
    finish_stage,
    inputs_hash,
    load_causal_lm,
    lora_config,
    parent_checkpoint,
    staging,
    up_to_date,
)

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

REWARD_FUNCTIONS: list[Any] = [countdown_reward]
"""The rewards RLOO optimises: the Countdown task's scoring function itself."""


def rloo_trainer(
    settings: TrainSettings,
    args: RLOOConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
) -> RLOOTrainer:
    """TRL's RLOOTrainer rewarded by ``REWARD_FUNCTIONS``, with a LoRA adapter unless ``finetune: full``."""
    return RLOOTrainer(
        model=model,
        reward_funcs=REWARD_FUNCTIONS,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(settings, model, TaskType.CAUSAL_LM),
    )


def train_rloo(settings: TrainSettings, force: bool = False) -> StageResult:
    """Run RLOO from the parent on Countdown prompts and save the stage.

    The output is reused when made from the same inputs, unless ``force``.
    """
    clock = Stopwatch()
    parent = parent_checkpoint(settings)
    digest = inputs_hash(settings, parent, "rloo", data_files(settings.data))
    existing = None if force else up_to_date(settings, digest)
    if existing is not None:
        return StageResult(settings.output, existing, True)
    with staging(settings.output) as staged:
        args = build_trl_config(RLOOConfig, settings, staged.parent / "trainer")
        data = rloo_rows(settings.data, settings.seed)
        tokenizer = AutoTokenizer.from_pretrained(str(parent.path))
        rows = [{**row, "prompt": evaluation_prompt(tokenizer, row["prompt"])} for row in data.rows]
        trainer = rloo_trainer(settings, args, load_causal_lm(parent, settings.seed), tokenizer, rows)
        trainer.train()
        rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
        manifest = finish_stage(
            staged,
            trainer,
            tokenizer,
            settings=settings,
            method="rloo",
            parent=parent,
            data=data.sources,
            digest=digest,
            clock=clock,
            training={
                "reward_function": f"{countdown_reward.__module__}.{countdown_reward.__qualname__}",
                "mean_reward_by_step": rewards,
                "prompts": len(data.rows),
                "split": data.split,
            },
        )
    return StageResult(settings.output, manifest, False)
