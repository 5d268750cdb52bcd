"""Items streamed to a decision: a plan cut into chunks of its items in a seeded order, evaluated one chunk after
another on one engine load per variant for as long as the caller still wants them, and the chunks evaluated so
far assembled into one record per evaluation.

Each chunk is a request of its own (``EvalRequest.order``), stored as it finishes: a run killed midway resumes
from the stored chunks, in the same order, and reaches the same records.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from ftbench.harness.compare.sequential_plan import SequentialPlan, SequentialState
from ftbench.harness.compare.statistics import bootstrap_stderr
from ftbench.harness.core.events import EvaluatingEvent, EventSink, LoadingEvent, ProgressEvent
from ftbench.harness.core.records import EvalRecord, MetricValue, Performance, SampleRecord
from ftbench.harness.core.request import ItemOrder
from ftbench.harness.core.store import cached_eval, store_eval
from ftbench.harness.engines import driver
from ftbench.harness.engines.session import PlannedEval, Session
from ftbench.harness.evaluation.groups import item_event, session_groups
from ftbench.harness.evaluation.outcome import Progress, evaluate_request
from ftbench.harness.evaluation.run import Planned
from ftbench.harness.evaluation.winrate import Judges
from ftbench.tasks.base import Task, TaskOf

CHUNK_NOTE = "assembled from {count} chunks of a sequential evaluation, in a seeded order (seed {seed})"


def chunked(plan: Sequence[PlannedEval], seed: int, budget: int, chunk: int) -> list[PlannedEval]:
    """Each planned evaluation cut into chunks of ``chunk`` items of a seeded order, up to ``budget`` items (or its
    selection, if fewer), chunk after chunk: every evaluation's first chunk, then every second, and so on."""
    chunks: list[PlannedEval] = []
    starts = range(0, budget, chunk)
    for start in starts:
        for item in plan:
            stop = min(start + chunk, budget, item.items)
            if start >= stop:
                continue
            order = ItemOrder(seed=seed, start=start, stop=stop)
            request = item.request.model_copy(update={"order": order})
            doc_ids = tuple(order.positions(item.items))
            chunks.append(replace(item, request=request, doc_ids=doc_ids, items=len(doc_ids)))
    return chunks


def stream_chunks(
    planned: Planned, chunks: Sequence[PlannedEval], wanted: Callable[[PlannedEval], bool], on_event: EventSink
) -> Iterator[tuple[PlannedEval, EvalRecord]]:
    """Evaluate ``chunks`` in order while ``wanted`` says so (asked for each chunk just before it, so the caller
    decides as records arrive), one engine load per variant, opened only when a chunk is not stored yet; each
    record is stored as it finishes. The caller holds the results directory's lock."""
    out = planned.spec.out
    judges = Judges(device=planned.device, cache_dir=out)
    known: dict[str, EvalRecord] = {}
    for group in session_groups(list(chunks)):
        session: Session | None = None
        try:
            for item in group:
                if not wanted(item):
                    continue
                record = cached_eval(out, item.request.key())
                if record is None:
                    if session is None:
                        on_event(item_event(item, LoadingEvent))
                        session = driver(item.request.engine).open(group)
                    on_event(item_event(item, EvaluatingEvent))
                    loaded = session.model_for(item)
                    progress = Progress(loaded.count_tokens, item_event(item, ProgressEvent), on_event)
                    record = store_eval(out, evaluate_request(item, loaded, judges, known.get, progress))
                known[record.key] = record
                yield item, record
        finally:
            if session is not None:
                session.close()


def _metric(task: Task, name: str, value: MetricValue, samples: list[SampleRecord], seed: int) -> MetricValue | None:
    info = task.metrics.get(name)
    if info is None:
        return None
    if info.corpus is not None:
        stderr = bootstrap_stderr(info.corpus, samples, 200, seed)
        return value.model_copy(update={"value": info.corpus(samples), "stderr": stderr, "n": len(samples)})
    key = info.sample_score or name
    scores = [s.scores[key] for s in samples if key in s.scores]
    if len(scores) != len(samples) or not scores:
        return None
    stderr = statistics.stdev(scores) / len(scores) ** 0.5 if len(scores) > 1 else None
    return value.model_copy(update={"value": statistics.fmean(scores), "stderr": stderr, "n": len(scores)})


def merge_chunks(task: Task, chunks: Sequence[EvalRecord]) -> EvalRecord:
    """One record of the items a sequential evaluation evaluated so far: the chunks' samples in evaluated order,
    each metric recomputed from them as the task computes it (a mean of per-item scores, or the corpus metric), the
    request the one of all those items in the same order. The variant's notes say how it was assembled."""
    first, last = chunks[0], chunks[-1]
    order = first.request.order
    assert order is not None and last.request.order is not None
    samples = [sample for record in chunks for sample in record.samples]
    request = first.request.model_copy(update={"order": ItemOrder(seed=order.seed, start=0, stop=len(samples))})
    metrics = {n: m for n, v in first.metrics.items() if (m := _metric(task, n, v, samples, request.seed)) is not None}
    wall = sum(r.performance.wall_seconds for r in chunks)
    tokens = sum(r.performance.generated_tokens for r in chunks)
    performance = Performance(
        wall_seconds=wall,
        generated_tokens=tokens,
        tokens_per_second=tokens / wall if first.performance.tokens_per_second is not None and wall else None,
        peak_memory_bytes=max(r.performance.peak_memory_bytes for r in chunks),
        memory_measure=first.performance.memory_measure,
    )
    note = CHUNK_NOTE.format(count=len(chunks), seed=order.seed)
    variant = first.variant.model_copy(update={"notes": [*first.variant.notes, note]})
    return EvalRecord(
        key=request.key(),
        request=request,
        variant=variant,
        task=first.task,
        metrics=metrics,
        performance=performance,
        samples=samples,
        created_at=last.created_at,
    )


def evaluate_sequentially(planned: Planned, plan: SequentialPlan, on_event: EventSink) -> SequentialState:
    """Stream a planned run's chunks (in ``plan``'s seeded order) to the sequential gate's decision: each chunk
    judged as it arrives, every evaluation stopped once its gated metrics are decided or its budget spent. The
    caller holds the results directory's lock."""
    state = SequentialState(plan)
    chunks = chunked(planned.plan, plan.seed, max(plan.budgets.values()), plan.chunk)

    def wanted(item: PlannedEval) -> bool:
        place = (item.request.task, str(item.request.precision))
        start = item.request.order.start if item.request.order is not None else 0
        return place in plan.gated and state.open(place) and start < plan.budgets[place]

    for item, record in stream_chunks(planned, chunks, wanted, on_event):
        state.add((item.request.task, str(item.request.precision)), record)
    return state


def merged_records(state: SequentialState, task_of: TaskOf) -> list[EvalRecord]:
    """One record per evaluation of the items a sequential evaluation evaluated (``merge_chunks``)."""
    return [merge_chunks(task_of(chunks[0].request), chunks) for chunks in state.chunks.values() if chunks]
