"""A seeded noise model that corrupts clean questions the way people type them.

Each question gets, from a ``random.Random`` seeded by the item id and the task seed:
- character typos in about ``typo_rate`` of its words longer than three letters: a swap of two adjacent
  letters, a dropped letter, a doubled letter, or a letter replaced by its keyboard neighbour;
- with probability 0.6 a filler opening ("um, so", "quick question:", ...) and with probability 0.4 an
  irrelevant closing phrase ("thanks in advance!", "asking for a friend", ...);
- casing errors: with probability 0.3 the whole question in lower case, else each word's case flipped
  with probability 0.05;
- spacing errors: a doubled space, a space before the question mark, or a missing space after a comma,
  each with probability 0.3.
A question that comes out unchanged gets a filler opening, so every item needs a fix. The clean question is
the target.
"""

from __future__ import annotations

import hashlib
import random

FILLERS = ("um, so ", "quick question: ", "hey, i was wondering ", "so basically ", "ok so like ", "hi! ")
CLOSINGS = (" thanks in advance!", " (asking for a friend)", " if that makes sense", " lol", " pls help")
NEIGHBOURS = {
    "a": "qsz",
    "b": "vgn",
    "c": "xdv",
    "d": "sfe",
    "e": "wrd",
    "f": "dgr",
    "g": "fht",
    "h": "gjy",
    "i": "uok",
    "j": "hku",
    "k": "jli",
    "l": "kop",
    "m": "nj",
    "n": "bmh",
    "o": "ipl",
    "p": "ol",
    "q": "wa",
    "r": "etf",
    "s": "adw",
    "t": "ryg",
    "u": "yij",
    "v": "cbf",
    "w": "qes",
    "x": "zcs",
    "y": "tuh",
    "z": "xa",
}


def item_rng(item_id: str, seed: int) -> random.Random:
    """A generator seeded by an item id and the task seed, independent of item order."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    neighbours = NEIGHBOURS.get(word[i].lower(), word[i])
    return word[:i] + rng.choice(neighbours) + word[i + 1 :]


def corrupt(question: str, rng: random.Random, typo_rate: float = 0.15) -> str:
    """A noisy version of ``question`` drawn with ``rng``."""
    words = [
        _typo(word, rng) if len(word) > 3 and word.isalpha() and rng.random() < typo_rate else word
        for word in question.split()
    ]
    if rng.random() < 0.3:
        words = [word.lower() for word in words]
    else:
        words = [word.swapcase() if rng.random() < 0.05 else word for word in words]
    text = " ".join(words)
    if rng.random() < 0.6:
        text = rng.choice(FILLERS) + text[:1].lower() + text[1:]
    if rng.random() < 0.4:
        text = text + rng.choice(CLOSINGS)
    if rng.random() < 0.3 and " " in text:
        position = rng.choice([i for i, char in enumerate(text) if char == " "])
        text = text[:position] + " " + text[position:]
    if rng.random() < 0.3:
        text = text.replace("?", " ?", 1)
    if rng.random() < 0.3:
        text = text.replace(", ", ",", 1)
    if text == question:
        text = rng.choice(FILLERS) + text[:1].lower() + text[1:]
    return text
