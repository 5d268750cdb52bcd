"""The Countdown scorer: TinyZero's rule reward on hand-written and malicious responses."""

from __future__ import annotations

import re

import pytest

from tasks.countdown.scoring import (
    CORRECT_SCORE,
    FORMAT_SCORE,
    countdown_reward,
    extract_answer,
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


# TinyZero's compute_score (verl/utils/reward_score/countdown.py), transcribed for the agreement test. It
# calls eval on the extracted equation, so it is run only on the fixed strings below, never on model output.
def tinyzero_compute_score(solution_str: str, target: int, numbers: list[int]) -> float:
    if "<|im_start|>assistant" not in solution_str:
        return 0
    solution_str = solution_str.split("<|im_start|>assistant", 1)[1].split("\n")[-1]
    matches = list(re.finditer(r"<answer>(.*?)</answer>", solution_str))
    if not matches:
        return 0
    equation = matches[-1].group(1).strip()
    if sorted(int(n) for n in re.findall(r"\d+", equation)) != sorted(numbers):
        return 0.1
    if not re.match(r"^[\d+\-*/().\s]+$", equation):
        return 0.1
    try:
        result = eval(equation, {"__builtins__": None}, {})
    except Exception:
        return 0.1
    return 1.0 if abs(result - target) < 1e-5 else 0.1


AGREEMENT_CASES = [
    "<answer>44 + 19 + 35</answer>",
    "reasoning...\n<answer> (44 + 35) + 19 </answer>",
    "<answer>44 + 19 - 35</answer>",
    "<answer>44 + 44 + 10</answer>",
    "<answer>44 * 19 / 35</answer>",
    "<answer>44+19+35</answer><answer>1+2</answer>",
    "<answer>44 + (19 + 35</answer>",
    "<answer>98</answer>",
    "<answer>35 - 44 + 19 * 1</answer>",
    "no answer here",
    "<answer>44 + 19 + 35 = 98</answer>",
    "<think>a</think>\n<answer>(35 + 19) + 44</answer>",
    "<answer>44 / (19 - 19) + 35</answer>",
]


@pytest.mark.parametrize("response", AGREEMENT_CASES)
def test_agrees_with_tinyzero_when_the_answer_is_on_the_last_line(response: str) -> None:
    reference = tinyzero_compute_score("<|im_start|>assistant\n" + response, TARGET, NUMS)
    assert score_countdown(response, TARGET, NUMS).reward == pytest.approx(reference)
