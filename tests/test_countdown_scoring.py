"""The Countdown scorer: TinyZero's rule reward on hand-written and malicious responses."""

from __future__ import annotations

import random
import re
import time

import pytest

from ftbench.tasks.countdown.scoring import (
    CORRECT_SCORE,
    FORMAT_SCORE,
    MAX_EQUATION_CHARS,
    MAX_NODES,
    EquationError,
    countdown_reward,
    evaluate_equation,
    extract_answer,
    parse_equation,
    score_countdown,
)

NUMS = [44, 19, 35]
TARGET = 98  # 44 + 19 + 35


@pytest.mark.parametrize(
    ("response", "reward", "verdict"),
    [
        ("<think>add them</think> <answer>44 + 19 + 35</answer>", CORRECT_SCORE, "correct"),
        ("<answer> (44 + 35) + 19 </answer>", CORRECT_SCORE, "correct"),
        ("<answer>44 + 19 - 35</answer>", FORMAT_SCORE, "wrong_value"),
        ("<answer>44 + 44 + 10</answer>", FORMAT_SCORE, "wrong_numbers"),  # reused number
        ("<answer>44 + 54</answer>", FORMAT_SCORE, "wrong_numbers"),  # missing number
        ("<answer>44 + 19 + 35 + 0</answer>", FORMAT_SCORE, "wrong_numbers"),  # extra number
        ("the answer is 44 + 19 + 35", 0.0, "no_answer"),
        ("<answer>44 + 19 + 35", 0.0, "no_answer"),  # tag never closed
        ("<answer>44 + 19 + 35</answer> then <answer>44 - 19 + 35</answer>", FORMAT_SCORE, "wrong_value"),
        ("<answer>44 - 19 + 35</answer> then <answer>44 + 19 + 35</answer>", CORRECT_SCORE, "correct"),
        ("<answer>__import__('os').system('echo hi')</answer>", FORMAT_SCORE, "malformed"),
        ("<answer>9**9**9</answer>", FORMAT_SCORE, "malformed"),
        ("<answer>44 + 19 + 35 = 98</answer>", FORMAT_SCORE, "malformed"),
        ("<answer>44 ^ 19 + 35</answer>", FORMAT_SCORE, "malformed"),
        ("<answer></answer>", FORMAT_SCORE, "malformed"),
        ("<answer>" + "(" * 300 + "44" + ")" * 300 + "</answer>", FORMAT_SCORE, "malformed"),
    ],
)
def test_rule_reward(response: str, reward: float, verdict: str) -> None:
    score = score_countdown(response, TARGET, NUMS)
    assert score.reward == reward
    assert score.verdict == verdict


def test_division_by_zero_scores_as_wrong() -> None:
    score = score_countdown("<answer>7 / (3 - 3)</answer>", 10, [7, 3, 3])
    assert score == (FORMAT_SCORE, "wrong_value", "7 / (3 - 3)")


def test_exact_division_and_unary_minus() -> None:
    assert score_countdown("<answer>8 / (3 - 8 / 3)</answer>", 24, [3, 3, 8, 8]).reward == CORRECT_SCORE
    assert score_countdown("<answer>-5 + 20 * 3</answer>", 55, [5, 20, 3]).reward == CORRECT_SCORE


def test_answer_spanning_lines_counts() -> None:
    assert extract_answer("<answer>\n44 + 19\n+ 35\n</answer>") == "44 + 19\n+ 35"
    assert score_countdown("<answer>\n(44 + 19\n+ 35)\n</answer>", TARGET, NUMS).reward == CORRECT_SCORE


def test_reward_function_takes_strings_and_conversations() -> None:
    completions = [
        "<answer>44 + 19 + 35</answer>",
        [{"role": "assistant", "content": "<answer>44 + 19</answer>"}],
        [{"role": "assistant", "content": "no tag"}],
    ]
    rewards = countdown_reward(completions, target=[TARGET] * 3, nums=[NUMS] * 3, prompts=["ignored"] * 3)
    assert rewards == [CORRECT_SCORE, FORMAT_SCORE, 0.0]


