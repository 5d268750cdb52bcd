"""Shared-prefix log-likelihood in the transformers engine: the same answers as lm-eval's ``HFLM`` on a tiny
model, at every batch boundary, with contexts computed once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.utils import get_rolling_token_windows

from ftbench.harness.core.store import load_run_evals
from ftbench.harness.engines import hf, hf_shared
from ftbench.harness.engines.hf_shared import SharedPrefixHFLM
from ftbench.harness.engines.prefix_groups import (
    SHARED_NATS_TOLERANCE,
    PrefixGroup,
    batches_of_groups,
    plan_sharing,
)
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec

QUESTION = "Question: Which gas do plants take in from the air to make food?\nAnswer:"
PAIRS = [
    *[(QUESTION, choice) for choice in (" carbon dioxide", " oxygen", " nitrogen", " water vapour in the clouds")],
    *[("Pick the shortest one: ", choice) for choice in ("one", "two words", "3")],  # its space moves on
    *[("Hello wor", choice) for choice in ("ld peace", "ld at last")],  # "wor" + "ld" tokenize as one word
    ("A context of its own, shared by nobody.", " alone"),
    ("", "An empty context is the prefix token alone"),
    *[("2 + 2 =", choice) for choice in (" 4", " 5", " 22", " four")],
]


def instances(kind: str, args: list[tuple[Any, ...]]) -> list[Instance]:
    return [Instance(kind, {}, arg, i) for i, arg in enumerate(args)]


class TokenCounter:
    """Counts a model's forward passes and the tokens they compute: all of them, and those of the passes with an
    attention mask (the shared path's, padding left out)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.tokens = 0
        self.masked_tokens = 0
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        mask = kwargs.get("attention_mask")
        self.tokens += int(ids.numel())
        self.masked_tokens += 0 if mask is None else int(mask[:, -ids.shape[1] :].sum())
        self.calls += 1


@pytest.fixture(scope="module")
def stock(tiny_model_dir: Path) -> Iterator[HFLM]:
    yield HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=8)


def shared_lm(model_dir: Path, batch_size: int, **kwargs: Any) -> SharedPrefixHFLM:
    return SharedPrefixHFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size, **kwargs)


def assert_same_answers(mine: list[tuple[float, bool]], theirs: list[tuple[float, bool]]) -> None:
    assert len(mine) == len(theirs)
    for (value, greedy), (expected, expected_greedy) in zip(mine, theirs, strict=True):
        assert math.isfinite(value)
        assert value == pytest.approx(expected, abs=SHARED_NATS_TOLERANCE)
        assert greedy == expected_greedy


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_shared_scoring_equals_lm_eval_and_computes_each_context_once(
    tiny_model_dir: Path, stock: HFLM, batch_size: int
) -> None:
    requests = instances("loglikelihood", PAIRS)
    expected = stock.loglikelihood(requests)
    lm = shared_lm(tiny_model_dir, batch_size)
    counter = TokenCounter(lm.model)
    assert_same_answers(lm.loglikelihood(requests), expected)
    shared_tokens, masked_tokens = counter.tokens, counter.masked_tokens
    unshared = shared_lm(tiny_model_dir, batch_size, share_prefix=False)
    counter = TokenCounter(unshared.model)
    assert_same_answers(unshared.loglikelihood(requests), expected)
    assert masked_tokens == tokens_computed_once(lm)
    assert shared_tokens < counter.tokens  # padding included


def tokens_computed_once(lm: HFLM) -> int:
    """Tokens the shared passes compute for ``PAIRS``: each shared context once, then its continuations but the
    last token of each."""
    encoded = [
        lm._encode_pair(context, continuation) if context else ([lm.prefix_token_id], lm.tok_encode(continuation))
        for context, continuation in PAIRS
    ]
    plan = plan_sharing([(None, context, continuation) for context, continuation in encoded], lm.max_length)
    assert len(plan.groups) == 4 and len(plan.alone) == 2
    return sum(len(group.context) + sum(len(encoded[i][1]) - 1 for i in group.indices) for group in plan.groups)


def test_merging_continuation_is_scored_on_lm_eval_tokens(stock: HFLM) -> None:
    context, continuation = stock._encode_pair("Hello wor", "ld peace")
    whole = stock.tok_encode("Hello world peace")
    assert context + continuation != whole  # lm-eval's split: the context's last token is not the whole's
    plan = plan_sharing([(None, context, continuation), (None, context, continuation[:1])], stock.max_length)
    assert [group.context for group in plan.groups] == [context] and plan.alone == []


def test_truncated_single_token_and_lonely_contexts_are_not_shared() -> None:
    requests = [
        (None, [1, 2, 3], [4]),
        (None, [1, 2, 3], [5, 6]),
        (None, [9], [4]),  # a one-token context (the prefix token): nothing to share
        (None, [9], [5]),
        (None, [7, 8], [4]),  # nobody else has this context
        (None, [1, 2, 3] * 4, [4]),
        (None, [1, 2, 3] * 4, [5]),  # 13 tokens > max_length + 1: lm-eval truncates these
    ]
    plan = plan_sharing(requests, max_length=11)
    assert [group.indices for group in plan.groups] == [[0, 1]]
    assert plan.alone == [2, 3, 4, 5, 6]


def test_batches_hold_whole_groups_within_both_limits() -> None:
    groups = [PrefixGroup([1, 2], list(range(size))) for size in (4, 4, 2, 5, 1)]
    batches = batches_of_groups(groups, contexts=2, rows=8)
    assert [[len(group.indices) for group in batch] for batch in batches] == [[4, 4], [2, 5], [1]]
    assert [len(batch) for batch in batches_of_groups(groups, contexts=8, rows=3)] == [1, 1, 1, 1, 1]


