"""llama.cpp's kernels on a GGUF file, many sequences per decode: scoring token sequences and generating from prompts.

One ``llama_context`` holds ``n_seq`` sequences, each in its own KV-cache stream (``kv_unified`` off, as
llama.cpp's ``examples/batched`` and its server do). Every ``llama_decode`` call carries the next tokens of all
active sequences: one token per generating sequence, then chunks of prompts that are still being read. A
sequence that finishes frees its slot for the next one (continuous batching). A sampled sequence draws from its
own seeded generator, whatever shares its batch; llama.cpp picks matrix kernels by batch size, though, so
quantized types can differ in the last bits between batch sizes, enough to flip a greedy choice at a near tie.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ftbench.harness.core.errors import EvaluationError, FtbenchError
from ftbench.harness.core.records import TOPK_DECIMALS
from ftbench.harness.engines.gguf import read_gguf
from ftbench.harness.engines.llamacpp_lib import extra_buffers_run, last_error, library, llama_log

KV_BLOCK = 256
"""llama.cpp pads each sequence's KV stream to a multiple of this many cells."""


class TokenScores(NamedTuple):
    """The log-probabilities of a sequence's target tokens, whether each was the most likely token, and (when
    asked for) the most likely tokens at each position with their log-probabilities."""

    logprobs: list[float]
    greedy: list[bool]
    top_ids: list[list[int]]
    top_logprobs: list[list[float]]


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: greedy when ``temperature`` is 0, else sampled with a per-sequence seed."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    seed: int = 0


@dataclass
class Stream:
    """One sequence in flight: tokens still to read, where it stands, and what to do with its outputs."""

    tokens: list[int]
    first_output: int
    """Position from which logits are wanted."""
    on_logits: Callable[[Stream, int, int], None]
    """Called with (stream, position, batch index) for every wanted output."""
    seq: int = -1
    pos: int = 0
    pending: list[int] = field(default_factory=list)
    done: bool = False


