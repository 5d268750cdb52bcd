"""Fixtures: a tiny Llama built from a config (no downloads) with the real SmolLM2 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ftbench.trainers.base_model import bootstrap_base, embedded_gguf
from tests.models import save_tiny_model


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded model's tokenizer and chat template, saved as a plain tokenizer directory."""
    gguf = embedded_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    path = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def smol_tokenizer(smol_tokenizer_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer_dir: Path) -> Path:
    """A tiny model directory shared by the session's tests (read-only by convention)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", smol_tokenizer_dir)


@pytest.fixture(scope="session")
def real_initial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2-135M-Instruct base checkpoint, bootstrapped from the embedded GGUF (slow tests)."""
    return bootstrap_base(tmp_path_factory.mktemp("checkpoints") / "initial")
