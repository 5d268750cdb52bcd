"""GGUF files for llama.cpp: a checkpoint exported with llama.cpp's own converter and quantizer, and what a file holds.

``export_gguf`` runs ``convert_hf_to_gguf.py`` (from llama-cpp-python's source distribution, installed by
``make setup`` into ``<venv>/share/llama.cpp``) and, for the types the converter does not write itself, quantizes
its f16 output with ``llama_model_quantize``. Exports are cached by what decides them: the parent's weights hash,
the type and the converter and quantizer versions. ``read_gguf`` validates a file and counts its tensor types.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftbench.harness.core.checkpoints import Checkpoint, CheckpointKind, file_sha256, weights_hash
from ftbench.harness.core.errors import FtbenchError, first_line
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.store import write_atomic
from ftbench.harness.engines.scratch import remove_abandoned, scratch_dir

GGUF_MANIFEST_VERSION = 1
QUANT_TYPES = tuple(p.gguf_type for p in Precision if p.gguf_type is not None)
"""The types ``export_gguf`` writes: the ``gguf-TYPE`` precisions."""
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""Types llama.cpp's converter writes directly; the others are quantized from its f16 output."""
CONVERTER_DIR_ENV = "FTBENCH_LLAMA_CPP_DIR"
"""Overrides where llama.cpp's converter is found (a llama.cpp source folder)."""
CONVERTER_SCRIPT = "convert_hf_to_gguf.py"
_FLOAT_TYPES = ("F32", "F16", "BF16")


class GgufSummary(NamedTuple):
    """What a GGUF file holds, read back with ``gguf.GGUFReader``."""

    file_type: str
    """llama.cpp's file type, e.g. ``q4_k_m`` (from ``general.file_type``, else the commonest tensor type)."""
    architecture: str
    tensor_count: int
    tensor_types: dict[str, int]
    """How many tensors are stored in each ggml type."""
    fallback_tensors: int
    """Quantized tensors whose rows do not fit the file type's block size, so are stored in another type."""


class GgufManifest(BaseModel):
    """Written beside every exported file as ``<file>.json``: where it came from and what it holds."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = GGUF_MANIFEST_VERSION
    parent: str
    parent_content_hash: str
    """The parent's weights hash (adapter and base for a LoRA adapter)."""
    quant: str
    llama_cpp_python: str
    converter_hash: str
    """Digest of the converter's sources (the script, ``conversion/`` and ``gguf-py/``)."""
    sha256: str
    size_bytes: int
    tensor_count: int
    tensor_types: dict[str, int]
    fallback_tensors: int
    quantizer_fallbacks: int | None = None
    """llama.cpp's own count of fallbacks when it quantized the file (it does not count the tied embedding, which
    it sets to q8_0 up front); None for types the converter wrote."""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class GgufFile:
    """An exported GGUF file and its manifest; ``reused`` when it came from the cache."""

    path: Path
    manifest: GgufManifest
    reused: bool


def read_gguf(path: Path) -> GgufSummary:
    """Validate a GGUF file and summarise its tensor types (remembered while the file is unchanged).

    Raises:
        FtbenchError: the file is missing, not GGUF, truncated or corrupt.
    """
    if not path.is_file():
        raise FtbenchError(f"GGUF file {path} does not exist; give an existing .gguf file")
    stat = path.stat()
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if identity not in _SUMMARIES:
        _SUMMARIES[identity] = _parse_gguf(path, stat.st_size)
    return _SUMMARIES[identity]


_SUMMARIES: dict[tuple[int, int, int, int], GgufSummary] = {}
"""Summaries by file identity (device, inode, size, mtime), which survives the rename of a finished export:
``GGUFReader`` parses the whole vocabulary, seconds for a 49k-token one."""


