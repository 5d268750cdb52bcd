"""Countdown puzzles: an exhaustive solver and a seeded generator of solvable puzzles.

The generator follows the distribution of Countdown-Tasks-3to4: target uniform in 10..100, three or four
numbers (even odds) uniform in 1..99, kept only when the solver proves the puzzle solvable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from ftbench.tasks.countdown.scoring import evaluate_equation, parse_equation

TARGET_RANGE = (10, 100)
NUMBER_RANGE = (1, 99)
SIZES = (3, 4)


class Puzzle(NamedTuple):
    """One Countdown puzzle and an equation that solves it."""

    target: int
    nums: tuple[int, ...]
    solution: str


class _Term(NamedTuple):
    value: float
    text: str


def _equal(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


def _combinations(a: _Term, b: _Term) -> list[_Term]:
    combined = [
        _Term(a.value + b.value, f"({a.text} + {b.text})"),
        _Term(a.value * b.value, f"({a.text} * {b.text})"),
        _Term(a.value - b.value, f"({a.text} - {b.text})"),
        _Term(b.value - a.value, f"({b.text} - {a.text})"),
    ]
    if b.value != 0:
        combined.append(_Term(a.value / b.value, f"({a.text} / {b.text})"))
    if a.value != 0:
        combined.append(_Term(b.value / a.value, f"({b.text} / {a.text})"))
    return combined


def _finish(a: _Term, b: _Term, target: float) -> str | None:
    """The last step, checked on values before any text is built (the hot path of the search)."""
    x, y = a.value, b.value
    if _equal(x + y, target):
        return f"({a.text} + {b.text})"
    if _equal(x * y, target):
        return f"({a.text} * {b.text})"
    if _equal(x - y, target):
        return f"({a.text} - {b.text})"
    if _equal(y - x, target):
        return f"({b.text} - {a.text})"
    if y != 0 and _equal(x, target * y):
        return f"({a.text} / {b.text})"
    if x != 0 and _equal(y, target * x):
        return f"({b.text} / {a.text})"
    return None


def _search(terms: list[_Term], target: float, seen: set[tuple[float, ...]]) -> str | None:
    if len(terms) == 2:
        return _finish(terms[0], terms[1], target)
    state = tuple(sorted(term.value for term in terms))
    if state in seen:
        return None
    seen.add(state)
    for i in range(len(terms)):
        for j in range(i + 1, len(terms)):
            rest = [term for k, term in enumerate(terms) if k not in (i, j)]
            for term in _combinations(terms[i], terms[j]):
                found = _search([*rest, term], target, seen)
                if found is not None:
                    return found
    return None


def solve(nums: Sequence[int], target: int) -> str | None:
    """An equation using every number of ``nums`` once that equals ``target``, or None if none exists.

    Float search with a 1e-9 tolerance; the equation returned is verified exactly.
    """
    if len(nums) == 1:
        return str(nums[0]) if nums[0] == target else None
    found = _search([_Term(float(n), str(n)) for n in nums], float(target), set())
    if found is None:
        return None
    # The search runs on floats for speed; the answer is proven with exact rational arithmetic.
    equation = found[1:-1]
    return equation if evaluate_equation(parse_equation(equation)) == Fraction(target) else None


def generate_puzzles(count: int, seed: int) -> list[Puzzle]:
    """``count`` solvable puzzles drawn with a ``random.Random(seed)``; the same seed gives the same list."""
    rng = random.Random(seed)
    puzzles: list[Puzzle] = []
    while len(puzzles) < count:
        nums = tuple(rng.randint(*NUMBER_RANGE) for _ in range(rng.choice(SIZES)))
        target = rng.randint(*TARGET_RANGE)
        solution = solve(nums, target)
        if solution is not None:
            puzzles.append(Puzzle(target, nums, solution))
    return puzzles
