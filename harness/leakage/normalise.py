"""The one normalisation every comparison of the audit reads, as lm-eval's decontamination normalises and more.

``normalise_text`` applies, in order:

1. Unicode NFKC (compatibility forms folded: full-width letters, ligatures, ``½`` → ``1⁄2``), then case-folding
   (``str.casefold``: ``ß`` → ``ss``), then NFKC again, as Unicode's ``NFKC_Casefold`` does.
2. Every punctuation and symbol character (Unicode categories ``P*`` and ``S*``: ASCII's ``string.punctuation``
   and its Unicode kin, such as curly quotes, dashes, ``°``, ``€``) is deleted, not replaced by a space, as
   lm-eval's ``Janitor`` deletes ``string.punctuation``: ``don't`` → ``dont``, ``well-known`` → ``wellknown``.
   Format and control characters that are not whitespace (``C*``: zero-width space, soft hyphen) are deleted too.
3. Every run of whitespace (``str.split``'s: spaces, tabs, newlines, no-break spaces) becomes one space, and the
   ends are stripped.

Words are the space-separated tokens of the normalised text (lm-eval's ``word_ngrams`` splits the same way). On
ASCII text the words are exactly those of lm-eval's ``Janitor`` (ASCII lower-casing, ``string.punctuation``
deleted, split on whitespace); the steps above extend that rule to Unicode.
The long-substring check reads the normalised text with its spaces removed as well, as GPT-4's contamination
check kept only letters and digits before taking 50-character substrings.
"""

from __future__ import annotations

import unicodedata
from typing import Final

NORMALISER: Final = "nfkc-casefold-drop-punctuation-v1"
"""The name of this normalisation, stored with fingerprints so that a changed rule is never compared silently."""


class _DeletionTable(dict[int, int | None]):
    """``str.translate``'s table, filled as characters are met: punctuation, symbols and non-space controls map to
    None (deleted), whitespace to a space, everything else to itself."""

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        category = unicodedata.category(char)
        if char.isspace():
            value: int | None = ord(" ")
        elif category[0] in "PSC":
            value = None
        else:
            value = code
        self[code] = value
        return value


_TABLE = _DeletionTable()


def normalise_text(text: str) -> str:
    """``text`` normalised for comparison (see the module's description).

    Args:
        text: any text.

    Returns:
        Case-folded words of letters, digits and marks, separated by single spaces.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.translate(_TABLE).split())


def text_words(normalised: str) -> list[str]:
    """The words of an already normalised text."""
    return normalised.split(" ") if normalised else []


def spaceless(normalised: str) -> str:
    """An already normalised text without its spaces: what the long-substring check compares."""
    return normalised.replace(" ", "")
