"""Greedy generation whose finished sequences leave the batch: the transformers engine's ``generate_until``.

transformers' ``generate`` keeps every row of a batch until the last one stops, so a batch whose answers end at
20 tokens but whose longest runs 128 pays 128 steps for every row. ``greedy_generate`` checks each row's stop
strings and end-of-sequence token as its tokens arrive and drops a finished row from the batch (its key/value
cache rows, attention mask and positions) at once, so each step computes only the rows still writing. It
returns what ``generate`` returns for lm-eval's ``HFLM`` to decode: the context and the new tokens, a finished
row padded with the pad token after its last one. Two more savings: the keys and values are written into tensors
allocated once at the generation's full length (``PreallocatedLayer``; transformers' dynamic cache concatenates
the whole cache anew at every token), and a prefix every row's context shares (a system prompt, an instruction)
is computed once, in one row, its cache repeated for each row.

How many rows a batch takes comes from the free memory (``generation_rows``): as many as the key/value cache, the
context pass's activations and the logits of each row leave inside half the memory available, up to
``GENERATION_ROWS`` for the device (more rows per step share each pass over the weights).

The tokens are the greedy ones of the same model; a matrix of another shape can round differently, so on a near
tie between two tokens a row may take the other (as it can under another batch size in ``generate``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import psutil
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are written into tensors allocated once at the generation's full
    length, rather than concatenated anew at every step (which copies the whole cache each token).

    Args:
        capacity: the most tokens the layer will hold (context and new tokens).
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys and values after the held ones; return views of all of them."""
        if not self.is_initialized:
            self.dtype, self.device = key_states.dtype, key_states.device
            self.key_buffer = key_states.new_empty((*key_states.shape[:2], self.capacity, key_states.shape[3]))
            self.value_buffer = value_states.new_empty((*value_states.shape[:2], self.capacity, value_states.shape[3]))
            self.is_initialized = True
        end = self.length + key_states.shape[-2]
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        return self._held()

    def _held(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Point ``keys`` and ``values`` at the tokens held so far (views of the buffers), and return them."""
        keys, values = self.key_buffer[:, :, : self.length], self.value_buffer[:, :, : self.length]
        self.keys, self.values = keys, values
        return keys, values

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat each batch row ``repeats`` times (a prefix computed once, for every row that shares it)."""
        self.key_buffer = self.key_buffer.repeat_interleave(repeats, dim=0)
        self.value_buffer = self.value_buffer.repeat_interleave(repeats, dim=0)
        self._held()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the batch rows ``indices``."""
        self.key_buffer = self.key_buffer.index_select(0, indices)
        self.value_buffer = self.value_buffer.index_select(0, indices)
        self._held()


def preallocated_cache(model: Any, capacity: int) -> DynamicCache | None:
    """A cache of ``PreallocatedLayer`` for each layer of ``model`` (None for a model with sliding-window or other
    layer kinds, which keep transformers' own cache)."""
    config = model.config.get_text_config(decoder=True)
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        return None
    cache = DynamicCache()
    cache.layers = [PreallocatedLayer(capacity) for _ in range(config.num_hidden_layers)]
    cache.layer_class_to_replicate = None
    return cache


class StopWatch:
    """Which rows have finished: an end-of-sequence token, or a stop string in the text generated so far.

    Args:
        decode: token ids to text, as lm-eval decodes a generation.
        stop: the stop strings (lm-eval's ``until``, which holds the end-of-sequence text too).
        eos_ids: token ids that end a sequence.
    """

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str], eos_ids: set[int]) -> None:
        self.decode = decode
        self.stop = [text for text in stop if text]
        self.eos_ids = eos_ids

    def finished(self, generated: list[int]) -> bool:
        """Whether a row that has generated ``generated`` so far is done."""
        if generated and generated[-1] in self.eos_ids:
            return True
        if not self.stop:
            return False
        text = self.decode(generated)
        return any(stop in text for stop in self.stop)


