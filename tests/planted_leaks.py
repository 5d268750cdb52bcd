"""A custom task built from real ARC-Easy test items and training files with leaks of its items planted among clean
rows, for the leakage audit's tests: exact copies, copies with case, punctuation and spacing changed, copies with
one word in ten replaced, and rows that share only a short opening phrase with a clean item."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.leakage.normalise import normalise_text
from ftbench.harness.leakage.planting import replace_words, restyle
from ftbench.tasks.data import default_data_dir

GROUPS = {"exact": 40, "restyled": 40, "replaced": 100}
CONTROL = 500


def data_file(relative: str) -> Path:
    """A file of the offline data folder (the test fails, never skips, where the folder does not hold it)."""
    path = default_data_dir() / relative
    assert path.is_file(), f"{path} is not here; point FTBENCH_DATA_DIR at the offline data folder"
    return path


def arc_items(split: str = "test") -> list[dict[str, str]]:
    """ARC-Easy items as a custom task's rows: id, question and the correct choice's text."""
    rows = json.loads(data_file(f"arc/arc_easy_{split}.json").read_text(encoding="utf-8"))
    return [
        {
            "id": r["id"],
            "question": r["question"],
            "answer": r["choices"]["text"][r["choices"]["label"].index(r["answerKey"])],
        }
        for r in rows
    ]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """``rows`` as JSON lines."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def chat(user: str, assistant: str) -> dict[str, Any]:
    """A training row as SFT files hold them."""
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


class Planted(NamedTuple):
    """The task's data file, the two training files (one per stage), and which evaluated item is which."""

    task_file: Path
    first_file: Path
    """Exact and restyled copies, among clean ARC-Easy validation questions."""
    second_file: Path
    """Copies with words replaced and rows sharing an opening phrase, among clean TREC CAsT rewrites."""
    groups: dict[str, list[int]]
    """Doc ids by group: exact, restyled, replaced, control, phrase (control items whose opening a row shares)."""
    lines: dict[int, tuple[Path, int]]
    """The training file and line where each planted item went."""


def _leak(item: dict[str, str], kind: str, rng: random.Random, vocabulary: list[str]) -> dict[str, Any]:
    if kind == "exact":
        return chat(item["question"], item["answer"])
    if kind == "restyled":
        return chat(restyle(item["question"], rng), restyle(item["answer"], rng))
    question, answer = replace_words(f"{item['question']}\n{item['answer']}", rng, vocabulary).split("\n", 1)
    return chat(question, answer)


def _common_openings(items: list[dict[str, str]], count: int) -> list[str]:
    openings = [" ".join(item["question"].split()[:4]) for item in items]
    return sorted(set(openings), key=lambda phrase: (-openings.count(phrase), phrase))[:count]


def plant(folder: Path, seed: int = 2024) -> Planted:
    """Write the task file and the two training files into ``folder``."""
    rng = random.Random(seed)
    items = arc_items()
    rng.shuffle(items)
    leaks = sum(GROUPS.values())
    trained = {normalise_text(f"{i['question']}\n{i['answer']}") for i in items[:leaks]}
    control = [i for i in items[leaks:] if normalise_text(f"{i['question']}\n{i['answer']}") not in trained][:CONTROL]
    evaluated = items[:leaks] + control
    task_file = write_jsonl(folder / "task.jsonl", evaluated)
    vocabulary = sorted({w for item in items[leaks + CONTROL :] for w in item["question"].split() if w.isalpha()})
    first: list[tuple[dict[str, Any], int | None]] = [
        (chat(f"Question: {v['question']}", v["answer"]), None) for v in arc_items("validation")[:200]
    ]
    cast = [json.loads(line) for line in data_file("question_rewrite/cast_rewrite_pairs.jsonl").open(encoding="utf-8")]
    second: list[tuple[dict[str, Any], int | None]] = [(chat(p["question"], p["rewrite"]), None) for p in cast[:200]]
    groups: dict[str, list[int]] = {}
    start = 0
    for kind, count in GROUPS.items():
        groups[kind] = list(range(start, start + count))
        rows = first if kind in ("exact", "restyled") else second
        for doc_id in groups[kind]:
            rows.insert(rng.randrange(len(rows) + 1), (_leak(evaluated[doc_id], kind, rng, vocabulary), doc_id))
        start += count
    phrases = _common_openings(control, 10)
    second += [
        (chat(f"{phrase} {rng.choice(cast)['rewrite']}", "Noted."), None) for phrase in phrases for _ in range(3)
    ]
    lines: dict[int, tuple[Path, int]] = {}
    files = []
    for name, rows in (("first.jsonl", first), ("second.jsonl", second)):
        files.append(write_jsonl(folder / name, [row for row, _ in rows]))
        lines |= {doc_id: (files[-1], line) for line, (_, doc_id) in enumerate(rows, 1) if doc_id is not None}
    groups["control"] = list(range(leaks, leaks + len(control)))
    groups["phrase"] = [
        leaks + i for i, item in enumerate(control) if " ".join(item["question"].split()[:4]) in phrases
    ]
    return Planted(task_file, files[0], files[1], groups, lines)
