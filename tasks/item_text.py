"""An evaluation item as plain text, for comparing it with training data (the leakage audit).

What leaks is an item's content, not the task's wording: a training row holds a question and its answer, seldom
``Question: ... Answer:`` as the prompt writes them, and words on one side only lower a short item's similarity.
``item_text`` is every task's default (``Task.audit_text``); a task whose rows hold more than their content
declares its own ``Task.leakage_text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

IDENTIFIER_FIELDS = frozenset({"id", "idx", "uid", "doc_id", "split"})
"""Fields that name or place an item rather than hold its content (and any field ending in ``_id``)."""
_IDENTIFIER_VALUE = re.compile(r"^(?=\S*\d)(?=\S*[A-Za-z])\S*[_-]\S*$|^[0-9a-f]{16,}$")
"""A single token joining letters and digits with ``_`` or ``-`` (``Mercury_417466``, ``cast2019_31``), or a long
hexadecimal hash: an identifier, not text."""


def _is_identifier_field(name: object) -> bool:
    return isinstance(name, str) and (name in IDENTIFIER_FIELDS or name.endswith("_id"))


def _content(value: Any) -> Iterator[str]:
    """The strings and numbers inside ``value``, in order, less identifiers and one-character labels."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 1 and not _IDENTIFIER_VALUE.match(text):
            yield text
    elif isinstance(value, Mapping):
        for name, inner in value.items():
            if not _is_identifier_field(name):
                yield from _content(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _content(inner)


def item_text(row: Mapping[str, Any]) -> str:
    """The content of an item as plain text: every string and number among its fields (nested lists and mappings
    included), in order, joined by newlines.

    Left out: fields that identify the item (``id``, ``split``, any ``*_id``), one-character strings (choice
    labels, answer keys such as ``A``) and single tokens that join letters and digits with ``_`` or ``-``
    (``Mercury_417466``) or are long hexadecimal hashes. An ARC item becomes its question and the texts of its
    choices; a custom task's item its rendered prompt and its references.

    Args:
        row: the item as the evaluation sees it (the row lm-eval receives).
    """
    return "\n".join(_content(row))
