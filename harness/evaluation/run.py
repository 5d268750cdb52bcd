"""``ftbench run``: plan every checkpoint × precision × task of a spec as requests, then evaluate them, reusing
what is stored.

Planning (``plan.py``) checks everything before any work. Evaluation loads each group of requests once (one
variant, or for vLLM one base with its adapters), here or on a Ray cluster (``cluster.py``); each finished
evaluation is written at once and atomically, so an interrupted run resumes either way. This layer only evaluates:
it returns its records, and the caller decides where else they go (the results store, a tracker).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.events import CachedEvent, DoneEvent, EvaluationEvent, Event, EventSink
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import cached_eval, store_eval, store_run
from ftbench.harness.evaluation.cluster import Cluster, connect_cluster, evaluate_on_cluster
from ftbench.harness.evaluation.groups import Finished, evaluate_here, item_event
from ftbench.harness.evaluation.lock import results_lock
from ftbench.harness.evaluation.plan import PlannedEval, plan_run, resolve_device
from ftbench.harness.evaluation.provenance import collect_provenance
from ftbench.harness.evaluation.spec import RunSpec
from ftbench.harness.evaluation.winrate import Judges

__all__ = [
    "Evaluated",
    "Planned",
    "PlannedEval",
    "RunOutcome",
    "evaluate_planned",
    "plan_run",
    "planned_run",
    "run_spec",
]


class Evaluated(NamedTuple):
    """A spec's evaluations, each stored in the results directory: the records in plan order (reused ones
    included, each as stored, with its digest), which were computed and which reused, on which device."""

    records: list[EvalRecord]
    evaluated: list[str]
    reused: list[str]
    device: str
    started_at: str
    seconds: float


class RunOutcome(NamedTuple):
    """Where a run's results went, its run record, its records, and what was computed versus reused."""

    results_dir: Path
    run: RunRecord
    evaluated: list[str]
    reused: list[str]
    records: list[EvalRecord]
    """Every evaluation the run lists, in its order, as stored."""


def _split_cached(
    plan: list[PlannedEval], out: Path, force: bool, event: EventSink
) -> tuple[list[PlannedEval], dict[str, EvalRecord]]:
    """The requests still to evaluate, and the records of those stored already (announced as cached)."""
    pending: list[PlannedEval] = []
    reused: dict[str, EvalRecord] = {}
    for item in plan:
        record = None if force else cached_eval(out, item.request.key())
        if record is not None:
            reused[record.key] = record
            event(item_event(item, CachedEvent))
        else:
            pending.append(item)
    return pending, reused


def _evaluations(
    spec: RunSpec, pending: list[PlannedEval], cluster: Cluster | None, known: dict[str, EvalRecord], event: EventSink
) -> Iterator[Finished]:
    """The pending evaluations as they finish: on the cluster, or in this process (``known`` holds every record
    of the run so far: the references of judged tasks are read from it)."""
    if cluster is not None:
        return evaluate_on_cluster(pending, known.get, event)
    return evaluate_here(pending, known.get, Judges(device=resolve_device(spec.device), cache_dir=spec.out), event)


class Planned(NamedTuple):
    """A spec's checked plan, the device it runs on, and the cluster that runs it (None: this process)."""

    spec: RunSpec
    plan: list[PlannedEval]
    device: str
    cluster: Cluster | None


@contextmanager
def planned_run(spec: RunSpec) -> Iterator[Planned]:
    """Connect the spec's cluster (if any) and plan the spec, checking every input before any work; the cluster is
    closed after the block.

    Raises:
        FtbenchError: bad input or an unreachable cluster.
    """
    cluster = connect_cluster(spec.cluster, spec.device) if spec.cluster else None
    try:
        device = cluster.device if cluster else resolve_device(spec.device)
        yield Planned(spec, plan_run(spec, device), device, cluster)
    finally:
        if cluster is not None:
            cluster.close()


def evaluate_planned(planned: Planned, force: bool = False, on_event: EventSink | None = None) -> Evaluated:
    """Evaluate a plan into its spec's results directory, storing each record as it finishes (no run record): the
    caller holds the directory's lock and writes the run.

    Raises:
        FtbenchError: an evaluation that failed.
    """
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    spec, plan = planned.spec, planned.plan
    notify = on_event or (lambda event: None)
    positions = {item.request.key(): index for index, item in enumerate(plan, start=1)}

    def event(happened: Event) -> None:
        if isinstance(happened, EvaluationEvent):
            happened = dataclasses.replace(happened, position=positions.get(happened.key, 0), total=len(plan))
        notify(happened)

    pending, known = _split_cached(plan, spec.out, force, event)
    reused = list(known)
    evaluated: list[str] = []
    for finished in _evaluations(spec, pending, planned.cluster, known, event):
        known[finished.record.key] = store_eval(spec.out, finished.record)
        evaluated.append(finished.record.key)
        event(dataclasses.replace(item_event(finished.item, DoneEvent), node=finished.node))
    records = [known[item.request.key()] for item in plan]
    return Evaluated(records, evaluated, reused, planned.device, started_at, time.perf_counter() - started)


def run_spec(spec: RunSpec, force: bool = False, on_event: EventSink | None = None) -> RunOutcome:
    """Evaluate a spec, storing each finished evaluation at once so that an interrupted run resumes, then its run
    record (``run.json``); return the records.

    With ``spec.cluster`` set, the groups run as Ray tasks on that cluster (connected first, so an unreachable
    address fails before any work) and this process stores what they return.

    Args:
        spec: the run.
        force: re-evaluate even when a matching result is stored.
        on_event: called as evaluations start, progress, are found cached, or finish.

    Raises:
        FtbenchError: bad input or an unreachable cluster (before any work), a results directory in use by
            another run, or an evaluation that failed.
    """
    with planned_run(spec) as planned, results_lock(spec.out):
        done = evaluate_planned(planned, force, on_event)
        run = RunRecord(
            name=spec.name,
            spec=spec.model_dump(mode="json"),
            provenance=collect_provenance(done.device),
            evaluations=[record.key for record in done.records],
            reused=done.reused,
            seed=spec.seed,
            started_at=done.started_at,
            wall_seconds=done.seconds,
        )
        stored = store_run(spec.out, run, {record.key: str(record.digest) for record in done.records})
    return RunOutcome(spec.out, stored, done.evaluated, done.reused, done.records)
