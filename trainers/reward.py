"""``ftbench train reward``: a reward model on UltraFeedback preference pairs with TRL's RewardTrainer.

The model is the parent with a linear score head (LoRA or full, merged on save). TRL drops pairs longer than
``trl.max_length`` silently; they are left out here first, so ``data.ultrafeedback_rows`` counts pairs that are
really trained on. After training, its pairwise accuracy on held-out ``test_prefs`` pairs goes in the manifest.
"""

from __future__ import annotations

from typing import Any

import datasets
from peft import TaskType
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from trl import RewardConfig, RewardTrainer

from ftbench.harness.core.checkpoints import TrainingNotes
from ftbench.harness.evaluation.judges import RewardModelJudge, ScoreCache
from ftbench.tasks.judging import JudgeSpec
from ftbench.trainers.config import DataSettings
from ftbench.trainers.row_texts import trained_texts
from ftbench.trainers.stage import BuiltStage, Method, StageInputs, load_parent, lora_config
from ftbench.trainers.training_data import length_filter, preference_rows, within_length

DEFAULTS: dict[str, Any] = {
    "output": "checkpoints/reward",
    "stage": "reward",
    "data": {"ultrafeedback_rows": 24, "eval_rows": 24},
    "lora": {"layers": [24, 25, 26, 27, 28, 29]},
    "trl": {"max_length": 320, "per_device_train_batch_size": 8, "num_train_epochs": 1, "learning_rate": 3e-4},
}


def pairwise_accuracy(judge: RewardModelJudge, items: list[dict[str, Any]]) -> float:
    """Share of held-out pairs where the chosen response gets the higher reward (0-1)."""
    cache = ScoreCache(None)
    prompts = [item["prompt"] for item in items]
    chosen = judge.rewards(prompts, [item["chosen"] for item in items], cache)
    rejected = judge.rewards(prompts, [item["rejected"] for item in items], cache)
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(items)


def heldout_items(data: DataSettings) -> list[dict[str, Any]]:
    """The first ``data.eval_rows`` evaluation items (prompt, chosen, rejected) of the task whose offline preference
    pairs are trained on (UltraFeedback's ``test_prefs``)."""
    draw = next(draw for draw in data.dataset_draws() if draw.side.preference is not None)
    return draw.task.items(draw.options)[: data.eval_rows]


def build_reward(inputs: StageInputs) -> BuiltStage:
    """A reward model on the preference pairs that fit ``trl.max_length``; held-out accuracy after training."""
    settings, tokenizer = inputs.settings, inputs.tokenizer
    fits = length_filter(tokenizer, inputs.args.max_length, ("chosen", "rejected"))
    data = within_length(preference_rows(settings.data, settings.seed, fits), fits)
    dataset = datasets.Dataset.from_list(
        [{"chosen": row["prompt"] + row["chosen"], "rejected": row["prompt"] + row["rejected"]} for row in data.rows]
    )
    model = load_parent(inputs.parent, settings.seed, AutoModelForSequenceClassification, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft_config = lora_config(settings, model, TaskType.SEQ_CLS, modules_to_save=["score"])
    trainer = RewardTrainer(
        model=model, args=inputs.args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )

    def heldout(trainer: Any, merged: PreTrainedModel, notes: TrainingNotes) -> TrainingNotes:
        judge = RewardModelJudge(JudgeSpec(max_length=512), "training", merged, tokenizer)
        items = heldout_items(settings.data)
        accuracy = pairwise_accuracy(judge, items)
        return notes.model_copy(
            update={
                "heldout": {"pairwise_accuracy": accuracy, "pairs": float(len(items))},
                "heldout_split": "test_prefs (chosen vs rejected)",
            }
        )

    notes = TrainingNotes(rows={"pairs": len(data.rows)}, split=data.split)
    return BuiltStage(trainer, data.sources, notes, after=heldout, trained=trained_texts(data))


METHOD = Method("reward", DEFAULTS, RewardConfig, False, build_reward)
