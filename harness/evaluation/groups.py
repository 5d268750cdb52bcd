"""Groups of planned requests that one engine load serves, how a group is evaluated, and how large it is.

A group is one variant for transformers and llama.cpp, or one base with its LoRA adapters for vLLM (the
driver's ``group`` decides). Its size, in expected generated tokens, lets a cluster start the largest groups
first so that no long group starts last and keeps the run waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from functools import cache, partial
from typing import Any, NamedTuple

import yaml

from harness.core.records import EvalRecord
from harness.engines import driver
from harness.evaluation.outcome import Progress, evaluate_request
from harness.evaluation.plan import PlannedEval
from harness.evaluation.winrate import Judges
from tasks.registry import get_task

EventCallback = Callable[[PlannedEval, str, int, float | None], None]
"""Called with (item, status, items done, tokens per second)."""

LM_EVAL_MAX_GEN_TOKS = 256
"""lm-eval's longest generation when a task sets none."""
CHOICES_PER_ITEM = 4
"""Scored continuations per multiple-choice item (ARC has 3 to 5)."""
FORWARD_COST_TOKENS = 1
"""One scored forward pass (a choice, a rolling window) counted as one generated token: a decoding step is a
forward pass over one new token, while a scored pass reads its whole text at once in a batch."""


class Finished(NamedTuple):
    """A finished evaluation, with where it ran."""

    item: PlannedEval
    record: EvalRecord
    node: str | None = None
    """The cluster node that evaluated it (None: this process)."""


def evaluate_group(
    group: list[PlannedEval],
    stored: Callable[[str], EvalRecord | None],
    judges: Judges,
    on_event: EventCallback,
) -> Generator[EvalRecord, None, None]:
    """Load the group's engine once and evaluate each request in order, yielding each record as it finishes.

    Args:
        group: requests that one engine session serves.
        stored: the stored record of a key (references of win-rate tasks).
        judges: the run's judges.
        on_event: called with (item, status, items done, tokens per second).
    """
    on_event(group[0], "loading", 0, None)
    session = driver(group[0].request.engine).open([item.request for item in group])
    try:
        for item in group:
            on_event(item, "evaluating", 0, None)
            loaded = session.model_for(item.request)
            progress = Progress(loaded.count_tokens, partial(on_event, item, "progress"))
            yield evaluate_request(item.request, item.checkpoint, loaded, judges, stored, progress, item.reference_key)
    finally:
        session.close()


def evaluate_here(
    pending: list[PlannedEval],
    stored: Callable[[str], EvalRecord | None],
    judges: Judges,
    on_event: EventCallback,
) -> Iterator[Finished]:
    """Evaluate the requests in this process, group after group in plan order."""
    for group in session_groups(pending):
        by_key = {item.request.key(): item for item in group}
        for record in evaluate_group(group, stored, judges, on_event):
            yield Finished(by_key[record.key], record)


def session_groups(plan: list[PlannedEval]) -> list[list[PlannedEval]]:
    """The plan's requests grouped by engine session, groups and their requests in plan order."""
    groups: dict[object, list[PlannedEval]] = {}
    for item in plan:
        key = (item.request.engine, driver(item.request.engine).group(item.request))
        groups.setdefault(key, []).append(item)
    return list(groups.values())


class _TagsIgnored(yaml.SafeLoader):
    """Reads lm-eval YAML, whose ``!function`` tags name Python hooks, as plain data (tags read as None)."""


_TagsIgnored.add_multi_constructor("!", lambda loader, suffix, node: None)


@cache
def _task_max_gen_toks(name: str) -> int:
    """The longest generation a task's lm-eval YAML sets (its ``generation_kwargs``)."""
    task = get_task(name)
    path = task.folder / f"{name}.yaml"
    config: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_TagsIgnored) if path.is_file() else {}
    return int((config.get("generation_kwargs") or {}).get("max_gen_toks", LM_EVAL_MAX_GEN_TOKS))


def expected_tokens(item: PlannedEval) -> int:
    """The work of one request in generated-token equivalents: items × longest generation for generative tasks,
    items × scored passes (``FORWARD_COST_TOKENS`` each) for log-likelihood tasks."""
    task = get_task(item.request.task)
    if task.generative:
        longest = item.request.generation.get("max_gen_toks") or _task_max_gen_toks(task.name)
        return item.items * int(longest)
    passes = CHOICES_PER_ITEM if task.output == "multiple_choice" else 1
    return item.items * passes * FORWARD_COST_TOKENS


def group_tokens(group: list[PlannedEval]) -> int:
    """A group's work: the sum of its requests' ``expected_tokens``."""
    return sum(expected_tokens(item) for item in group)
