"""Generation batches sized from the free memory: as many rows as fit, up to the device's cap, the same text
whatever the batch, and an estimate that covers the cache the generation really allocates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from ftbench.harness.engines import hf_generate
from ftbench.harness.engines.hf_generate import (
    GENERATION_ROWS,
    PreallocatedLayer,
    generation_rows,
    row_bytes,
)
from ftbench.harness.engines.hf_shared import SharedPrefixHFLM
from tests.test_early_exit import MAX_TOKENS, PROMPTS, ContextPasses, requests

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small_batch(tiny_model_dir: Path) -> Iterator[SharedPrefixHFLM]:
    yield SharedPrefixHFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=2)


def with_memory(monkeypatch: pytest.MonkeyPatch, available: int) -> None:
    monkeypatch.setattr(hf_generate, "free_memory", lambda device: available)


def test_rows_are_what_half_the_free_memory_holds(small_batch: SharedPrefixHFLM, monkeypatch: Any) -> None:
    per_row = row_bytes(small_batch.model.config, 4, 100, 50)
    with_memory(monkeypatch, 2 * 5 * per_row + 1)
    assert generation_rows(small_batch.model, CPU, 100, 50, wanted=2) == 5
    with_memory(monkeypatch, per_row)  # not even one row fits: still one, never none
    assert generation_rows(small_batch.model, CPU, 100, 50, wanted=2) == 1
    with_memory(monkeypatch, 2**50)
    assert generation_rows(small_batch.model, CPU, 100, 50, wanted=2) == GENERATION_ROWS["cpu"]
    assert generation_rows(small_batch.model, CPU, 100, 50, wanted=500) == 500  # a larger batch asked is kept


def test_longer_rows_need_more_memory(small_batch: SharedPrefixHFLM) -> None:
    config = small_batch.model.config
    assert row_bytes(config, 4, 100, 50) < row_bytes(config, 4, 200, 50) < row_bytes(config, 4, 200, 400)
    assert row_bytes(config, 2, 100, 50) < row_bytes(config, 4, 100, 50)


def test_the_estimate_covers_the_cache_allocated(small_batch: SharedPrefixHFLM, monkeypatch: Any) -> None:
    held: list[PreallocatedLayer] = []
    allocate = PreallocatedLayer.__init__

    def keep(layer: PreallocatedLayer, capacity: int) -> None:
        allocate(layer, capacity)
        held.append(layer)

    monkeypatch.setattr(PreallocatedLayer, "__init__", keep)
    small_batch.generate_until(requests([]), disable_tqdm=True)
    cache = sum(layer.key_buffer.nbytes + layer.value_buffer.nbytes for layer in held)
    longest = max(len(small_batch.tok_encode(prompt)) for prompt in PROMPTS)
    assert 0 < cache <= len(PROMPTS) * row_bytes(small_batch.model.config, 4, longest, MAX_TOKENS) / 2


def test_one_batch_when_memory_allows_and_the_same_text_as_lm_eval(
    small_batch: SharedPrefixHFLM, tiny_model_dir: Path, monkeypatch: Any
) -> None:
    stock = HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=2)
    expected = stock.generate_until(requests([]), disable_tqdm=True)
    passes = ContextPasses(small_batch.model)
    found = small_batch.generate_until(requests([]), disable_tqdm=True)
    passes.handle.remove()
    assert found == expected
    assert [rows for rows, _ in passes.shapes] == [len(PROMPTS)]  # one context pass for all, not batches of 2
    assert small_batch.batch_size == 2  # the asked batch is back for what follows

    longest = max(len(small_batch.tok_encode(prompt)) for prompt in PROMPTS)
    with_memory(monkeypatch, 3 * row_bytes(small_batch.model.config, 4, longest, MAX_TOKENS))
    passes = ContextPasses(small_batch.model)
    assert small_batch.generate_until(requests([]), disable_tqdm=True) == expected
    passes.handle.remove()
    assert max(rows for rows, _ in passes.shapes) == 1  # little memory: a row at a time


def test_requests_of_several_lengths_are_sized_by_the_longest(small_batch: SharedPrefixHFLM, monkeypatch: Any) -> None:
    seen: list[tuple[int, int]] = []

    def record(model: Any, device: torch.device, context: int, new_tokens: int, wanted: int, keeps: bool) -> int:
        seen.append((context, new_tokens))
        return wanted

    monkeypatch.setattr("ftbench.harness.engines.hf_shared.generation_rows", record)
    mixed = [
        Instance("generate_until", {}, (prompt, {"until": [], "max_gen_toks": 8 + i, "do_sample": False}), i)
        for i, prompt in enumerate(PROMPTS)
    ]
    small_batch.generate_until(mixed, disable_tqdm=True)
    assert seen == [(max(len(small_batch.tok_encode(prompt)) for prompt in PROMPTS), 8 + len(PROMPTS) - 1)]


def test_lm_evals_other_names_for_the_token_limit_count(small_batch: SharedPrefixHFLM, monkeypatch: Any) -> None:
    seen: list[int] = []

    def record(model: Any, device: torch.device, context: int, new_tokens: int, wanted: int, keeps: bool) -> int:
        seen.append(new_tokens)
        return wanted

    monkeypatch.setattr("ftbench.harness.engines.hf_shared.generation_rows", record)
    for settings in ({"max_new_tokens": 9}, {"max_tokens": 7}, {"max_gen_toks": None}):
        request = Instance("generate_until", {}, (PROMPTS[0], {"until": [], "do_sample": False, **settings}), 0)
        small_batch.generate_until([request], disable_tqdm=True)
    assert seen == [9, 7, small_batch.max_gen_toks]


def test_every_positions_logits_are_counted_where_the_model_keeps_them(small_batch: SharedPrefixHFLM) -> None:
    config = small_batch.model.config
    assert row_bytes(config, 4, 100, 50, last_logits_only=False) > row_bytes(config, 4, 100, 50) + 98 * 49152 * 4


def test_a_model_without_attention_shapes_keeps_the_asked_batch(small_batch: SharedPrefixHFLM) -> None:
    class NoAttention:
        def get_text_config(self, decoder: bool = True) -> object:
            return object()

    shapeless = SimpleNamespace(config=NoAttention(), dtype=torch.float32)
    assert generation_rows(shapeless, CPU, 100, 50, wanted=3) == 3


def test_the_asked_batch_is_back_after_a_failed_generation(small_batch: SharedPrefixHFLM, monkeypatch: Any) -> None:
    def fail(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(small_batch, "_model_generate", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        small_batch.generate_until(requests([]), disable_tqdm=True)
    assert small_batch.batch_size == 2
