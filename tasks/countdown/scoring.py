"""Countdown scoring: TinyZero's rule reward, with a bounded AST evaluator instead of ``eval``.

Rules (rewards on a 0-1 scale):
- 1.0 when the last ``<answer>...</answer>`` holds an equation that uses exactly the given numbers,
  each once, and evaluates to the target within 1e-5;
- 0.1 (the format score) when an answer tag is present but its equation is wrong, malformed, divides by
  zero or uses other numbers;
- 0.0 when there is no complete answer tag.

Intentional differences from TinyZero's ``countdown.py``: the last answer tag anywhere in the response
counts (TinyZero reads only the response's last line); only ``+ - * /``, parentheses and unary minus are
allowed (TinyZero's ``eval`` also accepts ``**``); a decimal such as ``3.5`` is one number, not ``3`` and ``5``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Literal, NamedTuple

CORRECT_SCORE = 1.0
FORMAT_SCORE = 0.1
TOLERANCE = 1e-5
MAX_EQUATION_CHARS = 200
MAX_NODES = 64

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
OPERATORS: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
"""The four operations an equation may use, by AST node type."""

Verdict = Literal["correct", "wrong_value", "wrong_numbers", "malformed", "no_answer"]


class EquationError(ValueError):
    """An equation that is not a bounded expression of numbers, + - * /, parentheses and unary minus."""


class CountdownScore(NamedTuple):
    """The score of one response, with the reason for it."""

    reward: float
    verdict: Verdict
    equation: str | None


def extract_answer(response: str) -> str | None:
    """The stripped content of the last complete ``<answer>...</answer>`` in ``response``, if any."""
    matches = _ANSWER.findall(response)
    return matches[-1].strip() if matches else None


def parse_equation(equation: str) -> ast.expr:
    """Parse ``equation`` into an AST that holds only allowed nodes.

    Raises:
        EquationError: too long, not an expression, or holding anything beyond numbers and + - * /.
    """
    if len(equation) > MAX_EQUATION_CHARS:
        raise EquationError(f"equation longer than {MAX_EQUATION_CHARS} characters")
    try:
        tree = ast.parse(equation, mode="eval").body
    except (SyntaxError, ValueError) as exc:
        raise EquationError(f"not an arithmetic expression: {exc}") from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise EquationError(f"more than {MAX_NODES} syntax nodes")
    for node in nodes:
        allowed = (
            (isinstance(node, ast.BinOp) and type(node.op) in OPERATORS)
            or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub))
            or _is_number(node)
            or isinstance(node, ast.operator | ast.unaryop)
        )
        if not allowed:
            raise EquationError(f"{type(node).__name__} is not allowed")
    return tree


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool)


def equation_numbers(tree: ast.expr) -> list[int | float]:
    """The number literals of a parsed equation, in source order."""
    numbers = [node for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    numbers.sort(key=lambda node: (node.lineno, node.col_offset))
    return [node.value for node in numbers if isinstance(node.value, int | float)]


def evaluate_equation(tree: ast.expr) -> Fraction:
    """Evaluate a parsed equation exactly.

    Raises:
        ZeroDivisionError: the equation divides by zero.
    """
    if isinstance(tree, ast.Constant) and isinstance(tree.value, int | float):
        return Fraction(tree.value)
    if isinstance(tree, ast.UnaryOp):
        return -evaluate_equation(tree.operand)
    if isinstance(tree, ast.BinOp):
        operate = OPERATORS[type(tree.op)]
        return operate(evaluate_equation(tree.left), evaluate_equation(tree.right))
    raise EquationError(f"{type(tree).__name__} is not allowed")


def score_countdown(response: str, target: int, nums: Sequence[int]) -> CountdownScore:
    """Score one response to a Countdown puzzle with TinyZero's rule reward (0-1 scale)."""
    equation = extract_answer(response)
    if equation is None:
        return CountdownScore(0.0, "no_answer", None)
    try:
        tree = parse_equation(equation)
    except EquationError:
        return CountdownScore(FORMAT_SCORE, "malformed", equation)
    if sorted(equation_numbers(tree)) != sorted(nums):
        return CountdownScore(FORMAT_SCORE, "wrong_numbers", equation)
    try:
        value = evaluate_equation(tree)
    except ZeroDivisionError:
        return CountdownScore(FORMAT_SCORE, "wrong_value", equation)
    if abs(float(value) - target) < TOLERANCE:
        return CountdownScore(CORRECT_SCORE, "correct", equation)
    return CountdownScore(FORMAT_SCORE, "wrong_value", equation)


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """The text of a completion: a string, or the last message of a conversational completion."""
    if isinstance(completion, str):
        return completion
    return str(completion[-1]["content"]) if completion else ""


def countdown_reward(
    completions: Sequence[str | Sequence[dict[str, Any]]],
    target: Sequence[int],
    nums: Sequence[Sequence[int]],
    **_: Any,
) -> list[float]:
    """Reward function for TRL trainers: the same score the evaluation uses, one per completion."""
    return [
        score_countdown(completion_text(completion), goal, numbers).reward
        for completion, goal, numbers in zip(completions, target, nums, strict=True)
    ]