def _parse_gguf(path: Path, size: int) -> GgufSummary:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader

    try:
        reader = GGUFReader(path)
        tensors = [
            (t.tensor_type.name, [int(n) for n in t.shape], int(t.data_offset) + int(t.n_bytes)) for t in reader.tensors
        ]
        fields = {
            name: reader.fields[name].contents()
            for name in ("general.file_type", "general.architecture")
            if name in reader.fields
        }
    except Exception as exc:  # numpy and the reader raise many kinds on a damaged file
        raise FtbenchError(
            f"{path} is not a readable GGUF file (truncated or corrupt: {first_line(exc, 200)}); "
            "re-export or replace it"
        ) from exc
    if not tensors:
        raise FtbenchError(f"{path} holds no tensors; re-export it from a checkpoint that holds its weights")
    if max(end for _, _, end in tensors) > size:
        raise FtbenchError(f"{path} is truncated (its tensors run past the end of the file); re-export or replace it")
    types = Counter(kind for kind, _, _ in tensors)
    file_type = _file_type_name(fields.get("general.file_type"), types)
    block = _block_size(file_type, GGML_QUANT_SIZES, GGMLQuantizationType)
    fallbacks = sum(1 for kind, shape, _ in tensors if block and len(shape) >= 2 and kind != "F32" and shape[0] % block)
    return GgufSummary(
        file_type, str(fields.get("general.architecture", "unknown")), len(tensors), dict(types), fallbacks
    )


def gguf_file_type(path: Path) -> str:
    """The native llama.cpp type of a GGUF file, e.g. ``q4_1`` for the embedded SmolLM2.

    Raises:
        FtbenchError: the file is missing, truncated or not GGUF.
    """
    return read_gguf(path).file_type


def _file_type_name(code: Any, types: Counter[str]) -> str:
    from gguf import LlamaFileType

    try:
        return LlamaFileType(int(code)).name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
    except (TypeError, ValueError):
        quantized = Counter({kind: n for kind, n in types.items() if kind != "F32"}) or types
        return quantized.most_common(1)[0][0].lower()


def _block_size(file_type: str, sizes: Any, kinds: Any) -> int | None:
    """Elements per block of a file type's main tensor type (``q4_k_m`` → ``Q4_K`` → 256); None for floats."""
    main = re.sub(r"^(I?Q\d_K)_[SML]$", r"\1", file_type.upper())
    if main in _FLOAT_TYPES or main not in kinds.__members__:
        return None
    return int(sizes[kinds[main]][0])


def converter_dir() -> Path:
    """Where llama.cpp's converter is installed: ``$FTBENCH_LLAMA_CPP_DIR``, else ``<venv>/share/llama.cpp``."""
    override = os.environ.get(CONVERTER_DIR_ENV)
    return Path(override).expanduser() if override else Path(sys.prefix) / "share" / "llama.cpp"


def _converter() -> Path:
    script = converter_dir() / CONVERTER_SCRIPT
    if not script.is_file():
        raise FtbenchError(
            f"llama.cpp's converter is not installed ({script} is missing); run `make setup`, "
            f"or set {CONVERTER_DIR_ENV} to a llama.cpp source folder"
        )
    return script


def convertible_architectures() -> frozenset[str] | None:
    """The architectures llama.cpp's converter knows (its ``TEXT_MODEL_MAP``), or None when it cannot be read."""
    source = converter_dir() / "conversion" / "__init__.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and "TEXT_MODEL_MAP" in ast.unparse(node).split("=")[0]:
            try:
                return frozenset(ast.literal_eval(node.value))  # type: ignore[arg-type]
            except ValueError:
                return None
    return None


def _check_architecture(checkpoint: Checkpoint) -> None:
    """Refuse, before any work, an architecture llama.cpp's converter does not know."""
    config_file = (checkpoint.base or checkpoint.path) / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FtbenchError(f"cannot read {config_file}; check or rewrite the checkpoint") from exc
    names = (config.get("text_config") or {}).get("architectures") or config.get("architectures") or ["(none)"]
    known = convertible_architectures()
    if known is not None and names[0] not in known:
        raise FtbenchError(
            f"llama.cpp's converter cannot convert {checkpoint.path} (architecture {names[0]}); "
            "evaluate it with the transformers engine (fp32, bf16, int8, nf4)"
        )


