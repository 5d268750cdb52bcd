"""Engines behind one seam: each module turns evaluation requests into lm-eval ``LM`` instances.

``hf`` (transformers), ``llamacpp`` (llama.cpp on GGUF files) and ``vllm`` (vLLM, its GPU or CPU build). A request's
``engine`` field chooses; modules are imported only when a request needs them.
"""

from __future__ import annotations

import importlib

from harness.core.request import Engine
from harness.engines.session import Driver

_MODULES = {
    Engine.HF: "harness.engines.hf",
    Engine.LLAMACPP: "harness.engines.llamacpp",
    Engine.VLLM: "harness.engines.vllm",
}


def driver(engine: Engine) -> Driver:
    """The driver of ``engine``."""
    return importlib.import_module(_MODULES[engine]).DRIVER  # type: ignore[no-any-return]
