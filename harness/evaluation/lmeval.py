"""The one module that calls lm-evaluation-harness: a loaded model and a request in, typed results out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from lm_eval import simple_evaluate
from lm_eval.api.model import LM, CacheHook
from lm_eval.tasks import TaskManager

from ftbench.harness.core.errors import EvaluationError
from ftbench.harness.core.records import SampleRecord
from ftbench.harness.core.request import EvalRequest
from ftbench.tasks.base import Task, TaskOptions

BOOTSTRAP_ITERS = 1000
"""lm-eval's bootstrap replicates for the standard errors of corpus metrics (BLEU, chrF)."""


class TaskRun(NamedTuple):
    """What lm-eval returned for one task, typed."""

    metrics: dict[str, tuple[float, float | None]]
    """metric -> (value, standard error) for the ``none`` filter."""
    n: int
    samples: list[SampleRecord]
    docs: list[dict[str, Any]]
    """The dataset row behind each sample, in the same order."""


def evaluate_task(
    lm: LM,
    request: EvalRequest,
    task: Task,
    options: TaskOptions,
    hook: CacheHook | None = None,
    doc_ids: Sequence[int] | None = None,
) -> TaskRun:
    """Run the request's task through ``simple_evaluate`` and return its metrics and scored samples.

    The task receives the request's options as lm-eval metadata; generation settings go over the task's own
    (``until`` stays the task's); every random generator is seeded with the request's seed.

    Args:
        lm: the loaded variant.
        request: what to evaluate.
        task: the request's task (lm-eval reads its definition from the task's folder, or its own config).
        options: the task's typed options (the request holds them as data), handed to its dataset hook.
        hook: lm-eval's per-request hook (progress), called once per finished model request.
        doc_ids: only these items, in this order (an ordered request's slice); None: the first ``limit``.
    """
    if hook is not None:
        lm.set_cache_hook(hook)
    return _simple_evaluate(lm, request, task, options, doc_ids)


def _simple_evaluate(
    lm: LM, request: EvalRequest, task: Task, options: TaskOptions, doc_ids: Sequence[int] | None = None
) -> TaskRun:
    """``simple_evaluate`` on one request's task, as ``evaluate_task`` describes, typed."""
    manager = TaskManager(include_path=[str(task.folder)], include_defaults=False, metadata=dict(request.options))
    seed = request.effective_seed
    output = simple_evaluate(
        model=lm,
        tasks=[task.lm_eval_task(options)],
        system_instruction=task.system_prompt,
        task_manager=manager,
        limit=request.limit if doc_ids is None else None,
        samples={task.name: sorted(doc_ids)} if doc_ids is not None else None,  # lm-eval labels them in order
        log_samples=True,
        apply_chat_template=request.chat_template,
        gen_kwargs=dict(request.generation) or None,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        bootstrap_iters=BOOTSTRAP_ITERS,
    )
    if output is None:
        raise RuntimeError(f"lm-eval returned no results for {task.name}")
    raw_samples = output["samples"][task.name]
    output_type = output["configs"][task.name]["output_type"]
    for raw in raw_samples:
        _refuse_silent_chance(request, raw, output_type)
    if doc_ids is not None:  # the items in the asked order
        place = {doc_id: index for index, doc_id in enumerate(doc_ids)}
        raw_samples = sorted(raw_samples, key=lambda raw: place[int(raw["doc_id"])])
    return TaskRun(
        metrics=_metrics(output["results"][task.name]),
        n=int(output["n-samples"][task.name]["effective"]),
        samples=[_sample(raw, output_type) for raw in raw_samples],
        docs=[dict(raw["doc"]) for raw in raw_samples],
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


def _refuse_silent_chance(request: EvalRequest, raw: dict[str, Any], output_type: str) -> None:
    """Fail rather than report chance when an engine returns no information: every distinct choice scored
    alike, or a zero log-likelihood for a non-empty document.

    Raises:
        EvaluationError: naming the item, the variant and the engine.
    """
    where = f"{request.task} item {raw['doc_id']} on {request.engine} ({request.checkpoint}@{request.precision})"
    if output_type == "multiple_choice":
        choices = [str(argument[1]) for argument in raw["arguments"]]
        scores = _choice_loglikelihoods(raw)
        if len(set(choices)) > 1 and len(set(scores)) == 1:
            raise EvaluationError(
                f"{where}: every choice got the same log-likelihood {scores[0]}; the engine returned no information"
            )
    if output_type == "loglikelihood_rolling":
        text = str(raw["arguments"][0][0])
        if text.strip() and float(raw["filtered_resps"][0]) == 0.0:
            raise EvaluationError(
                f"{where}: the rolling log-likelihood of a non-empty document is 0; the engine failed"
            )


def _choice_loglikelihoods(raw: dict[str, Any]) -> list[float]:
    return [float(resp[0]) for resp in raw["filtered_resps"]]


def _response(raw: dict[str, Any], output_type: str) -> str:
    """What the model answered: generated text, or for multiple choice the choice it ranks first."""
    if output_type == "generate_until":
        return str(raw["filtered_resps"][0])
    if output_type == "multiple_choice":
        loglikelihoods = _choice_loglikelihoods(raw)
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
        choice_loglikelihoods=_choice_loglikelihoods(raw) if output_type == "multiple_choice" else None,
    )


