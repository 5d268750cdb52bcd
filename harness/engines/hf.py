"""The transformers engine: a checkpoint (full, LoRA on its base, or a GGUF file dequantized) loaded at a
precision with transformers and bitsandbytes, wrapped in lm-eval's ``HFLM`` (``SharedPrefixHFLM``: requests that
share a context compute it once).

This is the one module that loads models with transformers for evaluation (judges included).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Hashable, Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ftbench.harness.core.checkpoints import Checkpoint, CheckpointKind
from ftbench.harness.core.errors import FtbenchError, first_line
from ftbench.harness.core.precision import FLOAT_PRECISIONS, Precision
from ftbench.harness.core.records import TOPK_DECIMALS, TokenTopK
from ftbench.harness.engines.cores import CoreShare, free_cores
from ftbench.harness.engines.hf_generate import GENERATION_ROWS
from ftbench.harness.engines.hf_shared import SharedPrefixHFLM
from ftbench.harness.engines.onednn import pack_linears
from ftbench.harness.engines.session import TOPK, TOPK_TOKENS, Driver, LoadedModel, PlannedEval

GENERATION_BATCH_NOTE = (
    "generation batches: as many rows as fit in half the free memory, up to "
    f"{GENERATION_ROWS['cpu']} on CPU and {GENERATION_ROWS['cuda']} on a GPU (or the batch size, if larger)"
)

_DTYPES = {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}


class _DropInt8CastWarning(logging.Filter):
    """bitsandbytes logs on every int8 matmul that inputs are cast to fp16; the variant's notes say it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("MatMul8bitLt: inputs will be cast")


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_DropInt8CastWarning())


def default_device() -> str:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_request(item: PlannedEval) -> None:
    """Refuse what transformers cannot run here, before anything loads (planning sends every ``gguf-*`` precision
    to llama.cpp).

    Raises:
        FtbenchError: fp8 (vLLM's), fp16 on CPU, bitsandbytes missing, a GGUF file quantized, or a generation the
            model's context cannot hold.
    """
    request, precision = item.request, item.request.precision
    if precision not in FLOAT_PRECISIONS and not precision.bitsandbytes:
        raise FtbenchError(f"precision {precision} does not run on the transformers engine; it needs engine vllm")
    if precision is Precision.FP16 and request.device == "cpu":
        raise FtbenchError("precision fp16 needs a GPU; on CPU use bf16 or fp32")
    if precision.bitsandbytes and importlib.util.find_spec("bitsandbytes") is None:
        raise FtbenchError(f"precision {precision} needs bitsandbytes; run `pip install bitsandbytes`")
    if item.checkpoint.kind is CheckpointKind.GGUF and precision.bitsandbytes:
        raise FtbenchError(
            f"{item.checkpoint.path} is a GGUF file, which loads dequantized on transformers; evaluate it at fp32 or "
            "bf16, natively at precision gguf (llama.cpp), or quantize a model directory"
        )
    _check_generation_length(item)


