"""Trainer settings (defaults < file < --set, TRL fields checked) and a short reward-model run on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from ftbench.harness.core.checkpoints import read_manifest
from ftbench.harness.core.errors import FtbenchError
from ftbench.trainers.config import build_trl_config, load_settings, parse_assignments
from ftbench.trainers.reward import DEFAULTS, METHOD
from ftbench.trainers.stage import run_stage


def test_assignments_nest_and_parse_yaml_scalars() -> None:
    assert parse_assignments(["trl.learning_rate=1e-4", "lora.r=8", "finetune=full"]) == {
        "trl": {"learning_rate": 1e-4},
        "lora": {"r": 8},
        "finetune": "full",
    }
    with pytest.raises(FtbenchError, match="is not KEY=VALUE"):
        parse_assignments(["lora.r"])


def test_defaults_then_file_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "reward.yaml"
    config.write_text("lora: {r: 4}\ntrl: {learning_rate: 0.001}\n")
    settings = load_settings(DEFAULTS, config, ["lora.alpha=16"])
    assert settings.lora.r == 4 and settings.lora.alpha == 16
    assert settings.trl["learning_rate"] == 0.001 and settings.trl["max_length"] == DEFAULTS["trl"]["max_length"]
    assert settings.data.ultrafeedback_rows == DEFAULTS["data"]["ultrafeedback_rows"]


def test_unknown_keys_name_the_nearest_valid_one(tmp_path: Path) -> None:
    with pytest.raises(FtbenchError, match=r"lora\.alpah: unknown key; did you mean 'alpha'\?"):
        load_settings(DEFAULTS, None, ["lora.alpah=8"])
    with pytest.raises(
        FtbenchError, match=r"lora\.rank: unknown key; valid keys are alpha, dropout, layers, r, targets"
    ):
        load_settings(DEFAULTS, None, ["lora.rank=8"])
    settings = load_settings(DEFAULTS, None, ["trl.learning_rat=0.1"])
    from trl import RewardConfig

    with pytest.raises(
        FtbenchError, match=r"trl.learning_rat is not a field of TRL's RewardConfig; did you mean 'learning_rate'\?"
    ):
        build_trl_config(RewardConfig, settings, tmp_path)


def test_missing_parent_and_bad_lora_target_fail_before_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    missing = load_settings(DEFAULTS, None, [f"parent={tmp_path / 'nope'}", f"output={tmp_path / 'out'}"])
    with pytest.raises(FtbenchError, match="does not exist"):
        run_stage(METHOD, missing)
    bad = load_settings(
        DEFAULTS, None, [f"parent={tiny_model_dir}", f"output={tmp_path / 'out'}", "lora.targets=[qkv]"]
    )
    with pytest.raises(
        FtbenchError, match=r"LoRA target 'qkv' matches no module; the model's linear layers are .*q_proj"
    ):
        run_stage(METHOD, bad)
    assert not (tmp_path / "out").exists()


def test_reward_training_changes_every_trainable_parameter(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "reward"
    settings = load_settings(
        DEFAULTS,
        None,
        [
            f"parent={tiny_model_dir}",
            f"output={out}",
            "finetune=full",
            "data.ultrafeedback_rows=8",
            "data.eval_rows=4",
            "trl.max_length=1024",
            "trl.per_device_train_batch_size=4",
            "trl.learning_rate=0.01",
        ],
    )
    result = run_stage(METHOD, settings)
    manifest = read_manifest(out)
    assert manifest is not None and manifest.stage == "reward" and manifest.parent == str(tiny_model_dir)
    assert manifest.training is not None
    assert manifest.data[0].rows == 8 and manifest.training.steps == 2
    accuracy = result.manifest.training.heldout["pairwise_accuracy"]  # type: ignore[union-attr]
    assert 0.0 <= accuracy <= 1.0 and manifest.training.heldout["pairs"] == 4
    torch.manual_seed(settings.seed)
    before = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    after = AutoModelForSequenceClassification.from_pretrained(out)
    changed = {
        name: not torch.equal(p, after.state_dict()[name])
        for name, p in before.state_dict().items()
        if "score" not in name
    }
    assert all(changed.values()), [name for name, moved in changed.items() if not moved]
    assert run_stage(METHOD, settings).reused  # same inputs: the stage is reused


def test_training_config_that_is_not_yaml_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "reward.yaml"
    config.write_text("lora: [r: 4\n")
    with pytest.raises(FtbenchError, match=r"training config .*reward\.yaml is not valid YAML"):
        load_settings(DEFAULTS, config, [])
    config.write_text("- a list\n")
    with pytest.raises(FtbenchError, match="must hold a mapping of keys, not list"):
        load_settings(DEFAULTS, config, [])