@pytest.mark.parametrize(
    ("response", "target", "nums", "reward", "verdict"),
    [
        # Python syntax outside TinyZero's character set: each scored 1.0 before, TinyZero gives 0.1.
        ("<answer>1+2+3 # note</answer>", 6, [1, 2, 3], FORMAT_SCORE, "malformed"),
        ("<answer>1 + 2 + \\\n3</answer>", 6, [1, 2, 3], FORMAT_SCORE, "malformed"),
        ("<answer>0xA</answer>", 10, [10], FORMAT_SCORE, "malformed"),
        ("<answer>0o12</answer>", 10, [10], FORMAT_SCORE, "malformed"),
        ("<answer>0b1010</answer>", 10, [10], FORMAT_SCORE, "malformed"),
        ("<answer>1_0</answer>", 10, [10], FORMAT_SCORE, "malformed"),
        ("<answer>1e1</answer>", 10, [10], FORMAT_SCORE, "malformed"),
        ("<answer>1E1 + 0</answer>", 10, [10, 0], FORMAT_SCORE, "malformed"),
        # Decimals: whole numbers only, even where the decimal rounds to a given number.
        ("<answer>1.9999999999999999 + 2</answer>", 4, [2, 2], FORMAT_SCORE, "malformed"),
        ("<answer>2. + 2</answer>", 4, [2, 2], FORMAT_SCORE, "malformed"),
        ("<answer>1.5 * 2</answer>", 3, [1, 5, 2], FORMAT_SCORE, "malformed"),
        ("<answer>.5 * 8</answer>", 4, [5, 8], FORMAT_SCORE, "malformed"),
        # Unicode digits: TinyZero's eval fails on them.
        ("<answer>٣ + 1</answer>", 4, [3, 1], FORMAT_SCORE, "malformed"),
        ("<answer>３ + 1</answer>", 4, [3, 1], FORMAT_SCORE, "malformed"),
        ("<answer>3\u00a0+ 1</answer>", 4, [3, 1], FORMAT_SCORE, "malformed"),
        # Operators beyond + - * /.
        ("<answer>8 // 2</answer>", 4, [8, 2], FORMAT_SCORE, "malformed"),
        ("<answer>2 ** 2</answer>", 4, [2, 2], FORMAT_SCORE, "malformed"),
        ("<answer>True + 3</answer>", 4, [3], FORMAT_SCORE, "malformed"),
        ("<answer>(2, 2)</answer>", 4, [2, 2], FORMAT_SCORE, "malformed"),
        ("<answer>()</answer>", 4, [], FORMAT_SCORE, "malformed"),
        ("<answer>...</answer>", 4, [], FORMAT_SCORE, "malformed"),
        ("<answer>(2)(2)</answer>", 4, [2, 2], FORMAT_SCORE, "malformed"),
        # Unary signs: both allowed, as in TinyZero's eval.
        ("<answer>+3 + 1</answer>", 4, [3, 1], CORRECT_SCORE, "correct"),
        ("<answer>-(-3) + +1</answer>", 4, [3, 1], CORRECT_SCORE, "correct"),
        ("<answer>+3 - 1</answer>", 4, [3, 1], FORMAT_SCORE, "wrong_value"),
    ],
)
def test_python_only_syntax_is_malformed(
    response: str, target: int, nums: list[int], reward: float, verdict: str
) -> None:
    score = score_countdown(response, target, nums)
    assert (score.reward, score.verdict) == (reward, verdict)


def test_evaluate_equation_keeps_the_sign_of_unary_operators() -> None:
    assert evaluate_equation(parse_equation("+3")) == 3
    assert evaluate_equation(parse_equation("-3")) == -3
    assert evaluate_equation(parse_equation("+-+3 - -2")) == -1


def test_evaluate_equation_rejects_nodes_parse_equation_does_not_allow() -> None:
    import ast

    for source in ["~3", "2 ** 3", "7 // 2", "2.5", "True"]:
        with pytest.raises(EquationError):
            evaluate_equation(ast.parse(source, mode="eval").body)


def test_caps() -> None:
    padded = "44 +" + " " * (MAX_EQUATION_CHARS - 11) + "19 + 35"
    assert len(padded) == MAX_EQUATION_CHARS
    assert score_countdown(f"<answer>{padded}</answer>", TARGET, NUMS).verdict == "correct"
    assert score_countdown(f"<answer>\n {padded} \n</answer>", TARGET, NUMS).verdict == "correct"  # stripped first
    assert score_countdown(f"<answer>{padded.replace('+', '+ ', 1)}</answer>", TARGET, NUMS).verdict == "malformed"
    signs = (MAX_NODES - 10) // 2  # 4 numbers, 3 operations with their operator nodes, then 2 nodes a sign
    assert score_countdown(f"<answer>{'+' * signs}44 + 19 + 35 + 0</answer>", 98, [*NUMS, 0]).verdict == "correct"
    assert score_countdown(f"<answer>{'+' * (signs + 1)}44 + 19 + 35 + 0</answer>", 98, [*NUMS, 0]).verdict == (
        "malformed"
    )


def test_extraction_matches_the_regular_expression() -> None:
    """Left-to-right, non-overlapping, non-greedy matches, as ``re.findall`` finds them, on random tag soup."""
    pieces = ["<answer>", "</answer>", "<answer", "answer>", "</", "<", ">", "1", " ", "\n"]
    rng = random.Random(3)
    for _ in range(3000):
        response = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        matches = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
        assert extract_answer(response) == (matches[-1].strip() if matches else None), response
    assert extract_answer("<answer>a<answer>b</answer>") == "a<answer>b"
    assert extract_answer("<answer></answer></answer>") == ""


PATHOLOGICAL = {
    "unclosed openings": ("<answer>" * (2**20 // 8), "no_answer"),
    "openings then one closing": ("<answer>" * (2**20 // 8 - 2) + "</answer>", "malformed"),
    "open parentheses": ("(" * 2**20, "no_answer"),
    "tagged parentheses": ("<answer>" + "(" * 2**20 + "</answer>", "malformed"),
    "tagged sum": ("<answer>" + "1+" * 2**19 + "1</answer>", "malformed"),
    "tagged digits": ("<answer>" + "7" * 2**20 + "</answer>", "malformed"),
    "tagged whitespace": ("<answer>44 +" + " " * 2**20 + "19 + 35</answer>", "malformed"),
    "complete tags": ("<answer>1</answer>" * (2**20 // 18), "wrong_numbers"),
    "partial tags": ("<answer" * (2**20 // 7), "no_answer"),
    "closings only": ("</answer>" * (2**20 // 9), "no_answer"),
}


@pytest.mark.parametrize("shape", PATHOLOGICAL)
def test_a_megabyte_response_scores_in_under_a_second(shape: str) -> None:
    response, verdict = PATHOLOGICAL[shape]
    assert len(response) >= 2**20 - 20
    start = time.perf_counter()
    score = score_countdown(response, TARGET, NUMS)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{shape}: {elapsed:.3f} s"  # 0.5-25 ms measured; the quadratic extraction took minutes
    assert score.verdict == verdict
