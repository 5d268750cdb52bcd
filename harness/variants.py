"""The one place that loads models: a variant is a checkpoint at a precision, on a device."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from harness.checkpoints import Checkpoint, CheckpointKind, content_hash
from harness.errors import FtbenchError

Precision = Literal["fp32", "bf16", "fp16", "int8", "nf4", "fp4"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
QUANTIZED = ("int8", "nf4", "fp4")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class _DropInt8CastWarning(logging.Filter):
    """bitsandbytes logs on every int8 matmul that inputs are cast to fp16; the variant's notes say it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("MatMul8bitLt: inputs will be cast")


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_DropInt8CastWarning())


@dataclass
class LoadedVariant:
    """A loaded model with what results need to say about it."""

    checkpoint: Checkpoint
    precision: str
    device: str
    model: PreTrainedModel | PeftModel
    tokenizer: PreTrainedTokenizerBase
    weights_hash: str
    footprint_bytes: int
    notes: list[str] = field(default_factory=list)


def default_device() -> str:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_precision(precision: str, device: str) -> None:
    """Refuse a precision that this device or installation cannot run.

    Raises:
        FtbenchError: unknown precision, fp16 on CPU, or bitsandbytes missing.
    """
    if precision not in PRECISIONS:
        raise FtbenchError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device == "cpu":
        raise FtbenchError("precision fp16 needs a GPU; on CPU use bf16 or fp32")
    if precision in QUANTIZED and importlib.util.find_spec("bitsandbytes") is None:
        raise FtbenchError(f"precision {precision} needs bitsandbytes; run `pip install bitsandbytes`")


def check_variant(checkpoint: Checkpoint, precision: str, device: str) -> None:
    """Refuse a checkpoint × precision × device that cannot be loaded, before anything is loaded.

    Raises:
        FtbenchError: see ``check_precision``; or a GGUF file at a quantized precision.
    """
    check_precision(precision, device)
    if checkpoint.kind is CheckpointKind.GGUF and precision in QUANTIZED:
        raise FtbenchError(
            f"{checkpoint.path} is a GGUF file, which loads dequantized; use fp32 or bf16, "
            "or quantize a model directory instead"
        )


def quantization_config(precision: str, device: str) -> BitsAndBytesConfig | None:
    """The bitsandbytes config of a quantized precision (compute in bf16 on GPU, fp32 on CPU)."""
    if precision == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if precision in ("nf4", "fp4"):
        compute = torch.bfloat16 if device == "cuda" else torch.float32
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=precision, bnb_4bit_compute_dtype=compute)
    return None


def _quantization_note(precision: str, device: str) -> str:
    if precision == "int8":
        return "int8: bitsandbytes LLM.int8 (outlier threshold 6.0); activations cast to fp16 for the int8 matmul"
    compute = "bf16" if device == "cuda" else "fp32"
    return f"{precision}: bitsandbytes 4-bit weights, {compute} compute"


def variant_weights_hash(checkpoint: Checkpoint) -> str:
    """The content hash of everything a variant's weights come from (adapter and base for LoRA)."""
    parts = [content_hash(checkpoint.path)]
    if checkpoint.base is not None:
        parts.append(content_hash(checkpoint.base))
    return hashlib.sha256("+".join(parts).encode()).hexdigest()


def load_variant(checkpoint: Checkpoint, precision: str, device: str | None = None) -> LoadedVariant:
    """Load ``checkpoint`` at ``precision`` on ``device`` (default: CUDA when available, else CPU).

    LoRA adapters are evaluated unmerged on their base. GGUF files are dequantized by transformers and
    computed in torch, so they take only the unquantized precisions.

    Raises:
        FtbenchError: the precision cannot run here, or the checkpoint cannot be loaded.
    """
    device = device or default_device()
    check_variant(checkpoint, precision, device)
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
        notes.append(f"GGUF weights from {checkpoint.path.name} dequantized by transformers; torch compute")
    model: PreTrainedModel | PeftModel = _from_pretrained(model_path, kwargs)
    if checkpoint.kind is CheckpointKind.LORA:
        model = PeftModel.from_pretrained(model, str(checkpoint.path), is_trainable=False)
        notes.append(f"LoRA adapter evaluated unmerged on base {checkpoint.base}")
    model.eval()
    tokenizer = _load_tokenizer(checkpoint)
    return LoadedVariant(
        checkpoint=checkpoint,
        precision=precision,
        device=device,
        model=model,
        tokenizer=tokenizer,
        weights_hash=variant_weights_hash(checkpoint),
        footprint_bytes=int(model.get_memory_footprint()),
        notes=notes,
    )


def _from_pretrained(path: Path, kwargs: dict[str, Any]) -> PreTrainedModel:
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FtbenchError(f"cannot load model {path}: {first}") from exc


def _load_tokenizer(checkpoint: Checkpoint) -> PreTrainedTokenizerBase:
    if checkpoint.kind is CheckpointKind.GGUF:
        return AutoTokenizer.from_pretrained(str(checkpoint.path.parent), gguf_file=checkpoint.path.name)
    own = (checkpoint.path / "tokenizer_config.json").is_file()
    source = checkpoint.path if own or checkpoint.base is None else checkpoint.base
    return AutoTokenizer.from_pretrained(str(source))


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
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer
