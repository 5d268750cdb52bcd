"""The training methods by name. Each method module imports TRL, so a method is loaded only when used."""

from __future__ import annotations

import importlib

from ftbench.harness.core.errors import FtbenchError
from ftbench.trainers.stage import Method

METHODS = {name: f"ftbench.trainers.{name}" for name in ("sft", "dpo", "rloo", "reward")}
"""Each method's module, which defines ``METHOD``."""


def get_method(name: str) -> Method:
    """The method called ``name``.

    Raises:
        FtbenchError: no such method, listing the valid ones.
    """
    if name not in METHODS:
        raise FtbenchError(f"unknown training method {name!r}; choose from {', '.join(METHODS)}")
    method: Method = importlib.import_module(METHODS[name]).METHOD
    return method
