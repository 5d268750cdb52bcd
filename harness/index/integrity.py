"""Whether the store's rows are still the ones ftbench indexed.

Each evaluation row carries a seal: a digest (an HMAC under ``FTBENCH_RECORD_KEY`` where that is set, as the record
digests are) over its listed columns, its content digest and its metric rows with their intervals, made when the
verified record was indexed. Reading a metric checks the seal: cheap, so ``history`` and the viewer's tables check
every row they show. Rebuilding a record checks both the seal and the record's content digest, over its header and
every sample row, so ``compare`` and the viewer's pages serve only records that equal their verified JSON.

Without a key a seal, like a record's own digest, finds rows changed by hand or by a damaged file; with a key it
finds rows changed by anyone who does not hold the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError, first_line
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import RECORD_KEY_ENV, content_digest
from ftbench.harness.index.connection import Store, database_errors
from ftbench.harness.index.record_rows import SAMPLE_READ, rebuild_record

SEALED_COLUMNS = ("key", "digest", "task", "checkpoint", "checkpoint_path", "stage", "precision", "engine", "step",
                  "repeat_index", "n_samples", "created_at")  # fmt: skip
"""The ``evaluations`` columns a seal covers, in the order of the indexed row (all but ``header``, which the
content digest covers)."""
SEALED_METRICS = ("metric", "value", "stderr", "n", "scale", "kind", "low", "high")
"""The ``metrics`` columns a seal covers."""
_SEAL_DOMAIN = b"ftbench store seal 1\n"
_EVAL_SELECT = ", ".join(f"e.{name}" for name in SEALED_COLUMNS)
_METRIC_SELECT = ", ".join(f"m.{name}" for name in SEALED_METRICS)


def _record_key() -> bytes | None:
    key = os.environ.get(RECORD_KEY_ENV)
    return key.encode() if key else None


def _sealed(evaluation: tuple[Any, ...], metrics: Sequence[Sequence[Any]], key: bytes | None) -> str:
    """The seal of plain values: ``evaluation`` as the database gives it back (str, int, None)."""
    lines = [repr(evaluation)]
    for name, value, stderr, n, scale, kind, low, high in sorted(metrics, key=itemgetter(0)):
        lines.append(repr((name, _real(value), _real(stderr), n, scale, kind, _real(low), _real(high))))
    data = _SEAL_DOMAIN + "\n".join(lines).encode()
    if key:
        return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _real(value: Any) -> float | None:
    """A stored float as both databases give it back (NaN is NULL in SQLite, -0.0 is 0.0)."""
    return None if value is None or value != value else value + 0.0


def _plain(value: Any) -> Any:
    """A value as the database gives it back: text as ``str``, whole numbers as ``int``, floats as ``float``."""
    if isinstance(value, str):
        return str(value)
    return float(value) if isinstance(value, float) else value if value is None else int(value)


def seal_of(evaluation: Sequence[Any], metrics: Sequence[Sequence[Any]]) -> str:
    """The seal of an evaluation row (its ``SEALED_COLUMNS``) and its metric rows (``SEALED_METRICS`` each): a
    digest (``sha256:``, or ``hmac-sha256:`` under ``FTBENCH_RECORD_KEY``) of their values' ``repr`` (strings
    quoted, floats exact), one line each."""
    plain = tuple(_plain(value) for value in evaluation[: len(SEALED_COLUMNS)])
    return _sealed(plain, [tuple(map(_plain, metric)) for metric in metrics], _record_key())


class Tampered(NamedTuple):
    """An evaluation whose rows are not what was indexed."""

    eval_id: int
    key: str
    label: str
    """``task checkpoint@precision``."""
    detail: str
    """What is wrong and what to do, naming the run to add again."""


def _mismatch(stored: str | None, expected: str, run: str) -> str:
    """How a stored digest differs from the one computed here, and the fix."""
    again = f"add the run again: `ftbench store add --reindex {run}`"
    if stored is None:
        return f"have no seal (they did not match their digest when the store was migrated); {again}"
    kind = stored.split(":")[0]
    if kind == "hmac-sha256" and not expected.startswith("hmac-"):
        return f"are signed with a key; set {RECORD_KEY_ENV} to the key they were indexed with"
    if kind != "hmac-sha256" and expected.startswith("hmac-"):
        return f"were indexed without the key in {RECORD_KEY_ENV}; with that key set, {again}"
    if kind == "hmac-sha256":
        return (
            f"do not verify under the key in {RECORD_KEY_ENV}: they were indexed with another key, or changed "
            f"since; set {RECORD_KEY_ENV} to the key they were indexed with, or {again}"
        )
    return f"were changed after indexing (they do not match its digest); {again}"


def _run_of(store: Store, eval_id: int) -> str:
    found = store.execute(
        "SELECT min(r.path) FROM run_evaluations l JOIN runs r ON r.run_id = l.run_id WHERE l.eval_id = ?", (eval_id,)
    )
    return str(found[0][0]) if found and found[0][0] is not None else "RUN_FOLDER"


def message(found: Tampered) -> str:
    """The one line that refuses a tampered evaluation."""
    return f"the store's rows of evaluation {found.key} ({found.label}) {found.detail}"


def _tampered(store: Store, eval_id: int, row: Sequence[Any], stored: str | None, expected: str) -> Tampered:
    key, task, checkpoint, precision = row[0], row[2], row[3], row[6]
    detail = _mismatch(stored, expected, _run_of(store, eval_id))
    return Tampered(eval_id, str(key), f"{task} {checkpoint}@{precision}", detail)


class Sealed(NamedTuple):
    """Evaluation rows whose seals were checked, with their metric rows."""

    rows: list[tuple[Any, ...]]
    """``eval_id``, the ``SEALED_COLUMNS``, then the extra columns asked for; in ``eval_id`` order."""
    metrics: dict[int, list[tuple[Any, ...]]]
    """Each evaluation's metric rows (``SEALED_METRICS``), by ``eval_id``."""
    tampered: list[Tampered]
    """The evaluations whose rows do not match their seal."""


