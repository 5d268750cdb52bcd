"""The five recipes: every config (CPU and GPU sizes) is valid, and each CPU recipe runs end to end (slow, shrunk
to a few rows and items) with a report whose first screen answers its question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.app.pipeline import evaluation_spec, read_pipeline
from ftbench.harness.core.store import load_run_evals
from ftbench.trainers.config import load_settings
from ftbench.trainers.methods import get_method

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs" / "recipes").glob("*.yaml"))
GPU_RECIPES = sorted((ROOT / "configs" / "recipes" / "gpu").glob("*.yaml"))
runner = CliRunner()


@pytest.mark.parametrize("path", RECIPES + GPU_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_configs_are_valid(path: Path) -> None:
    spec = read_pipeline(path)
    for index, stage in enumerate(spec.stages):
        method = get_method(stage.method)
        load_settings(method.defaults, stage.config, [], stage.settings, f"{path}: stages.{index}")
    evaluation = evaluation_spec(spec, [spec.base])
    assert evaluation.tasks and evaluation.out.parts[0] == "results"
    assert len(RECIPES) == len(GPU_RECIPES) == 5


def _relocated(path: Path, root: Path, initial: Path) -> Path:
    """The recipe with its paths under ``root``, its data path absolute, and its sizes shrunk for a test."""
    data = yaml.safe_load(path.read_text())
    data["base"] = str(initial)
    data["final_link"] = str(root / "final")
    for stage in data["stages"]:
        settings = stage["settings"]
        settings["output"] = str(root / Path(settings["output"]).name)
        if "parent" in settings:
            settings["parent"] = str(initial)
        for entry in settings["data"].get("tasks", []):
            entry["rows"] = max(2, entry["rows"] // 8)  # nested sizes stay nested
            _absolute(entry.get("options", {}))
        settings.setdefault("trl", {})["max_steps"] = 1
    evaluate = data["evaluate"]
    evaluate["out"] = str(root / "results")
    for task in evaluate["tasks"]:
        task["limit"] = min(task.get("limit", 8), 4)
        _absolute(task.get("options", {}), root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / path.name
    target.write_text(yaml.safe_dump(data))
    return target


def _absolute(options: dict[str, Any], root: Path | None = None) -> None:
    if "data" in options and not Path(options["data"]).is_absolute():
        options["data"] = str((ROOT / options["data"]).resolve())
    if "judge" in options and root is not None:  # the judge a stage of the recipe trains
        options["judge"]["path"] = str(root / Path(options["judge"]["path"]).name)


def _run(path: Path, tmp_path: Path, initial: Path, *report: str) -> str:
    config = _relocated(path, tmp_path, initial)
    result = runner.invoke(app, ["pipeline", "--config", str(config)])
    assert result.exit_code == 0, result.output
    made = runner.invoke(app, ["report", str(tmp_path / "results"), "--out", str(tmp_path / "report"), *report])
    assert made.exit_code == 0, made.output
    return (tmp_path / "report" / "report.md").read_text().split("## Overview")[0]


@pytest.mark.slow
def test_qa_finetune(tmp_path: Path, real_initial: Path) -> None:
    first_screen = _run(ROOT / "configs/recipes/qa-finetune.yaml", tmp_path, real_initial)
    assert "| sft@fp32 vs initial@fp32 | cast_qa | f1 |" in first_screen
    assert "| sft@nf4 vs sft@fp32 | cast_qa | f1 |" in first_screen
    assert "| sft@gguf-q4_k_m vs sft@fp32 | cast_qa | f1 |" in first_screen
    metrics = {m for r in load_run_evals(tmp_path / "results") if r.task == "cast_qa" for m in r.metrics}
    assert metrics == {"f1", "exact_match", "bleu", "rouge1", "rougeL"}


@pytest.mark.slow
def test_arc_lora(tmp_path: Path, real_initial: Path) -> None:
    first_screen = _run(ROOT / "configs/recipes/arc-lora.yaml", tmp_path, real_initial)
    assert "| sft-adapter@fp32 vs initial@fp32 | arc_easy | acc_norm |" in first_screen
    assert "| sft@fp32 vs initial@fp32 | arc_easy | acc_norm |" in first_screen
    assert "| sft@gguf-q4_k_m vs sft@fp32 | arc_easy | acc_norm |" in first_screen
    kinds = {r.variant.name: r.variant.kind for r in load_run_evals(tmp_path / "results")}
    assert kinds["sft-adapter"] == "lora" and kinds["sft"] == "full"


@pytest.mark.slow
def test_rewrite_full_vs_lora(tmp_path: Path, real_initial: Path) -> None:
    first_screen = _run(
        ROOT / "configs/recipes/rewrite-full-vs-lora.yaml", tmp_path, real_initial, "--baseline", "lora"
    )
    assert "| full@fp32 vs lora@fp32 | cast_heldout | bleu |" in first_screen
    tasks = {r.task for r in load_run_evals(tmp_path / "results")}
    assert tasks == {"cast_heldout", "cast_trained"}


@pytest.mark.slow
def test_data_size_sweep(tmp_path: Path, real_initial: Path) -> None:
    first_screen = _run(ROOT / "configs/recipes/data-size-sweep.yaml", tmp_path, real_initial)
    section = first_screen.split("## Repeated evaluations")[1]
    for stage in ("rows-32", "rows-64", "rows-96"):
        for metric in ("rougeL", "rouge1", "rouge2"):
            assert f"| {stage}@fp32 | cast_rewrite | {metric} |" in section
    repeats = {r.request.repeat for r in load_run_evals(tmp_path / "results")}
    assert repeats == {0, 1, 2}


@pytest.mark.slow
def test_winrate(tmp_path: Path, real_initial: Path) -> None:
    first_screen = _run(ROOT / "configs/recipes/winrate.yaml", tmp_path, real_initial)
    for pair in ("sft@fp32 vs initial@fp32", "dpo@fp32 vs sft@fp32"):
        assert f"| {pair} | ultrafeedback_winrate | win_rate |" in first_screen
    records = load_run_evals(tmp_path / "results")
    assert {r.variant.name for r in records} == {"initial", "sft", "dpo"}
    for record in records:
        assert 0.0 <= record.metrics["win_rate"].value <= 1.0
        assert record.request.options["judge"]["path"] == str(tmp_path / "reward")


def test_relocation_keeps_the_recipe_valid(tmp_path: Path, tiny_model_dir: Path) -> None:
    for path in RECIPES:
        relocated = read_pipeline(_relocated(path, tmp_path / path.stem, tiny_model_dir))
        original = read_pipeline(path)
        assert [s.method for s in relocated.stages] == [s.method for s in original.stages]
        assert all(Path(s.settings["output"]).is_relative_to(tmp_path) for s in relocated.stages)
