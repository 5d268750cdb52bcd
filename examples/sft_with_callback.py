"""Fine-tune with TRL's SFTTrainer directly, and let ftbench evaluate every checkpoint it saves.

The embedded SmolLM2-135M-Instruct (``ftbench base`` writes it to checkpoints/initial) gets a LoRA adapter trained
on ARC-Easy validation questions; FtbenchCallback evaluates the model before step 0 and each saved checkpoint on
ARC-Easy test questions (examples/training-suite.yaml), logs ``ftbench/arc_easy/acc_norm`` and the rest through
the trainer's ``report_to``, gates each checkpoint against the start (examples/training-gate.yaml) and stops
training at the first regression. A few minutes on 2 CPU cores:

    ftbench base
    python examples/sft_with_callback.py [--report-to tensorboard] [--no-callback]
    ftbench report results/examples/sft-callback --out reports/out/sft-callback
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import datasets
import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from ftbench import FtbenchCallback, FtbenchError
from ftbench.tasks.arc.training import sft_rows
from ftbench.tasks.data import DataOptions

HERE = Path(__file__).resolve().parent
LAYERS = list(range(15, 30))
"""The adapted layers: the upper half of SmolLM2-135M's 30, so that a CPU step stays short."""


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("checkpoints/initial"), help="the model to fine-tune")
    parser.add_argument("--output", type=Path, default=Path("checkpoints/examples/sft-callback"))
    parser.add_argument("--results", type=Path, default=Path("results/examples/sft-callback"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--save-steps", type=int, default=2)
    parser.add_argument("--report-to", default="none", help="tensorboard, mlflow, wandb, trackio, ... or none")
    parser.add_argument("--no-callback", action="store_true", help="train without ftbench, to compare the time")
    parser.add_argument(
        "--sequential", action="store_true", help="evaluate each checkpoint sequentially (training-gate-sequential)"
    )
    parser.add_argument("--keep-best", type=Path, default=None, help="keep a link here to the best checkpoint so far")
    return parser.parse_args()


def main() -> int:
    """Train, evaluating every save; exit 2 with one line on bad input."""
    options = _arguments()
    if not (options.model / "config.json").is_file():
        print(f"error: {options.model} is not a model directory; run `ftbench base` first", file=sys.stderr)
        return 2
    rows = sft_rows("ARC-Easy", "validation", DataOptions(), count=options.steps * 4, seed=0)
    args = SFTConfig(
        output_dir=str(options.output),
        max_steps=options.steps,
        save_steps=options.save_steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        max_length=256,
        report_to=options.report_to,
        seed=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),  # bf16 autocast is slow on CPUs without bf16 units
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(options.model),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(options.model),
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], layers_to_transform=LAYERS),
    )
    if not options.no_callback:
        try:
            callback = FtbenchCallback(
                trainer,
                HERE / "training-suite.yaml",
                options.results,
                baseline="initial",
                policy=HERE / ("training-gate-sequential.yaml" if options.sequential else "training-gate.yaml"),
                stop_on_regression=True,
                keep_best=options.keep_best,
            )
        except FtbenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        trainer.add_callback(callback)
    started = time.perf_counter()
    trainer.train()
    print(f"trained {trainer.state.global_step} steps in {time.perf_counter() - started:.1f} s")
    if not options.no_callback:
        curve = callback.evaluator.curve
        for step in curve.steps:
            print(f"{step.name}: evaluated in {step.eval_seconds:.1f} s; gate {step.outcome}: {step.reason}")
        print(f"last good checkpoint: {curve.last_good}; results: {options.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