def converter_hash() -> str:
    """A short digest of the converter's Python sources: a new llama.cpp converter means new exports."""
    root = converter_dir()
    digest = hashlib.sha256()
    for file in sorted([root / CONVERTER_SCRIPT, *root.glob("conversion/*.py"), *root.glob("gguf-py/gguf/*.py")]):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def default_cache_dir(checkpoint: Checkpoint) -> Path:
    """Where a checkpoint's exports are kept: ``$FTBENCH_GGUF_CACHE/<name>``, else beside the checkpoint in
    ``.gguf-cache/<name>`` (a folder that checkpoint discovery skips, as it holds no model)."""
    root = os.environ.get("FTBENCH_GGUF_CACHE")
    base = Path(root).expanduser() if root else checkpoint.path.parent / ".gguf-cache"
    return base / checkpoint.name


def check_quant(quant: str) -> None:
    """Refuse a type ``export_gguf`` cannot write.

    Raises:
        FtbenchError: an unknown type; the message lists the valid ones.
    """
    if quant not in QUANT_TYPES:
        raise FtbenchError(f"unknown GGUF type {quant!r}; choose from {', '.join(QUANT_TYPES)}")


def check_exportable(checkpoint: Checkpoint, quant: str) -> None:
    """Refuse an export that cannot happen: an unknown type, or a checkpoint that is a GGUF file already.

    Raises:
        FtbenchError: naming the type or the file, and what to use instead.
    """
    check_quant(quant)
    if checkpoint.kind is CheckpointKind.GGUF:
        raise FtbenchError(
            f"{checkpoint.path} is already a GGUF file; evaluate it at precision gguf (its own type), or export a "
            "model directory"
        )


def export_gguf(checkpoint: Checkpoint, quant: str, cache_dir: Path) -> GgufFile:
    """``checkpoint`` as a GGUF file of llama.cpp type ``quant``, reused from ``cache_dir`` when unchanged.

    A LoRA adapter is merged into its base first. Types the converter does not write are quantized from the
    checkpoint's f16 export, which stays cached. The file and its manifest are written through temporary files and
    renamed into place, so a failed export leaves nothing behind.

    Raises:
        FtbenchError: an unknown type, a checkpoint that is already GGUF, a missing converter or llama-cpp-python,
            or an architecture llama.cpp cannot convert.
    """
    check_exportable(checkpoint, quant)
    from ftbench.harness.engines.llamacpp_lib import library, llama_cpp_python_version

    library()
    _converter()
    _check_architecture(checkpoint)
    parent_hash = weights_hash(checkpoint)
    key_fields = {"quant": quant, "llama_cpp_python": llama_cpp_python_version(), "converter_hash": converter_hash()}
    key = hashlib.sha256(repr([parent_hash, *sorted(key_fields.items())]).encode()).hexdigest()[:12]
    target = cache_dir / f"{quant}-{key}.gguf"
    remove_abandoned(cache_dir)  # what killed exports left (an f16 model, a merge)
    cached = _cached(target, parent_hash, key_fields)
    if cached is not None:
        return cached
    created = [folder for folder in (cache_dir, *cache_dir.parents) if not folder.exists()]
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        manifest = _write_export(checkpoint, quant, cache_dir, target, parent_hash, key_fields)
    except BaseException:
        for folder in created:  # innermost first; only the folders this call made, and only when left empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    write_atomic(manifest_path(target), manifest.model_dump_json(indent=2) + "\n")
    return GgufFile(target, manifest, reused=False)


