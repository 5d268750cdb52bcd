"""One request evaluated: the lm-eval call on a loaded model, its cost, the judge step, and the stored record."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from lm_eval.api.model import CacheHook

from ftbench.harness.compare.statistics import bootstrap_stderr
from ftbench.harness.core.errors import EvaluationError, FtbenchError
from ftbench.harness.core.events import EventSink, ProgressEvent
from ftbench.harness.core.records import EvalRecord, MetricValue, Performance, SampleRecord, VariantInfo
from ftbench.harness.engines.session import LoadedModel
from ftbench.harness.evaluation.lmeval import evaluate_task
from ftbench.harness.evaluation.measure import PeakMemory
from ftbench.harness.evaluation.plan import PlannedEval
from ftbench.harness.evaluation.winrate import Judges
from ftbench.tasks.base import Task


class Progress(CacheHook):
    """lm-eval's per-request hook: counts an evaluation's finished model requests and generated tokens, and sends
    them as progress events at most twice a second.

    Args:
        count_tokens: the variant's tokenizer count of a generated text.
        event: the evaluation's progress event (its key, variant and task); each report copies it.
        on_event: receives the reports.
    """

    def __init__(self, count_tokens: Callable[[str], int], event: ProgressEvent, on_event: EventSink) -> None:
        super().__init__(None)
        self.count_tokens, self.event, self.on_event = count_tokens, event, on_event
        self.done = 0
        self.tokens = 0
        self.started = time.perf_counter()
        self.last = 0.0

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        """Called by the model once per finished request (``attr``: the request type)."""
        self.done += 1
        if attr == "generate_until" and isinstance(res, str):
            self.tokens += self.count_tokens(res)
        now = time.perf_counter()
        if now - self.last >= 0.5:
            self.last = now
            elapsed = now - self.started
            speed = self.tokens / elapsed if self.tokens and elapsed else None
            self.on_event(dataclasses.replace(self.event, requests=self.done, tokens_per_second=speed))


CORPUS_STDERR_ITERS = {"lc_win_rate": 200}
"""Bootstrap replicates of a corpus metric's standard error where the default 1,000 costs too much."""


def metric_values(
    task: Task, values: dict[str, tuple[float, float | None]], samples: list[SampleRecord], n: int, seed: int
) -> dict[str, MetricValue]:
    """Typed metrics with the scale and kind the task declares; a corpus metric without a standard error gets a
    bootstrap one over ``samples``.

    Raises:
        EvaluationError: a metric the task does not declare (its hook and its declaration disagree).
    """
    metrics = {}
    for name, (value, stderr) in values.items():
        meta = task.metrics.get(name)
        if meta is None:
            raise EvaluationError(
                f"task {task.name} reported metric {name!r}, which it does not declare; add it to the task's "
                "metrics or drop it from its YAML metric_list and process_results"
            )
        if stderr is None and meta.corpus is not None:
            stderr = bootstrap_stderr(meta.corpus, samples, CORPUS_STDERR_ITERS.get(name, 1000), seed)
        metrics[name] = MetricValue(value=value, stderr=stderr, n=n, scale=meta.scale, kind=meta.kind)
    return metrics


def variant_info(item: PlannedEval, loaded: LoadedModel) -> VariantInfo:
    """What the record says about the evaluated variant: lineage, precision, engine and footprint."""
    request, checkpoint = item.request, item.checkpoint
    return VariantInfo(
        checkpoint=str(checkpoint.path),
        name=checkpoint.name,
        stage=checkpoint.stage,
        kind=checkpoint.kind.value,
        precision=request.precision,
        device=loaded.device,
        weights_hash=request.weights_hash,
        base=str(checkpoint.base) if checkpoint.base else None,
        footprint_bytes=loaded.footprint_bytes,
        engine=request.engine.value,
        engine_version=loaded.engine_version,
        threads=loaded.threads,
        notes=loaded.notes,
        manifest=checkpoint.manifest,
    )


def _reference_samples(key: str | None, stored: Callable[[str], EvalRecord | None]) -> list[SampleRecord] | None:
    if key is None:
        return None
    record = stored(key)
    if record is None:
        raise FtbenchError(f"the results of the reference variant ({key}) are missing; evaluate it in the same run")
    return record.samples


def evaluate_request(
    item: PlannedEval,
    loaded: LoadedModel,
    judges: Judges,
    stored: Callable[[str], EvalRecord | None],
    progress: Progress,
) -> EvalRecord:
    """Evaluate one planned request on a loaded model and build its record (judging a judged task's samples).

    Args:
        item: what to evaluate: the request, its checkpoint (for the record's lineage) and its task.
        loaded: the engine's model for the request.
        judges: the run's judges (judged tasks).
        stored: the stored record of a key (a judged task's reference variant's).
        progress: lm-eval's per-request hook, which reports progress.
    """
    request, task = item.request, item.task
    with PeakMemory(loaded.device) as memory:
        result = evaluate_task(loaded.lm, request, task, item.options, progress, item.doc_ids)
    tokens = sum(loaded.count_tokens(s.response) for s in result.samples) if task.generative else 0
    values, samples = dict(result.metrics), result.samples
    if task.output == "loglikelihood_rolling" and loaded.token_topk is not None:
        distributions = loaded.token_topk([sample.target for sample in samples])
        samples = [s.model_copy(update={"token_topk": d}) for s, d in zip(samples, distributions, strict=True)]
    if task.judging is not None:
        key = item.reference_key
        reference = samples if key == request.key() else _reference_samples(key, stored)
        prompts = [str(doc["prompt"]) for doc in result.docs]
        judged = judges.judge(task, item.options, samples, prompts, reference)
        values, samples = values | judged.metrics, judged.samples
    return EvalRecord(
        key=request.key(),
        request=request,
        variant=variant_info(item, loaded),
        task=request.task,
        metrics=metric_values(task, values, samples, result.n, request.seed),
        performance=Performance(
            wall_seconds=memory.wall_seconds,
            generated_tokens=tokens,
            tokens_per_second=tokens / memory.wall_seconds if task.generative and memory.wall_seconds else None,
            peak_memory_bytes=memory.peak_bytes,
            memory_measure=memory.measure,
        ),
        samples=samples,
    )
