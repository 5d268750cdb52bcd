"""Groups of planned requests that one engine load serves, how a group is evaluated, and how large it is.

A group is one variant for transformers and llama.cpp, or one base with its LoRA adapters for vLLM (the
driver's ``group`` decides). Its size, in expected generated tokens, lets a cluster start the largest groups
first so that no long group starts last and keeps the run waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import NamedTuple, TypeVar

from ftbench.harness.core.events import EvaluatingEvent, EvaluationEvent, EventSink, LoadingEvent, ProgressEvent
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.engines import driver
from ftbench.harness.evaluation.outcome import Progress, evaluate_request
from ftbench.harness.evaluation.plan import PlannedEval
from ftbench.harness.evaluation.winrate import Judges

CHOICES_PER_ITEM = 4
"""Scored continuations per multiple-choice item (ARC has 3 to 5)."""
FORWARD_COST_TOKENS = 1
"""One scored forward pass (a choice, a rolling window) counted as one generated token: a decoding step is a
forward pass over one new token, while a scored pass reads its whole text at once in a batch."""


EventT = TypeVar("EventT", bound=EvaluationEvent)


class Finished(NamedTuple):
    """A finished evaluation, with where it ran."""

    item: PlannedEval
    record: EvalRecord
    node: str | None = None
    """The cluster node that evaluated it (None: this process)."""


def item_event(item: PlannedEval, kind: type[EventT]) -> EventT:
    """An event of type ``kind`` about a planned evaluation."""
    return kind(item.request.key(), item.label, item.request.task)


def evaluate_group(
    group: list[PlannedEval],
    stored: Callable[[str], EvalRecord | None],
    judges: Judges,
    on_event: EventSink,
) -> Generator[EvalRecord, None, None]:
    """Load the group's engine once and evaluate each request in order, yielding each record as it finishes.

    Args:
        group: requests that one engine session serves.
        stored: the stored record of a key (references of judged tasks).
        judges: the run's judges.
        on_event: receives loading, evaluating and progress events.
    """
    on_event(item_event(group[0], LoadingEvent))
    session = driver(group[0].request.engine).open(group)
    try:
        for item in group:
            on_event(item_event(item, EvaluatingEvent))
            loaded = session.model_for(item)
            progress = Progress(loaded.count_tokens, item_event(item, ProgressEvent), on_event)
            yield evaluate_request(item, loaded, judges, stored, progress)
    finally:
        session.close()


def evaluate_here(
    pending: list[PlannedEval],
    stored: Callable[[str], EvalRecord | None],
    judges: Judges,
    on_event: EventSink,
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
        key = (item.request.engine, driver(item.request.engine).group(item))
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def expected_tokens(item: PlannedEval) -> int:
    """The work of one request in generated-token equivalents: items × longest generation for generative tasks,
    items × scored passes (``FORWARD_COST_TOKENS`` each) for log-likelihood tasks."""
    task = item.task
    if task.generative:
        longest = item.request.generation.get("max_gen_toks") or task.max_gen_toks
        return item.items * int(longest)
    passes = CHOICES_PER_ITEM if task.output == "multiple_choice" else 1
    return item.items * passes * FORWARD_COST_TOKENS


def group_tokens(group: list[PlannedEval]) -> int:
    """A group's work: the sum of its requests' ``expected_tokens``."""
    return sum(expected_tokens(item) for item in group)