def greedy_generate(
    model: Any,
    context: torch.Tensor,
    attention_mask: torch.Tensor,
    max_length: int,
    watch: StopWatch,
    pad_id: int,
    keep_last_logits: bool = True,
    between_steps: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Greedy continuations of the left-padded ``context`` rows up to ``max_length`` tokens in all, each row
    leaving the batch as soon as ``watch`` says it has finished.

    Args:
        model: a causal language model returning a ``DynamicCache``.
        context: ``[rows, width]`` left-padded token ids.
        attention_mask: ``[rows, width]``, 0 on the padding.
        max_length: context width plus the most new tokens.
        watch: tells when a row has finished.
        pad_id: written after a row's end.
        keep_last_logits: the model takes ``logits_to_keep`` (the context pass then projects only its last
            position onto the vocabulary).
        between_steps: called before each new token's pass (the engine re-measures its free cores).

    Returns:
        ``[rows, context length + steps]`` token ids: the context, then each row's tokens, pad after its end.
    """
    rows, width = context.shape
    out = torch.full((rows, max_length), pad_id, dtype=torch.long, device=context.device)
    out[:, :width] = context
    output, batch = _prefill(model, context, attention_mask, max_length, keep_last_logits)
    generated: list[list[int]] = [[] for _ in range(rows)]
    step = width
    while True:
        tokens = output.logits[:, -1].argmax(dim=-1)
        out[batch.rows, step] = tokens
        step += 1
        keep = [
            slot
            for slot, (row, token) in enumerate(zip(batch.rows.tolist(), tokens.tolist(), strict=True))
            if not watch.finished(_append(generated[row], token))
        ]
        if not keep or step == max_length:
            return out[:, :step]
        batch, tokens = batch.keeping(keep, tokens)
        if between_steps is not None:
            between_steps()
        output = model(
            input_ids=tokens[:, None],
            attention_mask=batch.mask,
            position_ids=batch.last[:, None],
            past_key_values=batch.cache,
            use_cache=True,
        )


GENERATION_ROWS = {"cpu": 64, "cuda": 256}
"""The most rows a generation batch takes on each kind of device when memory allows. On 2 CPU cores 64 rows
generated 1.19× the tokens per second of 16 on 64 Countdown items (``benchmarks/engines.py``); a GPU's steps cost
little more for many more rows."""

MEMORY_SHARE = 0.5
"""Generation batches take at most this share of the memory available on their device."""


class AttentionShape(NamedTuple):
    """A decoder's attention and layer sizes, read from its config."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int


def attention_shape(config: Any) -> AttentionShape:
    """The decoder's sizes (grouped key/value heads, a head size of its own, an MLP width) from ``config``.

    Raises:
        AttributeError: the config lacks the shape of a transformer's attention.
    """
    text = config.get_text_config(decoder=True)
    heads = int(text.num_attention_heads)
    hidden = int(text.hidden_size)
    return AttentionShape(
        layers=int(text.num_hidden_layers),
        hidden=hidden,
        heads=heads,
        kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(text, "head_dim", None) or hidden // heads),
        intermediate=int(getattr(text, "intermediate_size", None) or 4 * hidden),
        vocab=int(text.vocab_size),
    )


def row_bytes(config: Any, dtype_bytes: int, context: int, new_tokens: int, last_logits_only: bool = True) -> int:
    """An upper estimate of the memory one row of a generation batch needs: its key/value cache at full length
    (twice: dropping finished rows copies the cache), the context pass's activations and attention scores (three
    copies of them, as eager attention holds), and its logits.

    Args:
        config: the model's config.
        dtype_bytes: bytes per value of the model's activations.
        context: the row's context tokens (the batch's longest, as it is left-padded to that).
        new_tokens: the most tokens it generates.
        last_logits_only: the context pass projects only its last position onto the vocabulary (False: every
            position's logits are held).

    Raises:
        AttributeError: the config lacks the shape of a transformer's attention (no estimate can be made).
    """
    shape = attention_shape(config)
    cache = 2 * shape.layers * shape.kv_heads * shape.head_dim * (context + new_tokens) * dtype_bytes
    activations = (
        context * (4 * shape.hidden + 3 * shape.intermediate) * dtype_bytes + 3 * shape.heads * context * context * 4
    )
    logits = (2 if last_logits_only else context + 1) * shape.vocab * 4
    return 2 * cache + activations + logits


def free_memory(device: torch.device) -> int:
    """Bytes available on ``device``: the GPU's free memory, or the machine's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def generation_rows(
    model: Any, device: torch.device, context: int, new_tokens: int, wanted: int, last_logits_only: bool = True
) -> int:
    """How many rows a generation batch takes: as many as fit in ``MEMORY_SHARE`` of the free memory
    (``row_bytes`` each), at most the device's ``GENERATION_ROWS`` or ``wanted`` if that is more, and at least
    one; ``wanted`` itself for a model whose config gives no attention shape to estimate from.

    Args:
        model: the model (its config and dtype).
        device: where it computes.
        context: the longest context, in tokens.
        new_tokens: the most tokens a row generates.
        wanted: the batch size asked for.
        last_logits_only: as ``row_bytes`` takes it.
    """
    dtype_bytes = torch.finfo(model.dtype).bits // 8 if model.dtype.is_floating_point else 4
    try:
        per_row = row_bytes(model.config, max(dtype_bytes, 2), context, new_tokens, last_logits_only)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return wanted
    fits = int(MEMORY_SHARE * free_memory(device)) // per_row
    return max(1, min(fits, max(GENERATION_ROWS.get(device.type, wanted), wanted)))


SHARED_FROM = 16
"""Context tokens all rows must share before their common prefix is computed once, in one row."""


def shared_prefix_length(context: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """How many leading tokens every row's context shares (each row keeps at least its last token)."""
    lengths = attention_mask.sum(dim=1).tolist()
    rows = [context[row, context.shape[1] - length :].tolist() for row, length in enumerate(lengths)]
    first, shortest = rows[0], min(lengths) - 1
    shared = 0
    while shared < shortest and all(row[shared] == first[shared] for row in rows):
        shared += 1
    return shared


def _prefill(
    model: Any, context: torch.Tensor, attention_mask: torch.Tensor, capacity: int, keep_last_logits: bool
) -> tuple[Any, _Batch]:
    """The context pass: a prefix every row shares computed once, in one row, its cache repeated for each row,
    then each row's rest (left-padded after the prefix); without one, the whole batch at once."""
    rows = context.shape[0]
    extra: dict[str, Any] = {"logits_to_keep": 1} if keep_last_logits else {}
    cache = preallocated_cache(model, capacity)
    shared = shared_prefix_length(context, attention_mask) if rows > 1 and cache is not None else 0
    if cache is None or shared < SHARED_FROM:
        if cache is not None:
            extra["past_key_values"] = cache
        positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        output = model(
            input_ids=context, attention_mask=attention_mask, position_ids=positions, use_cache=True, **extra
        )
        return output, _Batch(
            torch.arange(rows, device=context.device), attention_mask, positions[:, -1], output.past_key_values
        )
    lengths = attention_mask.sum(dim=1)
    start = context.shape[1] - int(lengths[0])
    prefix = context[:1, start : start + shared]
    model(input_ids=prefix, past_key_values=cache, use_cache=True, **extra)
    cache.batch_repeat_interleave(rows)
    rest = (lengths - shared).tolist()
    width = max(rest)
    ids = torch.full((rows, width), int(context[0, 0]), dtype=torch.long, device=context.device)
    rest_mask = torch.zeros((rows, width), dtype=attention_mask.dtype, device=context.device)
    for row, length in enumerate(rest):
        ids[row, width - length :] = context[row, context.shape[1] - length :]
        rest_mask[row, width - length :] = 1
    mask = torch.cat([attention_mask.new_ones((rows, shared)), rest_mask], dim=1)
    positions = shared + (rest_mask.cumsum(dim=1) - 1).clamp(min=0)
    output = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, **extra
    )
    return output, _Batch(torch.arange(rows, device=context.device), mask, positions[:, -1], cache)


def _append(tokens: list[int], token: int) -> list[int]:
    tokens.append(token)
    return tokens


class _Batch(NamedTuple):
    """The rows still generating: their rows of the output, attention mask, last position and cache."""

    rows: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor
    cache: Any

    def keeping(self, slots: list[int], tokens: torch.Tensor) -> tuple[_Batch, torch.Tensor]:
        """The batch of the rows at ``slots`` after one more token each, and those rows' tokens."""
        batch = self
        if len(slots) < len(self.rows):
            select = torch.tensor(slots, device=self.rows.device)
            self.cache.batch_select_indices(select)
            batch = _Batch(self.rows[select], self.mask[select], self.last[select], self.cache)
            tokens = tokens[select]
        mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
        return _Batch(batch.rows, mask, batch.last + 1, batch.cache), tokens
