"""The texts a stage trains on, with where each row came from: what its fingerprints keep for the leakage audit.

A conversation gives its messages' text, a preference pair prompt + chosen and prompt + rejected, a prompt-completion
pair its two sides, an RL prompt row its prompt. A conversation with a system turn gives a second text without it:
a system prompt is the same on every row (the trainer's wording, as a template's lines are an item's), and words an
item lacks would hide a short copy of it; the text with the system turn still finds a leak inside a system prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.leakage.training_rows import RowOrigin, TrainingRow, record_texts
from ftbench.trainers.training_data import RowPlace, TrainingRows

WITHOUT_SYSTEM = "without system turn"
"""The last field name of a text that leaves a conversation's system turns out."""


def _is_system(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") == "system"


def without_system(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The row with the system turns of its message lists left out, or None when it has none."""
    lists = {key: value for key, value in row.items() if isinstance(value, list)}
    if not any(_is_system(message) for value in lists.values() for message in value):
        return None
    return {**row, **{key: [m for m in value if not _is_system(m)] for key, value in lists.items()}}


def trained_texts(data: TrainingRows, fields: tuple[str, ...] | None = None) -> list[TrainingRow]:
    """The texts a trainer reads from ``data``'s rows (see the module's notes), or the ``fields`` named (RL prompts:
    ``("prompt",)``), each with its file and line or its draw and position.

    Raises:
        FtbenchError: a row lacks the fields (never for rows the methods draw).
    """
    places = data.places or tuple(RowPlace(name, position=i) for i, name in enumerate(data.origins))
    texts = []
    for row, place in zip(data.rows, places, strict=True):
        try:
            found = record_texts(row, fields)
            plain = without_system(row)
            found += [((*group, WITHOUT_SYSTEM), text) for group, text in record_texts(plain, fields)] if plain else []
        except ValueError as exc:
            raise FtbenchError(f"training row {place.source} {place.line or place.position}: {exc}") from exc
        for group, text in found:
            origin = RowOrigin(source=place.source, line=place.line, index=place.position, fields=group)
            texts.append(TrainingRow(text, origin))
    return texts
