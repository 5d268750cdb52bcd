"""The training methods by name. Each method module imports TRL, so a method is loaded only when used."""

from __future__ import annotations

import importlib

from harness.core.errors import FtbenchError
from trainers.stage import Method

METHODS = {"sft": "trainers.sft", "dpo": "trainers.dpo", "rloo": "trainers.rloo", "reward": "trainers.reward"}
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
