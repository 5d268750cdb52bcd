"""``ftbench train dpo``: direct preference optimisation with TRL's DPOTrainer.

Pairs are on-policy Countdown answers sampled from the parent and ranked by the task's reward, and
UltraFeedback chosen/rejected responses (``trainers.data``). With LoRA the reference model is the parent
itself, the adapter switched off; with full fine-tuning TRL keeps a frozen copy.
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from transformers import AutoTokenizer
from trl import DPOConfig, DPOTrainer

from trainers.config import TrainSettings, build_trl_config
from trainers.data import data_files, length_filter, preference_rows, within_length
from trainers.onpolicy import SampledPairs, countdown_pairs
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


def train_dpo(settings: TrainSettings, force: bool = False) -> StageResult:
    """Sample Countdown pairs from the parent, add UltraFeedback pairs, and run DPO; save the stage.

    Pairs longer than ``trl.max_length`` are left out rather than truncated. The output is reused when
    made from the same inputs, unless ``force``.
    """
    clock = Stopwatch()
    parent = parent_checkpoint(settings)
    digest = inputs_hash(settings, parent, "dpo", data_files(settings.data))
    existing = None if force else up_to_date(settings, digest)
    if existing is not None:
        return StageResult(settings.output, existing, True)
    with staging(settings.output) as staged:
        args = build_trl_config(DPOConfig, settings, staged.parent / "trainer")
        tokenizer = AutoTokenizer.from_pretrained(str(parent.path))
        model = load_causal_lm(parent, settings.seed)
        peft_config = lora_config(settings, model, TaskType.CAUSAL_LM)
        sampled: list[SampledPairs] = []

        def on_policy(puzzles: list[dict[str, Any]]) -> list[dict[str, Any]]:
            sampled.append(countdown_pairs(model, tokenizer, puzzles, settings.sampling, settings.seed))
            return sampled[-1].rows

        fits = length_filter(tokenizer, args.max_length, ("chosen", "rejected"))
        data = preference_rows(settings.data, settings.seed, fits, on_policy)
        kept = within_length(data, fits)
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=datasets.Dataset.from_list(kept.rows),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        trainer.train()
        sampling = {"samples": sampled[0].samples, "mean_reward": sampled[0].mean_reward} if sampled else {}
        manifest = finish_stage(
            staged,
            trainer,
            tokenizer,
            settings=settings,
            method="dpo",
            parent=parent,
            data=kept.sources,
            digest=digest,
            clock=clock,
            training={
                "pairs_available": len(data.rows),
                "pairs_within_max_length": len(kept.rows),
                "on_policy_sampling": sampling,
                "split": data.split,
            },
        )
    return StageResult(settings.output, manifest, False)
