"""lm-eval's ``HFLM`` computing a shared context once: the transformers engine's log-likelihood requests.

Stock lm-eval runs one forward pass per (context, continuation) pair, so a four-choice item costs four passes over
its question. ``SharedPrefixHFLM`` groups the requests lm-eval has already encoded (its own ``_encode_pair``
tokenisation, unchanged) by their context tokens (``prefix_groups``), computes each context once, batched across
groups (left-padded, with an attention mask and explicit position ids), and scores every continuation of a group
from the context's key/value cache: the logits at the context's last token score each continuation's first token,
and one pass over ``continuation[:-1]`` on the cache, its rows repeated once per continuation, the rest
(``batch_size`` continuations per pass, longest first, so little is padded). What it cannot share goes down
lm-eval's own path: requests lm-eval truncates, groups of one, one-token contexts, empty continuations, and models
whose forward returns no ``DynamicCache``.

Log-likelihoods equal the unshared ones within ``SHARED_NATS_TOLERANCE`` at fp32 (other matrix shapes round
differently), and ``is_greedy`` is the same test on the same logits. Rolling log-likelihoods (perplexity) are
lm-eval's own: it already scores the windows of all documents together, ``batch_size`` windows per pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs
from transformers import DynamicCache, GenerationConfig

from ftbench.harness.engines.cores import CoreShare
from ftbench.harness.engines.hf_generate import StopWatch, generation_rows, greedy_generate
from ftbench.harness.engines.prefix_groups import PrefixGroup, Triple, batches_of_groups, plan_sharing

CONTINUATIONS_PER_CONTEXT = 4
"""A batch scores up to this many continuations per context of ``batch_size`` (ARC's four choices)."""

TOKENS_PER_ROW = 256
"""What goes down lm-eval's own path is batched by padded tokens: at most ``batch_size`` × this many per pass."""

CPU_LOGITS_BYTES = 2**28
"""On CPU such a pass also keeps its fp32 logits within 256 MiB (lm-eval's log-softmax makes a second copy): on
SmolLM2 (49,152 tokens of vocabulary) passes of 1,365 tokens instead of 4,096 measured smaller and no slower (8
perplexity documents at fp32: peak 2.1 against 2.9 GiB, 21 against 25 s)."""

Answer = tuple[float, bool]
"""lm-eval's log-likelihood answer: (sum of continuation log-probabilities, whether it is the greedy one)."""


class _Prefixes(NamedTuple):
    """A batch of contexts computed once (row ``i`` is the batch's group ``i``)."""

    cache: DynamicCache
    mask: torch.Tensor
    """Left padding 0, context tokens 1."""
    lengths: torch.Tensor
    last_logits: torch.Tensor
    """The logits at each context's last token: they score its continuations' first tokens."""


class SharedPrefixHFLM(HFLM):
    """``HFLM`` whose log-likelihood requests compute a shared context once (see the module's docstring).

    Args:
        *args: ``HFLM``'s arguments.
        share_prefix: compute shared contexts once (False: lm-eval's own path for every request, for measuring).
        early_exit: greedy generation drops finished rows from the batch (False: transformers' ``generate``).
        memory_batches: generation batches take as many rows as the free memory holds (False: ``batch_size``).
        **kwargs: ``HFLM``'s keyword arguments.
    """

    def __init__(
        self,
        *args: Any,
        share_prefix: bool = True,
        early_exit: bool = True,
        memory_batches: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.share_prefix = share_prefix
        self.early_exit = early_exit
        self.memory_batches = memory_batches
        self.core_share: CoreShare | None = None
        """Re-measures the free cores between passes and generation steps (set by the engine's loader)."""

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """lm-eval's generation, in batches of as many rows as the free memory holds (``generation_rows``)."""
        asked: Any = getattr(self, "batch_size_per_gpu", None)
        if not self.memory_batches or not isinstance(asked, int) or not requests:
            return list(super().generate_until(requests, disable_tqdm=disable_tqdm))
        context = min(self.max_length, max(len(self.tok_encode(request.args[0])) for request in requests))
        new_tokens = max(_new_tokens(request.args[1], self.max_gen_toks, context) for request in requests)
        keeps = _keeps_some_logits(self.model)
        self.batch_size_per_gpu = generation_rows(self.model, self.device, context, new_tokens, asked, keeps)
        try:
            return list(super().generate_until(requests, disable_tqdm=disable_tqdm))
        finally:
            self.batch_size_per_gpu = asked

    def _model_call(
        self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """lm-eval's forward pass, its threads first brought to the free cores."""
        self._share_cores()
        return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

    def _share_cores(self) -> None:
        if self.core_share is not None:
            self.core_share.check()

    def _loglikelihood_tokens(
        self, requests: list[Triple], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[Answer]:
        """Log-likelihood and greediness of each continuation after its context, shared contexts computed once."""
        batch_size = self.batch_size
        if not self.share_prefix or self.backend != "causal" or not isinstance(batch_size, int):
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        plan = plan_sharing(requests, self.max_length)
        answers: dict[int, Answer] = {}
        alone = list(plan.alone)
        batches = batches_of_groups(plan.groups, batch_size, batch_size * CONTINUATIONS_PER_CONTEXT)
        for position, groups in enumerate(batches):
            scored = self._score_groups(requests, groups)
            if scored is None:  # the model keeps no cache: the rest goes down lm-eval's path
                self.share_prefix = False
                alone += [index for later in batches[position:] for group in later for index in group.indices]
                break
            answers.update(scored)
        for batch in token_budget_batches(alone, requests, self._pass_tokens(batch_size), self.max_length):
            unshared = super()._loglikelihood_tokens(
                [requests[i] for i in batch], disable_tqdm=True, override_bs=len(batch)
            )
            answers.update(zip(batch, unshared, strict=True))
        return [answers[index] for index in range(len(requests))]

    def _pass_tokens(self, batch_size: int) -> int:
        """The padded tokens of one pass down lm-eval's path: ``batch_size`` × ``TOKENS_PER_ROW``, and on CPU no
        more than ``CPU_LOGITS_BYTES`` of fp32 logits hold (at least one row's worth)."""
        budget = batch_size * TOKENS_PER_ROW
        if torch.device(self.device).type != "cpu":
            return budget
        vocabulary = getattr(getattr(self.model, "config", None), "vocab_size", None)
        if not isinstance(vocabulary, int) or vocabulary < 1:
            return budget
        return min(budget, max(TOKENS_PER_ROW, CPU_LOGITS_BYTES // (4 * vocabulary)))

    def _model_generate(
        self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs: Any
    ) -> torch.Tensor:
        """Greedy generation with finished rows leaving the batch (``greedy_generate``); sampling, and models
        without a ``DynamicCache``, go to transformers' ``generate`` as lm-eval calls it."""
        sampling = generation_kwargs.get("do_sample") or generation_kwargs.get("temperature", 0.0) not in (0, 0.0)
        others = set(generation_kwargs) - {"attention_mask", "do_sample", "temperature"}
        if not self.early_exit or sampling or others or self.backend != "causal" or _processes_logits(self.model):
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731 as lm-eval's stop check
        watch = StopWatch(decode, stop, _eos_ids(self.model, self.eot_token_id))
        mask = generation_kwargs.get("attention_mask")
        with self._no_grad():
            return greedy_generate(
                self.model,
                context,
                torch.ones_like(context) if mask is None else mask,
                max_length,
                watch,
                self._pad_id(),
                keep_last_logits=_keeps_some_logits(self.model),
                between_steps=self._share_cores,
            )

    def _score_groups(self, requests: list[Triple], groups: list[PrefixGroup]) -> dict[int, Answer] | None:
        """Answers of every request of ``groups``: their contexts computed together, then the continuations from
        the cache, ``batch_size`` at a time, longest first (so little is padded); None when the model returns no
        cache."""
        self._share_cores()
        prefixes = self._compute_prefixes(groups)
        if prefixes is None:
            return None
        rows = [(row, index) for row, group in enumerate(groups) for index in group.indices]
        rows.sort(key=lambda pair: -len(requests[pair[1]][2]))
        longer = [pair for pair in rows if len(requests[pair[1]][2]) > 1]
        answers = {
            index: self._answer(prefixes.last_logits[row, None], requests[index][2])
            for row, index in rows
            if len(requests[index][2]) == 1
        }
        for start in range(0, len(longer), self.batch_size):
            answers.update(self._score_continuations(requests, prefixes, longer[start : start + self.batch_size]))
        for index in sorted(answers):
            if requests[index][0] is not None:
                self.cache_hook.add_partial("loglikelihood", requests[index][0], answers[index])
        return answers

    def _score_continuations(
        self, requests: list[Triple], prefixes: _Prefixes, rows: list[tuple[int, int]]
    ) -> dict[int, Answer]:
        """Answers of the requests ``rows`` names (their group's row in ``prefixes``, their index): each
        ``continuation[:-1]`` computed on its context's cache."""
        inputs = [requests[index][2][:-1] for _, index in rows]
        width = max(len(tokens) for tokens in inputs)
        ids = torch.full((len(rows), width), self._pad_id(), dtype=torch.long)
        own_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, tokens in enumerate(inputs):
            ids[r, : len(tokens)] = torch.tensor(tokens)
            own_mask[r, : len(tokens)] = 1
        select = torch.tensor([row for row, _ in rows], device=self.device)
        mask = torch.cat([prefixes.mask.index_select(0, select), own_mask.to(self.device)], dim=1)
        positions = prefixes.lengths.index_select(0, select)[:, None] + torch.arange(width, device=self.device)
        with self._no_grad():
            logits = self.model(
                input_ids=ids.to(self.device),
                attention_mask=mask,
                position_ids=positions,
                past_key_values=_cache_rows(prefixes.cache, select),
                use_cache=True,
            ).logits
        answers = {}
        for r, (row, index) in enumerate(rows):
            continuation = requests[index][2]
            scored = torch.cat([prefixes.last_logits[row, None], logits[r, : len(continuation) - 1]])
            answers[index] = self._answer(scored, continuation)
        return answers

    def _compute_prefixes(self, groups: list[PrefixGroup]) -> _Prefixes | None:
        """The key/value cache of every group's context, left-padded into one batch; None without a cache."""
        width = max(len(group.context) for group in groups)
        ids = torch.full((len(groups), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(groups), width), dtype=torch.long)
        for row, group in enumerate(groups):
            ids[row, width - len(group.context) :] = torch.tensor(group.context)
            mask[row, width - len(group.context) :] = 1
        mask = mask.to(self.device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        extra = {"logits_to_keep": 1} if _keeps_some_logits(self.model) else {}
        with self._no_grad():
            output = self.model(
                input_ids=ids.to(self.device), attention_mask=mask, position_ids=positions, use_cache=True, **extra
            )
        cache = getattr(output, "past_key_values", None)
        if not isinstance(cache, DynamicCache):
            return None
        return _Prefixes(cache=cache, mask=mask, lengths=mask.sum(dim=1), last_logits=output.logits[:, -1])

    def _answer(self, logits: torch.Tensor, continuation: list[int]) -> Answer:
        """lm-eval's answer from the logits at a continuation's positions: the same log-softmax, sum and greedy
        test as ``HFLM._loglikelihood_tokens``."""
        logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
        targets = torch.tensor(continuation, dtype=torch.long, device=logprobs.device)
        greedy = bool((logprobs.argmax(dim=-1) == targets).all())
        return float(torch.gather(logprobs, 1, targets[:, None]).sum()), greedy

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.eot_token_id)

    @contextmanager
    def _no_grad(self) -> Iterator[None]:
        """No gradients, under the mixed-precision autocast ``HFLM._model_call`` uses."""
        dtype = self.mixed_precision_dtype
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=dtype, enabled=dtype is not None):
            yield


def _cache_rows(cache: DynamicCache, rows: torch.Tensor) -> DynamicCache:
    """A new cache holding ``cache``'s batch rows ``rows`` (repeated as often as named), ``cache`` untouched."""
    return DynamicCache(
        ddp_cache_data=[
            (keys.index_select(0, rows), values.index_select(0, rows), window) for keys, values, window in cache
        ]
    )


GREEDY_PROCESSORS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "sequence_bias",
    "exponential_decay_length_penalty",
    "renormalize_logits",
)
"""Generation-config fields that change greedy tokens in ``generate``; a model that sets one keeps ``generate``."""


def _new_tokens(settings: dict[str, Any], default: int, context: int) -> int:
    """The most tokens a request generates, read as lm-eval reads them (``max_gen_toks`` or its aliases, or a
    total ``max_length``)."""
    kwargs = normalize_gen_kwargs(dict(settings), default)
    total = kwargs.get("max_length")
    wanted = int(kwargs.get("max_gen_toks") or default)
    return max(wanted, int(total) - context) if isinstance(total, int) else wanted


def _processes_logits(model: Any) -> bool:
    """Whether the model's generation config changes the logits before the greedy choice."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return False
    default = GenerationConfig()
    return any(getattr(config, name, None) != getattr(default, name, None) for name in GREEDY_PROCESSORS)


def token_budget_batches(indices: list[int], requests: list[Triple], budget: int, max_length: int) -> list[list[int]]:
    """``indices`` in batches, longest first, each padded to its longest at most ``budget`` tokens (one request
    alone when it is longer): a perplexity document of 1,400 tokens no longer pads fifteen short ones to its
    length, and the logits of a batch stay within memory."""

    def length(index: int) -> int:
        _, context, continuation = requests[index]
        return min(len(context) + len(continuation), max_length)

    batches: list[list[int]] = []
    for index in sorted(indices, key=lambda i: (-length(i), i)):
        if batches and (len(batches[-1]) + 1) * length(batches[-1][0]) <= budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _eos_ids(model: Any, eot_token_id: int) -> set[int]:
    """The tokens that end a sequence for ``generate``: the generation config's end-of-sequence ids."""
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = found if isinstance(found, list) else [] if found is None else [found]
    return {int(i) for i in ids} or {eot_token_id}


def _keeps_some_logits(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (so a context pass skips the vocabulary projection
    everywhere but its last position); a PEFT model is asked about its base model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
