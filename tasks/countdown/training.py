"""Countdown's training side: puzzles from the training rows only, as SFT traces or RL prompts.

Training draws from rows 0..9001 (the evaluation uses 9002..10001) and leaves out any puzzle that is also an
evaluation puzzle (the same target and numbers), so training never sees an evaluation item.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

from ftbench.tasks.countdown.dataset import HUB_ID, TRAIN_ROWS, CountdownOptions, countdown_items
from ftbench.tasks.countdown.task import doc_to_text
from ftbench.tasks.countdown.traces import warm_start_trace

PuzzleKey = tuple[int, tuple[int, ...]]


def puzzle_key(target: Any, nums: Any) -> PuzzleKey:
    """A puzzle's identity: its target and its numbers in any order."""
    return int(target), tuple(sorted(int(n) for n in nums))


@cache
def evaluation_puzzles(options: CountdownOptions) -> frozenset[PuzzleKey]:
    """The evaluation puzzles, which training must not see."""
    return frozenset(puzzle_key(item["target"], item["nums"]) for item in countdown_items("test", options))


class Puzzles(NamedTuple):
    """Countdown training puzzles, and how many training rows were dropped as evaluation puzzles."""

    items: list[dict[str, Any]]
    dropped: int


def training_puzzles(options: CountdownOptions, count: int, seed: int) -> Puzzles:
    """The first ``count`` training puzzles that are not also evaluation puzzles."""
    if count == 0:
        return Puzzles([], 0)
    draw = options.model_copy(update={"seed": seed, "count": max(count * 2, 100)})
    items = countdown_items("train", draw)
    held_out = evaluation_puzzles(options)
    kept = [item for item in items if puzzle_key(item["target"], item["nums"]) not in held_out]
    return Puzzles(kept[:count], len(items) - len(kept))


def user(text: str) -> list[dict[str, str]]:
    """A user turn."""
    return [{"role": "user", "content": text}]


def trace_rows(puzzles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prompt-completion conversations: each solvable puzzle's prompt and the solver's warm-start trace."""
    traced = [(p, trace) for p in puzzles if (trace := warm_start_trace(p["target"], p["nums"])) is not None]
    return [{"prompt": user(doc_to_text(p)), "completion": [{"role": "assistant", "content": t}]} for p, t in traced]


def prompt_rows(puzzles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RL prompts with the ``target`` and ``nums`` columns the reward function reads."""
    return [{"prompt": user(doc_to_text(p)), "target": int(p["target"]), "nums": list(p["nums"])} for p in puzzles]


def source_description(options: CountdownOptions) -> str:
    """Where the training puzzles come from, for manifests."""
    if options.source == "generated":
        return "generated puzzles (train seed)"
    return f"{HUB_ID} rows {TRAIN_ROWS.start}..{TRAIN_ROWS.stop - 1}"


SPLIT = f"train rows {TRAIN_ROWS.start}..{TRAIN_ROWS.stop - 1}; evaluation rows 9002..10001"
