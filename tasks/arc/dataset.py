"""ARC items from the hub (``allenai/ai2_arc``) or the offline copies, in the hub's schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from ftbench.tasks.data import DataOptions, source_rows

HUB_ID = "allenai/ai2_arc"
Subset = Literal["ARC-Easy", "ARC-Challenge"]
LOCAL_FILES: dict[tuple[str, str], str] = {
    ("ARC-Easy", "test"): "arc/arc_easy_test.json",
    ("ARC-Easy", "validation"): "arc/arc_easy_validation.json",
    ("ARC-Challenge", "test"): "arc/arc_challenge_test.jsonl",
}


class Choices(BaseModel):
    """The answer choices of an ARC question: texts and their labels, in order."""

    text: list[str] = Field(min_length=1)
    label: list[str] = Field(min_length=1)


class ArcRow(BaseModel):
    """One ARC question in the hub's schema."""

    id: str
    question: str
    choices: Choices
    answerKey: str

    @model_validator(mode="after")
    def _answer_is_a_label(self) -> ArcRow:
        if len(self.choices.text) != len(self.choices.label):
            raise ValueError("choices.text and choices.label differ in length")
        if self.answerKey not in self.choices.label:
            raise ValueError(f"answerKey {self.answerKey!r} is not among its labels {self.choices.label}")
        return self


def arc_items(subset: Subset, split: str = "test", options: DataOptions | None = None) -> list[dict[str, Any]]:
    """ARC rows ``{id, question, choices{text[], label[]}, answerKey}`` of one subset and split.

    Raises:
        FtbenchError: the local file is missing or a row is malformed.
    """
    relative = LOCAL_FILES.get((subset, split))
    return source_rows(relative, (HUB_ID, subset, split), ArcRow, options or DataOptions()).rows
