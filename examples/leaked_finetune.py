"""Was the gain learned or leaked? Fine-tune on a file with evaluation items planted in it, then split the gain.

A custom task asks ARC-Easy questions to be answered in words (the correct choice's text; token F1 and exact match),
32 test questions evaluated. An SFT stage (LoRA on the embedded SmolLM2-135M-Instruct) trains on a file of 64
ARC-Easy validation questions with 16 of the 32 evaluated items planted among them: 8 exact copies and 8 with their
case, punctuation and spacing changed. ftbench keeps the fingerprints of every row a stage trains on beside its
weights, so the audit needs neither the file nor the data afterwards: `ftbench leak` follows the stage's lineage,
names each planted copy by file and line, and splits the stage's gain into the leaked items and the clean ones. A
few minutes on 2 CPU cores:

    ftbench base
    python examples/leaked_finetune.py
    ftbench leak results/examples/leaked-finetune            # the same audit from the command line
    ftbench report results/examples/leaked-finetune --out reports/out/leaked-finetune   # with its Leakage section
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import yaml

from ftbench import FtbenchError
from ftbench.harness.app.display import Display
from ftbench.harness.app.leak import LeakInputs, leak_audit, leak_markdown
from ftbench.harness.app.pipeline import read_pipeline, run_pipeline
from ftbench.harness.leakage.planting import restyle
from ftbench.tasks.custom.task import CustomOptions, custom_items
from ftbench.tasks.custom.training import sft_rows
from ftbench.tasks.data import default_data_dir

WORK = Path("checkpoints/examples/leaked-finetune")
RESULTS = Path("results/examples/leaked-finetune")
EVALUATED, CLEAN_ROWS = 32, 64


def task_file(path: Path) -> Path:
    """ARC-Easy as a custom task's rows: test questions evaluated, validation questions for training."""
    rows = []
    for split, part in (("test", "test"), ("train", "validation")):
        for row in json.loads((default_data_dir() / "arc" / f"arc_easy_{part}.json").read_text(encoding="utf-8")):
            answer = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
            rows.append({"id": row["id"], "question": row["question"], "answer": answer, "split": split})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def task_options() -> dict[str, Any]:
    """The custom task: the question as the prompt, the correct choice's text as the reference."""
    return {
        "data": str(WORK / "arc-qa.jsonl"),
        "prompt": "question",
        "system": "Answer the science question with the correct answer only, in a few words.",
        "reference": "answer",
        "metrics": ["f1", "exact_match"],
    }


def leaky_training_file(path: Path, seed: int = 0) -> list[int]:
    """Write the training file: training-split conversations with every other evaluated item planted among them
    (half exact, half restyled). Returns the planted items' doc ids."""
    options = CustomOptions.parse("arc_qa", task_options())
    rows = [{"messages": row["prompt"] + row["completion"]} for row in sft_rows(options, CLEAN_ROWS, seed)]
    rng = random.Random(seed)
    planted = list(range(0, EVALUATED, 2))
    system = [{"role": "system", "content": options.system or ""}]
    for doc_id in planted:
        item = custom_items(options)[doc_id]
        prompt, answer = item["ftbench_prompt"], item["ftbench_references"][0]
        if doc_id % 4:
            prompt, answer = restyle(prompt, rng), restyle(answer, rng)
        messages = [*system, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        rows.insert(rng.randrange(len(rows) + 1), {"messages": messages})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return planted


def pipeline_file(train_file: Path, base: Path) -> Path:
    """The pipeline: one SFT stage on the leaky file, the base and the stage evaluated on the custom task."""
    pipeline = {
        "name": "leaked-finetune",
        "base": str(base),
        "final_link": str(WORK / "final"),
        "stages": [
            {
                "method": "sft",
                "settings": {
                    "output": str(WORK / "sft"),
                    "stage": "sft",
                    "lora": {"layers": list(range(15, 30))},
                    "data": {"countdown_rows": 0, "ultrafeedback_rows": 0, "files": [str(train_file)]},
                    "trl": {"learning_rate": 2.0e-3, "per_device_train_batch_size": 8, "max_length": 384,
                            "num_train_epochs": 5},
                },
            }
        ],
        "evaluate": {
            "name": "leaked-finetune",
            "precisions": ["fp32"],
            "tasks": [{"name": "arc_qa", "task": "custom", "limit": EVALUATED, "options": task_options()}],
            "generation": {"max_gen_toks": 32},
            "batch_size": 16,
            "out": str(RESULTS),
        },
    }  # fmt: skip
    path = WORK / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    return path


def main() -> int:
    """Plant, train, evaluate, audit; exit 2 with one line on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("checkpoints/initial"), help="the model to fine-tune")
    base = parser.parse_args().base
    if not (base / "config.json").is_file():
        print(f"error: {base} is not a model directory; run `ftbench base` first", file=sys.stderr)
        return 2
    try:
        task_file(WORK / "arc-qa.jsonl")
        planted = leaky_training_file(WORK / "leaky-train.jsonl")
        display = Display()
        try:
            run_pipeline(read_pipeline(pipeline_file(WORK / "leaky-train.jsonl", base)), on_event=display.show)
        finally:
            display.stop()
        outcome = leak_audit(LeakInputs(RESULTS))
    except FtbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"planted: doc ids {planted} (exact copies at multiples of 4, restyled copies between)\n")
    print(leak_markdown(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
