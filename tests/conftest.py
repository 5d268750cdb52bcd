"""Fixtures: a tiny Llama built from a config (no downloads) with the real SmolLM2 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from ftbench.trainers.base_model import bootstrap_base, embedded_gguf


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


def tiny_config() -> LlamaConfig:
    """A two-layer Llama with SmolLM2's vocabulary and special tokens."""
    return LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )


def save_tiny_model(path: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random Llama with the SmolLM2 tokenizer to ``path``."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config())
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer_dir: Path) -> Path:
    """A tiny model directory shared by the session's tests (read-only by convention)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", smol_tokenizer_dir)


@pytest.fixture(scope="session")
def real_initial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2-135M-Instruct base checkpoint, bootstrapped from the embedded GGUF (slow tests)."""
    return bootstrap_base(tmp_path_factory.mktemp("checkpoints") / "initial")
