"""What an evaluation inside a training process must leave as it found it.

An evaluation loads the saved checkpoint as a model of its own, so the trained model's weights, device, dtype and
gradients are never touched; but lm-eval seeds every global random generator, and a library may switch grad mode,
the thread count or a module's train flag. ``training_state_kept`` records all of these before and puts them back
after, then releases the memory the evaluation used.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ftbench.harness.evaluation.measure import release_memory


def _cuda_states() -> list[torch.Tensor] | None:
    """Every GPU's random state, when CUDA is in use (reading it must not start CUDA)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.get_rng_state_all()
    return None


@contextmanager
def training_state_kept(model: Any = None) -> Iterator[None]:
    """Run the block, then restore the random generators (Python, NumPy, torch and every GPU), grad mode, torch's
    thread count and ``model``'s modules' train flags, and release the block's memory.

    Args:
        model: the model being trained (a ``torch.nn.Module``), or None.
    """
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_states = _cuda_states()
    grad_enabled, threads = torch.is_grad_enabled(), torch.get_num_threads()
    modes = [(module, module.training) for module in model.modules()] if isinstance(model, torch.nn.Module) else []
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        torch.set_grad_enabled(grad_enabled)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        for module, training in modes:
            module.training = training
        release_memory()
