"""Question-rewrite items: TREC CAsT utterances with their manual rewrites, and noisy clean questions."""

from __future__ import annotations

import random
from typing import Any

from harness.errors import FtbenchError
from tasks.arc.dataset import arc_items
from tasks.data import local_file, read_rows
from tasks.rewrite.noise import corrupt, item_rng

CAST_FILE = "question_rewrite/cast_rewrite_pairs.jsonl"
CAST_FIELDS = ("id", "history", "question", "rewrite")


def cast_rows(data_dir: str | None = None) -> list[dict[str, Any]]:
    """The TREC CAsT rows (there is no hub copy: the data comes from the offline folder).

    Raises:
        FtbenchError: the file is missing or a row lacks a field.
    """
    path = local_file(CAST_FILE, data_dir)
    if path is None:
        raise FtbenchError(f"no {CAST_FILE} in the data folder; set FTBENCH_DATA_DIR to a folder that has it")
    return read_rows(path, CAST_FIELDS)


def cast_items(data_dir: str | None = None, only_changed: bool = True) -> list[dict[str, Any]]:
    """Items ``{id, history, question, target}``; by default only those whose rewrite differs."""
    rows = cast_rows(data_dir)
    return [
        {"id": row["id"], "history": list(row["history"]), "question": row["question"], "target": row["rewrite"]}
        for row in rows
        if not only_changed or row["rewrite"].strip() != row["question"].strip()
    ]


def noisy_items(data_dir: str | None = None, seed: int = 1234, count: int = 500) -> list[dict[str, Any]]:
    """``count`` clean questions (ARC-Easy stems and CAsT rewrites, drawn with ``seed``) and their corruptions."""
    pool = [(f"arc-{row['id']}", row["question"]) for row in arc_items("ARC-Easy", "test", "auto", data_dir)]
    pool += [(f"cast-{row['id']}", row["rewrite"]) for row in cast_rows(data_dir)]
    pool = list(dict.fromkeys(pool))
    random.Random(seed).shuffle(pool)
    return [
        {"id": item_id, "question": corrupt(clean, item_rng(item_id, seed)), "target": clean}
        for item_id, clean in pool[:count]
    ]