def read_sealed(store: Store, where: str = "", params: Sequence[Any] = (), extra: Sequence[str] = ()) -> Sealed:
    """The evaluations (all, or those ``where`` a condition on ``e`` holds), with ``extra`` columns (expressions on
    ``e``), their metric rows, and those of them whose columns or metric rows do not match their seal."""
    clause = f" WHERE {where}" if where else ""
    more = "".join(f", {column}" for column in extra)
    found = store.execute(f"SELECT e.eval_id, {_EVAL_SELECT}, e.seal{more} FROM evaluations e{clause} "
                          "ORDER BY e.eval_id", params)  # fmt: skip
    joined = " JOIN evaluations e ON e.eval_id = m.eval_id" if where else ""
    metrics: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for metric in store.execute(f"SELECT m.eval_id, {_METRIC_SELECT} FROM metrics m{joined}{clause}", params):
        metrics[metric[0]].append(metric[1:])
    key, last = _record_key(), len(SEALED_COLUMNS) + 1
    rows, tampered = [], []
    for row in found:
        evaluation, stored = row[1:last], row[last]
        expected = _sealed(evaluation, metrics[row[0]], key)
        if stored is None or not hmac.compare_digest(str(stored), expected):
            tampered.append(_tampered(store, int(row[0]), evaluation, stored, expected))
        rows.append((*row[:last], *row[last + 1 :]))
    return Sealed(rows, metrics, tampered)


def refuse(tampered: Sequence[Tampered]) -> None:
    """Refuse what is tampered, if anything.

    Raises:
        FtbenchError: naming the first tampered evaluation and the run to add again.
    """
    if tampered:
        more = f" (and {len(tampered) - 1} more: `ftbench store check` lists them)" if len(tampered) > 1 else ""
        raise FtbenchError(message(tampered[0]) + more)


def unsealed(store: Store, where: str = "", params: Sequence[Any] = ()) -> list[Tampered]:
    """The evaluations (all, or those ``where`` a condition on ``e`` holds) whose listed columns or metric rows do
    not match their seal, in ``eval_id`` order."""
    return read_sealed(store, where, params).tampered


def verify_sealed(store: Store, where: str = "", params: Sequence[Any] = ()) -> None:
    """Refuse evaluations (all, or those ``where`` a condition on ``e`` holds) whose rows do not match their seal.

    Raises:
        FtbenchError: naming the first such evaluation and the run to add again.
    """
    refuse(unsealed(store, where, params))


def _content(store: Store, eval_id: int, row: Sequence[Any]) -> tuple[EvalRecord | None, Tampered | None]:
    """The record rebuilt from its rows, or what is wrong with them (the seal is checked already)."""
    digest = str(row[1])
    unreadable: tuple[type[Exception], ...] = (*database_errors(), ValueError)
    try:
        header = store.execute("SELECT header FROM evaluations WHERE eval_id = ?", (eval_id,))[0][0]
        samples = store.execute(f"SELECT {SAMPLE_READ} FROM samples WHERE eval_id = ? ORDER BY position", (eval_id,))
        record = rebuild_record(header, samples)
    except unreadable as exc:
        run = _run_of(store, eval_id)
        detail = f"cannot be read ({first_line(exc, 120)}); add the run again: `ftbench store add --reindex {run}`"
        return None, Tampered(eval_id, str(row[0]), f"{row[2]} {row[3]}@{row[6]}", detail)
    expected = content_digest(record)
    if record.digest is None or not (hmac.compare_digest(record.digest, digest)
                                     and hmac.compare_digest(expected, digest)):  # fmt: skip
        return None, _tampered(store, eval_id, row, digest, expected)
    return record, None


def indexed_record(store: Store, eval_id: int) -> EvalRecord | None:
    """The record of one indexed evaluation rebuilt from its rows, if it matches its content digest (its seal is
    not checked); None if not."""
    row = store.execute(f"SELECT {_EVAL_SELECT} FROM evaluations e WHERE e.eval_id = ?", (eval_id,))[0]
    return _content(store, eval_id, row)[0]


def verified_record(store: Store, eval_id: int) -> EvalRecord:
    """The record of one indexed evaluation, rebuilt from its rows and checked against its seal and its content
    digest (so it equals its verified JSON record).

    Raises:
        FtbenchError: the rows do not match, naming the evaluation and the run to add again.
    """
    where = "e.eval_id = ?"
    verify_sealed(store, where, (eval_id,))
    row = store.execute(f"SELECT {_EVAL_SELECT} FROM evaluations e WHERE {where}", (eval_id,))[0]
    record, found = _content(store, eval_id, row)
    if found is not None or record is None:
        raise FtbenchError(message(found) if found is not None else f"evaluation {row[0]} cannot be read")
    return record


def tampered_evaluations(store: Store) -> Iterator[Tampered]:
    """Every evaluation whose rows do not match its seal or its content digest (each record is rebuilt, one at a
    time), in ``eval_id`` order."""
    sealed_wrong = {found.eval_id: found for found in unsealed(store)}
    for eval_id, *row in store.execute(f"SELECT e.eval_id, {_EVAL_SELECT} FROM evaluations e ORDER BY e.eval_id"):
        if eval_id in sealed_wrong:
            yield sealed_wrong[eval_id]
            continue
        _, found = _content(store, int(eval_id), row)
        if found is not None:
            yield found


def verify_records(store: Store, where: str = "", params: Sequence[Any] = ()) -> None:
    """Refuse evaluations (all, or those ``where`` a condition on ``e`` holds) whose rows do not match their seal or
    their content digest; each record is rebuilt, one at a time.

    Raises:
        FtbenchError: naming the first such evaluation and the run to add again.
    """
    verify_sealed(store, where, params)
    clause = f" WHERE {where}" if where else ""
    for eval_id, *row in store.execute(f"SELECT e.eval_id, {_EVAL_SELECT} FROM evaluations e{clause}", params):
        found = _content(store, int(eval_id), row)[1]
        if found is not None:
            raise FtbenchError(message(found))
