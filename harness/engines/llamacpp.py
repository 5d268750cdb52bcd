"""The llama.cpp engine: a GGUF file (a ``.gguf`` checkpoint, or a model directory exported on demand) evaluated
with llama.cpp's own kernels through llama-cpp-python, behind lm-eval's ``LM`` interface.

``LlamaCppLM`` follows lm-eval's ``HFLM`` conventions through ``TemplateLM`` (how a context and continuation are
split into tokens, the BOS prefix of an empty context, rolling windows, stop strings), so scores are comparable
with the transformers engine's. Exports of ``gguf-TYPE`` precisions are cached in ``$FTBENCH_GGUF_CACHE/<name>``
or, by default, in ``.gguf-cache/<name>`` beside the checkpoint.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial
from typing import Any

from jinja2.exceptions import TemplateError
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from transformers.utils.chat_template_utils import render_jinja_template

from ftbench.harness.core.checkpoints import CheckpointKind
from ftbench.harness.core.errors import EvaluationError, FtbenchError
from ftbench.harness.core.records import TokenTopK
from ftbench.harness.engines.gguf import (
    CONVERTER_TYPES,
    GgufSummary,
    check_exportable,
    converter_dir,
    default_cache_dir,
    export_gguf,
    read_gguf,
)
from ftbench.harness.engines.llamacpp_lib import (
    INSTALL_HINT,
    free_cores,
    library,
    llama_cpp_available,
    llama_cpp_python_version,
)
from ftbench.harness.engines.llamacpp_runtime import GgufRuntime, Sampling
from ftbench.harness.engines.llamacpp_shared import can_share_prefix, score_groups
from ftbench.harness.engines.prefix_groups import SharingPlan, plan_sharing
from ftbench.harness.engines.session import TOPK, TOPK_TOKENS, Driver, LoadedModel, PlannedEval

SAMPLING_KEYS = ("do_sample", "temperature", "top_k", "top_p", "min_p")
"""Generation settings this engine honours besides ``until`` and ``max_gen_toks``."""


class LlamaCppLM(TemplateLM):
    """lm-eval's ``LM`` over a GGUF model loaded by llama.cpp, decoding ``batch_size`` sequences per call.

    Args:
        runtime: the loaded model.
        batch_size: sequences decoded together (KV-cache streams).
        seed: seed of sampled generation (each request draws from its own generator).
        share_prefix: decode a context shared by several requests once (False: every request on its own, to
            measure).
    """

    backend = "causal"

    def __init__(self, runtime: GgufRuntime, batch_size: int = 1, seed: int = 0, share_prefix: bool = True) -> None:
        super().__init__()
        self.runtime = runtime
        self.batch_size = max(1, batch_size)
        self.seed = seed
        self.share_prefix = share_prefix

    @property
    def eot_token_id(self) -> int:
        """End of text: the vocabulary's EOS, as ``HFLM`` uses the tokenizer's."""
        return self.runtime.eos

    @property
    def prefix_token_id(self) -> int:
        """What an empty context is conditioned on: BOS, else EOS (as ``HFLM``)."""
        bos = self.runtime.bos
        return bos if bos is not None else self.runtime.eos

    @property
    def max_length(self) -> int:
        """Longest sequence scored or generated, in tokens."""
        return self.runtime.max_length

    @property
    def max_gen_toks(self) -> int:
        """Default generation length (``HFLM``'s)."""
        return 256

    @property
    def tokenizer_name(self) -> str:
        """Fingerprint of the tokenizer and chat template for lm-eval's request cache: the file's name."""
        return self.runtime.path.name

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """Tokens of ``string``; by default with the vocabulary's BOS unless the text already starts with it."""
        add = add_special_tokens
        if add is None:
            bos = self.runtime.bos
            add = not (bos is not None and string.startswith(self.runtime.token_text(bos)))
        return self.runtime.tokenize(string, add_special=add)

    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str] | None, list[int], list[int]]],
        disable_tqdm: bool = False,
        **kwargs: Any,
    ) -> list[tuple[float, bool]]:
        """Sum of continuation log-probabilities and whether the continuation is the greedy one, per request.

        As ``HFLM``: one pass over ``(context + continuation)[-(max_length + 1):][:-1]``, scoring its last
        ``len(continuation)`` positions; requests that share a context decode it once (``llamacpp_shared``).
        """
        for _, context, continuation in requests:
            if not context or not continuation or len(continuation) > self.max_length:
                raise EvaluationError("a log-likelihood request has an empty context or continuation, or one too long")
        if self.share_prefix and can_share_prefix(self.runtime):
            plan = plan_sharing(requests, self.max_length)
        else:
            plan = SharingPlan(groups=[], alone=list(range(len(requests))))
        scores = score_groups(self.runtime, requests, plan.groups, self.batch_size) if plan.groups else {}
        sequences = [
            ((requests[i][1] + requests[i][2])[-(self.max_length + 1) :][:-1], requests[i][2]) for i in plan.alone
        ]
        scores.update(zip(plan.alone, self.runtime.score(sequences, self.batch_size), strict=True))
        answers = []
        for index, (request_str, _, _) in enumerate(requests):
            answer = (float(sum(scores[index].logprobs)), all(scores[index].greedy))
            answers.append(answer)
            if request_str is not None:
                self.cache_hook.add_partial("loglikelihood", request_str, answer)
        return answers

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts in disjoint windows of ``max_length`` tokens (lm-eval's windows)."""
        windows: list[tuple[None, list[int], list[int]]] = []
        counts = []
        for (text,) in (request.args for request in requests):
            tokens = self.tok_encode(text)
            pairs = get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1)
            found = [(None, *make_disjoint_window(pair)) for pair in pairs]
            windows.extend(found)  # type: ignore[arg-type]
            counts.append(len(found))
        scores = iter(self._loglikelihood_tokens(windows))  # type: ignore[arg-type]
        totals = []
        for request, count in zip(requests, counts, strict=True):
            total = float(sum(next(scores)[0] for _ in range(count)))
            totals.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Generated continuations, cut at the first stop string (the EOS text among them), as ``HFLM`` does.

        Requests with equal generation settings are generated together, ``batch_size`` sequences per decode.
        """
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(index)
        results: list[str] = [""] * len(requests)
        for indices in groups.values():
            contexts = [requests[i].args[0] for i in indices]
            for index, text in zip(
                indices, self._generate(contexts, requests[indices[0]].args[1], indices), strict=True
            ):
                results[index] = text
                self.cache_hook.add_partial("generate_until", requests[index].args, text)
        return results

    def _generate(self, contexts: list[str], gen_kwargs: dict[str, Any], indices: list[int]) -> list[str]:
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=self.runtime.token_text(self.eot_token_id))
        max_tokens = int(kwargs.pop("max_gen_toks"))
        unknown = sorted(set(kwargs) - set(SAMPLING_KEYS))
        if unknown:
            raise EvaluationError(
                f"the llama.cpp engine does not support generation settings {', '.join(unknown)}; "
                f"it honours until, max_gen_toks, {', '.join(SAMPLING_KEYS)}"
            )
        if max_tokens >= self.max_length:
            raise EvaluationError(f"max_gen_toks {max_tokens} must be below the context length {self.max_length}")
        sampled = bool(kwargs.get("do_sample")) and float(kwargs.get("temperature") or 0.0) > 0
        sampling = Sampling(
            temperature=float(kwargs.get("temperature") or 0.0) if sampled else 0.0,
            top_k=int(kwargs.get("top_k") or 0),
            top_p=float(kwargs.get("top_p") or 1.0),
            min_p=float(kwargs.get("min_p") or 0.0),
            seed=self.seed,
        )
        prompts = [
            self.tok_encode(context)[-(self.max_length - max_tokens) :] or [self.prefix_token_id]
            for context in contexts
        ]
        stops = [stop for stop in until if stop]
        outputs = self.runtime.generate(
            prompts,
            max_tokens,
            sampling,
            self.batch_size,
            lambda text: any(stop in text for stop in stops),
            keys=indices,
        )
        return [postprocess_generated_text(self.runtime.detokenize(tokens), until, None) for tokens in outputs]

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The chat template stored in the GGUF file (``tokenizer.chat_template``); None when not asked for."""
        if chat_template is False or chat_template is None:
            return None
        return self._template()

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render a conversation with the file's chat template, as transformers renders it for ``HFLM``."""
        template = self._template()
        bos, eos = self._special_text(self.runtime.bos), self._special_text(self.runtime.eos)

        def render(history: list[dict[str, str]]) -> str:
            rendered: Any = render_jinja_template(
                conversations=[history],
                chat_template=template,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
                bos_token=bos,
                eos_token=eos,
            )
            return str(rendered[0][0])

        try:
            return render(chat_history)
        except TemplateError:
            return render([message for message in chat_history if message["role"] != "system"])

    def _template(self) -> str:
        template = self.runtime.metadata("tokenizer.chat_template")
        if not template:
            raise EvaluationError(f"{self.runtime.path} holds no chat template; evaluate it without chat_template")
        return template

    def _special_text(self, token: int | None) -> str:
        return "" if token is None else self.runtime.token_text(token)


