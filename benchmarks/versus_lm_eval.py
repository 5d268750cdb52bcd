"""ftbench against stock lm-eval, and against its own llama.cpp engine without sharing, on the same ARC items side
by side (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/versus_lm_eval.py --model checkpoints/initial --items 200

For each task (ARC-Easy, ARC-Challenge) and variant, at the same batch size on CPU:

- ``fp32``: ``ftbench run`` (library call, empty results folder, so its wall time includes planning, loading the
  model and writing the records; shared contexts computed once) against stock lm-eval (``HFLM(pretrained=DIR)``
  and ``simple_evaluate`` of its own task pointed at the same local rows, its wall time including loading the
  model).
- ``gguf-q8_0``: ``ftbench run`` at precision gguf-q8_0 (the llama.cpp engine, shared contexts decoded once)
  against the same engine with sharing off (``LlamaCppLM(share_prefix=False)``, loaded and evaluated as a run
  does, without writing records). The file is exported once before either side is timed; each side probes
  llama.cpp's weight layouts itself (``extra_buffers_run``), as a fresh process would.

Prints one row per task × variant: both times, their ratio, how many items agree on acc and acc_norm, and acc_norm.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.engines import driver
from ftbench.harness.engines.gguf import default_cache_dir, export_gguf
from ftbench.harness.engines.llamacpp_lib import extra_buffers_run
from ftbench.harness.evaluation.lmeval import evaluate_task
from ftbench.harness.evaluation.plan import plan_run
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.tasks.data import default_data_dir

LOCAL_ROWS = {"arc_easy": "arc/arc_easy_test.json", "arc_challenge": "arc/arc_challenge_test.jsonl"}
VARIANTS = ("fp32", "gguf-q8_0")


class Side(NamedTuple):
    """One side's wall time and per-item (acc, acc_norm), by doc id."""

    seconds: float
    scores: dict[int, tuple[float, float]]
    acc_norm: float


def spec_data(model: Path, task: str, precision: str, items: int, batch_size: int, out: Path) -> dict[str, Any]:
    return {
        "checkpoints": [str(model)],
        "precisions": [precision],
        "tasks": [{"name": task, "limit": items}],
        "batch_size": batch_size,
        "device": "cpu",
        "out": str(out),
    }


def ours(model: Path, task: str, precision: str, items: int, batch_size: int) -> Side:
    with tempfile.TemporaryDirectory(prefix="ftbench-versus-") as scratch:
        started = time.perf_counter()
        run_spec(parse_spec(spec_data(model, task, precision, items, batch_size, Path(scratch) / "run"), "benchmark"))
        seconds = time.perf_counter() - started
        record = load_run_evals(Path(scratch) / "run")[0]
    scores = {s.doc_id: (s.scores["acc"], s.scores["acc_norm"]) for s in record.samples}
    return Side(seconds, scores, record.metrics["acc_norm"].value)


def stock(model: Path, task: str, items: int, batch_size: int) -> Side:
    started = time.perf_counter()
    manager = TaskManager()
    config = {
        **manager.task_index[task].cfg,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(default_data_dir() / LOCAL_ROWS[task])}},
        "training_split": None,
        "validation_split": None,
        "test_split": "test",
    }
    config.pop("tag", None)
    lm = HFLM(pretrained=str(model), device="cpu", batch_size=batch_size)
    result = simple_evaluate(
        model=lm, tasks=[config], task_manager=manager, limit=items, bootstrap_iters=0, log_samples=True
    )
    assert result is not None
    seconds = time.perf_counter() - started
    scores = {s["doc_id"]: (float(s["acc"]), float(s["acc_norm"])) for s in result["samples"][task]}
    return Side(seconds, scores, float(result["results"][task]["acc_norm,none"]))


def llamacpp_unshared(model: Path, task: str, items: int, batch_size: int) -> Side:
    """The llama.cpp engine with sharing off, loaded and evaluated as a run does (no records written)."""
    started = time.perf_counter()
    (item,) = plan_run(parse_spec(spec_data(model, task, "gguf-q8_0", items, batch_size, Path("unused")), "benchmark"))
    session = driver(item.request.engine).open([item])
    try:
        lm: Any = session.model_for(item).lm
        lm.share_prefix = False
        result = evaluate_task(lm, item.request, item.task, item.options)
    finally:
        session.close()
    seconds = time.perf_counter() - started
    scores = {s.doc_id: (s.scores["acc"], s.scores["acc_norm"]) for s in result.samples}
    return Side(seconds, scores, result.metrics["acc_norm"][0])


def compare(variant: str, task: str, mine: Side, theirs: Side) -> dict[str, Any]:
    agree = sum(mine.scores[doc] == theirs.scores.get(doc) for doc in mine.scores)
    return {
        "variant": variant,
        "task": task,
        "items": len(mine.scores),
        "baseline": "stock lm-eval (HFLM)" if variant == "fp32" else "llama.cpp engine, sharing off",
        "ftbench_seconds": round(mine.seconds, 1),
        "baseline_seconds": round(theirs.seconds, 1),
        "ftbench_over_baseline_time": round(mine.seconds / theirs.seconds, 2),
        "items_agreeing": f"{agree}/{len(mine.scores)}",
        "acc_norm": {"ftbench": mine.acc_norm, "baseline": theirs.acc_norm},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a full model directory")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="both sides' batch size (ftbench's default)")
    parser.add_argument("--tasks", default="arc_easy,arc_challenge", help=f"comma-separated, of {sorted(LOCAL_ROWS)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    args = parser.parse_args()
    model = args.model.resolve()
    variants = args.variants.split(",")
    if "gguf-q8_0" in variants:  # exported once, untimed: both sides read the same file
        checkpoint = resolve_checkpoint(model)
        export_gguf(checkpoint, "q8_0", default_cache_dir(checkpoint))
    for variant in variants:
        for task in args.tasks.split(","):
            extra_buffers_run.cache_clear()  # each side probes llama.cpp's weight layouts afresh, as a new process
            mine = ours(model, task, variant, args.items, args.batch_size)
            extra_buffers_run.cache_clear()
            if variant == "fp32":
                theirs = stock(model, task, args.items, args.batch_size)
            else:
                theirs = llamacpp_unshared(model, task, args.items, args.batch_size)
            print(json.dumps(compare(variant, task, mine, theirs)), flush=True)


if __name__ == "__main__":
    main()
