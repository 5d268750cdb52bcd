"""UltraFeedback prompts and preference pairs from the hub or the offline samples.

Test items come from ``HuggingFaceH4/ultrafeedback_binarized`` split ``test_prefs`` (offline: its first 500
rows); training pairs from ``trl-lib/ultrafeedback_binarized`` (offline: 200 scored rows). Training pairs whose
prompt also appears among the test items are dropped, so a judge never trains on an evaluation prompt.
"""

from __future__ import annotations

import hashlib
from typing import Any

from harness.errors import FtbenchError
from tasks.data import local_file, read_rows

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
    path = local_file(TEST_FILE, data_dir)
    if source == "local" or (source == "auto" and path is not None):
        if path is None:
            raise FtbenchError(f"no {TEST_FILE} in the data folder; set FTBENCH_DATA_DIR or use source: hub")
        rows = read_rows(path, ("prompt", "prompt_id", "chosen", "rejected"))
        where = str(path)
    elif source in ("auto", "hub"):
        import datasets

        rows = list(datasets.load_dataset(TEST_HUB_ID, split="test_prefs"))
        where = f"{TEST_HUB_ID} test_prefs"
    else:
        raise FtbenchError(f"unknown UltraFeedback source {source!r}; use auto, local or hub")
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
    path = local_file(TRAIN_FILE, data_dir)
    if source == "local" or (source == "auto" and path is not None):
        if path is None:
            raise FtbenchError(f"no {TRAIN_FILE} in the data folder; set FTBENCH_DATA_DIR or use source: hub")
        rows = read_rows(path, ("prompt", "chosen", "rejected"))
        where = str(path)
    elif source in ("auto", "hub"):
        import datasets

        rows = list(datasets.load_dataset(TRAIN_HUB_ID, split="train"))
        where = f"{TRAIN_HUB_ID} train"
    else:
        raise FtbenchError(f"unknown UltraFeedback source {source!r}; use auto, local or hub")
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