class BuiltPrompt(NamedTuple):
    """The prompt lm-eval builds for an item now: its text, or with a chat template the conversation it renders."""

    text: str
    messages: list[dict[str, str]] | None
    """The conversation the variant's chat template renders (None without a chat template)."""
    continues: bool
    """Whether the rendering continues the conversation's last message (a task's answer prefix, ``gen_prefix``)."""


class Replayed(NamedTuple):
    """A task run on stored responses: lm-eval's results, and the prompt it built for each item (by ``doc_id``)."""

    run: TaskRun
    prompts: dict[int, BuiltPrompt]


class StoredResponses(LM):
    """An lm-eval model that answers each generation request with the stored response of its item and keeps the
    prompt lm-eval built for it; a conversation is kept as data, since no variant's chat template renders it."""

    def __init__(self, responses: Mapping[int, str], chat_template: bool) -> None:
        super().__init__()
        self.responses, self.chat = responses, chat_template
        self.prompts: dict[int, BuiltPrompt] = {}

    @property
    def tokenizer_name(self) -> str:
        """lm-eval's name for the request cache (never used: the cache is off)."""
        return "stored-responses"

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation as JSON, read back in ``generate_until``."""
        return json.dumps({"messages": chat_history, "continues": not add_generation_prompt})

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """The stored response of each request's item (empty for an item with none)."""
        answers = []
        for request in requests:
            context = str(request.args[0])
            if self.chat:
                conversation = json.loads(context)
                prompt = BuiltPrompt(context, conversation["messages"], bool(conversation["continues"]))
            else:
                prompt = BuiltPrompt(context, None, False)
            self.prompts[int(request.doc_id)] = prompt
            answers.append(self.responses.get(int(request.doc_id), ""))
        return answers

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Not stored: only generated responses can be replayed."""
        raise EvaluationError("stored responses hold no log-likelihoods; re-run `ftbench run` to evaluate again")

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Not stored: only generated responses can be replayed."""
        raise EvaluationError("stored responses hold no log-likelihoods; re-run `ftbench run` to evaluate again")


def replay_task(request: EvalRequest, task: Task, options: TaskOptions, responses: Mapping[int, str]) -> Replayed:
    """Run the request's generative task through ``simple_evaluate`` as ``evaluate_task`` does, with the stored
    response of each item (by ``doc_id``) in place of a model's: lm-eval's own hooks and aggregations score them,
    so the metrics are those an evaluation with these responses reports.

    Args:
        request: what was evaluated (its options, limit, seed and chat template decide the items and prompts).
        task: the request's task, as defined now.
        options: its typed options.
        responses: the stored response of each item.
    """
    lm = StoredResponses(responses, request.chat_template)
    doc_ids = sorted(responses) if request.order is not None else None
    return Replayed(_simple_evaluate(lm, request, task, options, doc_ids), lm.prompts)
