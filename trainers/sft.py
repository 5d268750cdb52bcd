"""``ftbench train sft``: supervised fine-tuning with TRL's SFTTrainer on prompt-completion conversations.

The rows are Countdown solver traces and UltraFeedback chosen responses (``trainers.data``). They are
prompt-completion pairs, so TRL's collator labels the prompt and the padding -100 and the loss covers the
assistant's tokens only.
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from trainers.config import TrainSettings, build_trl_config
from trainers.data import data_files, length_filter, sft_rows, within_length
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


def train_sft(settings: TrainSettings, force: bool = False) -> StageResult:
    """Fine-tune the parent on the SFT rows (LoRA merged afterwards, or full) and save the stage.

    Rows longer than ``trl.max_length`` are left out rather than truncated, so every trained answer ends.
    The output is reused when made from the same inputs, unless ``force``.
    """
    clock = Stopwatch()
    parent = parent_checkpoint(settings)
    digest = inputs_hash(settings, parent, "sft", data_files(settings.data))
    existing = None if force else up_to_date(settings, digest)
    if existing is not None:
        return StageResult(settings.output, existing, True)
    with staging(settings.output) as staged:
        args = build_trl_config(SFTConfig, settings, staged.parent / "trainer")
        tokenizer = AutoTokenizer.from_pretrained(str(parent.path))
        fits = length_filter(tokenizer, args.max_length, ("completion",))
        data = sft_rows(settings.data, settings.seed, fits)
        kept = within_length(data, fits)
        trainer = sft_trainer(settings, args, load_causal_lm(parent, settings.seed), tokenizer, kept.rows)
        trainer.train()
        manifest = finish_stage(
            staged,
            trainer,
            tokenizer,
            settings=settings,
            method="sft",
            parent=parent,
            data=kept.sources,
            digest=digest,
            clock=clock,
            training={"rows_available": len(data.rows), "rows_within_max_length": len(kept.rows), "split": data.split},
        )
    return StageResult(settings.output, manifest, False)
