"""``ftbench train dpo``: direct preference optimisation with TRL's DPOTrainer.

Pairs are on-policy Countdown answers sampled from the parent and ranked by the task's reward (its training side's
rewarded prompts), and UltraFeedback chosen/rejected responses (``trainers.training_data``). With LoRA the reference
model is the parent itself, the adapter switched off; with full fine-tuning TRL keeps a frozen copy. Pairs longer than
``trl.max_length`` are left out rather than truncated.
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from trl import DPOConfig, DPOTrainer

from ftbench.harness.core.checkpoints import TrainingNotes
from ftbench.tasks.training_side import RewardedPrompts
from ftbench.trainers.onpolicy import SampledPairs, on_policy_pairs
from ftbench.trainers.row_texts import trained_texts
from ftbench.trainers.stage import BuiltStage, Method, StageInputs, load_parent, lora_config
from ftbench.trainers.training_data import length_filter, preference_rows, within_length

DEFAULTS: dict[str, Any] = {
    "output": "checkpoints/dpo",
    "stage": "dpo",
    "parent": "checkpoints/sft",
    "data": {"countdown_rows": 16, "ultrafeedback_rows": 8},
    "sampling": {"samples": 4, "max_new_tokens": 128, "temperature": 1.0},
    "trl": {
        "max_length": 384,
        "per_device_train_batch_size": 4,
        "num_train_epochs": 1,
        "learning_rate": 5e-5,
        "beta": 0.1,
    },
}


def build_dpo(inputs: StageInputs) -> BuiltStage:
    """Sample Countdown pairs from the parent, add UltraFeedback pairs and extra files, and set up DPO."""
    settings, tokenizer = inputs.settings, inputs.tokenizer
    model = load_parent(inputs.parent, settings.seed)
    peft_config = lora_config(settings, model, TaskType.CAUSAL_LM)
    sampled: list[SampledPairs] = []

    def on_policy(prompts: RewardedPrompts, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sampled.append(on_policy_pairs(model, tokenizer, prompts, rows, settings.sampling, settings.seed))
        return sampled[-1].rows

    fits = length_filter(tokenizer, inputs.args.max_length, ("chosen", "rejected"))
    data = preference_rows(settings.data, settings.seed, fits, on_policy)
    kept = within_length(data, fits)
    trainer = DPOTrainer(
        model=model,
        args=inputs.args,
        train_dataset=datasets.Dataset.from_list(kept.rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    notes = TrainingNotes(
        rows={"pairs_available": len(data.rows), "pairs_within_max_length": len(kept.rows)},
        split=data.split,
        on_policy={"samples": sampled[0].samples, "mean_reward": sampled[0].mean_reward} if sampled else {},
    )
    return BuiltStage(trainer, kept.sources, notes, trained=trained_texts(kept))


METHOD = Method("dpo", DEFAULTS, DPOConfig, True, build_dpo)