def test_over_long_requests_take_lm_eval_truncating_path(tiny_model_dir: Path) -> None:
    requests = instances("loglikelihood", [(QUESTION, " carbon dioxide"), (QUESTION, " oxygen"), ("2 + 2 =", " 4")])
    short = {"max_length": 12}
    stock = HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=3, **short)
    assert_same_answers(shared_lm(tiny_model_dir, 3, **short).loglikelihood(requests), stock.loglikelihood(requests))


def test_model_without_a_cache_falls_back_to_lm_eval(
    tiny_model_dir: Path, stock: HFLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = shared_lm(tiny_model_dir, 8)
    forward = lm.model.forward

    def no_cache(*args: Any, **kwargs: Any) -> Any:
        output = forward(*args, **kwargs)
        output.past_key_values = None
        return output

    monkeypatch.setattr(lm.model, "forward", no_cache)
    requests = instances("loglikelihood", PAIRS)
    assert_same_answers(lm.loglikelihood(requests), stock.loglikelihood(requests))
    assert lm.share_prefix is False


def test_rolling_windows_match_and_go_in_batches(tiny_model_dir: Path) -> None:
    texts = [("The sky is blue and the grass is green, " * (n + 3),) for n in range(3)]
    short = {"max_length": 16}
    stock = HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=4, **short)
    lm = shared_lm(tiny_model_dir, 4, **short)
    counter = TokenCounter(lm.model)
    mine = lm.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    expected = stock.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    assert mine == pytest.approx(expected, abs=SHARED_NATS_TOLERANCE)
    windows = sum(
        len(list(get_rolling_token_windows(lm.tok_encode(text), lm.prefix_token_id, 16, 1))) for (text,) in texts
    )
    assert windows > 8 and counter.calls == math.ceil(windows / 4)  # every document's windows, 4 per pass


def test_documents_of_unequal_length_are_not_padded_to_the_longest(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hf_shared, "TOKENS_PER_ROW", 64)  # a budget of 4 x 64 padded tokens per pass
    texts = [("A long document about the weather, " * 30,), ("Short one.",), ("Another short.",), ("Tiny.",)]
    stock = HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=4)
    lm = shared_lm(tiny_model_dir, 4)
    counters = TokenCounter(stock.model), TokenCounter(lm.model)
    expected = stock.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    mine = lm.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    assert mine == pytest.approx(expected, abs=SHARED_NATS_TOLERANCE)
    longest = len(lm.tok_encode(texts[0][0]))  # the prefix token and every token but the last
    assert counters[0].tokens == 4 * longest  # lm-eval pads the three short documents to the long one
    assert counters[1].calls == 2 and counters[1].tokens < 2 * longest


def test_a_cpu_pass_keeps_its_logits_within_the_byte_budget(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = shared_lm(tiny_model_dir, 4)
    vocabulary = lm.model.config.vocab_size
    monkeypatch.setattr(hf_shared, "TOKENS_PER_ROW", 24)  # a budget of 4 x 24 padded tokens per pass ...
    monkeypatch.setattr(hf_shared, "CPU_LOGITS_BYTES", 4 * vocabulary * 40)  # ... and fp32 logits of 40 tokens
    texts = [(f"Document {i} says: " + "rain falls on the hills " * (2 + i % 2),) for i in range(5)]
    lengths = sorted((len(lm.tok_encode(text)) for (text,) in texts), reverse=True)
    assert lengths[0] <= 24 and 4 * lengths[0] > 40  # four rows fit the token budget, not the logits' budget
    stock = HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=4)
    expected = stock.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    passes: list[int] = []
    handle = lm.model.register_forward_pre_hook(
        lambda module, args, kwargs: passes.append(int((kwargs.get("input_ids", args[0] if args else None)).numel())),
        with_kwargs=True,
    )
    try:
        mine = lm.loglikelihood_rolling(instances("loglikelihood_rolling", texts))
    finally:
        handle.remove()
    assert mine == pytest.approx(expected, abs=SHARED_NATS_TOLERANCE)
    assert passes and max(passes) <= 40 and len(passes) > 1  # without the cap: one pass of 4 rows, then one


def arc_run(model: Path, task: str, out: Path) -> Any:
    spec = {"checkpoints": [str(model)], "tasks": [{"name": task, "limit": 25}], "device": "cpu", "out": str(out)}
    run_spec(parse_spec(spec, "test"))
    return load_run_evals(out)[0]


@pytest.mark.parametrize("task", ["arc_easy", "arc_challenge"])
def test_arc_through_ftbench_run_scores_every_item_as_unshared(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    shared = arc_run(tiny_model_dir, task, tmp_path / "shared")
    load_model = hf.load_model
    monkeypatch.setattr(hf, "load_model", lambda item: load_model(item, share_prefix=False))
    unshared = arc_run(tiny_model_dir, task, tmp_path / "unshared")
    assert shared.variant.threads is not None and shared.variant.threads >= 1
    assert len(shared.samples) == len(unshared.samples) == 25
    for mine, theirs in zip(shared.samples, unshared.samples, strict=True):
        assert mine.doc_id == theirs.doc_id
        assert mine.scores["acc"] == theirs.scores["acc"] and mine.scores["acc_norm"] == theirs.scores["acc_norm"]
        assert mine.choice_loglikelihoods == pytest.approx(theirs.choice_loglikelihoods, abs=SHARED_NATS_TOLERANCE)