def context_length(checkpoint: Checkpoint) -> int | None:
    """The longest sequence the checkpoint's model takes (its config's ``max_position_embeddings``), read from its
    files before anything loads; None where its config does not say (a GGUF file)."""
    if checkpoint.kind is CheckpointKind.GGUF:
        return None
    try:
        config = json.loads(((checkpoint.base or checkpoint.path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return found if isinstance(found, int) and found > 0 else None


def _check_generation_length(item: PlannedEval) -> None:
    """Refuse a generation the model's context cannot hold (lm-eval would fail on it after the model loads)."""
    request, task = item.request, item.task
    if not task.generative:
        return
    wanted = int(request.generation.get("max_gen_toks", task.max_gen_toks))
    limit = context_length(item.checkpoint)
    if limit is not None and wanted >= limit:
        raise FtbenchError(
            f"max_gen_toks {wanted} (task {request.task}) is not below the context length {limit} of "
            f"{request.checkpoint}; give a smaller --max-gen-toks (or generation.max_gen_toks in the spec)"
        )


def quantization_config(precision: Precision, device: str) -> BitsAndBytesConfig | None:
    """The bitsandbytes config of a quantized precision (compute in bf16 on GPU, fp32 on CPU)."""
    if precision is Precision.INT8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if precision in (Precision.NF4, Precision.FP4):
        compute = torch.bfloat16 if device == "cuda" else torch.float32
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=precision.value, bnb_4bit_compute_dtype=compute
        )
    return None


def _quantization_note(precision: Precision, device: str) -> str:
    if precision is Precision.INT8:
        return "int8: bitsandbytes LLM.int8 (outlier threshold 6.0); activations cast to fp16 for the int8 matmul"
    compute = "bf16" if device == "cuda" else "fp32"
    return f"{precision}: bitsandbytes 4-bit weights, {compute} compute"


def load_causal_lm(checkpoint: Checkpoint, precision: Precision, device: str) -> tuple[Any, list[str]]:
    """``checkpoint`` as a transformers model at ``precision`` on ``device``, and notes on how it was loaded.

    LoRA adapters are applied unmerged on their base; GGUF files are dequantized by transformers (a simulation
    of the file's rounding computed in torch, not llama.cpp's kernels).

    Raises:
        FtbenchError: the weights cannot be loaded.
    """
    notes: list[str] = []
    kwargs: dict[str, Any] = {"device_map": {"": device}}
    quant = quantization_config(precision, device)
    if quant is not None:
        kwargs["quantization_config"] = quant
        notes.append(_quantization_note(precision, device))
    else:
        kwargs["dtype"] = _DTYPES[precision]
    model_path: Path = checkpoint.base or checkpoint.path
    if checkpoint.kind is CheckpointKind.GGUF:
        kwargs["gguf_file"] = checkpoint.path.name
        model_path = checkpoint.path.parent
        notes.append(
            f"simulated GGUF: {checkpoint.path.name} dequantized by transformers and computed in torch; "
            "precision gguf evaluates it with llama.cpp's kernels"
        )
    model = _from_pretrained(model_path, kwargs)
    if checkpoint.kind is CheckpointKind.LORA:
        notes.append(f"LoRA adapter evaluated unmerged on base {checkpoint.base}")
        return _with_adapter(model, checkpoint).eval(), notes
    return model.eval(), notes


def load_for_evaluation(checkpoint: Checkpoint, precision: Precision, device: str) -> tuple[Any, list[str]]:
    """``load_causal_lm``, then its linear layers computed by oneDNN on CPU (``pack_linears``): a model only
    evaluated, never trained, merged or saved afterwards.

    Raises:
        FtbenchError: the weights cannot be loaded.
    """
    model, notes = load_causal_lm(checkpoint, precision, device)
    packing = pack_linears(model, device)
    if packing is not None:
        notes.append(packing.note)
    return model, notes


def _from_pretrained(path: Path, kwargs: dict[str, Any]) -> PreTrainedModel:
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except Exception as exc:  # safetensors, torch and transformers raise many kinds on a damaged checkpoint
        raise FtbenchError(
            f"cannot load model {path}: {first_line(exc, 300)}; check or rewrite the checkpoint"
        ) from exc


def _with_adapter(model: PreTrainedModel, checkpoint: Checkpoint) -> PeftModel:
    try:
        return PeftModel.from_pretrained(model, str(checkpoint.path), is_trainable=False)
    except Exception as exc:
        raise FtbenchError(
            f"cannot load adapter {checkpoint.path}: {first_line(exc, 300)}; check or rewrite the adapter"
        ) from exc


def load_tokenizer(checkpoint: Checkpoint) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer (an adapter without one uses its base's).

    Raises:
        FtbenchError: the tokenizer cannot be loaded.
    """
    try:
        if checkpoint.kind is CheckpointKind.GGUF:
            return AutoTokenizer.from_pretrained(str(checkpoint.path.parent), gguf_file=checkpoint.path.name)
        own = (checkpoint.path / "tokenizer_config.json").is_file()
        source = checkpoint.path if own or checkpoint.base is None else checkpoint.base
        return AutoTokenizer.from_pretrained(str(source))
    except Exception as exc:
        raise FtbenchError(f"cannot load the tokenizer of {checkpoint.path}: {first_line(exc, 300)}") from exc


def next_token_topk(lm: HFLM, texts: Sequence[str]) -> list[TokenTopK]:
    """The top-``TOPK`` next-token log-probabilities at each of the first ``TOPK_TOKENS`` tokens of each text,
    predicted from the model's prefix token and the text before it (as lm-eval scores rolling log-likelihoods)."""
    found = []
    for text in texts:
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"][:TOPK_TOKENS]
        if not ids:
            found.append(TokenTopK(tokens=[], ids=[], logprobs=[]))
            continue
        inputs = torch.tensor([[lm.prefix_token_id, *ids[:-1]]], device=lm.device)
        with torch.no_grad():
            logprobs = torch.log_softmax(lm.model(inputs).logits[0].float(), dim=-1)
        top = torch.topk(logprobs, TOPK, dim=-1)
        found.append(
            TokenTopK(
                tokens=list(ids),
                ids=top.indices.tolist(),
                logprobs=[[round(v, TOPK_DECIMALS) for v in row] for row in top.values.tolist()],
            )
        )
    return found


def use_free_cores() -> int:
    """Set torch's intra-op threads to the cores other processes leave free (``free_cores``), and return them.

    torch defaults to every core; beside a training run or another evaluation that oversubscribes the machine
    and both slow down far more than their share.
    """
    threads = free_cores()
    torch.set_num_threads(threads)
    return threads


def load_model(item: PlannedEval, share_prefix: bool = True) -> LoadedModel:
    """The request's variant loaded with transformers and wrapped in ``SharedPrefixHFLM`` at the request's batch
    size, its linear layers computed by oneDNN on CPU (``load_for_evaluation``), torch's threads set to the free
    cores at load and kept there as it works (``CoreShare``).

    Args:
        item: the variant (its checkpoint) and its settings (its request).
        share_prefix: compute a context shared by several requests once (False: lm-eval's own path, to measure).
    """
    threads = use_free_cores()
    request, checkpoint = item.request, item.checkpoint
    model, notes = load_for_evaluation(checkpoint, request.precision, request.device)
    notes.append(GENERATION_BATCH_NOTE)
    tokenizer = load_tokenizer(checkpoint)
    lm = SharedPrefixHFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=request.batch_size,
        device=request.device,
        share_prefix=share_prefix,
    )
    lm.core_share = CoreShare(torch.set_num_threads, threads)
    return LoadedModel(
        lm=lm,
        count_tokens=lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        footprint_bytes=int(model.get_memory_footprint()),
        device=request.device,
        engine_version=f"transformers {version('transformers')}",
        threads=threads,
        notes=notes,
        token_topk=partial(next_token_topk, lm),
    )


class HFSession:
    """One variant loaded with transformers, serving every task of that variant."""

    def __init__(self, items: list[PlannedEval]) -> None:
        self.threads_before = torch.get_num_threads()
        self.loaded = load_model(items[0])

    def model_for(self, item: PlannedEval) -> LoadedModel:
        """The one loaded variant."""
        return self.loaded

    def close(self) -> None:
        """Drop the model and give torch back the threads it had before."""
        del self.loaded
        torch.set_num_threads(self.threads_before)


def _group(item: PlannedEval) -> Hashable:
    request = item.request
    return (
        request.checkpoint,
        request.base,
        request.weights_hash,
        request.precision,
        request.device,
        request.batch_size,
    )


DRIVER = Driver(check=check_request, group=_group, open=HFSession)


def load_reward_model(path: Path, device: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a sequence-classification checkpoint with one output (a reward model) in fp32.

    Raises:
        FtbenchError: the path is missing or is not a single-output sequence-classification model.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if not (path / "config.json").is_file():
        raise FtbenchError(f"judge {path} is not a model directory; run `ftbench train reward` or give a reward model")
    config = AutoConfig.from_pretrained(str(path))
    architectures = config.architectures or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures) or config.num_labels != 1:
        raise FtbenchError(
            f"judge {path} is not a reward model (a sequence-classification model with one label); "
            "train one with `ftbench train reward` or use judge kind llm"
        )
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), dtype=torch.float32, device_map={"": device or default_device()}
    )
    pack_linears(model, str(model.device.type))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer
