"""Engines behind one seam: each module turns evaluation requests into lm-eval ``LM`` instances.

``hf`` (transformers), ``llamacpp`` (llama.cpp on GGUF files) and ``vllm`` (vLLM, its GPU or CPU build). A request's
``engine`` field chooses; modules are imported only when a request needs them.
"""

from __future__ import annotations

import importlib

from ftbench.harness.core.request import Engine
from ftbench.harness.engines.session import Driver

_MODULES = {
    Engine.HF: "ftbench.harness.engines.hf",
    Engine.LLAMACPP: "ftbench.harness.engines.llamacpp",
    Engine.VLLM: "ftbench.harness.engines.vllm",
}


def driver(engine: Engine) -> Driver:
    """The driver of ``engine``."""
    return importlib.import_module(_MODULES[engine]).DRIVER  # type: ignore[no-any-return]
