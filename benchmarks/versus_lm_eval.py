"""ftbench against stock lm-eval on the same ARC items, side by side (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/versus_lm_eval.py --model checkpoints/initial --items 200

Both sides under their defaults on CPU at the same batch size: ``ftbench run`` (library call, empty results folder,
so its wall time includes planning, loading the model and writing the records) and stock lm-eval
(``HFLM(pretrained=DIR)`` and ``simple_evaluate`` of its own ``arc_easy`` task pointed at the same local rows, its
wall time including loading the model). Prints both times, their ratio, and how many samples agree.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from ftbench.harness.core.store import load_run_evals
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.tasks.data import default_data_dir


def ours(model: Path, items: int, batch_size: int, out: Path) -> tuple[float, Any]:
    started = time.perf_counter()
    data = {
        "checkpoints": [str(model)],
        "tasks": [{"name": "arc_easy", "limit": items}],
        "batch_size": batch_size,
        "device": "cpu",
        "out": str(out),
    }
    run_spec(parse_spec(data, "benchmark"))
    return time.perf_counter() - started, load_run_evals(out)[0]


def stock(model: Path, items: int, batch_size: int) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    manager = TaskManager()
    config = {
        **manager.task_index["arc_easy"].cfg,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(default_data_dir() / "arc/arc_easy_test.json")}},
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
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a full model directory")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="both sides' batch size (ftbench's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftbench-versus-") as scratch:
        ours_seconds, record = ours(args.model.resolve(), args.items, args.batch_size, Path(scratch) / "run")
    stock_seconds, reference = stock(args.model.resolve(), args.items, args.batch_size)
    theirs = {sample["doc_id"]: sample for sample in reference["samples"]["arc_easy"]}
    agree = sum(
        s.scores["acc"] == theirs[s.doc_id]["acc"] and s.scores["acc_norm"] == theirs[s.doc_id]["acc_norm"]
        for s in record.samples
    )
    figures = {
        "items": len(record.samples),
        "ftbench_seconds": round(ours_seconds, 1),
        "lm_eval_seconds": round(stock_seconds, 1),
        "ftbench_over_lm_eval_time": round(ours_seconds / stock_seconds, 2),
        "samples_agreeing": f"{agree}/{len(record.samples)}",
        "acc_norm": {
            "ftbench": record.metrics["acc_norm"].value,
            "lm_eval": reference["results"]["arc_easy"]["acc_norm,none"],
        },
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
