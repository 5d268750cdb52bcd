"""Warm-start traces for supervised fine-tuning: the solver's search for a puzzle, written out in words.

A trace first tries adding every number, then walks the solver's equation one operation at a time and
ends in ``<answer>equation</answer>``, the form the Countdown reward reads. It starts with the same words
that the evaluation puts at the start of the model's turn (``RESPONSE_PREFIX``).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from fractions import Fraction

from ftbench.tasks.countdown.puzzles import solve
from ftbench.tasks.countdown.scoring import OPERATORS, parse_equation

RESPONSE_PREFIX = "Let me solve this step by step.\n<think>"
"""The start of every Countdown answer; the lm-eval task's ``gen_prefix``."""

_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _walk(node: ast.expr, steps: list[str]) -> Fraction:
    """Evaluate a solver equation bottom-up, writing one ``a op b = c`` line per operation."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return Fraction(node.value)
    if not isinstance(node, ast.BinOp):
        raise ValueError(f"the solver wrote an unexpected {type(node).__name__}")
    left, right = _walk(node.left, steps), _walk(node.right, steps)
    value = OPERATORS[type(node.op)](left, right)
    steps.append(f"{_number(left)} {_SYMBOLS[type(node.op)]} {_number(right)} = {_number(value)}")
    return value


def warm_start_trace(target: int, nums: Sequence[int]) -> str | None:
    """The assistant's answer for one puzzle, or None when the puzzle has no solution."""
    equation = solve(nums, target)
    if equation is None:
        return None
    total = sum(nums)
    listed = ", ".join(str(n) for n in nums)
    if total == target:
        search, equation = f"Adding all of {listed} gives {total}, the target.", " + ".join(str(n) for n in nums)
    else:
        steps: list[str] = []
        _walk(parse_equation(equation), steps)
        verdict = "too much" if total > target else "too little"
        search = f"Adding all of {listed} gives {total}, {verdict}. Try " + ", then ".join(steps) + ". That is it."
    return f"{RESPONSE_PREFIX} {search} </think>\n<answer>{equation}</answer>"
