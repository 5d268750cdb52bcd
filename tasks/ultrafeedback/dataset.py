"""UltraFeedback prompts and preference pairs from the hub or the offline samples.

Test items come from ``HuggingFaceH4/ultrafeedback_binarized`` split ``test_prefs`` (offline: its first 500
rows); training pairs from ``trl-lib/ultrafeedback_binarized`` (offline: 200 scored rows). Training pairs whose
prompt also appears among the test items are dropped, so a judge never trains on an evaluation prompt.
"""

from __future__ import annotations

import hashlib
from typing import Any

from harness.errors import FtbenchError
from tasks.data import source_rows

TEST_HUB_ID = "HuggingFaceH4/ultrafeedback_binarized"
TRAIN_HUB_ID = "trl-lib/ultrafeedback_binarized"
TEST_FILE = "ultrafeedback/test_prefs_500.jsonl"
TRAIN_FILE = "ultrafeedback/train_prefs_scored_200.jsonl"


def prompt_id(prompt: str) -> str:
    """The dataset's prompt id: sha256 of the prompt text."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _assistant_text(messages: Any, where: str) -> str:
    if isinstance(messages, str):
        return messages
    replies = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not replies:
        raise FtbenchError(f"{where} has no assistant message; expected a list of chat messages")
    return str(replies[-1])


def evaluation_items(source: str = "auto", data_dir: str | None = None) -> list[dict[str, Any]]:
    """Items ``{id, prompt, chosen, rejected}``: the prompt and the two responses as plain text."""
    rows, where = source_rows(
        TEST_FILE, (TEST_HUB_ID, None, "test_prefs"), ("prompt", "prompt_id", "chosen", "rejected"), source, data_dir
    )
    return [
        {
            "id": row["prompt_id"],
            "prompt": row["prompt"],
            "chosen": _assistant_text(row["chosen"], f"{where} row {i} field 'chosen'"),
            "rejected": _assistant_text(row["rejected"], f"{where} row {i} field 'rejected'"),
        }
        for i, row in enumerate(rows)
    ]


def train_pairs(source: str = "auto", data_dir: str | None = None) -> list[dict[str, Any]]:
    """Preference pairs ``{prompt, chosen, rejected}`` for training, without any test prompt."""
    rows, where = source_rows(
        TRAIN_FILE, (TRAIN_HUB_ID, None, "train"), ("prompt", "chosen", "rejected"), source, data_dir
    )
    held_out = {item["prompt"] for item in evaluation_items(source, data_dir)}
    pairs = []
    for i, row in enumerate(rows):
        prompt = row["prompt"] if isinstance(row["prompt"], str) else _user_text(row["prompt"])
        if prompt in held_out:
            continue
        pairs.append(
            {
                "prompt": prompt,
                "chosen": _assistant_text(row["chosen"], f"{where} row {i} field 'chosen'"),
                "rejected": _assistant_text(row["rejected"], f"{where} row {i} field 'rejected'"),
            }
        )
    return pairs


def _user_text(messages: list[dict[str, Any]]) -> str:
    return str(next(m["content"] for m in messages if m.get("role") == "user"))
