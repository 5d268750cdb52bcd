"""The results store at size (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/store.py --evaluations 1000 --samples 1000 [--store postgresql://...]
        [--workers N] [--planted DIR]

Plants ``--evaluations`` evaluations of ``--samples`` samples each (countdown-like 0/1 scores, prompts and responses
of a few hundred characters) as runs of ten evaluations, then times: reading every record through the verifying
loader (``load_run_evals``, what a report does); indexing them all (``ftbench store add``); adding them again
(idempotent); ``history`` of the metric over every evaluation; ``compare`` of two evaluations (the report's paired
test, flips and items). Query times are the median of five, each opening the store as a command does.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.index.comparison import compare_stored
from ftbench.harness.index.connection import store_location
from ftbench.harness.index.history import metric_history
from ftbench.harness.index.indexing import add_results
from ftbench.harness.index.schema import opened_store
from ftbench.tasks.registry import recorded_task
from tests.records import make_record, write_results

PER_RUN = 10
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "at",
    "from",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def planted_record(index: int, samples: int, rng: random.Random) -> EvalRecord:
    """Evaluation ``index``: checkpoint-<step> at fp32 or nf4, ``samples`` scored samples."""
    step, precision = (index // 2 + 1) * 50, ("fp32", "nf4")[index % 2]
    chance = min(0.9, 0.3 + index / 2000)
    scores = [float(rng.random() < chance) for _ in range(samples)]
    record = make_record(f"weights-{index}", f"checkpoint-{step}", precision, {"accuracy": scores})
    texts = [
        s.model_copy(update={"prompt": _text(rng, 40), "response": _text(rng, 25), "target": "42"})
        for s in record.samples
    ]
    created = f"2026-01-{index // 1440 + 1:02d}T{index // 60 % 24:02d}:{index % 60:02d}:00+00:00"
    return record.model_copy(update={"samples": texts, "created_at": created})


def plant(root: Path, evaluations: int, samples: int) -> list[Path]:
    """The planted runs, ``PER_RUN`` evaluations each."""
    rng = random.Random(0)
    runs = []
    for first in range(0, evaluations, PER_RUN):
        records = [planted_record(i, samples, rng) for i in range(first, min(evaluations, first + PER_RUN))]
        runs.append(write_results(root / f"run-{first // PER_RUN:04d}", records, name=f"run-{first // PER_RUN}"))
    return runs


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def median_of(action: Callable[[], Any], times: int = 5) -> float:
    return statistics.median(timed(action)[0] for _ in range(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--workers", type=int, help="processes reading the records (default: one per core)")
    parser.add_argument("--store", help="a postgresql:// URL (default: an SQLite file in the temporary folder)")
    parser.add_argument("--planted", type=Path, help="plant into this folder once and reuse it on later runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftbench-store-bench-") as folder:
        root = Path(folder)
        runs = sorted(args.planted.glob("run-*")) if args.planted else []
        if not runs:
            seconds, runs = timed(lambda: plant(args.planted or root / "results", args.evaluations, args.samples))
            print(
                f"planted {args.evaluations} evaluations x {args.samples} samples in {len(runs)} runs: {seconds:.1f} s"
            )
        read, _ = timed(lambda: [len(load_run_evals(run)) for run in runs])
        print(f"read every record (load_run_evals): {read:.2f} s")
        location = store_location(args.store or root / "ftbench.db")

        def add() -> Any:
            with opened_store(location) as store:
                return add_results(store, runs, recorded_task, args.workers)

        index, summary = timed(add)
        print(f"index them (store add): {index:.2f} s, {index / read:.2f} x the read; {summary}")
        print(f"add them again: {timed(add)[0]:.2f} s")
        if not args.store:
            json_bytes = sum(p.stat().st_size for run in runs for p in (run / "evals").glob("*.json"))
            store_bytes = Path(location.target).stat().st_size
            print(f"JSON records {json_bytes / 2**20:.0f} MiB, store {store_bytes / 2**20:.0f} MiB")

        last = f"checkpoint-{(args.evaluations - 1) // 2 * 50 + 50}@{('fp32', 'nf4')[(args.evaluations - 1) % 2]}"

        def history() -> int:
            with opened_store(location, read_only=True) as store:
                return len(metric_history(store, "countdown", recorded_task))

        def compare() -> int:
            with opened_store(location, read_only=True) as store:
                return len(compare_stored(store, "checkpoint-50@fp32", last, recorded_task, "countdown").items)

        print(f"history over {history()} evaluations: {median_of(history) * 1000:.0f} ms")
        print(f"compare two evaluations ({compare()} paired items): {median_of(compare) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
