"""The one module that calls lm-evaluation-harness: a loaded variant in, typed per-task results out."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from harness.results import SampleRecord
from harness.variants import LoadedVariant
from tasks.registry import TASKS, get_task

# lm-eval warns at length about passing a loaded model and about task metadata; the run records both.
logging.getLogger("lm_eval").setLevel(logging.ERROR)


EvalModel = HFLM
"""The wrapped model type that ``evaluate_task`` takes."""


class TaskRun(NamedTuple):
    """What lm-eval returned for one task, typed."""

    metrics: dict[str, tuple[float, float | None]]
    """metric -> (value, standard error) for the ``none`` filter."""
    n: int
    samples: list[SampleRecord]
    docs: list[dict[str, Any]]
    """The dataset row behind each sample, in the same order."""
    config: dict[str, Any]


def include_paths() -> list[str]:
    """The task folders that lm-eval scans for our task definitions."""
    return list(dict.fromkeys(str(task.folder) for task in TASKS.values()))


def make_lm(variant: LoadedVariant, batch_size: int) -> HFLM:
    """Wrap a loaded model for lm-eval, on its own device and with an explicit batch size."""
    return HFLM(
        pretrained=variant.model,
        tokenizer=variant.tokenizer,
        batch_size=batch_size,
        device=variant.device,
    )


def evaluate_task(
    lm: HFLM,
    task: str,
    *,
    options: dict[str, Any],
    generation: dict[str, Any],
    apply_chat_template: bool,
    limit: int | None,
    seed: int,
) -> TaskRun:
    """Run one task through ``simple_evaluate`` and return its metrics and scored samples.

    Args:
        lm: the wrapped variant.
        task: a registered task name.
        options: passed to the task as lm-eval metadata (its data source, seed, ...).
        generation: generation kwargs merged over the task's own (``until`` stays the task's).
        apply_chat_template: render prompts with the tokenizer's chat template.
        limit: evaluate only the first ``limit`` items.
        seed: the seed of every random generator lm-eval uses.
    """
    get_task(task)
    manager = TaskManager(include_path=include_paths(), include_defaults=False, metadata=dict(options))
    output = simple_evaluate(
        model=lm,
        tasks=[task],
        task_manager=manager,
        limit=limit,
        log_samples=True,
        apply_chat_template=apply_chat_template,
        gen_kwargs=dict(generation) or None,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        bootstrap_iters=1000,
    )
    if output is None:
        raise RuntimeError(f"lm-eval returned no results for {task}")
    config = output["configs"][task]
    return TaskRun(
        metrics=_metrics(output["results"][task]),
        n=int(output["n-samples"][task]["effective"]),
        samples=[_sample(raw, config["output_type"]) for raw in output["samples"][task]],
        docs=[dict(raw["doc"]) for raw in output["samples"][task]],
        config=config,
    )


def _metrics(raw: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    metrics: dict[str, tuple[float, float | None]] = {}
    for key, value in raw.items():
        name, _, filter_name = key.partition(",")
        if filter_name != "none" or name.endswith("_stderr") or not isinstance(value, int | float):
            continue
        stderr = raw.get(f"{name}_stderr,none")
        metrics[name] = (float(value), float(stderr) if isinstance(stderr, int | float) else None)
    return metrics


def _response(raw: dict[str, Any], output_type: str) -> str:
    """What the model answered: generated text, or for multiple choice the choice it ranks first."""
    if output_type == "generate_until":
        return str(raw["filtered_resps"][0])
    if output_type == "multiple_choice":
        loglikelihoods = [float(resp[0]) for resp in raw["filtered_resps"]]
        best = max(range(len(loglikelihoods)), key=loglikelihoods.__getitem__)
        return str(raw["arguments"][best][1]).strip()
    return ""


def _sample(raw: dict[str, Any], output_type: str) -> SampleRecord:
    return SampleRecord(
        doc_id=int(raw["doc_id"]),
        doc_hash=str(raw["doc_hash"]),
        prompt=str(raw["arguments"][0][0]),
        response=_response(raw, output_type),
        target=str(raw["target"]),
        scores={name: float(raw[name]) for name in raw["metrics"] if isinstance(raw.get(name), int | float)},
    )
