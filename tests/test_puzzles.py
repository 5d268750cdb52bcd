"""Countdown puzzles: the solver proves solvability, the generator matches the dataset's distribution."""

from __future__ import annotations

from collections import Counter

from ftbench.tasks.countdown.dataset import EVAL_ROWS, CountdownOptions, countdown_items
from ftbench.tasks.countdown.puzzles import generate_puzzles, solve
from ftbench.tasks.countdown.scoring import score_countdown


def test_solver_finds_a_verified_solution() -> None:
    solution = solve([3, 3, 8, 8], 24)
    assert solution is not None
    assert score_countdown(f"<answer>{solution}</answer>", 24, [3, 3, 8, 8]).verdict == "correct"


def test_solver_says_none_when_unsolvable() -> None:
    assert solve([1, 1, 1], 100) is None
    assert solve([2, 3], 7) is None


def test_generator_is_seeded_and_solvable() -> None:
    puzzles = generate_puzzles(60, seed=7)
    assert puzzles == generate_puzzles(60, seed=7)
    assert puzzles != generate_puzzles(60, seed=8)
    for puzzle in puzzles:
        assert 10 <= puzzle.target <= 100
        assert len(puzzle.nums) in (3, 4)
        assert all(1 <= n <= 99 for n in puzzle.nums)
        assert score_countdown(f"<answer>{puzzle.solution}</answer>", puzzle.target, puzzle.nums).reward == 1.0
    sizes = Counter(len(p.nums) for p in puzzles)
    assert sizes[3] > 10 and sizes[4] > 10


def test_every_local_evaluation_row_is_solvable() -> None:
    items = countdown_items("test", CountdownOptions(source="local"))
    assert len(items) == len(EVAL_ROWS)
    assert [item["id"] for item in items[:2]] == ["cd-9002", "cd-9003"]
    assert all(solve(item["nums"], item["target"]) for item in items[:150])


def test_train_and_test_items_do_not_overlap() -> None:
    train = countdown_items("train", CountdownOptions(source="local"))
    test = countdown_items("test", CountdownOptions(source="local"))
    assert not {i["id"] for i in train} & {i["id"] for i in test}
    generated_train = countdown_items("train", CountdownOptions(source="generated", count=20))
    generated_test = countdown_items("test", CountdownOptions(source="generated", count=20))
    assert not {(i["target"], tuple(i["nums"])) for i in generated_train} & {
        (i["target"], tuple(i["nums"])) for i in generated_test
    }