def next_token_topk(lm: LlamaCppLM, texts: Sequence[str]) -> list[TokenTopK]:
    """The top-``TOPK`` next-token log-probabilities at each of the first ``TOPK_TOKENS`` tokens of each text,
    predicted from the prefix token and the text before it (as the transformers engine records them)."""
    tokens = [lm.tok_encode(text, add_special_tokens=False)[:TOPK_TOKENS] for text in texts]
    sequences = [([lm.prefix_token_id, *ids[:-1]], ids) for ids in tokens if ids]
    scored = iter(lm.runtime.score(sequences, lm.batch_size, top=TOPK))
    found = []
    for ids in tokens:
        scores = next(scored) if ids else None
        found.append(
            TokenTopK(tokens=ids, ids=scores.top_ids if scores else [], logprobs=scores.top_logprobs if scores else [])
        )
    return found


def check_request(item: PlannedEval) -> None:
    """Refuse what llama.cpp cannot run here, before anything loads (planning sends it exactly the ``gguf``
    precisions).

    Raises:
        FtbenchError: llama-cpp-python or the converter missing, an unknown type, a checkpoint of the wrong kind
            for the precision, or a GPU device on a CPU-only build.
    """
    request, checkpoint = item.request, item.checkpoint
    precision = request.precision
    if not llama_cpp_available():
        raise FtbenchError(
            f"precision {precision} needs llama-cpp-python; {INSTALL_HINT} (the other precisions still work)"
        )
    quant = precision.gguf_type
    if quant is None and checkpoint.kind is not CheckpointKind.GGUF:
        raise FtbenchError(
            f"precision gguf evaluates a .gguf file at its own type, and {checkpoint.path} is a {checkpoint.kind} "
            "checkpoint; use gguf-f16, gguf-q8_0, gguf-q4_k_m, ... to export it"
        )
    if quant is not None:
        check_exportable(checkpoint, quant)
        if quant not in CONVERTER_TYPES and not hasattr(library(), f"LLAMA_FTYPE_MOSTLY_{quant.upper()}"):
            raise FtbenchError(f"this llama-cpp-python cannot quantize to {quant}; {INSTALL_HINT}")
        if not (converter_dir() / "convert_hf_to_gguf.py").is_file():
            raise FtbenchError(f"precision {precision} needs llama.cpp's converter; {INSTALL_HINT}")
    if request.device != "cpu" and not library().llama_supports_gpu_offload():
        raise FtbenchError(
            f"this llama-cpp-python build runs on the CPU only; set device cpu for precision {precision}"
        )


