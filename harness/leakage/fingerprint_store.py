"""The fingerprints file: one gzip-compressed JSON document (a pydantic model with a ``schema_version``), written
atomically.

Provenance and settings are plain JSON; each numeric column is a ``StoredArray`` (dtype, shape and the
little-endian bytes in base64). Ragged sketches are stored as per-row counts and one flat array; winnowing
positions as the gaps between a row's positions, which compress well. Raw texts are stored only when the
fingerprints kept them. Reading verifies every column against the row count, so a truncated or edited file is
refused, naming it.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error
from ftbench.harness.leakage.fingerprints import Fingerprints, Ragged
from ftbench.harness.leakage.sketches import SketchSettings
from ftbench.harness.leakage.training_rows import RowOrigin

FINGERPRINTS_VERSION = 1
_DTYPES = ("uint8", "uint16", "uint32", "uint64")  # every dtype a column may have


class StoredArray(BaseModel):
    """A numpy array as JSON: its dtype, shape and little-endian bytes in base64."""

    model_config = ConfigDict(extra="forbid")

    dtype: str
    shape: list[int]
    data: str

    @classmethod
    def of(cls, array: np.ndarray) -> StoredArray:
        """The stored form of ``array``."""
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        return cls(dtype=array.dtype.name, shape=list(array.shape), data=base64.b64encode(little.tobytes()).decode())

    def array(self) -> np.ndarray:
        """The array again (raises ``ValueError`` when the bytes do not fit the dtype and shape)."""
        if self.dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {self.dtype}")
        flat = np.frombuffer(base64.b64decode(self.data, validate=True), dtype=np.dtype(self.dtype).newbyteorder("<"))
        return flat.astype(self.dtype).reshape(self.shape)


class FingerprintFile(BaseModel):
    """The stored form of ``Fingerprints``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = FINGERPRINTS_VERSION
    settings: SketchSettings
    origins: list[RowOrigin]
    digests: StoredArray
    words: StoredArray
    chars: StoredArray
    long_counts: StoredArray
    long_ngrams: StoredArray
    short_counts: StoredArray
    short_ngrams: StoredArray
    winnow_counts: StoredArray
    winnow_hashes: StoredArray
    winnow_gaps: StoredArray
    minhashes: StoredArray
    texts: list[str] | None = None


def _gaps(positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each position less the one before it in its row (the first of a row as it is)."""
    gaps = positions.astype(np.int64)
    gaps[1:] -= positions[:-1].astype(np.int64)
    starts = offsets[:-1][np.diff(offsets) > 0]
    gaps[starts] = positions[starts]
    return gaps.astype(np.uint32)


def _ragged(counts: np.ndarray, values: np.ndarray) -> Ragged:
    offsets = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    if offsets[-1] != len(values):
        raise ValueError("row counts do not add up to the values")
    return Ragged(values, offsets)


def to_file(fingerprints: Fingerprints) -> FingerprintFile:
    """The stored form of ``fingerprints``."""
    winnow = fingerprints.winnow_hashes
    digests = np.frombuffer(b"".join(bytes.fromhex(d) for d in fingerprints.digests), dtype=np.uint8)
    return FingerprintFile(
        settings=fingerprints.settings,
        origins=fingerprints.origins,
        digests=StoredArray.of(digests.reshape(len(fingerprints), 32)),
        words=StoredArray.of(fingerprints.words),
        chars=StoredArray.of(fingerprints.chars),
        long_counts=StoredArray.of(np.diff(fingerprints.long_ngrams.offsets).astype(np.uint32)),
        long_ngrams=StoredArray.of(fingerprints.long_ngrams.values),
        short_counts=StoredArray.of(np.diff(fingerprints.short_ngrams.offsets).astype(np.uint32)),
        short_ngrams=StoredArray.of(fingerprints.short_ngrams.values),
        winnow_counts=StoredArray.of(np.diff(winnow.offsets).astype(np.uint32)),
        winnow_hashes=StoredArray.of(winnow.values),
        winnow_gaps=StoredArray.of(_gaps(fingerprints.winnow_positions, winnow.offsets)),
        minhashes=StoredArray.of(fingerprints.minhashes),
        texts=fingerprints.texts,
    )


def from_file(stored: FingerprintFile) -> Fingerprints:
    """``Fingerprints`` from their stored form.

    Raises:
        ValueError: a column does not fit the row count.
    """
    rows = len(stored.origins)
    winnow = _ragged(stored.winnow_counts.array(), stored.winnow_hashes.array())
    gaps = stored.winnow_gaps.array().astype(np.int64)
    row_starts = np.repeat(winnow.offsets[:-1], np.diff(winnow.offsets))
    positions = np.cumsum(gaps) - np.concatenate(([0], np.cumsum(gaps)))[row_starts] if len(gaps) else gaps
    fingerprints = Fingerprints(
        settings=stored.settings,
        origins=stored.origins,
        digests=[row.tobytes().hex() for row in stored.digests.array().reshape(rows, 32)],
        words=stored.words.array(),
        chars=stored.chars.array(),
        long_ngrams=_ragged(stored.long_counts.array(), stored.long_ngrams.array()),
        short_ngrams=_ragged(stored.short_counts.array(), stored.short_ngrams.array()),
        winnow_hashes=winnow,
        winnow_positions=positions.astype(np.uint32),
        minhashes=stored.minhashes.array().reshape(rows, stored.settings.num_perm),
        texts=stored.texts,
    )
    counts = (fingerprints.long_ngrams, fingerprints.short_ngrams, winnow)
    columns = (fingerprints.words, fingerprints.chars, *(ragged.offsets[1:] for ragged in counts))
    if any(len(column) != rows for column in columns) or len(gaps) != len(winnow.values):
        raise ValueError("a column does not have one entry per row")
    if stored.texts is not None and len(stored.texts) != rows:
        raise ValueError("the texts do not have one entry per row")
    return fingerprints


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise FtbenchError(
            f"cannot write {path} ({exc.strerror or type(exc).__name__}; it needs {len(data) / 2**20:.1f} MiB); "
            "free space there, fix its permissions or choose another folder"
        ) from exc


def save_fingerprints(fingerprints: Fingerprints, path: str | Path) -> Path:
    """Write the fingerprints file atomically (gzip-compressed JSON; name it ``*.json.gz``) and return its path."""
    target = Path(path)
    text = to_file(fingerprints).model_dump_json(exclude_none=True)
    _write_bytes_atomic(target, gzip.compress(text.encode(), mtime=0))
    return target


def load_fingerprints(path: str | Path) -> Fingerprints:
    """Read a fingerprints file.

    Raises:
        FtbenchError: the file is missing, unreadable, of another schema version, or corrupted, naming it.
    """
    source = Path(path)
    fix = "write it again with save_fingerprints"
    try:
        data = json.loads(gzip.decompress(source.read_bytes()))
    except gzip.BadGzipFile as exc:
        raise FtbenchError(f"fingerprints file {source} is corrupted (not gzip-compressed JSON); {fix}") from exc
    except OSError as exc:
        raise FtbenchError(f"cannot read fingerprints file {source} ({exc.strerror or exc}); {fix}") from exc
    except (EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise FtbenchError(f"fingerprints file {source} is corrupted (not gzip-compressed JSON); {fix}") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != FINGERPRINTS_VERSION:
        raise FtbenchError(
            f"fingerprints file {source} has schema version {version}, this ftbench reads {FINGERPRINTS_VERSION}; {fix}"
        )
    try:
        return from_file(FingerprintFile.model_validate(data))
    except ValidationError as exc:
        spot = first_error(exc)
        raise FtbenchError(f"fingerprints file {source} is corrupted ({spot.where}: {spot.message}); {fix}") from exc
    except (FtbenchError, ValueError) as exc:
        raise FtbenchError(f"fingerprints file {source} is corrupted ({exc}); {fix}") from exc
