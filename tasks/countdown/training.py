"""Countdown's training side: puzzles from the training rows only, as SFT traces or RL prompts rewarded by the
evaluation's own scoring function.

Training draws from rows 0..9001 (the evaluation uses 9002..10001) and leaves out any puzzle that is also an
evaluation puzzle (the same target and numbers), so training never sees an evaluation item.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.countdown.dataset import HUB_ID, LOCAL_FILE, TRAIN_ROWS, CountdownOptions, countdown_items
from ftbench.tasks.countdown.scoring import countdown_reward
from ftbench.tasks.countdown.traces import RESPONSE_PREFIX, warm_start_trace
from ftbench.tasks.data import local_file
from ftbench.tasks.training_side import Drawn, RewardedPrompts, TrainingSide

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


def _prompt(puzzle: dict[str, Any]) -> list[dict[str, str]]:
    from ftbench.tasks.countdown.task import doc_to_text  # task.py builds its Task from this module

    return user(doc_to_text(puzzle))


def trace_rows(puzzles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prompt-completion conversations: each solvable puzzle's prompt and the solver's warm-start trace."""
    traced = [(p, trace) for p in puzzles if (trace := warm_start_trace(p["target"], p["nums"])) is not None]
    return [{"prompt": _prompt(p), "completion": [{"role": "assistant", "content": t}]} for p, t in traced]


def prompt_row(puzzle: dict[str, Any]) -> dict[str, Any]:
    """An RL prompt with the ``target`` and ``nums`` columns the reward function reads."""
    return {"prompt": _prompt(puzzle), "target": int(puzzle["target"]), "nums": list(puzzle["nums"])}


def prompt_rows(puzzles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RL prompts with the ``target`` and ``nums`` columns the reward function reads."""
    return [prompt_row(p) for p in puzzles]


def source_description(options: CountdownOptions) -> str:
    """Where the training puzzles come from, for manifests."""
    if options.source == "generated":
        return "generated puzzles (train seed)"
    return f"{HUB_ID} rows {TRAIN_ROWS.start}..{TRAIN_ROWS.stop - 1}"


SPLIT = f"train rows {TRAIN_ROWS.start}..{TRAIN_ROWS.stop - 1}; evaluation rows 9002..10001"


class PuzzleRow(BaseModel):
    """A puzzle in an extra RL prompt file."""

    model_config = ConfigDict(extra="allow")
    target: int
    nums: list[int]


def evaluation_puzzle(options: CountdownOptions, row: dict[str, Any]) -> str | None:
    """``a Countdown evaluation puzzle`` when ``row`` (with ``target`` and ``nums``) is one, else None."""
    if "target" in row and "nums" in row and puzzle_key(row["target"], row["nums"]) in evaluation_puzzles(options):
        return "a Countdown evaluation puzzle"
    return None


def _puzzles(options: CountdownOptions, count: int | None, seed: int) -> Puzzles:
    return training_puzzles(options, len(TRAIN_ROWS) if count is None else count, seed)


def _traces(options: CountdownOptions, split: str | None, count: int | None, seed: int) -> Drawn:
    if split not in (None, "train"):
        raise FtbenchError(f"Countdown trains on its train rows only ({SPLIT}); leave out split or write split: train")
    puzzles, dropped = _puzzles(options, count, seed)
    return Drawn(trace_rows(puzzles), f"{source_description(options)}; solver warm-start traces", dropped)


def _prompts(options: CountdownOptions, count: int | None, seed: int) -> Drawn:
    puzzles, dropped = _puzzles(options, count, seed)
    return Drawn(prompt_rows(puzzles), f"{source_description(options)}; prompts", dropped)


def _data_files(options: CountdownOptions) -> list[Path]:
    return [path for path in [local_file(LOCAL_FILE, options.data_dir)] if path is not None]


TRAINING = TrainingSide(
    split=SPLIT,
    source=source_description,
    sft=_traces,
    prompts=RewardedPrompts(
        draw=_prompts, reward=countdown_reward, item=PuzzleRow, prompt=prompt_row, response_prefix=RESPONSE_PREFIX
    ),
    evaluation_item=evaluation_puzzle,
    data_files=_data_files,
    items="puzzles",
    counts_dropped=True,
    setting="countdown_rows",
    generated=True,
)
"""What trainers draw from Countdown: solver traces (SFT), and prompts rewarded by ``countdown_reward`` (RLOO,
DPO's on-policy pairs)."""
