"""Training rows as text with their provenance, read from JSON-lines files in TRL's dataset formats or from records.

With no fields named, each row's format is recognised as TRL documents its datasets:

- ``messages`` (conversational language modelling): the text of every turn, system turns included;
- ``chosen`` / ``rejected`` with an optional ``prompt`` (preference pairs, explicit or implicit prompt): two
  texts, prompt + chosen and prompt + rejected, since training reads both responses;
- ``prompt`` / ``completion`` (prompt-completion, also the unpaired preference format with its ``label``);
- ``text`` (language modelling).

Each value may be a string or a list of messages (``{"role": ..., "content": ...}``, the content a string or a
list of parts with ``text``). Named ``fields`` (``["question", "answer"]``) take those fields instead. The texts
of a row's fields are joined by newlines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.core.errors import FtbenchError

FORMATS = "messages; prompt/chosen/rejected; prompt/completion; text"


class RowOrigin(BaseModel):
    """Where a training text came from: a file and its 1-based line, or a dataset and its 0-based row index, and
    the fields whose text it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    """A file's path or a dataset's id."""
    line: int | None = Field(default=None, ge=1)
    index: int | None = Field(default=None, ge=0)
    fields: tuple[str, ...]

    def describe(self) -> str:
        """``train.jsonl:17 [prompt, chosen]`` or ``allenai/ai2_arc#12 [question]``."""
        where = f":{self.line}" if self.line is not None else f"#{self.index}" if self.index is not None else ""
        return f"{self.source}{where} [{', '.join(self.fields)}]"


class TrainingRow(NamedTuple):
    """One training text and where it came from."""

    text: str
    origin: RowOrigin


class _MissingFields(ValueError):
    """A record lacks the fields asked for, or has none of a known format."""


def _part_text(part: Any) -> str:
    return str(part.get("text") or "") if isinstance(part, Mapping) else ""


def _message_text(message: Any) -> str:
    if isinstance(message, str):
        return message
    if not isinstance(message, Mapping):
        raise _MissingFields(f"a message is a {type(message).__name__}, not an object with 'content'")
    content = message.get("content", "")
    if isinstance(content, list):
        return "\n".join(part if isinstance(part, str) else _part_text(part) for part in content)
    return "" if content is None else str(content)


def field_text(value: Any) -> str:
    """The text of one field's value: a string, a list of messages (their contents joined by newlines), or a
    scalar written as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_message_text(item) for item in value)
    if isinstance(value, Mapping):
        return _message_text(value)
    return "" if value is None else str(value)


def _field_groups(record: Mapping[str, Any], fields: Sequence[str] | None) -> list[tuple[str, ...]]:
    """The groups of fields whose joined text makes each training text of ``record``."""
    if fields is not None:
        missing = [name for name in fields if name not in record]
        if missing:
            raise _MissingFields(f"has no field {', '.join(map(repr, missing))}")
        return [tuple(fields)]
    if "messages" in record:
        return [("messages",)]
    if "chosen" in record and "rejected" in record:
        prompt = ("prompt",) if "prompt" in record else ()
        return [(*prompt, "chosen"), (*prompt, "rejected")]
    if "prompt" in record and "completion" in record:
        return [("prompt", "completion")]
    if "text" in record:
        return [("text",)]
    raise _MissingFields(f"matches none of TRL's formats ({FORMATS}); name its fields with fields=[...]")


def record_texts(record: Any, fields: Sequence[str] | None = None) -> list[tuple[tuple[str, ...], str]]:
    """The training texts of one record, each with the fields it joins (see the module's description).

    Raises:
        ValueError: the record is not an object, lacks the named fields or matches no known format.
    """
    if not isinstance(record, Mapping):
        raise _MissingFields(f"is a {type(record).__name__}, not a JSON object")
    return [(group, "\n".join(field_text(record[name]) for name in group)) for group in _field_groups(record, fields)]


def _fields_present(record: Any) -> str:
    return ", ".join(sorted(map(str, record))) if isinstance(record, Mapping) and record else "none"


def read_training_rows(path: str | Path, fields: Sequence[str] | None = None) -> list[TrainingRow]:
    """Every training text of a JSON-lines file, each with its file and 1-based line (blank lines skipped, a UTF-8
    byte-order mark accepted).

    Args:
        path: the file.
        fields: the fields whose text is trained on; None recognises TRL's formats.

    Raises:
        FtbenchError: the file cannot be read, a line is not a JSON object, or a row lacks the fields, naming
            the file, the line and the fields the row has.
    """
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FtbenchError(f"cannot read training file {file} ({exc}); give a UTF-8 JSON-lines file") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FtbenchError(f"{file}:{number} is not JSON ({exc.msg}); write one JSON object per line") from exc
        try:
            texts = record_texts(record, fields)
        except _MissingFields as exc:
            raise FtbenchError(
                f"{file}:{number} {exc} (fields present: {_fields_present(record)}); fix the row or the fields"
            ) from exc
        rows += [TrainingRow(text, RowOrigin(source=str(file), line=number, fields=group)) for group, text in texts]
    return rows


def rows_from_records(records: Iterable[Any], source: str, fields: Sequence[str] | None = None) -> list[TrainingRow]:
    """The training texts of in-memory records (a dataset's rows), each with ``source`` and its 0-based index.

    Raises:
        FtbenchError: a record is not an object or lacks the fields, naming the source, the index and the fields
            the record has.
    """
    rows = []
    for index, record in enumerate(records):
        try:
            texts = record_texts(record, fields)
        except _MissingFields as exc:
            raise FtbenchError(
                f"{source} row {index} {exc} (fields present: {_fields_present(record)}); fix the row or the fields"
            ) from exc
        rows += [TrainingRow(text, RowOrigin(source=source, index=index, fields=group)) for group, text in texts]
    return rows
