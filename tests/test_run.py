"""`ftbench run` on a tiny model: stored results, cache reuse and invalidation, resume, tidy table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import RUN_FILE, load_run
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import RunSpec, parse_spec
from ftbench.reports.summary import write_summary
from ftbench.reports.tidy import format_table, tidy_table

OPTIONS = {"source": "generated", "count": 3, "seed": 5}


def tiny_spec(model: Path, out: Path, **changes: Any) -> RunSpec:
    data: dict[str, Any] = {
        "checkpoints": [str(model)],
        "precisions": ["fp32", "nf4"],
        "tasks": [{"name": "countdown", "options": OPTIONS}],
        "generation": {"max_gen_toks": 6},
        "limit": 2,
        "batch_size": 2,
        "device": "cpu",
        "out": str(out),
    }
    data.update(changes)
    return parse_spec(data, "test")


def forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cached evaluation loaded a model")

    monkeypatch.setattr("ftbench.harness.engines.hf.load_model", refuse)


def test_run_stores_typed_results_and_reuses_them(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results"
    first = run_spec(tiny_spec(tiny_model_dir, out))
    assert len(first.evaluated) == 2 and first.reused == []
    run = load_run(out)
    assert run.provenance.versions["lm_eval"].startswith("0.4")
    assert run.spec["precisions"] == ["fp32", "nf4"]
    records = [json.loads((out / "evals" / f"{key}.json").read_text()) for key in run.evaluations]
    for record in records:
        assert record["schema_version"] == 3  # 2: the request replaced the key fields; 3: content digests
        assert set(record["metrics"]) == {"reward", "accuracy", "format_rate"}
        assert record["metrics"]["accuracy"]["n"] == 2
        assert [s["doc_id"] for s in record["samples"]] == [0, 1]
        assert all(len(s["doc_hash"]) == 64 and "Using the numbers" in s["prompt"] for s in record["samples"])
        assert record["performance"]["generated_tokens"] > 0
        assert record["variant"]["footprint_bytes"] > 0
    assert records[0]["variant"]["footprint_bytes"] > records[1]["variant"]["footprint_bytes"]

    forbid_loading(monkeypatch)
    second = run_spec(tiny_spec(tiny_model_dir, out))
    assert second.evaluated == [] and sorted(second.reused) == sorted(first.evaluated)

    table = tidy_table(out)
    assert len(table) == 2 * 3
    assert set(table["precision"]) == {"fp32", "nf4"}
    assert list(json.loads(format_table(table, "json"))[0])[:8] == [
        "checkpoint",
        "stage",
        "precision",
        "task",
        "metric",
        "value",
        "stderr",
        "n",
    ]
    summary = write_summary(out).read_text()
    assert "| tiny | tiny | nf4 |" in summary


def test_changed_settings_re_evaluate(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = run_spec(tiny_spec(tiny_model_dir, out, precisions=["fp32"]))
    longer = run_spec(tiny_spec(tiny_model_dir, out, precisions=["fp32"], generation={"max_gen_toks": 7}))
    assert longer.evaluated and longer.evaluated != first.evaluated
    forced = run_spec(tiny_spec(tiny_model_dir, out, precisions=["fp32"]), force=True)
    assert forced.evaluated == first.evaluated and forced.reused == []


def test_interrupted_run_resumes(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results"
    import ftbench.harness.evaluation.run as runner

    real = runner.store_eval
    calls: list[str] = []

    def save_then_die(results_dir: Path, record: Any) -> Any:
        if calls:
            raise KeyboardInterrupt
        calls.append(record.key)
        return real(results_dir, record)

    monkeypatch.setattr(runner, "store_eval", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_spec(tiny_spec(tiny_model_dir, out))
    assert not (out / RUN_FILE).exists()
    monkeypatch.setattr(runner, "store_eval", real)
    resumed = run_spec(tiny_spec(tiny_model_dir, out))
    assert resumed.reused == calls and len(resumed.evaluated) == 1


def test_bad_variant_is_refused_before_any_work(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    with pytest.raises(FtbenchError, match="fp16 needs a GPU"):
        run_spec(tiny_spec(tiny_model_dir, out, precisions=["fp32", "fp16"]))
    assert not out.exists()
