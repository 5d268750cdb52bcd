"""UltraFeedback win rate: outcome rules, length control, judges on tiny models, references, bad input."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, LlamaForSequenceClassification

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.evaluation.judges import ScoreCache, load_judge
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.tasks.judging import JudgeSpec, pairwise_outcome, reward_outcome
from ftbench.tasks.ultrafeedback.scoring import length_controlled_win_rate, win_rate_metrics
from tests.models import tiny_config


def test_reward_outcomes_with_tie_margin() -> None:
    assert reward_outcome(2.0, 1.0, 0.0) == 1.0
    assert reward_outcome(1.0, 2.0, 0.0) == 0.0
    assert reward_outcome(1.0, 1.2, 0.25) == 0.5
    assert reward_outcome(1.0, 1.0, 0.0) == 0.5


def test_pairwise_outcomes_need_both_orders_to_agree() -> None:
    assert pairwise_outcome("A", "B") == 1.0  # candidate picked as A, then as B
    assert pairwise_outcome("B", "A") == 0.0
    assert pairwise_outcome("A", "A") == 0.5  # position bias: a tie
    assert pairwise_outcome(None, "B") == 0.5


def test_win_rate_metrics_by_hand() -> None:
    outcomes = [1.0, 0.0, 0.5, 1.0]
    metrics = win_rate_metrics(outcomes, [10, 20, 30, 40], [20, 20, 20, 20])
    assert metrics.win_rate == pytest.approx(0.625)
    mean = 0.625
    sd = math.sqrt(sum((x - mean) ** 2 for x in outcomes) / 3)
    assert metrics.win_rate_stderr == pytest.approx(sd / 2)
    assert metrics.tie_rate == 0.25
    assert metrics.candidate_length == 25 and metrics.reference_length == 20


def test_length_control_removes_a_pure_length_preference() -> None:
    # The judge prefers whichever answer is longer; at equal length the model predicts one half.
    differences = [float(d) for d in range(-50, 51, 5)]
    outcomes = [1.0 if d > 0 else 0.0 if d < 0 else 0.5 for d in differences]
    shifted = [d + 30 for d in differences]  # the candidate is 30 words longer on average
    raw = sum(1.0 if d > 0 else 0.0 if d < 0 else 0.5 for d in shifted) / len(shifted)
    controlled = length_controlled_win_rate([1.0 if d > 0 else 0.0 if d < 0 else 0.5 for d in shifted], shifted)
    assert raw > 0.7
    assert controlled == pytest.approx(0.5, abs=0.05)
    assert length_controlled_win_rate(outcomes, [0.0] * len(outcomes)) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def tiny_reward_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer_dir: Path) -> Path:
    config = tiny_config()
    config.num_labels = 1
    torch.manual_seed(3)
    model = LlamaForSequenceClassification(config)
    path = tmp_path_factory.mktemp("judge") / "reward"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(smol_tokenizer_dir).save_pretrained(path)
    return path


def test_reward_judge_batches_and_caches(tiny_reward_dir: Path, tmp_path: Path) -> None:
    judge = load_judge(JudgeSpec(path=tiny_reward_dir, batch_size=2), "cpu")
    cache = ScoreCache(tmp_path / "cache.json")
    prompts = ["Say hi", "Name a colour", "Count to three"]
    responses = ["hi", "a much longer answer: blue, like the sky on a clear day", "1 2 3"]
    batched = judge.rewards(prompts, responses, cache)  # type: ignore[union-attr]
    single = [judge.rewards([p], [r], ScoreCache(None))[0] for p, r in zip(prompts, responses, strict=True)]  # type: ignore[union-attr]
    assert batched == pytest.approx(single, abs=1e-4)  # padding does not change a reward
    cache.save()
    reloaded = ScoreCache(tmp_path / "cache.json")
    assert len(reloaded.scores) == 3
    judge.model = None  # type: ignore[assignment,union-attr]
    assert judge.rewards(prompts, responses, reloaded) == batched  # type: ignore[union-attr]


def test_llm_judge_is_asked_in_both_orders(tiny_model_dir: Path) -> None:
    judge = load_judge(JudgeSpec(kind="llm", path=tiny_model_dir), "cpu")
    verdicts = judge.verdicts(["Say hi"] * 2, ["hi", "hello"], ["hello", "hi"], ScoreCache(None))  # type: ignore[union-attr]
    assert all(v in ("A", "B") for v in verdicts)


def test_judge_that_is_not_a_reward_model_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FtbenchError, match="is not a reward model"):
        load_judge(JudgeSpec(path=tiny_model_dir), "cpu")
    with pytest.raises(FtbenchError, match="does not exist; run `ftbench train reward`"):
        load_judge(JudgeSpec(path=tmp_path / "nothing"), "cpu")


def _spec(model: Path, out: Path, options: dict[str, Any], precisions: list[str]) -> Any:
    return parse_spec(
        {
            "checkpoints": [str(model)],
            "precisions": precisions,
            "tasks": [{"name": "ultrafeedback_winrate", "options": options, "generation": {"max_gen_toks": 8}}],
            "limit": 3,
            "batch_size": 3,
            "device": "cpu",
            "out": str(out),
        },
        "test",
    )


def test_win_rate_against_the_dataset_and_another_variant(
    tiny_model_dir: Path, tiny_reward_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    judge = {"kind": "reward_model", "path": str(tiny_reward_dir)}
    run_spec(_spec(tiny_model_dir, out, {"judge": judge}, ["fp32"]))
    (record,) = load_run_evals(out)
    assert {"win_rate", "lc_win_rate", "tie_rate", "reward_margin", "candidate_words", "reference_words"} <= set(
        record.metrics
    )
    wins = [s.scores["win"] for s in record.samples]
    assert record.metrics["win_rate"].value == pytest.approx(sum(wins) / 3)
    assert record.request.dependencies["reference"] == "dataset"
    assert (out / "judge_cache").is_dir()

    against = {"judge": judge, "reference": "tiny@fp32"}
    run_spec(_spec(tiny_model_dir, out, against, ["bf16", "fp32"]))
    records = {r.variant.precision: r for r in load_run_evals(out)}
    assert records["fp32"].metrics["win_rate"].value == 0.5  # itself as reference: every prompt ties
    assert records["fp32"].metrics["tie_rate"].value == 1.0
    assert records["bf16"].request.dependencies["reference"].endswith("@fp32")


def test_reference_variant_outside_the_run_is_refused(
    tiny_model_dir: Path, tiny_reward_dir: Path, tmp_path: Path
) -> None:
    options = {"judge": {"path": str(tiny_reward_dir)}, "reference": "initial@fp32"}
    with pytest.raises(
        FtbenchError, match="reference variant 'initial@fp32' of task ultrafeedback_winrate is not in this run"
    ):
        run_spec(_spec(tiny_model_dir, tmp_path / "out", options, ["fp32"]))
    with pytest.raises(FtbenchError, match=r"option judge\.kind"):
        run_spec(_spec(tiny_model_dir, tmp_path / "out", {"judge": {"kind": "oracle"}}, ["fp32"]))
    assert not (tmp_path / "out").exists()
