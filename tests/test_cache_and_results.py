"""Cache keys change with every input; stored records are written atomically and read back typed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.cache import make_key
from harness.errors import FtbenchError
from harness.results import cached_eval, load_eval, save_eval, write_atomic
from tests.records import make_record

BASE_FIELDS: dict[str, Any] = {
    "weights_hash": "w" * 64,
    "precision": "fp32",
    "device": "cpu",
    "task": "countdown",
    "task_options": {"source": "local"},
    "generation": {"max_gen_toks": 256, "do_sample": False},
    "limit": 8,
    "seed": 1,
    "batch_size": 4,
}
CHANGES: list[tuple[str, Any]] = [
    ("weights_hash", "x" * 64),
    ("precision", "nf4"),
    ("device", "cuda"),
    ("task_options", {"source": "generated"}),
    ("generation", {"max_gen_toks": 128, "do_sample": False}),
    ("limit", 9),
    ("limit", None),
    ("seed", 2),
    ("batch_size", 8),
]


def test_key_is_stable() -> None:
    assert make_key(**BASE_FIELDS).digest() == make_key(**BASE_FIELDS).digest()


@pytest.mark.parametrize(("field", "value"), CHANGES)
def test_key_changes_with_each_input(field: str, value: Any) -> None:
    changed = {**BASE_FIELDS, field: value}
    assert make_key(**changed).digest() != make_key(**BASE_FIELDS).digest()


def test_key_follows_task_definition_and_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = make_key(**BASE_FIELDS)
    monkeypatch.setattr("harness.cache.task_definition_hash", lambda task: "edited")
    assert make_key(**BASE_FIELDS).digest() != before.digest()
    data = tmp_path / "countdown"
    data.mkdir()
    (data / "countdown_tasks_3to4.jsonl").write_text('{"hf_row": 0, "target": 10, "nums": [5, 5]}\n')
    other_data = make_key(**{**BASE_FIELDS, "task_options": {"source": "local", "data_dir": str(tmp_path)}})
    assert other_data.task_data_hash != before.task_data_hash


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"
    write_atomic(target, "old")

    def broken_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_records_round_trip_and_corrupt_ones_are_redone(tmp_path: Path) -> None:
    record = make_record("abc", "initial", "fp32", {"accuracy": [1, 0, 1, 1]})
    path = save_eval(tmp_path, record)
    assert load_eval(path) == record
    assert cached_eval(tmp_path, "abc") == record
    path.write_text(path.read_text()[:50])
    assert cached_eval(tmp_path, "abc") is None
    with pytest.raises(FtbenchError, match="not a valid ftbench evaluation record"):
        load_eval(path)
