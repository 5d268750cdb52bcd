"""Planted runs for the results store's tests: a pipeline's stages at two precisions, with known flips."""

from __future__ import annotations

import random
from pathlib import Path

from ftbench.harness.core.records import EvalRecord
from ftbench.harness.index.connection import StoreLocation, store_location
from ftbench.harness.index.indexing import add_results
from ftbench.harness.index.schema import opened_store
from ftbench.tasks.registry import recorded_task
from tests.records import make_record, write_results

STAGES = ("initial", "sft", "dpo", "rloo")
ACCURACY = {
    "initial": [1, 0, 0, 0, 1, 0, 1, 0] * 4,
    "sft": [1, 1, 0, 0, 1, 0, 1, 1] * 4,
    "dpo": [1, 1, 1, 0, 1, 1, 1, 1] * 4,
    "rloo": [1, 1, 1, 1, 1, 1, 1, 0] * 4,
}
"""Per-sample accuracy of each stage (32 items)."""
PAYLOAD = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
"""A response no viewer may render as markup."""


def stage_record(stage: str, precision: str, day: int) -> EvalRecord:
    """The planted evaluation of one stage at one precision, created on 2026-01-``day``."""
    scores = list(ACCURACY[stage]) if precision == "fp32" else [1 - v if i % 8 == 0 else v for i, v in
                                                                enumerate(ACCURACY[stage])]  # fmt: skip
    record = make_record(f"{stage}-w", stage, precision, {"accuracy": [float(v) for v in scores]})
    samples = [s.model_copy(update={"response": f"{stage}@{precision} answer {s.doc_id}"}) for s in record.samples]
    if stage == "sft" and precision == "nf4":
        samples[1] = samples[1].model_copy(update={"response": PAYLOAD})
    return record.model_copy(update={"samples": samples, "created_at": f"2026-01-{day:02d}T00:00:00+00:00"})


def pipeline_runs(root: Path) -> list[Path]:
    """One results directory per stage (fp32 and nf4), as a pipeline writes them day by day."""
    return [
        write_results(root / f"run-{stage}", [stage_record(stage, p, day) for p in ("fp32", "nf4")], name=stage)
        for day, stage in enumerate(STAGES, start=1)
    ]


COUNTS = "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM evaluations), (SELECT count(*) FROM samples), " \
    "(SELECT count(*) FROM run_evaluations), (SELECT count(*) FROM metrics)"  # fmt: skip
"""The store's row counts: runs, evaluations, samples, listings, metrics."""


def add_dirs(location: StoreLocation, directories: list[Path]) -> None:
    """Add ``directories`` to the store at ``location`` (created if need be)."""
    with opened_store(location) as store:
        add_results(store, directories, recorded_task)


def add_shuffled(target: str, directories: list[str], seed: int) -> None:
    """Add the directories one by one in a shuffled order (a writer process of the concurrency tests)."""
    order = list(directories)
    random.Random(seed).shuffle(order)
    for directory in order:  # one transaction per directory: the writers interleave
        add_dirs(store_location(target), [Path(directory)])