class GgufRuntime:
    """A GGUF model loaded with llama.cpp: its vocabulary, and batched scoring and generation.

    Args:
        path: the GGUF file.
        threads: CPU threads for every decode.
        max_length: longest sequence (context) in tokens; defaults to the model's training context (the KV cache is
            sized to each call's longest sequence, not to this).
        n_batch: most tokens per decode call.
        gpu_layers: layers offloaded to a GPU (0 on CPU builds).

    Raises:
        FtbenchError: llama.cpp cannot load the file.
    """

    def __init__(
        self, path: Path, threads: int, max_length: int | None = None, n_batch: int = 512, gpu_layers: int = 0
    ) -> None:
        read_gguf(path)
        self.lib = library()
        self.path = path
        self.threads = threads
        self.n_batch = n_batch
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        self.extra_buffers = extra_buffers_run(path)
        """Whether llama.cpp's extra CPU weight layouts (AMX tiles, repacked blocks) are in use."""
        params.use_extra_bufts = self.extra_buffers
        with llama_log() as log:
            self.model = self.lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise FtbenchError(f"llama.cpp cannot load {path}: {last_error(log, 'unknown error')}; re-export the file")
        self.vocab = self.lib.llama_model_get_vocab(self.model)
        self.n_vocab = int(self.lib.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(self.lib.llama_model_n_ctx_train(self.model))
        self.max_length = max_length or self.n_ctx_train
        self._pieces: dict[int, bytes] = {}
        self._ctx: Any = None
        self._ctx_shape = (0, 0)
        self._batch: Any = None

    # -- vocabulary -------------------------------------------------------------------------------------------

    @property
    def bos(self) -> int | None:
        """The beginning-of-sequence token, or None."""
        token = int(self.lib.llama_vocab_bos(self.vocab))
        return token if token >= 0 else None

    @property
    def eos(self) -> int:
        """The end-of-sequence token."""
        return int(self.lib.llama_vocab_eos(self.vocab))

    def metadata(self, key: str) -> str | None:
        """A string value of the file's metadata, or None."""
        size = 1 << 16
        buffer = ctypes.create_string_buffer(size)
        length = self.lib.llama_model_meta_val_str(self.model, key.encode(), buffer, size)
        if length < 0:
            return None
        if length >= size:
            buffer = ctypes.create_string_buffer(length + 1)
            self.lib.llama_model_meta_val_str(self.model, key.encode(), buffer, length + 1)
        return buffer.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        """Tokens of ``text``; special tokens written in it (``<|im_start|>``) are parsed as such."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (self.lib.llama_token * capacity)()
        count = self.lib.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        if count < 0:
            capacity = -count
            tokens = (self.lib.llama_token * capacity)()
            count = self.lib.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        return list(tokens[:count])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; control tokens (BOS, end of turn) stand for nothing."""
        cached = self._pieces.get(token)
        if cached is None:
            buffer = ctypes.create_string_buffer(64)
            length = self.lib.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
            if length < 0:
                buffer = ctypes.create_string_buffer(-length)
                length = self.lib.llama_token_to_piece(self.vocab, token, buffer, -length, 0, False)
            cached = self._pieces[token] = buffer.raw[:length]
        return cached

    def token_text(self, token: int) -> str:
        """A token's text with control tokens written out (``<|im_end|>``)."""
        buffer = ctypes.create_string_buffer(256)
        length = self.lib.llama_token_to_piece(self.vocab, token, buffer, 256, 0, True)
        return buffer.raw[: max(0, length)].decode("utf-8", errors="replace")

    def detokenize(self, tokens: Iterable[int]) -> str:
        """The text of ``tokens`` (invalid UTF-8 replaced, as transformers decodes)."""
        return b"".join(self.piece(token) for token in tokens).decode("utf-8", errors="replace")

    def is_end(self, token: int) -> bool:
        """Whether ``token`` ends generation (end of sequence or of turn)."""
        return bool(self.lib.llama_vocab_is_eog(self.vocab, token))

    # -- scoring and generation -------------------------------------------------------------------------------

    def score(self, sequences: list[tuple[list[int], list[int]]], n_seq: int, top: int = 0) -> list[TokenScores]:
        """Log-probabilities of ``targets`` given ``inputs`` for each ``(inputs, targets)``, and the ``top`` most
        likely tokens at each scored position.

        ``targets`` are the tokens that follow the last ``len(targets)`` input positions (the inputs shifted by
        one), so a continuation is scored with one forward pass over context and continuation.
        """
        results: list[TokenScores | None] = [None] * len(sequences)

        def streams() -> Iterator[Stream]:
            for index, (inputs, targets) in enumerate(sequences):
                scores = TokenScores([], [], [], [])
                results[index] = scores

                def keep(
                    stream: Stream, pos: int, row: int, targets: list[int] = targets, scores: TokenScores = scores
                ) -> None:
                    add_score(scores, self.logits(row), targets[pos - stream.first_output], top)

                yield Stream(list(inputs), len(inputs) - len(targets), keep)

        longest = max((len(inputs) for inputs, _ in sequences), default=1)
        self._run(streams(), n_seq, longest)
        return [scores for scores in results if scores is not None]

    def generate(
        self,
        prompts: list[list[int]],
        max_tokens: int,
        sampling: Sampling,
        n_seq: int,
        should_stop: Callable[[str], bool],
        keys: list[int] | None = None,
    ) -> list[list[int]]:
        """Tokens generated after each prompt, until an end token, ``max_tokens`` or ``should_stop(text)``.

        ``should_stop`` receives the tail of the text generated so far. Sampled sequences draw from their own
        generator seeded from ``sampling.seed`` and the prompt's key (default: its index), so batching does not
        change them.
        """
        outputs: list[list[int]] = [[] for _ in prompts]
        keys = keys or list(range(len(prompts)))
        samplers: list[Any] = []

        def streams() -> Iterator[Stream]:
            for index, prompt in enumerate(prompts):
                sampler = self._sampler(sampling, keys[index])
                samplers.append(sampler)
                tail = bytearray()

                def step(
                    stream: Stream,
                    pos: int,
                    row: int,
                    index: int = index,
                    sampler: Any = sampler,
                    tail: bytearray = tail,
                ) -> None:
                    token = int(self.lib.llama_sampler_sample(sampler, self._ctx, row))
                    if self.is_end(token):
                        stream.done = True
                    else:
                        outputs[index].append(token)
                        tail[:] = (tail + self.piece(token))[-256:]
                        text = tail.decode("utf-8", errors="ignore")
                        stream.done = len(outputs[index]) >= max_tokens or should_stop(text)
                    if not stream.done:
                        stream.pending.append(token)

                yield Stream(list(prompt), len(prompt) - 1, step)

        longest = max((len(prompt) for prompt in prompts), default=1) + max_tokens
        try:
            self._run(streams(), n_seq, longest)
        finally:
            for sampler in samplers:
                self.lib.llama_sampler_free(sampler)
        return outputs

    def _sampler(self, sampling: Sampling, key: int) -> Any:
        """A llama.cpp sampler chain: greedy, or temperature → top-k → top-p → min-p → a seeded draw."""
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if sampling.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(sampling.temperature))
        if sampling.top_k > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(sampling.min_p, 1))
        seed = int(hashlib.sha256(f"{sampling.seed}:{key}".encode()).hexdigest()[:8], 16)
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        return chain

    def memory(self) -> Any:
        """The context's KV cache (``llama_memory_t``), for sequence copies and removals."""
        return self.lib.llama_get_memory(self._ctx)

    def logits(self, row: int) -> np.ndarray:
        pointer = self.lib.llama_get_logits_ith(self._ctx, row)
        if not pointer:
            raise EvaluationError(f"llama.cpp returned no logits for batch row {row} of {self.path}")
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def _run(self, streams: Iterator[Stream], n_seq: int, longest: int) -> None:
        """Feed streams through decode calls, ``n_seq`` at a time, until every stream is done."""
        self.ensure_context(n_seq, min(longest, self.max_length))
        memory = self.memory()
        free = list(range(n_seq))[::-1]
        active: list[Stream] = []
        while True:
            for stream in _take(streams, len(free)):
                stream.seq, stream.pending = free.pop(), list(stream.tokens)
                self.lib.llama_memory_seq_rm(memory, stream.seq, -1, -1)
                active.append(stream)
            if not active:
                return
            self._decode_step(active)
            for stream in [s for s in active if s.done or not s.pending]:
                active.remove(stream)
                free.append(stream.seq)
            free.sort(reverse=True)  # the lowest free id next, keeping the active ids consecutive

    def decode_streams(self, streams: list[Stream]) -> None:
        """Decode streams whose sequence ids, positions and pending tokens are already set (in a context from
        ``ensure_context``), together, until none has tokens pending; their KV cache is kept."""
        active = [stream for stream in streams if stream.pending]
        while active:
            self._decode_step(active)
            active = [stream for stream in active if stream.pending and not stream.done]

    def _decode_step(self, active: list[Stream]) -> None:
        """One decode call over the next tokens of the active streams, then their outputs' callbacks."""
        wanted = self._fill_batch(active)
        with llama_log() as log:
            status = self.lib.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise EvaluationError(f"llama.cpp decode failed on {self.path} (status {status}): {last_error(log, '')}")
        for stream, pos, row in wanted:
            stream.on_logits(stream, pos, row)

    def _fill_batch(self, active: list[Stream]) -> list[tuple[Stream, int, int]]:
        """Put the next tokens of the active streams into the batch; returns the (stream, position, batch row) of
        every output wanted.

        Generating streams (one token each) get their share of ``n_batch`` first, prompts the rest. Tokens go in
        in sequence-id order: llama.cpp splits a batch over separate KV streams into micro-batches of consecutive
        sequence ids, so any other order would decode the sequences one by one.
        """
        budget, takes = self.n_batch, {}
        for stream in sorted(active, key=lambda s: len(s.pending)):
            takes[stream.seq] = min(len(stream.pending), budget)
            budget -= takes[stream.seq]
        batch, size, wanted = self._batch, 0, []
        for stream in sorted(active, key=lambda s: s.seq):
            for token in stream.pending[: takes[stream.seq]]:
                batch.token[size], batch.pos[size] = token, stream.pos
                batch.n_seq_id[size], batch.seq_id[size][0] = 1, stream.seq
                output = stream.pos >= stream.first_output
                batch.logits[size] = output
                if output:
                    wanted.append((stream, stream.pos, size))
                stream.pos += 1
                size += 1
            del stream.pending[: takes[stream.seq]]
        batch.n_tokens = size
        return wanted

    def ensure_context(self, n_seq: int, seq_len: int) -> None:
        """A context with at least ``n_seq`` KV streams of ``seq_len`` cells (recreated only to grow)."""
        seq_len = max(KV_BLOCK, math.ceil(seq_len / KV_BLOCK) * KV_BLOCK)
        have_seq, have_len = self._ctx_shape
        if self._ctx is not None and have_seq >= n_seq and have_len >= seq_len:
            return
        self.close_context()
        n_seq, seq_len = max(n_seq, have_seq), max(seq_len, have_len)
        params = self.lib.llama_context_default_params()
        params.n_ctx, params.n_seq_max, params.kv_unified = n_seq * seq_len, n_seq, False
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_threads = params.n_threads_batch = self.threads
        params.no_perf = True
        with llama_log() as log:
            self._ctx = self.lib.llama_init_from_model(self.model, params)
        if not self._ctx:
            raise EvaluationError(
                f"llama.cpp cannot make a context for {self.path}: {last_error(log, 'out of memory?')}"
            )
        self._ctx_shape = (n_seq, seq_len)
        self._batch = self.lib.llama_batch_init(self.n_batch, 0, 1)

    def close_context(self) -> None:
        """Free the context and its KV cache (the model stays loaded)."""
        if self._ctx is not None:
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self._ctx)
            self._ctx, self._batch, self._ctx_shape = None, None, (0, 0)

    def close(self) -> None:
        """Free the context and the model."""
        self.close_context()
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None


def add_score(scores: TokenScores, logits: np.ndarray, target: int, top: int = 0) -> None:
    """Append to ``scores`` the log-probability of ``target`` under ``logits``, whether it is the most likely token,
    and (``top`` > 0) the ``top`` most likely tokens with their log-probabilities."""
    peak = float(logits.max())
    log_total = peak + math.log(float(np.exp(logits - peak, dtype=np.float64).sum()))
    scores.logprobs.append(float(logits[target]) - log_total)
    scores.greedy.append(int(logits.argmax()) == target)
    if top:
        best = np.argsort(-logits, kind="stable")[:top]
        scores.top_ids.append([int(i) for i in best])
        scores.top_logprobs.append([round(float(logits[i]) - log_total, TOPK_DECIMALS) for i in best])


def _take(streams: Iterator[Stream], count: int) -> list[Stream]:
    taken: list[Stream] = []
    while len(taken) < count and (stream := next(streams, None)) is not None:
        taken.append(stream)
    return taken