def gguf_notes(summary: GgufSummary, source: str) -> list[str]:
    """What results say about a GGUF variant: its type, its fallback tensors and whose kernels computed it."""
    notes = [f"GGUF {summary.file_type} ({source}); llama.cpp kernels; activations quantized as the type's kernels do"]
    if summary.fallback_tensors:
        types = ", ".join(f"{count} {kind.lower()}" for kind, count in sorted(summary.tensor_types.items()))
        notes.append(
            f"{summary.fallback_tensors} of {summary.tensor_count} tensors stored in another type, their rows not "
            f"fitting the type's blocks (tensor types: {types})"
        )
    return notes


class LlamaCppSession:
    """One GGUF file loaded by llama.cpp, serving every request of its group with its own seed."""

    def __init__(self, items: list[PlannedEval]) -> None:
        request, checkpoint = items[0].request, items[0].checkpoint
        quant = request.precision.gguf_type
        if quant is None:
            path, source = checkpoint.path, f"native file {checkpoint.path.name}"
        else:
            exported = export_gguf(checkpoint, quant, default_cache_dir(checkpoint))
            path = exported.path
            source = f"exported with llama.cpp's converter{' (cached)' if exported.reused else ''} to {path}"
        self.summary = read_gguf(path)
        self.notes = gguf_notes(self.summary, source)
        threads = free_cores()
        self.runtime = GgufRuntime(path, threads, gpu_layers=0 if request.device == "cpu" else -1)
        if not self.runtime.extra_buffers:
            self.notes.append(
                "llama.cpp's repacked and AMX weight layouts fail on this machine; its plain CPU kernels computed it"
            )
        self.device = request.device

    def model_for(self, item: PlannedEval) -> LoadedModel:
        """The loaded file behind an ``LM`` with the evaluation's batch size and seed."""
        request, runtime = item.request, self.runtime
        lm = LlamaCppLM(runtime, batch_size=request.batch_size, seed=request.effective_seed)
        return LoadedModel(
            lm=lm,
            count_tokens=lambda text: len(runtime.tokenize(text, add_special=False)),
            footprint_bytes=runtime.path.stat().st_size,
            device=self.device,
            engine_version=f"llama.cpp via llama-cpp-python {llama_cpp_python_version()}",
            threads=runtime.threads,
            notes=list(self.notes),
            token_topk=partial(next_token_topk, lm),
        )

    def close(self) -> None:
        """Free the model and its KV cache."""
        self.runtime.close()


def _group(item: PlannedEval) -> Hashable:
    request = item.request
    return (request.checkpoint, request.base, request.weights_hash, request.precision, request.device)


DRIVER = Driver(check=check_request, group=_group, open=LlamaCppSession)
