"""SFT, DPO and RLOO stages on a tiny model: data, loss mask, parameter updates, manifests and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import RLOOConfig, SFTConfig

from ftbench.harness.core.checkpoints import Manifest, content_hash, read_manifest
from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.countdown.dataset import countdown_items
from ftbench.tasks.countdown.scoring import countdown_reward, score_countdown
from ftbench.tasks.countdown.task import doc_to_text
from ftbench.tasks.countdown.traces import RESPONSE_PREFIX, warm_start_trace
from ftbench.tasks.ultrafeedback.dataset import evaluation_items
from ftbench.trainers import dpo, rloo, sft
from ftbench.trainers.config import build_trl_config, load_settings
from ftbench.trainers.onpolicy import preference_pair
from ftbench.trainers.stage import run_stage
from ftbench.trainers.training_data import evaluation_prompt, length_filter, prompt_draw, sft_rows, within_length

ROOT = Path(__file__).resolve().parents[1]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_warm_start_traces_earn_the_full_reward_and_start_like_the_evaluation() -> None:
    items = countdown_items("train")[:60]
    traces = [warm_start_trace(item["target"], item["nums"]) for item in items]
    assert all(trace is not None for trace in traces)
    for item, trace in zip(items, traces, strict=True):
        assert trace is not None and trace.startswith(RESPONSE_PREFIX)
        assert score_countdown(trace, item["target"], item["nums"]).verdict == "correct", trace
    assert any("too much" in str(trace) for trace in traces) and any("then" in str(trace) for trace in traces)
    assert warm_start_trace(1000, [1, 2, 3]) is None  # unsolvable
    line = next(
        line for line in (ROOT / "tasks/countdown/countdown.yaml").read_text().splitlines() if "gen_prefix" in line
    )
    assert yaml.safe_load(line)["gen_prefix"] == RESPONSE_PREFIX


def test_sft_rows_never_hold_an_evaluation_item() -> None:
    settings = load_settings(sft.DEFAULTS, None, ["data.countdown_rows=300", "data.ultrafeedback_rows=50"])
    data = sft_rows(settings.data, settings.seed)
    evaluation_prompts = {doc_to_text(item) for item in countdown_items("test")}
    evaluation_prompts |= {item["prompt"] for item in evaluation_items()}
    prompts = [row["prompt"][0]["content"] for row in data.rows]
    assert len(prompts) == 350 and not set(prompts) & evaluation_prompts
    assert {source.name: source.rows for source in data.sources} == {"countdown": 300, "ultrafeedback": 50}
    assert data.split["checked"] is True


def test_sft_loss_covers_only_the_assistant_tokens(tmp_path: Path, tiny_model_dir: Path) -> None:
    settings = load_settings(
        sft.DEFAULTS,
        None,
        [f"parent={tiny_model_dir}", "data.countdown_rows=1", "data.ultrafeedback_rows=1", "trl.max_length=4096"],
    )
    rows = sft_rows(settings.data, settings.seed).rows
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = build_trl_config(SFTConfig, settings, tmp_path)
    trainer = sft.sft_trainer(settings, args, AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, rows)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for i, row in enumerate(rows):
        labels, ids, attention = batch["labels"][i], batch["input_ids"][i], batch["attention_mask"][i]
        trained = labels != -100
        assert not trained[attention == 0].any()  # padding is masked
        first = int(trained.nonzero()[0])
        prompt_text = tokenizer.decode(ids[:first])
        assert prompt_text.endswith("<|im_start|>assistant\n") and row["prompt"][0]["content"] in prompt_text
        assert torch.equal(labels[trained], ids[trained]) and trained[first:].sum() == trained.sum()
        answer = tokenizer.decode(ids[trained])
        assert answer.startswith(row["completion"][0]["content"]) and answer.rstrip().endswith("<|im_end|>")


def _stage_args(method: str, parent: Path, out: Path, *extra: str) -> list[str]:
    return [f"parent={parent}", f"output={out}", f"stage={method}", *extra]


def test_full_sft_changes_every_parameter_and_writes_its_manifest(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "sft"
    settings = load_settings(
        sft.DEFAULTS,
        None,
        _stage_args(
            "sft",
            tiny_model_dir,
            out,
            "finetune=full",
            "data.countdown_rows=6",
            "data.ultrafeedback_rows=2",
            "trl.max_length=2048",
            "trl.per_device_train_batch_size=4",
            "trl.learning_rate=1e-2",
        ),
    )
    result = run_stage(sft.METHOD, settings)
    before, after = _weights(tiny_model_dir), _weights(out)
    unchanged = [name for name, tensor in before.items() if torch.equal(tensor, after[name])]
    assert not unchanged
    manifest = read_manifest(out)
    assert manifest == result.manifest and manifest is not None
    assert Manifest.model_validate_json(manifest.model_dump_json()) == manifest  # the manifest round-trips
    assert (manifest.stage, manifest.method, manifest.parent, manifest.finetune) == (
        "sft",
        "sft",
        str(tiny_model_dir),
        "full",
    )
    assert manifest.content_hash == content_hash(out)
    assert {source.name: source.rows for source in manifest.data} == {"countdown": 6, "ultrafeedback": 2}
    assert manifest.training is not None
    assert manifest.training.steps == 2 and manifest.training.final_loss is not None
    assert manifest.training.final_loss > 0
    assert manifest.training.wall_seconds > 0 and manifest.training.split["checked"] is True
    assert manifest.hyperparameters["trl_resolved"]["learning_rate"] == 1e-2
    assert run_stage(sft.METHOD, settings).reused


def test_lora_dpo_changes_exactly_the_adapted_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "dpo"
    settings = load_settings(
        dpo.DEFAULTS,
        None,
        _stage_args(
            "dpo",
            tiny_model_dir,
            out,
            "lora.targets=[q_proj, v_proj]",
            "data.countdown_rows=2",
            "data.ultrafeedback_rows=4",
            "sampling.samples=2",
            "sampling.max_new_tokens=8",
            "trl.max_length=2048",
            "trl.per_device_train_batch_size=2",
            "trl.learning_rate=1e-2",
        ),
    )
    manifest = run_stage(dpo.METHOD, settings).manifest
    assert manifest.training is not None
    before, after = _weights(tiny_model_dir), _weights(out)
    adapted = [name for name in before if re.search(r"(q_proj|v_proj)\.weight$", name)]
    assert len(adapted) == 4
    assert all(not torch.equal(before[name], after[name]) for name in adapted)
    assert all(torch.equal(before[name], after[name]) for name in before if name not in adapted)
    assert manifest.method == "dpo" and manifest.finetune == "lora" and manifest.training.steps == 2
    assert manifest.training.on_policy["samples"] == 4  # 2 puzzles x 2 answers


def test_preference_pairs_rank_answers_by_the_countdown_reward() -> None:
    puzzle = {"target": 24, "nums": [2, 3, 4]}
    answers = ["<answer>2 * 3 * 4</answer>", "no tag at all", "<answer>2 + 3 + 4</answer>"]
    rewards = countdown_reward(answers, [24] * 3, [puzzle["nums"]] * 3)
    assert rewards == [1.0, 0.0, 0.1]
    pair = preference_pair([{"role": "user", "content": "q"}], answers, rewards)
    assert pair is not None
    assert pair["chosen"][0]["content"] == answers[0] and pair["rejected"][0]["content"] == answers[1]
    assert preference_pair([], answers[1:2] * 3, [0.0] * 3) is None


def test_rloo_rewards_with_the_countdown_tasks_own_scoring_function(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "rloo"
    settings = load_settings(
        rloo.DEFAULTS,
        None,
        _stage_args(
            "rloo",
            tiny_model_dir,
            out,
            "data.countdown_rows=2",
            "trl.max_steps=1",
            "trl.per_device_train_batch_size=4",
            "trl.num_generations=2",
            "trl.max_completion_length=8",
        ),
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"prompt": "p", "target": 1, "nums": [1]}]
    args = build_trl_config(RLOOConfig, settings, tmp_path / "scratch")
    reward = prompt_draw(settings.data).prompts.reward  # what the Countdown task's training side declares
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = rloo.rloo_trainer(settings, args, model, tokenizer, rows, reward)
    assert trainer.reward_funcs[0] is countdown_reward  # identity: the evaluation's function, not a copy
    manifest = run_stage(rloo.METHOD, settings).manifest
    assert manifest.training is not None
    assert manifest.training.reward_function == "ftbench.tasks.countdown.scoring.countdown_reward"
    assert manifest.training.steps == 1 and manifest.training.rows["prompts"] == 2
    assert manifest.data[0].name == "countdown" and manifest.data[0].rows == 2


def test_rloo_prompt_is_the_evaluation_prompt(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    item = countdown_items("train")[0]
    prefix = prompt_draw(load_settings(rloo.DEFAULTS, None, []).data).prompts.response_prefix
    prompt = evaluation_prompt(tokenizer, [{"role": "user", "content": doc_to_text(item)}], prefix)
    assert prompt.endswith("<|im_start|>assistant\n" + RESPONSE_PREFIX) and doc_to_text(item) in prompt


def test_bad_training_input_is_one_error_before_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    common = [f"parent={tiny_model_dir}", f"output={out}", "data.countdown_rows=1"]
    with pytest.raises(FtbenchError, match=r"checkpoint .*nope does not exist"):
        run_stage(sft.METHOD, load_settings(sft.DEFAULTS, None, [*common, f"parent={tmp_path / 'nope'}"]))
    with pytest.raises(FtbenchError, match=r"trl.num_generation is not a field of TRL's RLOOConfig; did you mean"):
        run_stage(rloo.METHOD, load_settings(rloo.DEFAULTS, None, [*common, "trl.num_generation=4"]))
    with pytest.raises(FtbenchError, match=r"LoRA target 'attn' matches no module"):
        run_stage(sft.METHOD, load_settings(sft.DEFAULTS, None, [*common, "lora.targets=[attn]"]))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"conversation": []}) + "\n")
    with pytest.raises(FtbenchError, match=r"broken\.jsonl row 0 lacks the field 'messages'"):
        run_stage(sft.METHOD, load_settings(sft.DEFAULTS, None, [*common, f"data.files=[{broken}]"]))
    leaking = tmp_path / "leak.jsonl"
    test_item = countdown_items("test")[3]
    leaking.write_text(json.dumps({"target": test_item["target"], "nums": test_item["nums"]}) + "\n")
    with pytest.raises(FtbenchError, match=r"leak\.jsonl row 0 is a Countdown evaluation puzzle"):
        run_stage(rloo.METHOD, load_settings(rloo.DEFAULTS, None, [*common, f"data.files=[{leaking}]"]))
    assert not out.exists() and not list(tmp_path.glob(".out-*"))


def test_rows_longer_than_max_length_are_left_out_and_the_sources_count_what_is_kept(tiny_model_dir: Path) -> None:
    settings = load_settings(sft.DEFAULTS, None, ["data.countdown_rows=3", "data.ultrafeedback_rows=6"])
    data = sft_rows(settings.data, settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = [
        len(tokenizer(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False))["input_ids"])
        for r in data.rows
    ]
    limit = sorted(lengths)[5]  # between the shortest and the longest rows
    kept = within_length(data, length_filter(tokenizer, limit, ("completion",)))
    expected = [origin for origin, length in zip(data.origins, lengths, strict=True) if length <= limit]
    assert 0 < len(kept.rows) == len(expected) < len(data.rows)
    counts = {source.name: source.rows for source in kept.sources}
    assert counts == {"countdown": expected.count("countdown"), "ultrafeedback": expected.count("ultrafeedback")}


def test_plain_text_task_rows_are_measured_as_written(tiny_model_dir: Path) -> None:
    """ARC's training rows are plain text (no chat template); the length filter measures them as they are trained."""
    settings = load_settings(
        sft.DEFAULTS,
        None,
        [
            "data.countdown_rows=0",
            "data.ultrafeedback_rows=0",
            "data.tasks=[{task: arc_easy, split: validation, rows: 8}]",
        ],
    )
    data = sft_rows(settings.data, settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert all(isinstance(r["prompt"], str) for r in data.rows) and len(data.rows) == 8
    lengths = [len(tokenizer(r["prompt"] + r["completion"])["input_ids"]) for r in data.rows]
    limit = sorted(lengths)[3]
    kept = within_length(data, length_filter(tokenizer, limit, ("completion",)))
    assert len(kept.rows) == sum(length <= limit for length in lengths) < len(data.rows)
