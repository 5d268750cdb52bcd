"""``ftbench train reward``: a reward model on UltraFeedback preference pairs with TRL's RewardTrainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import datasets
import torch
from peft import TaskType
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

from harness.checkpoints import Manifest
from harness.judges import JudgeSpec, RewardModelJudge, ScoreCache
from tasks.ultrafeedback.dataset import evaluation_items
from trainers.config import TrainSettings, build_trl_config
from trainers.data import data_files, length_filter, preference_rows, within_length
from trainers.stage import (
    Stopwatch,
    final_loss,
    inputs_hash,
    lora_config,
    merged_model,
    parent_checkpoint,
    save_stage,
    staging,
    up_to_date,
)

DEFAULTS: dict[str, Any] = {
    "output": "checkpoints/reward",
    "stage": "reward",
    "data": {"ultrafeedback_rows": 24, "eval_rows": 24},
    "lora": {"layers": [24, 25, 26, 27, 28, 29]},
    "trl": {"max_length": 320, "per_device_train_batch_size": 8, "num_train_epochs": 1, "learning_rate": 3e-4},
}


class RewardResult(NamedTuple):
    """Where the reward model went, its manifest, its held-out pairwise accuracy, and whether it was reused."""

    path: Path
    manifest: Manifest
    heldout_accuracy: float
    reused: bool


def pairwise_accuracy(judge: RewardModelJudge, items: list[dict[str, Any]]) -> float:
    """Share of held-out pairs where the chosen response gets the higher reward (0-1)."""
    cache = ScoreCache(None)
    prompts = [item["prompt"] for item in items]
    chosen = judge.rewards(prompts, [item["chosen"] for item in items], cache)
    rejected = judge.rewards(prompts, [item["rejected"] for item in items], cache)
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(items)


def train_reward(settings: TrainSettings, force: bool = False) -> RewardResult:
    """Train a reward model on the parent checkpoint (a linear score head, LoRA or full) and save it merged.

    TRL drops pairs longer than ``trl.max_length``; they are left out here first, so ``data.ultrafeedback_rows`` counts
    pairs that are really trained on. The output is reused when made from the same inputs, unless ``force``.
    """
    clock = Stopwatch()
    parent = parent_checkpoint(settings)
    digest = inputs_hash(settings, parent, "reward", data_files(settings.data))
    existing = None if force else up_to_date(settings, digest)
    if existing is not None:
        return RewardResult(settings.output, existing, existing.training["heldout_pairwise_accuracy"], True)
    tokenizer = AutoTokenizer.from_pretrained(str(parent.path))
    limit = int(settings.trl.get("max_length", DEFAULTS["trl"]["max_length"]))
    fits = length_filter(tokenizer, limit, ("chosen", "rejected"))
    data = within_length(preference_rows(settings.data, settings.seed, fits), fits)
    dataset = datasets.Dataset.from_list(
        [{"chosen": row["prompt"] + row["chosen"], "rejected": row["prompt"] + row["rejected"]} for row in data.rows]
    )
    torch.manual_seed(settings.seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(parent.path), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft_config = lora_config(settings, model, TaskType.SEQ_CLS, modules_to_save=["score"])
    with staging(settings.output) as staged:
        args = build_trl_config(RewardConfig, settings, staged.parent / "trainer")
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
        )
        trainer.train()
        trained = merged_model(trainer.model)
        judge = RewardModelJudge(JudgeSpec(max_length=512), "training", trained, tokenizer)
        heldout = evaluation_items(
            "auto" if settings.data.source == "generated" else settings.data.source, settings.data.data_dir
        )
        heldout = heldout[: settings.data.eval_rows]
        accuracy = pairwise_accuracy(judge, heldout)
        manifest = save_stage(
            staged,
            trained,
            tokenizer,
            settings=settings,
            method="reward",
            parent=parent,
            data=data.sources,
            hyperparameters=settings.model_dump(mode="json") | {"trl_resolved": args.to_dict()},
            training={
                "inputs_hash": digest,
                "steps": trainer.state.global_step,
                "final_loss": final_loss(trainer.state.log_history),
                "wall_seconds": clock.seconds,
                "pairs": len(data.rows),
                "split": data.split,
                "heldout_pairwise_accuracy": accuracy,
                "heldout_pairs": len(heldout),
                "heldout_split": "test_prefs (chosen vs rejected)",
            },
        )
    return RewardResult(settings.output, manifest, accuracy, False)
