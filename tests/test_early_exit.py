"""Greedy generation with finished rows leaving the batch: the same text as lm-eval's ``HFLM`` on a tiny model,
fewer rows computed, and sampling left to transformers' ``generate``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from ftbench.harness.engines import hf_shared
from ftbench.harness.engines.hf_shared import SharedPrefixHFLM

PROMPTS = [
    "Using the numbers 3, 5 and 7, make 22.",
    "Name a colour.",
    "Write one sentence about the sea and the sky above it at night.",
    "2 + 2 =",
    "The capital of France is",
    "Translate 'good morning' into German:",
    "A long question, so that the batch is padded on the left: which planet is the largest of all?",
]
MAX_TOKENS = 24


def requests(stop: list[str], **settings: Any) -> list[Instance]:
    kwargs = {"until": stop, "max_gen_toks": MAX_TOKENS, "do_sample": False, **settings}
    return [Instance("generate_until", {}, (prompt, dict(kwargs)), i) for i, prompt in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def stock(tiny_model_dir: Path) -> Iterator[HFLM]:
    yield HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="module")
def shared(tiny_model_dir: Path) -> Iterator[SharedPrefixHFLM]:
    yield SharedPrefixHFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=4)


def common_stop(lm: HFLM) -> str:
    """The text of the token that most unstopped generations reach after their first (so rows finish apart)."""
    counts: Counter[int] = Counter()
    for text in lm.generate_until(requests([]), disable_tqdm=True):
        counts.update(set(lm.tokenizer(text, add_special_tokens=False)["input_ids"][1:]))
    return str(lm.tokenizer.decode([counts.most_common(1)[0][0]]))


class RowCounter:
    """The rows of every one-token decoding step the model computes."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        if ids.shape[1] == 1:
            self.rows += int(ids.shape[0])


def test_early_exit_writes_lm_evals_text_and_computes_fewer_rows(stock: HFLM, shared: SharedPrefixHFLM) -> None:
    stop = common_stop(stock)
    stock_rows, shared_rows = RowCounter(stock.model), RowCounter(shared.model)
    expected = stock.generate_until(requests([stop]), disable_tqdm=True)
    found = shared.generate_until(requests([stop]), disable_tqdm=True)
    stock_rows.handle.remove()
    shared_rows.handle.remove()
    assert found == expected
    assert len({len(text) for text in expected}) > 2  # rows really stop at different steps
    assert 0 < shared_rows.rows < stock_rows.rows


def test_without_a_stop_every_row_runs_to_the_token_limit(stock: HFLM, shared: SharedPrefixHFLM) -> None:
    expected = stock.generate_until(requests([]), disable_tqdm=True)
    assert shared.generate_until(requests([]), disable_tqdm=True) == expected
    counted = [len(shared.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in expected]
    assert max(counted) >= MAX_TOKENS - 2  # decoding can merge a token or two


def test_an_end_of_sequence_token_finishes_a_row(stock: HFLM, shared: SharedPrefixHFLM) -> None:
    stop_text = common_stop(stock)
    token = shared.tokenizer(stop_text, add_special_tokens=False)["input_ids"][0]
    saved = (stock.model.generation_config.eos_token_id, shared.model.generation_config.eos_token_id)
    stock.model.generation_config.eos_token_id = shared.model.generation_config.eos_token_id = token
    try:
        expected = stock.generate_until(requests([]), disable_tqdm=True)
        assert shared.generate_until(requests([]), disable_tqdm=True) == expected
    finally:
        stock.model.generation_config.eos_token_id, shared.model.generation_config.eos_token_id = saved


def test_sampling_and_processed_greedy_go_to_generate(shared: SharedPrefixHFLM, monkeypatch: Any) -> None:
    def refuse(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("greedy_generate was called")

    monkeypatch.setattr(hf_shared, "greedy_generate", refuse)
    torch.manual_seed(0)
    texts = shared.generate_until(requests([], do_sample=True, temperature=0.7), disable_tqdm=True)
    assert len(texts) == len(PROMPTS)
    monkeypatch.setattr(shared.model.generation_config, "repetition_penalty", 1.3)
    assert len(shared.generate_until(requests([]), disable_tqdm=True)) == len(PROMPTS)


INSTRUCTIONS = (
    "<|im_start|>system\nYou are a helpful assistant. Answer each question in one short sentence, think step by "
    "step before you answer, and put the final answer last.<|im_end|>\n<|im_start|>user\n"
)


class ContextPasses:
    """The shapes of the passes of more than one token (context passes)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.handle = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        if ids.shape[1] > 1:
            self.shapes.append((int(ids.shape[0]), int(ids.shape[1])))


def test_a_prefix_every_row_shares_is_computed_once(stock: HFLM, shared: SharedPrefixHFLM) -> None:
    def prefixed(stop: list[str]) -> list[Instance]:
        found = requests(stop)
        for instance in found:
            instance.arguments = (INSTRUCTIONS + instance.arguments[0], instance.arguments[1])
        return found

    stop = common_stop(stock)
    expected = stock.generate_until(prefixed([stop]), disable_tqdm=True)
    passes = ContextPasses(shared.model)
    found = shared.generate_until(prefixed([stop]), disable_tqdm=True)
    passes.handle.remove()
    assert found == expected
    shared_length = len(shared.tokenizer(INSTRUCTIONS, add_special_tokens=False)["input_ids"])
    prefix_passes = [shape for shape in passes.shapes if shape[0] == 1]
    assert prefix_passes and all(width >= shared_length - 1 for _, width in prefix_passes)
    longest = max(len(shared.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS)
    assert all(width <= longest + 1 for rows, width in passes.shapes if rows > 1)
