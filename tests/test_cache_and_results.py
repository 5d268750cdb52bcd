"""Cache keys change with every input; stored records are written atomically and read back typed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import cached_eval, content_digest, load_eval, save_eval, write_atomic
from ftbench.harness.evaluation.run import plan_run
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.tasks.base import Task
from tests.records import make_record, make_request

CHANGES: list[tuple[str, Any]] = [
    ("weights_hash", "x" * 64),
    ("precision", "nf4"),
    ("device", "cuda"),
    ("options", {"source": "generated"}),
    ("generation", {"max_gen_toks": 128, "do_sample": False}),
    ("limit", 9),
    ("limit", None),
    ("seed", 2),
    ("batch_size", 8),
]


def test_key_is_stable() -> None:
    assert make_request().key() == make_request().key()
    assert make_request(checkpoint="elsewhere/initial").key() == make_request().key()  # a path names, not decides


@pytest.mark.parametrize(("field", "value"), CHANGES)
def test_key_changes_with_each_input(field: str, value: Any) -> None:
    assert make_request(**{field: value}).key() != make_request().key()


def _countdown_request(tiny: Path, options: dict[str, Any]) -> Any:
    spec = parse_spec({"checkpoints": [str(tiny)], "tasks": [{"name": "countdown", "options": options}]}, "test")
    return plan_run(spec)[0].request


def test_key_follows_task_definition_and_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    before = _countdown_request(tiny_model_dir, {"source": "local"})
    monkeypatch.setattr(Task, "definition_hash", lambda self: "edited")
    assert _countdown_request(tiny_model_dir, {"source": "local"}).key() != before.key()
    data = tmp_path / "countdown"
    data.mkdir()
    (data / "countdown_tasks_3to4.jsonl").write_text('{"hf_row": 9002, "target": 10, "nums": [5, 5]}\n')
    other_data = _countdown_request(tiny_model_dir, {"source": "local", "data_dir": str(tmp_path)})
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
    stored = record.model_copy(update={"digest": content_digest(record)})  # the store adds the content digest
    assert load_eval(path) == stored
    assert cached_eval(tmp_path, record.key) == stored
    path.write_text(path.read_text()[:50])
    assert cached_eval(tmp_path, record.key) is None
    with pytest.raises(FtbenchError, match="not a valid ftbench evaluation record"):
        load_eval(path)
