"""Countdown scoring: TinyZero's rule reward, with a bounded AST evaluator instead of ``eval``.

Rules (rewards on a 0-1 scale):
- 1.0 when the last complete ``<answer>...</answer>`` holds an equation that uses exactly the given
  numbers, each once, and evaluates to the target within 1e-5;
- 0.1 (the format score) when an answer tag is present but its equation is wrong, malformed, divides by
  zero or uses other numbers;
- 0.0 when there is no complete answer tag.

An equation is well formed when it is at most ``MAX_EQUATION_CHARS`` (200) characters of TinyZero's
character set with ASCII digits only (``[0-9+\\-*/().\\s]``), parses as one Python expression of at most
``MAX_NODES`` (64) syntax nodes, and holds only whole-number literals, binary ``+ - * /``, unary ``+``
and ``-``, and parentheses. It is evaluated with exact fractions, then compared with the target as a float.

Intentional differences from TinyZero's ``countdown.py`` (each scores 0.1 here where TinyZero can give 1.0,
except the first, which can go either way):
- the last complete answer tag anywhere in the response counts, and it may span lines (TinyZero reads only
  the response's last line, after its ``Assistant:`` or ``<|im_start|>assistant`` marker);
- ``**`` (power) is malformed; TinyZero's character set and ``eval`` accept it, and ``9**9**9`` would have
  it compute a number of some 370 million digits;
- ``//`` (floor division) is malformed; the prompt allows only ``+ - * /``, while TinyZero's character set
  and ``eval`` accept it;
- a literal with a decimal point (``3.5``, ``2.``, ``.5``) is malformed; TinyZero's ``\\d+`` reads ``3.5`` as
  the numbers 3 and 5 and its ``eval`` then computes with 3.5;
- an equation over the caps (``MAX_EQUATION_CHARS``, ``MAX_NODES``) is malformed; TinyZero has no caps (see
  ``parse_equation`` for why a correct answer never needs more).

Not differences, though the code differs: a unicode digit such as ``٣`` or ``３`` scores 0.1 in both (TinyZero's
unicode ``\\d`` admits it and then its ``eval`` fails on it; here the ASCII character set rejects it); other
Python syntax (comments, ``\\`` continuations, ``0x`` literals, ``1_0``, ``1e1``, names, calls) is outside
the character set in both; and exact arithmetic agrees with TinyZero's floats within the tolerance for
numbers of puzzle size.
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
"""The longest equation read, in characters (of the answer tag's stripped content); a 4-number answer needs about 25."""
MAX_NODES = 64
"""The most syntax nodes an equation may have (numbers, operations and their operator nodes); a 4-number
answer has 10."""

_OPEN = "<answer>"
_CLOSE = "</answer>"
_CHARACTERS = re.compile(r"[0-9+\-*/().\s]+", re.ASCII)
"""TinyZero's character set ``[\\d+\\-*/().\\s]``, with ASCII digits and whitespace only."""

OPERATORS: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
"""The four operations an equation may use, by AST node type."""

_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Fraction], Fraction]] = {
    ast.UAdd: lambda a: +a,
    ast.USub: lambda a: -a,
}

Verdict = Literal["correct", "wrong_value", "wrong_numbers", "malformed", "no_answer"]


class EquationError(ValueError):
    """An equation that is not a bounded expression of whole numbers, + - * /, parentheses and unary signs."""


class CountdownScore(NamedTuple):
    """The score of one response, with the reason for it."""

    reward: float
    verdict: Verdict
    equation: str | None


def extract_answer(response: str) -> str | None:
    """The stripped content of the last complete ``<answer>...</answer>`` in ``response``, if any.

    The same as the last of ``re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)``: matches run left to
    right without overlapping, each up to the first closing tag after its opening (so ``<answer>a<answer>b</answer>``
    gives ``a<answer>b``). Linear in the length of the response: it stops at the first opening tag with no
    closing tag after it, as no later opening can have one either.
    """
    last: tuple[int, int] | None = None
    position = 0
    while (start := response.find(_OPEN, position)) >= 0:
        end = response.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        last = (start + len(_OPEN), end)
        position = end + len(_CLOSE)
    return response[last[0] : last[1]].strip() if last else None


def parse_equation(equation: str) -> ast.expr:
    """Parse ``equation`` into an AST that holds only allowed nodes.

    Allowed: whole-number literals, binary ``+ - * /``, unary ``+`` and ``-``, and parentheses, written with
    ASCII digits, those symbols, ``.`` and whitespace only (TinyZero's character set, so a ``.`` can only make
    a decimal literal, which is then rejected).

    The caps bound the parser's time, memory and recursion whatever the response holds. TinyZero has none: it
    accepts a correct equation of any length, padded with whitespace, up to 200 levels of redundant
    parentheses (Python's limit) or long chains of unary signs. A correct answer never needs the padding: four
    two-digit numbers, three operators, two pairs of parentheses and a space around every operator come to
    about 25 characters and 10 nodes, so ``MAX_EQUATION_CHARS`` (200) and ``MAX_NODES`` (64) leave ample room
    for any natural formatting, and a padded answer scores 0.1 here.

    Raises:
        EquationError: too long, outside the character set, not an expression, too many nodes, or holding
            anything beyond whole numbers, + - * /, unary signs and parentheses.
    """
    if len(equation) > MAX_EQUATION_CHARS:
        raise EquationError(f"equation longer than {MAX_EQUATION_CHARS} characters")
    if not _CHARACTERS.fullmatch(equation):
        raise EquationError("characters beyond ASCII digits, + - * / ( ) . and whitespace")
    try:
        tree = ast.parse(equation, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise EquationError(f"not an arithmetic expression: {exc}") from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise EquationError(f"more than {MAX_NODES} syntax nodes")
    for node in nodes:
        if isinstance(node, ast.Constant) and _whole_number(node) is None:
            raise EquationError(f"{node.value!r} is not a whole number")
        allowed = (
            (isinstance(node, ast.BinOp) and type(node.op) in OPERATORS)
            or (isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS)
            or isinstance(node, ast.Constant)
            or type(node) in OPERATORS
            or type(node) in _UNARY_OPERATORS
        )
        if not allowed:
            raise EquationError(f"{type(node).__name__} is not allowed")
    return tree


def _whole_number(node: ast.AST) -> int | None:
    """The value of a whole-number literal; None for any other node."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    return None


def equation_numbers(tree: ast.expr) -> list[int]:
    """The number literals of a parsed equation, in source order."""
    numbers = [
        (node.lineno, node.col_offset, value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and (value := _whole_number(node)) is not None
    ]
    return [value for *_, value in sorted(numbers)]


def evaluate_equation(tree: ast.expr) -> Fraction:
    """Evaluate an equation parsed by ``parse_equation`` exactly.

    Raises:
        ZeroDivisionError: the equation divides by zero.
        EquationError: the tree holds a node ``parse_equation`` does not allow.
    """
    if (value := _whole_number(tree)) is not None:
        return Fraction(value)
    if isinstance(tree, ast.UnaryOp) and type(tree.op) in _UNARY_OPERATORS:
        return _UNARY_OPERATORS[type(tree.op)](evaluate_equation(tree.operand))
    if isinstance(tree, ast.BinOp) and type(tree.op) in OPERATORS:
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
