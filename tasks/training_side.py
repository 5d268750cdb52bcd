"""What trainers may draw from a task: its training side, which never hands out an evaluated item.

A task declares its side once (``Task.training``) and generic trainers ask it for rows: SFT conversations,
preference pairs, or RL prompts with the reward that scores the answers. The trainers never import a
particular task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel

Row = dict[str, Any]
RewardFunction = Callable[..., list[float]]
"""A TRL reward function: ``(completions, **dataset_columns) -> list[float]``."""


class Drawn(NamedTuple):
    """Rows drawn from a training side, where they come from, and how many were left out as evaluation items."""

    rows: list[Row]
    source: str
    """Where the rows come from, as the manifest names it (``... rows 0..9001; solver warm-start traces``)."""
    dropped: int = 0
    """Training items left out because they are also evaluation items."""


SftDraw = Callable[[Any, str | None, int | None, int], Drawn]
"""(options, split, count, seed) -> prompt-completion rows; split None: the side's own; count None: every row."""
Draw = Callable[[Any, int | None, int], Drawn]
"""(options, count, seed) -> rows; with the same seed a larger count draws a superset; count None: every row."""


@dataclass(frozen=True)
class RewardedPrompts:
    """Prompts a policy answers and the reward that scores its answers (RL prompts, on-policy preference pairs)."""

    draw: Draw
    """Prompt rows: ``prompt`` (the user turn) and the columns the reward reads."""
    reward: RewardFunction
    """The task's own scoring as a TRL reward function, so training optimises what is measured."""
    item: type[BaseModel]
    """The fields of one item in an extra prompt file (validated before it is rendered)."""
    prompt: Callable[[Row], Row]
    """One item's prompt row (for extra prompt files)."""
    response_prefix: str = ""
    """The evaluation's generation prefix: appended to rendered prompts, and it starts every sampled answer."""


def _no_leak(options: Any, row: Row) -> str | None:
    return None


def _no_files(options: Any) -> list[Path]:
    return []


@dataclass(frozen=True)
class TrainingSide:
    """What trainers may draw from a task: rows of its training split, never an evaluated item."""

    split: str
    """The rows training draws from, for the manifest's split record."""
    source: Callable[[Any], str]
    """Where the training rows come from, for manifests."""
    sft: SftDraw | None = None
    preference: Draw | None = None
    """Offline chosen/rejected pairs (``prompt``, ``chosen``, ``rejected``)."""
    prompts: RewardedPrompts | None = None
    evaluation_item: Callable[[Any, Row], str | None] = _no_leak
    """What evaluation item a row of an extra training file is (``a Countdown evaluation puzzle``), else None."""
    data_files: Callable[[Any], list[Path]] = _no_files
    """The local files the side reads, for a training stage's input hash."""
    items: str = "items"
    """What one training item is called in manifests (Countdown: ``puzzles``)."""
    counts_dropped: bool = False
    """Whether the split record notes how many training items were left out as evaluation items."""
    setting: str | None = None
    """The stage data setting that asks for this side's rows by count (Countdown: ``countdown_rows``, written
    ``data.countdown_rows``; the manifest names the rows ``countdown``); None: drawn through ``data.tasks`` only."""
    within_length: bool = False
    """The setting's count is of rows within the trainer's length limit, so that many are trained on."""
    generated: bool = False
    """``data.source: generated`` makes this side's rows (Countdown's puzzles); other sides then read ``auto``."""

    @property
    def rows_name(self) -> str | None:
        """What the manifest calls the rows its setting asks for (``countdown`` for ``countdown_rows``)."""
        return None if self.setting is None else self.setting.removesuffix("_rows")
