"""Finding evaluations in the store by what a person types: a request key (or a unique prefix of one), or
``CHECKPOINT@PRECISION`` with a task; and rebuilding their records from the stored rows. What is listed is checked
against its seal, and a rebuilt record against its content digest too (``integrity``)."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.request import NOT_IN_KEY
from ftbench.harness.index.connection import Store
from ftbench.harness.index.integrity import verified_record, verify_sealed

_KEY = re.compile(r"[0-9a-f]{4,64}")
_COLUMNS = (
    "e.eval_id, e.key, e.task, e.checkpoint, e.stage, e.precision, e.created_at, e.n_samples, "
    "(SELECT min(r.path) FROM run_evaluations l JOIN runs r ON r.run_id = l.run_id WHERE l.eval_id = e.eval_id)"
)


class Indexed(NamedTuple):
    """An evaluation as the store lists it."""

    eval_id: int
    key: str
    task: str
    checkpoint: str
    stage: str
    precision: str
    created_at: str
    n_samples: int
    run: str | None

    @property
    def label(self) -> str:
        """``checkpoint@precision``."""
        return f"{self.checkpoint}@{self.precision}"


def list_evaluations(store: Store, where: str = "", params: tuple[object, ...] = ()) -> list[Indexed]:
    """The indexed evaluations (optionally ``WHERE`` a condition on ``e``), newest first.

    Raises:
        FtbenchError: the rows of one of them (or of its metrics) are not what was indexed.
    """
    verify_sealed(store, where, params)
    rows = store.execute(
        f"SELECT {_COLUMNS} FROM evaluations e {('WHERE ' + where) if where else ''} "
        "ORDER BY e.created_at DESC, e.eval_id DESC",
        params,
    )
    return [Indexed(*row) for row in rows]


def _by_key(store: Store, text: str) -> list[Indexed]:
    found = list_evaluations(store, "e.key LIKE ?", (text + "%",))
    keys = sorted({item.key for item in found})
    if not found:
        raise FtbenchError(
            f"no evaluation {text!r} in the store {store.location.label}; list them with `ftbench history --task T` "
            "or give CHECKPOINT@PRECISION with --task"
        )
    if len(keys) > 1:
        raise FtbenchError(f"{text!r} is the start of {len(keys)} keys ({', '.join(keys[:5])}); give more of it")
    return found[:1]  # the newest content of that key


def _request_without_repeat(store: Store, eval_id: int) -> str:
    header = store.execute("SELECT header FROM evaluations WHERE eval_id = ?", (eval_id,))[0][0]
    request = json.loads(header)["request"]
    return json.dumps({k: v for k, v in request.items() if k not in ("repeat", *NOT_IN_KEY)}, sort_keys=True)


def _by_variant(store: Store, text: str, task: str | None) -> list[Indexed]:
    checkpoint, _, precision = text.rpartition("@")
    if task is None:
        raise FtbenchError(f"{text!r} names a variant, not one evaluation; give its task with --task, or a key")
    found = list_evaluations(
        store, "e.task = ? AND e.precision = ? AND (e.checkpoint = ? OR e.stage = ? OR e.checkpoint_path = ?)",
        (task, precision, checkpoint, checkpoint, checkpoint),
    )  # fmt: skip
    if not found:
        raise FtbenchError(
            f"no evaluation of {task} at {text!r} in the store {store.location.label}; see them with "
            f"`ftbench history --task {task}`"
        )
    newest = list({item.key: item for item in reversed(found)}.values())  # one content per key: the newest
    requests = {_request_without_repeat(store, item.eval_id) for item in newest}
    if len(requests) > 1:
        listed = ", ".join(f"{item.key} ({item.created_at})" for item in newest[:6])
        raise FtbenchError(f"{text!r} matches {len(newest)} evaluations of {task}: {listed}; give one's key")
    return sorted(newest, key=lambda item: item.key)


def find_evaluations(store: Store, text: str, task: str | None = None) -> list[Indexed]:
    """The evaluation ``text`` names: a key or key prefix (its newest indexed content), or every repeat of one
    request of ``task`` at ``CHECKPOINT@PRECISION`` (checkpoint name, stage or path).

    Raises:
        FtbenchError: nothing matches, the match is ambiguous, or ``text`` is neither form.
    """
    if "@" in text:
        return _by_variant(store, text, task)
    if _KEY.fullmatch(text.lower()):
        return _by_key(store, text.lower())
    raise FtbenchError(f"{text!r} is neither an evaluation key nor CHECKPOINT@PRECISION; give one of those")


def load_records(store: Store, found: list[Indexed]) -> list[EvalRecord]:
    """The records of indexed evaluations, rebuilt from the store and verified (each equal to its JSON record).

    Raises:
        FtbenchError: an evaluation's rows do not match its seal or its content digest, naming it and the fix.
    """
    return [verified_record(store, item.eval_id) for item in found]
