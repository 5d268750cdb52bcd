"""``ftbench pipeline`` on a tiny model: stages in order, evaluation after each, final link, reuse, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftbench.harness.app.pipeline import PIPELINE_FILE, PipelineSpec, read_pipeline, run_pipeline
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.events import DoneEvent, Event, StageEvent, TrainingEvent
from ftbench.harness.core.store import load_run_evals

ROOT = Path(__file__).resolve().parents[1]


def _spec(tmp_path: Path, model: Path, **changes: Any) -> dict[str, Any]:
    ckpt = tmp_path / "checkpoints"
    spec: dict[str, Any] = {
        "name": "tiny",
        "base": str(model),
        "final_link": str(ckpt / "final"),
        "stages": [
            {
                "method": "sft",
                "settings": {
                    "output": str(ckpt / "sft"),
                    "finetune": "full",
                    "data": {"countdown_rows": 4, "ultrafeedback_rows": 0},
                    "trl": {"per_device_train_batch_size": 4, "learning_rate": 1e-3},
                },
            },
            {
                "method": "dpo",
                "settings": {
                    "output": str(ckpt / "dpo"),
                    "lora": {"targets": ["q_proj"]},
                    "data": {"countdown_rows": 1, "ultrafeedback_rows": 2},
                    "sampling": {"samples": 2, "max_new_tokens": 4},
                    "trl": {"max_length": 2048, "per_device_train_batch_size": 2},
                },
            },
        ],
        "evaluate": {
            "precisions": ["fp32"],
            "tasks": [{"name": "countdown", "limit": 2, "generation": {"max_gen_toks": 4}}],
            "out": str(tmp_path / "results"),
        },
    }
    spec.update(changes)
    return spec


def test_pipeline_trains_in_order_evaluates_each_stage_and_reuses_everything(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    spec = PipelineSpec.model_validate(_spec(tmp_path, tiny_model_dir))
    events: list[Event] = []
    record, outcome = run_pipeline(spec, on_event=events.append)
    order = [(e.stage, e.phase) for e in events if isinstance(e, StageEvent)]
    assert order == [
        ("tiny", "evaluating"),
        ("tiny", "evaluated"),
        ("sft", "training"),
        ("sft", "trained"),
        ("sft", "evaluating"),
        ("sft", "evaluated"),
        ("dpo", "training"),
        ("dpo", "trained"),
        ("dpo", "evaluating"),
        ("dpo", "evaluated"),
    ]
    steps = [e for e in events if isinstance(e, TrainingEvent)]
    assert {e.stage for e in steps} == {"sft", "dpo"} and all(e.step >= 1 and e.total_steps >= e.step for e in steps)
    done = [e for e in events if isinstance(e, DoneEvent)]
    assert {e.stage for e in done} == {"tiny", "sft", "dpo"} and all(e.variant and e.task for e in done)
    assert [s.stage for s in record.stages] == ["sft", "dpo"] and record.final == "dpo"
    assert record.stages[1].parent == str(tmp_path / "checkpoints" / "sft")
    link = tmp_path / "checkpoints" / "final"
    assert link.is_symlink() and str(link.readlink()) == "dpo" and (link / "ftbench.json").is_file()
    evals = load_run_evals(outcome.results_dir)
    assert sorted(e.variant.stage for e in evals) == ["dpo", "sft", "tiny"]
    stored = json.loads((outcome.results_dir / PIPELINE_FILE).read_text())
    assert stored["final"] == "dpo" and [s["reused"] for s in stored["stages"]] == [False, False]

    again, outcome_again = run_pipeline(spec)
    assert [s.reused for s in again.stages] == [True, True] and outcome_again.evaluated == []
    assert len(outcome_again.reused) == 3


def test_pipeline_checks_every_stage_before_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    def fails(match: str, **changes: Any) -> None:
        with pytest.raises(FtbenchError, match=match):
            run_pipeline(PipelineSpec.model_validate(_spec(tmp_path, tiny_model_dir, **changes)))
        assert not (tmp_path / "checkpoints" / "sft").exists() and not (tmp_path / "results").exists()

    good = _spec(tmp_path, tiny_model_dir)["stages"]
    typo = [good[0], {**good[1], "settings": {**good[1]["settings"], "trl": {"betta": 0.1}}}]
    fails(r"trl.betta is not a field of TRL's DPOConfig; did you mean 'beta'\?", stages=typo)
    fails(r"unknown training method 'ppo'; choose from sft, dpo, rloo, reward", stages=[good[0], {"method": "ppo"}])
    bad_target = [good[0], {**good[1], "settings": {**good[1]["settings"], "lora": {"targets": ["qkv"]}}}]
    fails(r"LoRA target 'qkv' matches no module", stages=bad_target)
    fails(r"stages.0.settings: lora.rank: unknown key", stages=[{"method": "sft", "settings": {"lora": {"rank": 4}}}])
    fails(r"final 'rloo' is not a stage; use last or one of sft, dpo", final="rloo")
    same_output = [good[0], {**good[1], "settings": {**good[1]["settings"], "output": good[0]["settings"]["output"]}}]
    fails(r"two stages write to .*sft; give each stage its own settings.output", stages=same_output)
    fails(r"checkpoint .*missing does not exist", base=str(tmp_path / "missing"))
    fails(r"pipeline supplies the checkpoints", evaluate={"checkpoints": ["x"], "tasks": ["countdown"]})


def test_shipped_pipeline_configs_are_valid() -> None:
    for name in ("pipeline.yaml", "pipeline-gpu.yaml"):
        spec = read_pipeline(ROOT / "configs" / name)
        methods = [stage.method for stage in spec.stages]
        assert methods[-3:] == ["sft", "dpo", "rloo"], name
    suite = yaml.safe_load((ROOT / "configs" / "pipeline.yaml").read_text())["evaluate"]
    demo = {"evaluate": yaml.safe_load((ROOT / suite).read_text())}
    assert len(demo["evaluate"]["precisions"]) >= 2
