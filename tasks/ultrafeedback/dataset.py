"""UltraFeedback prompts and preference pairs from the hub or the offline samples.

Test items come from ``HuggingFaceH4/ultrafeedback_binarized`` split ``test_prefs`` (offline: its first 500
rows); training pairs from ``trl-lib/ultrafeedback_binarized`` (offline: 200 scored rows). Training pairs whose
prompt also appears among the test items are dropped, so a judge never trains on an evaluation prompt.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field

from ftbench.tasks.data import DataOptions, source_rows

TEST_HUB_ID = "HuggingFaceH4/ultrafeedback_binarized"
TRAIN_HUB_ID = "trl-lib/ultrafeedback_binarized"
TEST_FILE = "ultrafeedback/test_prefs_500.jsonl"
TRAIN_FILE = "ultrafeedback/train_prefs_scored_200.jsonl"


class Message(BaseModel):
    """One chat message."""

    role: str
    content: str


class TestRow(BaseModel):
    """A ``test_prefs`` row: the prompt and two conversations."""

    prompt: str
    prompt_id: str
    chosen: str | list[Message] = Field(union_mode="left_to_right")
    rejected: str | list[Message] = Field(union_mode="left_to_right")


class TrainRow(BaseModel):
    """A training preference pair, as plain text or conversations."""

    prompt: str | list[Message] = Field(union_mode="left_to_right")
    chosen: str | list[Message] = Field(union_mode="left_to_right")
    rejected: str | list[Message] = Field(union_mode="left_to_right")


def prompt_id(prompt: str) -> str:
    """The dataset's prompt id: sha256 of the prompt text."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _text(value: Any, role: str) -> str:
    """A plain string, or the last ``role`` message of a conversation ('' when there is none)."""
    if isinstance(value, str):
        return value
    messages = [m["content"] for m in value if m["role"] == role]
    return str(messages[-1]) if messages else ""


def evaluation_items(options: DataOptions | None = None) -> list[dict[str, Any]]:
    """Items ``{id, prompt, chosen, rejected}``: the prompt and the two responses as plain text."""
    rows, _ = source_rows(TEST_FILE, (TEST_HUB_ID, None, "test_prefs"), TestRow, options or DataOptions())
    return [
        {
            "id": row["prompt_id"],
            "prompt": row["prompt"],
            "chosen": _text(row["chosen"], "assistant"),
            "rejected": _text(row["rejected"], "assistant"),
        }
        for row in rows
    ]


def train_pairs(options: DataOptions | None = None) -> list[dict[str, Any]]:
    """Preference pairs ``{prompt, chosen, rejected}`` for training, without any test prompt."""
    options = options or DataOptions()
    rows, _ = source_rows(TRAIN_FILE, (TRAIN_HUB_ID, None, "train"), TrainRow, options)
    held_out = {item["prompt"] for item in evaluation_items(options)}
    pairs = []
    for row in rows:
        prompt = _text(row["prompt"], "user")
        if prompt in held_out:
            continue
        pairs.append(
            {
                "prompt": prompt,
                "chosen": _text(row["chosen"], "assistant"),
                "rejected": _text(row["rejected"], "assistant"),
            }
        )
    return pairs
