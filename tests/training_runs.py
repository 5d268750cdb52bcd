"""Short seeded TRL runs on the tiny model, and a suite that evaluates a checkpoint in about two seconds, for the
tests of ``FtbenchCallback`` and ``ftbench watch``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

SHORT_TEXTS = (
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Paris is the capital city of France and lies on the Seine.",
    "Plants turn sunlight into sugar through photosynthesis in their leaves.",
    "A week has seven days and a year has twelve months.",
    "The moon goes around the earth about once a month.",
    "Bees make honey from the nectar of flowers in spring.",
    "Reading a book every night helps many people sleep well.",
)
"""Eight short documents: the perplexity task on them runs in about a second on the tiny model."""


def short_documents(folder: Path) -> Path:
    """A data folder whose UltraFeedback test file holds ``SHORT_TEXTS`` as chosen responses (the perplexity
    task's ``data_dir``)."""
    path = folder / "ultrafeedback" / "test_prefs_500.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": f"p{i}", "prompt_id": str(i), "chosen": t, "rejected": "-"} for i, t in enumerate(SHORT_TEXTS)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def perplexity_suite(data_dir: Path, precisions: tuple[str, ...] = ("fp32",)) -> dict[str, Any]:
    """A suite: perplexity on the eight short documents, on the CPU."""
    task = {"name": "perplexity_ultrafeedback", "options": {"data_dir": str(data_dir), "source": "local"}}
    return {"name": "watched", "precisions": list(precisions), "tasks": [task], "device": "cpu", "batch_size": 8}


ROWS = [{"prompt": f"Question: what is {i} plus {i}?\nAnswer:", "completion": f" {2 * i}"} for i in range(16)]


def sft_trainer(
    model_dir: Path,
    output_dir: Path,
    *,
    learning_rate: float = 1e-3,
    max_steps: int = 2,
    save_steps: int = 2,
    report_to: list[str] | None = None,
    lora: bool = False,
) -> SFTTrainer:
    """TRL's SFTTrainer on the tiny model, seeded, on the CPU, with attention dropout so that training draws from
    torch's global generator at every step (a disturbed generator changes the weights)."""
    args = SFTConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        save_steps=save_steps,
        per_device_train_batch_size=4,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        max_length=64,
        logging_steps=1,
        report_to=report_to or [],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, attention_dropout=0.1)
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if lora else None
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(ROWS),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft_config,
    )


def weights(trainer: SFTTrainer) -> dict[str, torch.Tensor]:
    """The trained model's parameters, detached copies."""
    return {name: tensor.detach().clone() for name, tensor in trainer.model.state_dict().items()}
