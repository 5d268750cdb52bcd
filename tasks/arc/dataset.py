"""ARC items from the hub (``allenai/ai2_arc``) or the offline copies, in the hub's schema."""

from __future__ import annotations

from typing import Any, Literal

from harness.errors import FtbenchError
from tasks.data import source_rows

HUB_ID = "allenai/ai2_arc"
Subset = Literal["ARC-Easy", "ARC-Challenge"]
LOCAL_FILES: dict[tuple[str, str], str] = {
    ("ARC-Easy", "test"): "arc/arc_easy_test.json",
    ("ARC-Easy", "validation"): "arc/arc_easy_validation.json",
    ("ARC-Challenge", "test"): "arc/arc_challenge_test.jsonl",
}
FIELDS = ("id", "question", "choices", "answerKey")


def arc_items(
    subset: Subset, split: str = "test", source: str = "auto", data_dir: str | None = None
) -> list[dict[str, Any]]:
    """ARC rows ``{id, question, choices{text[], label[]}, answerKey}`` of one subset and split.

    Raises:
        FtbenchError: the source is unknown or the local file is missing or malformed.
    """
    relative = LOCAL_FILES.get((subset, split))
    rows, where = source_rows(relative, (HUB_ID, subset, split), FIELDS, source, data_dir)
    for index, row in enumerate(rows):
        choices = row["choices"]
        if not isinstance(choices, dict) or not {"text", "label"} <= set(choices):
            raise FtbenchError(f"{where} row {index} lacks the field 'choices.text' or 'choices.label'")
        if row["answerKey"] not in choices["label"]:
            raise FtbenchError(f"{where} row {index}: answerKey {row['answerKey']!r} is not among its labels")
    return [{field: row[field] for field in FIELDS} for row in rows]
