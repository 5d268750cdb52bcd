"""``ftbench run``: plan every checkpoint × precision × task of a spec as requests, then evaluate them, reusing
what is stored.

Planning (``plan.py``) checks everything before any work. Evaluation loads each group of requests once (one
variant, or for vLLM one base with its adapters), here or on a Ray cluster (``cluster.py``); this module stores
each finished evaluation at once and atomically, so an interrupted run resumes either way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.events import Event, EventKind, EventSink
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import cached_eval, save_eval, save_run
from ftbench.harness.evaluation.cluster import Cluster, connect_cluster, evaluate_on_cluster
from ftbench.harness.evaluation.groups import Finished, evaluate_here, item_event
from ftbench.harness.evaluation.lock import results_lock
from ftbench.harness.evaluation.plan import PlannedEval, plan_run, resolve_device
from ftbench.harness.evaluation.provenance import collect_provenance
from ftbench.harness.evaluation.spec import RunSpec
from ftbench.harness.evaluation.winrate import Judges
from ftbench.harness.index.indexing import run_indexer

__all__ = ["PlannedEval", "RunOutcome", "plan_run", "run_spec"]


class RunOutcome(NamedTuple):
    """Where a run's results went and what was computed versus reused."""

    results_dir: Path
    run: RunRecord
    evaluated: list[str]
    reused: list[str]


def _split_cached(
    plan: list[PlannedEval], out: Path, force: bool, event: EventSink
) -> tuple[list[PlannedEval], list[str]]:
    """The requests still to evaluate, and the keys of those stored already (announced as ``cached``)."""
    pending: list[PlannedEval] = []
    reused: list[str] = []
    for item in plan:
        if not force and cached_eval(out, item.request.key()) is not None:
            reused.append(item.request.key())
            event(item_event(item, EventKind.CACHED))
        else:
            pending.append(item)
    return pending, reused


def _evaluations(
    spec: RunSpec, pending: list[PlannedEval], cluster: Cluster | None, event: EventSink
) -> Iterator[Finished]:
    """The pending evaluations as they finish: on the cluster, or in this process."""
    out = spec.out

    def stored(key: str) -> EvalRecord | None:
        return cached_eval(out, key)

    if cluster is not None:
        return evaluate_on_cluster(pending, stored, event)
    return evaluate_here(pending, stored, Judges(device=resolve_device(spec.device), cache_dir=out), event)


def run_spec(spec: RunSpec, force: bool = False, on_event: EventSink | None = None) -> RunOutcome:
    """Evaluate a spec, storing each finished evaluation at once so that an interrupted run resumes.

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
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    cluster = connect_cluster(spec.cluster, spec.device) if spec.cluster else None
    try:
        device = cluster.device if cluster else resolve_device(spec.device)
        plan = plan_run(spec, device)
        add_to_store = run_indexer(spec.out)  # the results store: checked now, added to once run.json is stored
        notify = on_event or (lambda event: None)
        positions = {item.request.key(): index for index, item in enumerate(plan, start=1)}

        def event(happened: Event) -> None:
            notify(happened._replace(position=positions.get(happened.key, 0), total=len(plan)))

        evaluated: list[str] = []
        with results_lock(spec.out):
            pending, reused = _split_cached(plan, spec.out, force, event)
            for finished in _evaluations(spec, pending, cluster, event):
                save_eval(spec.out, finished.record)
                evaluated.append(finished.record.key)
                event(item_event(finished.item, EventKind.DONE)._replace(node=finished.node))
            run = RunRecord(
                name=spec.name,
                spec=spec.model_dump(mode="json"),
                provenance=collect_provenance(device),
                evaluations=[item.request.key() for item in plan],
                reused=reused,
                seed=spec.seed,
                started_at=started_at,
                wall_seconds=time.perf_counter() - started,
            )
            save_run(spec.out, run)
            add_to_store()
    finally:
        if cluster is not None:
            cluster.close()
    return RunOutcome(spec.out, run, evaluated, reused)
