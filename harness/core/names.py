"""Names that enter from specs and stored records: which are accepted, and how any name is shown on a terminal.

A run's or a task's name becomes part of file names, table cells and one-line messages. A spec may only give
printable names without ``/`` that are not ``.`` or ``..``; a name read back from a record someone else wrote
is shown with its control characters written out (``\\x1b``), so no results folder can drive the terminal
(clear the screen, set the window title, change colours).
"""

from __future__ import annotations

import unicodedata

_SHOWN_AS_ESCAPES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
"""Unicode categories written out rather than printed: controls (C0, DEL, C1), format characters (bidirectional
overrides among them), private use, surrogates, and line or paragraph separators."""


def _written_out(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_text(text: object) -> str:
    """``text`` made safe for a terminal: every control or invisible formatting character written out as an escape
    (``ESC`` as ``\\x1b``), everything else unchanged. Tabs and line breaks are written out too, so one value stays
    on one line."""
    return _escaped(str(text), keep="")


def terminal_lines(text: str) -> str:
    """Several lines of output made safe for a terminal: as ``terminal_text``, with line breaks and tabs kept."""
    return "\n".join(_escaped(line, keep="\t") for line in text.split("\n"))


def _escaped(value: str, keep: str) -> str:
    if value.isprintable():
        return value
    return "".join(
        _written_out(c) if c not in keep and unicodedata.category(c) in _SHOWN_AS_ESCAPES else c for c in value
    )


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run or a task (None when it can): empty, ``.`` or ``..``, a ``/`` or ``\\``, a
    character that does not print (NUL, a line break, an escape sequence), or a space at either end."""
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return "is a folder reference"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if not name.isprintable():
        return "holds a character that does not print (a control character or a line break)"
    if name != name.strip():
        return "starts or ends with a space"
    return None


def check_name(name: str, what: str) -> str:
    """``name`` when it can name a run or a task.

    Args:
        name: the name given.
        what: what it names, for the message (``task name``).

    Raises:
        ValueError: naming the problem and what to use instead (read by pydantic as a validation error).
    """
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(
            f"{what} {terminal_text(repr(name))} {problem}; use printable characters without '/', not '.' or '..'"
        )
    return name
