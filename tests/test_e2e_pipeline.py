"""The lifecycle on the real SmolLM2-135M-Instruct (slow): SFT teaches the Countdown answer format, RLOO
moves the adapted weights, and the CLI drives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.store import load_run_evals

pytestmark = pytest.mark.slow

TOP_LAYERS = list(range(15, 30))


def test_sft_lifts_the_format_rate_and_rloo_trains_on_the_task_reward(tmp_path: Path, real_initial: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    config = {
        "name": "e2e",
        "base": str(real_initial),
        "final_link": str(ckpt / "final"),
        "stages": [
            {
                "method": "sft",
                "settings": {
                    "output": str(ckpt / "sft"),
                    "lora": {"layers": TOP_LAYERS},
                    "data": {"countdown_rows": 48, "ultrafeedback_rows": 0},
                    "trl": {"learning_rate": 2e-3, "per_device_train_batch_size": 8},
                },
            },
            {
                "method": "rloo",
                "settings": {
                    "output": str(ckpt / "rloo"),
                    "lora": {"layers": [25, 26, 27, 28, 29], "targets": ["q_proj", "v_proj"]},
                    "data": {"countdown_rows": 16},
                    "trl": {
                        "max_steps": 2,
                        "per_device_train_batch_size": 8,
                        "num_generations": 4,
                        "max_completion_length": 112,
                        "temperature": 0.8,
                        "learning_rate": 1e-4,
                    },
                },
            },
        ],
        "evaluate": {
            "precisions": ["fp32"],
            "tasks": [{"name": "countdown", "limit": 12, "generation": {"max_gen_toks": 128}}],
            "batch_size": 12,
            "out": str(tmp_path / "results"),
        },
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["pipeline", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "final: " in result.output and "-> rloo" in result.output

    format_rate = {e.variant.stage: e.metrics["format_rate"] for e in load_run_evals(tmp_path / "results")}
    assert set(format_rate) == {"initial", "sft", "rloo"}
    gain = format_rate["sft"].value - format_rate["initial"].value
    assert format_rate["sft"].stderr is not None and gain > format_rate["sft"].stderr, format_rate

    sft = AutoModelForCausalLM.from_pretrained(ckpt / "sft").state_dict()
    rloo = AutoModelForCausalLM.from_pretrained(ckpt / "rloo").state_dict()
    adapted = [n for n in sft if re.search(r"layers\.(2[5-9])\.self_attn\.(q_proj|v_proj)\.weight$", n)]
    assert len(adapted) == 10
    assert all(not torch.equal(sft[n], rloo[n]) for n in adapted)
    assert all(torch.equal(sft[n], rloo[n]) for n in sft if n not in adapted)
