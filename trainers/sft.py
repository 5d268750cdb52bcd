"""``ftbench train sft``: supervised fine-tuning with TRL's SFTTrainer on prompt-completion conversations.

The rows are Countdown solver traces and UltraFeedback chosen responses (``trainers.training_data``). They are
prompt-completion pairs, so TRL's collator labels the prompt and the padding -100 and the loss covers the
assistant's tokens only. Rows longer than ``trl.max_length`` are left out rather than truncated, so every
trained answer ends.
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from ftbench.harness.core.checkpoints import TrainingNotes
from ftbench.trainers.config import TrainSettings
from ftbench.trainers.row_texts import trained_texts
from ftbench.trainers.stage import BuiltStage, Method, StageInputs, load_parent, lora_config
from ftbench.trainers.training_data import length_filter, sft_rows, within_length

DEFAULTS: dict[str, Any] = {
    "output": "checkpoints/sft",
    "stage": "sft",
    "data": {"countdown_rows": 64, "ultrafeedback_rows": 8},
    "lora": {
        "r": 16,
        "alpha": 32,
        "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    },
    "trl": {"max_length": 384, "per_device_train_batch_size": 8, "num_train_epochs": 1, "learning_rate": 1e-3},
}


def sft_trainer(
    settings: TrainSettings,
    args: SFTConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
) -> SFTTrainer:
    """TRL's SFTTrainer on prompt-completion rows, with a LoRA adapter unless ``finetune: full``."""
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(settings, model, TaskType.CAUSAL_LM),
    )


def build_sft(inputs: StageInputs) -> BuiltStage:
    """SFT on the rows that fit ``trl.max_length``."""
    settings, tokenizer = inputs.settings, inputs.tokenizer
    fits = length_filter(tokenizer, inputs.args.max_length, ("completion",))
    data = sft_rows(settings.data, settings.seed, fits)
    kept = within_length(data, fits)
    trainer = sft_trainer(settings, inputs.args, load_parent(inputs.parent, settings.seed), tokenizer, kept.rows)
    notes = TrainingNotes(rows={"available": len(data.rows), "within_max_length": len(kept.rows)}, split=data.split)
    return BuiltStage(trainer, kept.sources, notes, trained=trained_texts(kept))


METHOD = Method("sft", DEFAULTS, SFTConfig, True, build_sft)
