"""Precisions: how a checkpoint's weights are stored and computed when it is evaluated, and which engine runs them.

``fp32``/``bf16``/``fp16`` load the weights at that dtype; ``int8``/``nf4``/``fp4`` quantize them with
bitsandbytes when loading; ``fp8`` is vLLM's in-flight fp8. ``gguf-TYPE`` exports the checkpoint to a GGUF file
of llama.cpp type ``TYPE`` and evaluates it with llama.cpp's own kernels; ``gguf`` evaluates a ``.gguf``
checkpoint at the type it was saved in.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Precision(StrEnum):
    """A precision name, as written in specs, on the command line and in results."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    NF4 = "nf4"
    FP4 = "fp4"
    GGUF = "gguf"
    GGUF_F32 = "gguf-f32"
    GGUF_F16 = "gguf-f16"
    GGUF_BF16 = "gguf-bf16"
    GGUF_Q8_0 = "gguf-q8_0"
    GGUF_Q6_K = "gguf-q6_k"
    GGUF_Q5_K_M = "gguf-q5_k_m"
    GGUF_Q5_K_S = "gguf-q5_k_s"
    GGUF_Q5_1 = "gguf-q5_1"
    GGUF_Q5_0 = "gguf-q5_0"
    GGUF_Q4_K_M = "gguf-q4_k_m"
    GGUF_Q4_K_S = "gguf-q4_k_s"
    GGUF_Q4_1 = "gguf-q4_1"
    GGUF_Q4_0 = "gguf-q4_0"
    GGUF_Q3_K_L = "gguf-q3_k_l"
    GGUF_Q3_K_M = "gguf-q3_k_m"
    GGUF_Q3_K_S = "gguf-q3_k_s"
    GGUF_Q2_K = "gguf-q2_k"

    @property
    def is_gguf(self) -> bool:
        """Whether llama.cpp evaluates this precision (a GGUF file)."""
        return self.value.startswith("gguf")

    @property
    def gguf_type(self) -> str | None:
        """The llama.cpp file type of a ``gguf-TYPE`` precision (``q4_k_m``); None for the others."""
        return self.value.removeprefix("gguf-") if self.value.startswith("gguf-") else None

    @property
    def bitsandbytes(self) -> bool:
        """Whether the weights are quantized by bitsandbytes when loading."""
        return self in (Precision.INT8, Precision.NF4, Precision.FP4)

    @property
    def rank(self) -> int:
        """Position from widest to narrowest, for ordering tables (a native ``gguf`` file sorts last)."""
        return list(Precision).index(self) if self is not Precision.GGUF else len(Precision)


FLOAT_PRECISIONS = (Precision.FP32, Precision.BF16, Precision.FP16)
"""Unquantized precisions, which the transformers engine loads at that dtype."""


def parse_precisions(given: str | Sequence[str | Precision]) -> list[Precision]:
    """Precisions from names, each possibly comma-separated (``fp32,nf4``, or ``["fp32", "nf4,int8"]`` as a spec
    or repeated flags give them), in order, without repeats: the one place a precision list is read.

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    found: list[Precision] = []
    items = [given] if isinstance(given, str) else list(given)
    names = [part.strip() for item in items for part in (item.split(",") if isinstance(item, str) else [item])]
    for name in names:
        if not name:
            continue
        try:
            precision = Precision(name)
        except ValueError:
            valid = ", ".join(p.value for p in Precision)
            raise ValueError(f"unknown precision {name!r}; choose from {valid}") from None
        if precision not in found:
            found.append(precision)
    return found


def widest(precisions: list[Precision]) -> Precision:
    """The widest of ``precisions`` (the reference of quantization comparisons)."""
    return min(precisions, key=lambda p: p.rank)
