"""Question-rewrite items: TREC CAsT utterances with their manual rewrites, and noisy clean questions."""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, Field

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.arc.dataset import arc_items
from ftbench.tasks.base import TaskOptions
from ftbench.tasks.data import DATA_DIR_ENV, DataOptions, data_folder, local_file, read_rows
from ftbench.tasks.rewrite.noise import corrupt, item_rng

CAST_FILE = "question_rewrite/cast_rewrite_pairs.jsonl"


class CastOptions(TaskOptions):
    """TREC CAsT rewrite items (offline only: the data has no hub copy)."""

    data_dir: str | None = None
    only_changed: bool = True
    """Only the utterances whose manual rewrite differs from the question."""


class NoisyOptions(TaskOptions):
    """Noisy questions: ``count`` clean questions drawn with ``seed`` and corrupted by the seeded noise model."""

    data_dir: str | None = None
    seed: int = 1234
    count: int = Field(default=500, ge=1)


class CastRow(BaseModel):
    """One TREC CAsT utterance with its manual rewrite."""

    id: str
    history: list[str]
    question: str
    rewrite: str


def cast_rows(data_dir: str | None = None) -> list[CastRow]:
    """The TREC CAsT rows (there is no hub copy: the data comes from the offline folder).

    Raises:
        FtbenchError: the file is missing or a row is malformed.
    """
    path = local_file(CAST_FILE, data_dir)
    if path is None:
        raise FtbenchError(f"no {CAST_FILE} in {data_folder(data_dir)}; set {DATA_DIR_ENV} to a folder that has it")
    return read_rows(path, CastRow)


def cast_items(options: CastOptions | None = None) -> list[dict[str, Any]]:
    """Items ``{id, conversation, history, question, target}``; by default only those whose rewrite differs."""
    options = options or CastOptions()
    return [
        {
            "id": row.id,
            "conversation": conversation_id(row.id),
            "history": list(row.history),
            "question": row.question,
            "target": row.rewrite,
        }
        for row in cast_rows(options.data_dir)
        if not options.only_changed or row.rewrite.strip() != row.question.strip()
    ]


def conversation_id(utterance_id: str) -> str:
    """The conversation an utterance belongs to: its id without the turn number (``31_4`` -> ``31``)."""
    return utterance_id.rsplit("_", 1)[0]


def noisy_items(options: NoisyOptions | None = None) -> list[dict[str, Any]]:
    """``count`` clean questions (ARC-Easy stems and CAsT rewrites, drawn with ``seed``) and their corruptions."""
    options = options or NoisyOptions()
    arc = arc_items("ARC-Easy", "test", DataOptions(data_dir=options.data_dir))
    pool = [(f"arc-{row['id']}", row["question"]) for row in arc]
    pool += [(f"cast-{row.id}", row.rewrite) for row in cast_rows(options.data_dir)]
    pool = list(dict.fromkeys(pool))
    random.Random(options.seed).shuffle(pool)
    return [
        {"id": item_id, "question": corrupt(clean, item_rng(item_id, options.seed)), "target": clean}
        for item_id, clean in pool[: options.count]
    ]
