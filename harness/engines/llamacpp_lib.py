"""The llama.cpp library as llama-cpp-python ships it, and what it may use of this machine.

The library is loaded once, its log kept instead of printed: llama.cpp reports why a load or a quantization
failed only in its log, so every call into it runs inside ``llama_log()``, which collects the warning and error
lines for the one-line ``FtbenchError`` that follows. ``free_cores`` (from ``cores``, shared by every engine)
chooses its threads and ``extra_buffers_run`` whether its extra CPU weight layouts are safe here.
"""

from __future__ import annotations

import ctypes
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.engines.cores import free_cores
from ftbench.harness.engines.gguf import read_gguf

__all__ = [
    "INSTALL_HINT",
    "extra_buffers_run",
    "free_cores",
    "last_error",
    "library",
    "llama_cpp_available",
    "llama_cpp_python_version",
    "llama_log",
]

INSTALL_HINT = "run `make setup` (it installs llama-cpp-python and llama.cpp's converter)"
_WARN, _ERROR, _CONTINUATION = 2, 3, 5
"""ggml log levels (1 is info, 4 debug); 5 continues the previous line."""

_captured: list[str] = []
_last_level = 0
_callback: Any = None
"""The ctypes callback handed to llama.cpp, kept alive for the process."""


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python is installed, found without importing it."""
    return importlib.util.find_spec("llama_cpp") is not None


def llama_cpp_python_version() -> str:
    """The installed llama-cpp-python version."""
    return version("llama-cpp-python")


@cache
def library() -> ModuleType:
    """``llama_cpp`` imported, its backend initialised and its log routed to ``llama_log``.

    Raises:
        FtbenchError: llama-cpp-python is not installed.
    """
    if not llama_cpp_available():
        raise FtbenchError(f"the llama.cpp engine needs llama-cpp-python; {INSTALL_HINT}")
    import llama_cpp

    global _callback
    _callback = llama_cpp.llama_log_callback(_keep_warnings)
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    return llama_cpp


def _keep_warnings(level: int, text: bytes, user_data: Any) -> None:
    global _last_level
    level = _last_level if level == _CONTINUATION else level
    _last_level = level
    if level in (_WARN, _ERROR):
        _captured.append(text.decode("utf-8", errors="replace"))


@contextmanager
def llama_log() -> Iterator[list[str]]:
    """Collect llama.cpp's warning and error lines written inside the block (joined and split into lines)."""
    start = len(_captured)
    lines: list[str] = []
    try:
        yield lines
    finally:
        text = "".join(_captured[start:])
        del _captured[start:]
        lines.extend(line.strip() for line in text.splitlines() if line.strip())


def last_error(lines: list[str], default: str) -> str:
    """The most telling line of a failed call's log: its last error-looking line, else ``default``."""
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower() or "invalid" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else default


_PROBE = """
import sys, llama_cpp
model = llama_cpp.Llama(sys.argv[1], n_ctx=64, n_batch=64, n_threads=1, verbose=False)
model.eval([max(model.token_bos(), 0)] * 16)
model.eval([max(model.token_bos(), 0)])
"""


@cache
def extra_buffers_run(path: Path) -> bool:
    """Whether llama.cpp's extra CPU weight layouts (AMX tiles, repacked blocks) run here for this file.

    They only hold quantized blocks. Some virtual machines advertise AMX but trap its instructions, which kills
    the process; so for a quantized file a child process decodes a few tokens with them first, and they are used
    only when it survives.
    """
    if set(read_gguf(path).tensor_types) <= {"F32", "F16", "BF16"}:
        return True
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], capture_output=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0
