"""The texts a ``transformers.Trainer`` (so every TRL trainer) trains on, read from its ``train_dataset``.

Each row's text columns are read as ``training_rows`` reads TRL's formats (TRL keeps them beside the token ids it
adds); a row of a prompt alone (RL prompts) gives its prompt; a row with token ids only gives the ids decoded by
the trainer's tokenizer, special tokens left out (``input_ids``; ``prompt_ids`` with ``chosen_ids`` and with
``rejected_ids``). The chat template's scaffolding (role names, a default system prompt) is in decoded ids but not
in text columns, so text columns are read first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.leakage.training_rows import RowOrigin, TrainingRow, record_texts

Decode = Callable[[Sequence[int]], str]
_ID_PAIRS = ((("input_ids",),), (("prompt_ids", "chosen_ids"), ("prompt_ids", "rejected_ids")))


def _decoded(record: Mapping[str, Any], decode: Decode | None) -> list[tuple[tuple[str, ...], str]] | None:
    for groups in _ID_PAIRS:
        if all(name in record for group in groups for name in group) and decode is not None:
            return [(group, decode([i for name in group for i in record[name]])) for group in groups]
    return None


def _row_texts(record: Any, decode: Decode | None) -> list[tuple[tuple[str, ...], str]]:
    try:
        return record_texts(record)
    except ValueError:
        pass
    if isinstance(record, Mapping) and "prompt" in record:
        return record_texts(record, ["prompt"])
    decoded = _decoded(record, decode) if isinstance(record, Mapping) else None
    if decoded is None:
        fields = ", ".join(map(str, record)) if isinstance(record, Mapping) else type(record).__name__
        raise ValueError(f"has no text columns and no token ids to decode (fields: {fields})")
    return decoded


def dataset_rows(records: Iterable[Any], source: str, decode: Decode | None = None) -> list[TrainingRow]:
    """The training texts of a dataset's rows, each with ``source`` and its 0-based index.

    Args:
        records: the rows (a ``datasets.Dataset`` or any iterable of mappings).
        source: what to call the dataset in findings.
        decode: token ids to text (the tokenizer's ``decode``), for rows that hold only ids.

    Raises:
        FtbenchError: a row has neither text columns nor token ids, naming the row and its fields.
    """
    rows = []
    for index, record in enumerate(records):
        try:
            texts = _row_texts(record, decode)
        except ValueError as exc:
            raise FtbenchError(f"{source} row {index} {exc}; give the trainer a dataset of text rows") from exc
        rows += [TrainingRow(text, RowOrigin(source=source, index=index, fields=group)) for group, text in texts]
    return rows


def trainer_rows(trainer: Any, source: str = "train_dataset") -> list[TrainingRow]:
    """The texts ``trainer`` trains on (its ``train_dataset``, decoded by its ``processing_class`` where the rows
    hold only token ids).

    Raises:
        FtbenchError: the trainer has no training dataset, or a row has no text.
    """
    dataset = getattr(trainer, "train_dataset", None)
    if dataset is None:
        raise FtbenchError("the trainer has no train_dataset to check; give the trainer its training data")
    tokenizer = getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
    decode = None
    if tokenizer is not None and hasattr(tokenizer, "decode"):

        def decode(ids: Sequence[int]) -> str:
            return str(tokenizer.decode(list(ids), skip_special_tokens=True))

    return dataset_rows(dataset, source, decode)