def _write_export(
    checkpoint: Checkpoint, quant: str, cache_dir: Path, target: Path, parent_hash: str, key_fields: dict[str, str]
) -> GgufManifest:
    """Convert (and quantize) into a temporary folder, then rename the file to ``target``; returns its manifest."""
    with scratch_dir(cache_dir) as tmp:
        staging = Path(tmp) / target.name
        quantizer_fallbacks = None
        if quant in CONVERTER_TYPES:
            _convert(checkpoint, quant, staging, Path(tmp))
        else:
            source = export_gguf(checkpoint, "f16", cache_dir)
            quantizer_fallbacks = _quantize(source.path, quant, staging)
        summary = read_gguf(staging)
        manifest = GgufManifest(
            parent=str(checkpoint.path),
            parent_content_hash=parent_hash,
            quant=quant,
            llama_cpp_python=key_fields["llama_cpp_python"],
            converter_hash=key_fields["converter_hash"],
            sha256=file_sha256(staging),
            size_bytes=staging.stat().st_size,
            tensor_count=summary.tensor_count,
            tensor_types=summary.tensor_types,
            fallback_tensors=summary.fallback_tensors,
            quantizer_fallbacks=quantizer_fallbacks,
        )
        os.replace(staging, target)
    return manifest


def manifest_path(gguf_file: Path) -> Path:
    """Where the manifest of an exported file is kept: ``<file>.json``."""
    return gguf_file.with_name(gguf_file.name + ".json")


def _cached(target: Path, parent_hash: str, key_fields: dict[str, str]) -> GgufFile | None:
    """The export at ``target`` when it and its manifest are present, match the key and the file is intact."""
    manifest_file = manifest_path(target)
    if not (target.is_file() and manifest_file.is_file()):
        return None
    try:
        manifest = GgufManifest.model_validate_json(manifest_file.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None
    same = manifest.parent_content_hash == parent_hash and all(getattr(manifest, k) == v for k, v in key_fields.items())
    intact = manifest.size_bytes == target.stat().st_size and manifest.sha256 == file_sha256(target)
    return GgufFile(target, manifest, reused=True) if same and intact else None


def _convert(checkpoint: Checkpoint, outtype: str, out: Path, scratch: Path) -> None:
    """Run llama.cpp's converter on the checkpoint (a LoRA adapter merged into its base first)."""
    source = _merged(checkpoint, scratch / "merged") if checkpoint.kind is CheckpointKind.LORA else checkpoint.path
    command = [sys.executable, str(_converter()), str(source), "--outtype", outtype, "--outfile", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out.is_file():
        reason = _converter_error(result.stderr + result.stdout)
        raise FtbenchError(f"llama.cpp cannot convert {checkpoint.path} to GGUF: {reason}")
    try:
        read_gguf(out)
    except FtbenchError as exc:
        raise FtbenchError(
            f"llama.cpp cannot convert {checkpoint.path} to GGUF: its converter wrote no usable file; "
            "check that the checkpoint holds its weights"
        ) from exc


def _converter_error(log: str) -> str:
    """The converter's own reason for failing, in one line, with the fix where one is known."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:hf-to-gguf:") for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or ["no output"])[-1][:300]
    if "No module named" in reason:
        reason += "; run `make setup` to install the converter's dependencies"
    elif "is not supported" in reason:
        reason += "; this architecture cannot be evaluated with llama.cpp, use a precision of the transformers engine"
    return reason


def _merged(checkpoint: Checkpoint, out: Path) -> Path:
    """A LoRA adapter merged into its base (PEFT ``merge_and_unload``) and saved as a full model directory."""
    from ftbench.harness.engines.hf import load_causal_lm, load_tokenizer

    model, _ = load_causal_lm(checkpoint, Precision.FP32, "cpu")
    model.merge_and_unload().save_pretrained(out)
    load_tokenizer(checkpoint).save_pretrained(out)
    return out


def _quantize(source: Path, quant: str, out: Path) -> int:
    """Quantize ``source`` to ``quant`` with llama.cpp; returns llama.cpp's count of fallback tensors."""
    from ftbench.harness.engines.llamacpp_lib import last_error, library, llama_log

    llama_cpp = library()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    params.nthread = max(1, os.cpu_count() or 1)
    with llama_log() as log:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if status != 0 or not out.is_file():
        raise FtbenchError(f"llama.cpp cannot quantize {source} to {quant}: {last_error(log, f'status {status}')}")
    counted = [re.search(r"(\d+) of \d+ tensor\(s\) required fallback", line) for line in log]
    return next((int(match.group(1)) for match in counted if match), 0)
