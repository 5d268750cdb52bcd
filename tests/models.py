"""Tiny models built from a config (no downloads), for fixtures and tests that need one of their own."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM


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
