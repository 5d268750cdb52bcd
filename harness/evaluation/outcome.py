"""One request evaluated: the lm-eval call on a loaded model, its cost, the judge step, and the stored record."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.compare.statistics import bootstrap_stderr
from harness.core.checkpoints import Checkpoint
from harness.core.errors import FtbenchError
from harness.core.records import EvalRecord, MetricValue, Performance, SampleRecord, VariantInfo
from harness.core.request import EvalRequest
from harness.engines.session import LoadedModel
from harness.evaluation.lmeval import TaskRun, evaluate_task
from harness.evaluation.measure import PeakMemory
from harness.evaluation.winrate import Judges
from tasks.registry import get_task


class Progress:
    """Counts an evaluation's finished model requests and generated tokens, reporting at most twice a second."""

    def __init__(self, count_tokens: Callable[[str], int], report: Callable[[int, float | None], None]) -> None:
        self.count_tokens = count_tokens
        self.report = report
        self.done = 0
        self.tokens = 0
        self.started = time.perf_counter()
        self.last = 0.0

    def on_result(self, kind: str, result: Any) -> None:
        """lm-eval's per-request hook."""
        self.done += 1
        if kind == "generate_until" and isinstance(result, str):
            self.tokens += self.count_tokens(result)
        now = time.perf_counter()
        if now - self.last >= 0.5:
            self.last = now
            elapsed = now - self.started
            self.report(self.done, self.tokens / elapsed if self.tokens and elapsed else None)


def _metrics(request: EvalRequest, result: TaskRun) -> dict[str, MetricValue]:
    task = get_task(request.task)
    metrics = {}
    for name, (value, stderr) in result.metrics.items():
        meta = task.metrics.get(name)
        if stderr is None and meta is not None and meta.corpus is not None:
            stderr = bootstrap_stderr(meta.corpus, result.samples, seed=request.seed)
        metrics[name] = MetricValue(
            value=value,
            stderr=stderr,
            n=result.n,
            scale=meta.scale if meta else "unspecified",
            kind=meta.kind if meta else "continuous",
        )
    return metrics


def variant_info(request: EvalRequest, checkpoint: Checkpoint, loaded: LoadedModel) -> VariantInfo:
    """What the record says about the evaluated variant: lineage, precision, engine and footprint."""
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
        manifest=checkpoint.manifest.model_dump(mode="json") if checkpoint.manifest else None,
    )


def _reference_samples(key: str | None, stored: Callable[[str], EvalRecord | None]) -> list[SampleRecord] | None:
    if key is None:
        return None
    record = stored(key)
    if record is None:
        raise FtbenchError(f"the results of the reference variant ({key}) are missing; evaluate it in the same run")
    return record.samples


def evaluate_request(
    request: EvalRequest,
    checkpoint: Checkpoint,
    loaded: LoadedModel,
    judges: Judges,
    stored: Callable[[str], EvalRecord | None],
    progress: Progress,
    reference_key: str | None = None,
) -> EvalRecord:
    """Evaluate one request on a loaded model and build its record (judging win-rate samples).

    Args:
        request: what to evaluate.
        checkpoint: the checkpoint it names (for the record's lineage).
        loaded: the engine's model for the request.
        judges: the run's judges (win-rate tasks).
        stored: the stored record of a key (a win-rate reference variant's).
        progress: receives lm-eval's per-request results.
        reference_key: the key of the reference variant's record (win-rate tasks with a variant reference).
    """
    task = get_task(request.task)
    with PeakMemory(loaded.device) as memory:
        result = evaluate_task(loaded.lm, request, progress.on_result)
    tokens = sum(loaded.count_tokens(s.response) for s in result.samples) if task.generative else 0
    metrics = _metrics(request, result)
    samples = result.samples
    if task.output == "loglikelihood_rolling" and loaded.token_topk is not None:
        distributions = loaded.token_topk([sample.target for sample in samples])
        samples = [s.model_copy(update={"token_topk": d}) for s, d in zip(samples, distributions, strict=True)]
    if task.judged:
        reference = samples if reference_key == request.key() else _reference_samples(reference_key, stored)
        judged, samples = judges.judge(request, samples, [str(doc["prompt"]) for doc in result.docs], reference)
        metrics |= judged
    return EvalRecord(
        key=request.key(),
        request=request,
        variant=variant_info(request, checkpoint, loaded),
        task=request.task,
        metrics=metrics,
        performance=Performance(
            wall_seconds=memory.wall_seconds,
            generated_tokens=tokens,
            tokens_per_second=tokens / memory.wall_seconds if task.generative and memory.wall_seconds else None,
            peak_memory_bytes=memory.peak_bytes,
            memory_measure=memory.measure,
        ),
        samples=samples,
    )
